"""Capability probes in a child process, with a timeout.

This module owns running ``python -m camsvc.cameras.v4l2 /dev/videoN`` through
``reactor.spawnProcess`` and turning its JSON answer into a dict (or a
:class:`ProbeFailed`).

Why a child process and not the ioctls in-process: opening a UVC node can wake a
suspended USB device, and a sick camera, hub or driver can leave ``open()`` or an
ioctl blocked in the kernel for seconds or for ever (uninterruptible sleep).  In
the service's own process that would freeze the reactor — every WebSocket client,
every notification, every health check — and nothing could time it out, because
camsvc has no threads by design.  A child can be killed at ``probe_timeout``; the
reactor never waits.  The cost is a short-lived Python process per camera
appearance (~30-60 ms of CPU), paid after the camera has already been announced,
and bounded: probes run at most :data:`MAX_CONCURRENT` at a time (discovery
queues the rest) and a camera that flaps is probed at most once per debounce
window.

Children run at niceness :data:`PROBE_NICENESS` so that on a busy machine they never
hold up the event loop.

Collaborators: an ``IReactorProcess`` + ``IReactorTime`` reactor; the child's
argv prefix and environment (tests substitute a stand-in program; under umockdev
the child inherits the preload from camsvc's environment).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Sequence
from typing import Any

from twisted.internet import error as twisted_error
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

log = Logger()

#: Probes running at once (more are queued by the caller).
MAX_CONCURRENT = 2
#: Bytes of stdout accepted from a probe (a UVC camera's JSON is a few KB).
MAX_OUTPUT = 4 * 1024 * 1024
MAX_STDERR = 16 * 1024

#: Niceness of probe children: a probe is background work (interpreter start-up is
#: most of its ~30-60 ms of CPU); the event loop, which announces cameras, goes first.
PROBE_NICENESS = 10


def default_argv() -> tuple[str, ...]:
    """``[nice -n 10] python -m camsvc.cameras.v4l2`` (without ``nice`` when it is not installed)."""
    python = (sys.executable, "-m", "camsvc.cameras.v4l2")
    nice = shutil.which("nice")
    return (nice, "-n", str(PROBE_NICENESS), *python) if nice else python


class ProbeFailed(Exception):
    """A probe did not produce capabilities.

    ``reason``: ``"vanished"`` (the node went away), ``"not_capture"`` (not a video
    capture node), ``"timeout"`` or ``"error"`` (permission denied, busy, a crash...).
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class _ProbeProtocol(ProcessProtocol):
    def __init__(self, path: str, done: Deferred, on_end: Any) -> None:
        self.path = path
        self.done = done
        self.on_end = on_end
        self.out: list[bytes] = []
        self.out_size = 0
        self.err = b""
        self.overflow = False
        self.finished = False

    def outReceived(self, data: bytes) -> None:
        self.out_size += len(data)
        if self.out_size > MAX_OUTPUT:
            if not self.overflow:
                self.overflow = True
                self.kill()
            return
        self.out.append(data)

    def errReceived(self, data: bytes) -> None:
        if len(self.err) < MAX_STDERR:
            self.err += data[: MAX_STDERR - len(self.err)]

    def kill(self) -> None:
        try:
            self.transport.signalProcess("KILL")
        except (twisted_error.ProcessExitedAlready, OSError, AttributeError):
            pass  # already gone: nothing to stop

    def processEnded(self, reason: Failure) -> None:
        self.finished = True
        self.on_end(self)
        if self.done.called:
            return  # timed out or cancelled: the outcome was already reported
        code = getattr(reason.value, "exitCode", None)
        try:
            result = self._outcome(code, reason)
        except ProbeFailed as exc:
            self.done.errback(exc)
        else:
            self.done.callback(result)

    def _outcome(self, code: int | None, reason: Failure) -> dict:
        if self.overflow:
            raise ProbeFailed("error", f"probe of {self.path} produced more than {MAX_OUTPUT} bytes")
        text = b"".join(self.out).decode("utf-8", "replace").strip()
        if code in (0, 2):
            try:
                data = json.loads(text.splitlines()[-1]) if text else None
            except ValueError:
                data = None
            if isinstance(data, dict):
                if code == 0 and isinstance(data.get("formats"), list):
                    return data
                if code == 2:
                    raise ProbeFailed(str(data.get("reason") or "error"), str(data.get("error") or "probe failed"))
        stderr = self.err.decode("utf-8", "replace").strip().splitlines()
        detail = stderr[-1] if stderr else f"exit status {code}" if code is not None else str(reason.value)
        raise ProbeFailed("error", f"probe of {self.path} failed: {detail}")


class ProcessProber:
    """``probe(path) -> Deferred`` firing with the probe CLI's JSON dict.

    The dict is :meth:`camsvc.cameras.v4l2.Capabilities.to_dict` plus ``"default"``.  Failures
    errback with :class:`ProbeFailed`; ``timeout`` seconds after the start the child
    is killed (SIGKILL) and the Deferred fails with reason ``"timeout"`` at once.
    Cancelling the Deferred kills the child.  ``running`` counts live children.
    """

    def __init__(
        self,
        reactor: Any,
        timeout: float,
        *,
        argv: Sequence[str] | None = None,
        env: dict | None = None,
    ) -> None:
        self.reactor = reactor
        self.timeout = timeout
        self.argv = tuple(argv) if argv is not None else default_argv()
        self.env = env
        self._live: set[_ProbeProtocol] = set()

    @property
    def running(self) -> int:
        return len(self._live)

    def probe(self, path: str) -> Deferred:
        proto: _ProbeProtocol

        def cancel(d: Deferred) -> None:
            proto.kill()

        done: Deferred = Deferred(cancel)
        proto = _ProbeProtocol(path, done, self._live.discard)
        env = dict(os.environ) if self.env is None else dict(self.env)
        try:
            self.reactor.spawnProcess(
                proto, self.argv[0], [*self.argv, path], env=env, childFDs={0: "w", 1: "r", 2: "r"}
            )
        except Exception as exc:  # fork/exec failure (EAGAIN, ENOMEM, missing interpreter)
            log.failure("Cannot start the capability probe for {path}", path=path)
            done.errback(ProbeFailed("error", f"cannot start the probe: {exc}"))
            return done
        self._live.add(proto)
        try:
            proto.transport.closeStdin()
        except Exception:
            log.failure("closing the probe's stdin failed")

        def on_timeout() -> None:
            if done.called:
                return
            proto.kill()
            done.errback(ProbeFailed("timeout", f"capability probe of {path} timed out after {self.timeout:g}s"))

        timer = self.reactor.callLater(self.timeout, on_timeout)

        def finished(result: Any) -> Any:
            if timer.active():
                timer.cancel()
            return result

        done.addBoth(finished)
        return done

    def kill_all(self) -> None:
        """Kill every running child (service stop)."""
        for proto in list(self._live):
            proto.kill()
