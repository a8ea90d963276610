"""Persisting a state file without the reactor waiting on fsync.

This module owns :class:`BackgroundWriter`: the reactor hands it the new content of
one file (``write(data)``, returns at once); a thread of the reactor's pool writes it
with :func:`camsvc.common.fileio.atomic_write` (temp file, fsync, rename, directory
fsync).  Writes of one file are serialised and coalesced: while one is in flight only
the newest pending content is kept, and an older content can never land after a
newer one (a generation number checked under a lock), also when :meth:`flush_now`
writes synchronously at shutdown.  A reactor without a thread pool (the test
reactors) gets synchronous writes.  Failures are logged and reported to
``on_error(exc)``; nothing raises into the reactor.

Collaborators: the reactor (``getThreadPool``, ``callFromThread``), the path and modes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from camsvc.common.fileio import atomic_write

log = Logger()


class BackgroundWriter:
    """One file, written off the reactor thread (see the module docstring)."""

    def __init__(
        self,
        reactor: Any,
        path: str,
        *,
        mode: int = 0o644,
        dir_mode: int = 0o777,
        on_error: Callable[[BaseException], None] | None = None,
        what: str = "state",
    ) -> None:
        self.reactor = reactor
        self.path = path
        self.mode = mode
        self.dir_mode = dir_mode
        self.on_error = on_error
        self.what = what
        self._lock = threading.Lock()
        self._generation = 0  # of the newest content handed in
        self._written = 0  # generation on disk
        self._pending: tuple[int, bytes] | None = None
        self._busy: Deferred | None = None
        self._waiters: list[tuple[int, Deferred]] = []
        self.writes = 0
        self.errors = 0

    @property
    def threaded(self) -> bool:
        return hasattr(self.reactor, "getThreadPool") and hasattr(self.reactor, "callFromThread")

    def write(self, data: bytes) -> Deferred:
        """Persist ``data`` soon; the Deferred fires (with None) once it, or newer
        content, is on disk or failed (never errbacks)."""
        self._generation += 1
        self._pending = (self._generation, data)
        if not self.threaded:
            self._write_pending_sync()
            return succeed(None)
        done: Deferred = Deferred()
        self._waiters.append((self._generation, done))
        if self._busy is None:
            self._busy = self._start()
        return done

    def _start(self) -> Deferred:
        from twisted.internet.threads import deferToThreadPool

        generation, data = self._pending  # type: ignore[misc]
        self._pending = None
        d = deferToThreadPool(self.reactor, self.reactor.getThreadPool(), self._write, generation, data)
        d.addErrback(lambda failure: self._failed(failure.value))
        d.addBoth(self._finished, generation)
        return d

    def _finished(self, _: Any, generation: int) -> None:
        self._busy = None
        ready = [d for g, d in self._waiters if g <= generation]
        self._waiters = [(g, d) for g, d in self._waiters if g > generation]
        if self._pending is not None:
            self._busy = self._start()
        for d in ready:
            d.callback(None)

    def _failed(self, exc: BaseException) -> None:
        self.errors += 1
        log.error("Cannot save {what} to {path}: {error}", what=self.what, path=self.path, error=exc)
        if self.on_error is not None:
            try:
                self.on_error(exc)
            except Exception:
                log.failure("on_error of the {what} writer failed", what=self.what)

    def _write(self, generation: int, data: bytes) -> None:
        with self._lock:
            if generation <= self._written:
                return  # newer content is already on disk
            atomic_write(self.path, data, mode=self.mode, dir_mode=self.dir_mode)
            self._written = generation
            self.writes += 1

    def _write_pending_sync(self) -> bool:
        pending, self._pending = self._pending, None
        if pending is None:
            return True
        try:
            self._write(*pending)
        except Exception as exc:
            self._failed(exc)
            return False
        return True

    def drain(self) -> Deferred:
        """Fires (with None) once everything handed in so far is on disk or failed."""
        if self._busy is None and self._pending is None:
            return succeed(None)
        done: Deferred = Deferred()
        self._waiters.append((self._generation, done))
        return done

    def flush_now(self) -> bool:
        """Write pending content synchronously (at shutdown); True when nothing failed."""
        return self._write_pending_sync()
