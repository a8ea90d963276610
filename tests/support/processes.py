"""A fake ``IReactorProcess`` for unit tests of code that spawns children (test support).

:class:`FakeProcessReactor` records every ``spawnProcess`` call as a :class:`FakeProcess`;
the test then plays the child: ``proc.out(b"...")``, ``proc.err(b"...")``,
``proc.exit(0)``.  ``signalProcess`` is recorded; with ``die_on_kill`` (default) a KILL
ends the process with signal 9 as the kernel would.  Time comes from an injected
:class:`twisted.internet.task.Clock`, so nothing here needs a running reactor.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import error
from twisted.python.failure import Failure


class FakeProcess:
    def __init__(self, reactor: FakeProcessReactor, proto: Any, executable: str, argv: list, env: Any) -> None:
        self.reactor = reactor
        self.proto = proto
        self.executable = executable
        self.argv = list(argv)
        self.env = env
        self.signals: list[str] = []
        self.stdin_closed = False
        self.ended = False
        self.pid = 1000 + len(reactor.spawned)

    # ITransport-ish, as ProcessProtocol sees it
    def closeStdin(self) -> None:
        self.stdin_closed = True

    def signalProcess(self, sig: str) -> None:
        if self.ended:
            raise error.ProcessExitedAlready()
        self.signals.append(sig)
        if self.reactor.die_on_kill and sig in ("KILL", "TERM"):
            self.exit(None, signal=9 if sig == "KILL" else 15)

    def loseConnection(self) -> None:
        pass

    # playing the child
    def out(self, data: bytes) -> None:
        self.proto.childDataReceived(1, data)

    def err(self, data: bytes) -> None:
        self.proto.childDataReceived(2, data)

    def exit(self, code: int | None = 0, *, signal: int | None = None) -> None:
        if self.ended:
            return
        self.ended = True
        if code == 0 and signal is None:
            reason = Failure(error.ProcessDone(0))
        else:
            reason = Failure(error.ProcessTerminated(exitCode=code, signal=signal))
        self.proto.processExited(reason)
        self.proto.processEnded(reason)


class FakeProcessReactor:
    """``spawnProcess`` that records; ``spawned`` lists every :class:`FakeProcess`."""

    def __init__(self, *, die_on_kill: bool = True, fail_with: Exception | None = None) -> None:
        self.spawned: list[FakeProcess] = []
        self.die_on_kill = die_on_kill
        self.fail_with = fail_with

    def spawnProcess(self, proto: Any, executable: str, args: Any = (), env: Any = None, path=None, **kw: Any):
        if self.fail_with is not None:
            raise self.fail_with
        proc = FakeProcess(self, proto, executable, list(args), env)
        self.spawned.append(proc)
        proto.makeConnection(proc)
        return proc

    @property
    def last(self) -> FakeProcess:
        return self.spawned[-1]

    def running(self) -> list[FakeProcess]:
        return [p for p in self.spawned if not p.ended]
