"""Child processes on the reactor: run a command with a timeout, collect its output.

This module owns how camsvc runs short-lived helpers (ffmpeg for snapshots) and
long-lived ones (the recording keep-alive reader): always through an injected
``IReactorProcess`` (``reactor.spawnProcess``), never a thread or ``subprocess``.

:func:`run` starts a command, closes its stdin, drains stdout (kept up to a bound)
and stderr (its tail kept for error messages), kills it with SIGKILL when the
timeout passes or the output grows past the bound, and fires once it has really
exited, so no child outlives the call.  :class:`ProcessGroup` tracks the children of
one owner and kills them all on shutdown.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from typing import Any

from twisted.internet import error as ierror
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

log = Logger()

#: How much of stderr is kept (the tail), for error messages and logs.
STDERR_TAIL = 8192


class ProcessError(Exception):
    """The command could not run or did not finish properly."""


class ProcessTimeout(ProcessError):
    """The command ran longer than its timeout and was killed."""


class OutputTooLarge(ProcessError):
    """The command wrote more than allowed to stdout and was killed."""


class NotInstalled(ProcessError):
    """The executable is not on PATH."""


@dataclass(frozen=True)
class Result:
    """How a finished command ended: stdout, the tail of stderr, exit code or signal."""

    stdout: bytes
    stderr: bytes
    exit_code: int | None
    signal: int | None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def stderr_text(self) -> str:
        return self.stderr.decode("utf-8", "replace")

    def last_error_line(self) -> str:
        """The last non-empty stderr line (what ffmpeg says went wrong)."""
        for line in reversed(self.stderr_text().splitlines()):
            if line.strip():
                return line.strip()
        return ""


class _Collector(ProcessProtocol):
    def __init__(self, max_stdout: int) -> None:
        self.max_stdout = max_stdout
        self.stdout: list[bytes] = []
        self.stdout_size = 0
        self.stderr = bytearray()
        self.reason: str | None = None  # why we killed it
        self.ended: Deferred = Deferred()
        self.exit_waiters: list[Deferred] = []

    def connectionMade(self) -> None:
        self.transport.closeStdin()

    def outReceived(self, data: bytes) -> None:
        if self.reason is not None:
            return
        self.stdout_size += len(data)
        if self.stdout_size > self.max_stdout:
            self.kill("output")
            return
        self.stdout.append(data)

    def errReceived(self, data: bytes) -> None:
        self.stderr += data
        if len(self.stderr) > STDERR_TAIL:
            del self.stderr[: len(self.stderr) - STDERR_TAIL]

    def kill(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        try:
            self.transport.signalProcess("KILL")
        except (ierror.ProcessExitedAlready, OSError):
            pass

    def processEnded(self, reason: Failure) -> None:
        value = reason.value
        waiters, self.exit_waiters = self.exit_waiters, []
        for d in waiters:
            d.callback(None)
        self.ended.callback(
            Result(
                stdout=b"".join(self.stdout),
                stderr=bytes(self.stderr),
                exit_code=getattr(value, "exitCode", None),
                signal=getattr(value, "signal", None),
            )
        )


def which(name: str) -> str:
    """The full path of ``name`` on PATH, else raise :class:`NotInstalled`."""
    path = shutil.which(name)
    if path is None:
        raise NotInstalled(f"{name} is not installed (not found on PATH)")
    return path


class ProcessGroup:
    """The running children of one owner; :meth:`kill_all` on shutdown.

    Collaborators: ``reactor`` (``IReactorProcess``) and ``clock`` (``IReactorTime``).
    """

    def __init__(self, reactor: Any, clock: Any) -> None:
        self.reactor = reactor
        self.clock = clock
        self._running: set[_Collector] = set()

    def __len__(self) -> int:
        return len(self._running)

    def run(self, argv: list[str], *, timeout: float, max_stdout: int = 64 * 1024 * 1024) -> Deferred:
        """Run ``argv``; a Deferred firing with a :class:`Result` once it has exited.

        Fails with :class:`ProcessTimeout` / :class:`OutputTooLarge` (after the child
        was killed and reaped) or :class:`ProcessError` when it cannot be started.
        A non-zero exit is a Result, not a failure: callers judge it.
        """
        try:
            executable = which(argv[0]) if os.sep not in argv[0] else argv[0]
        except NotInstalled as exc:
            return _failed(exc)
        proto = _Collector(max_stdout)
        try:
            self.reactor.spawnProcess(proto, executable, list(argv), env=dict(os.environ))
        except OSError as exc:
            return _failed(ProcessError(f"cannot start {argv[0]}: {exc.strerror or exc}"))
        self._running.add(proto)
        timer = self.clock.callLater(timeout, proto.kill, "timeout")

        def ended(result: Result) -> Result:
            self._running.discard(proto)
            if timer.active():
                timer.cancel()
            if proto.reason == "timeout":
                raise ProcessTimeout(f"{argv[0]} did not finish within {timeout:g} s and was stopped")
            if proto.reason == "output":
                raise OutputTooLarge(f"{argv[0]} wrote more than {max_stdout} bytes and was stopped")
            if proto.reason == "shutdown":
                raise ProcessError(f"{argv[0]} was stopped: the service is shutting down")
            return result

        return proto.ended.addCallback(ended)

    def kill_all(self) -> Deferred:
        """Kill every running child; fires once all have exited."""
        waits = []
        for proto in list(self._running):
            d: Deferred = Deferred()
            proto.exit_waiters.append(d)
            waits.append(d)
            proto.kill("shutdown")
        return DeferredList(waits)


def _failed(exc: Exception) -> Deferred:
    d: Deferred = Deferred()
    d.errback(Failure(exc))
    return d
