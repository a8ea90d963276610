"""camsvc.cameras.probing: the capability probe child process, its timeout and cancellation."""

from __future__ import annotations

import json
import sys

import pytest
import pytest_twisted
from twisted.internet import error
from twisted.internet.defer import CancelledError
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from camsvc.cameras.probing import MAX_OUTPUT, ProbeFailed, ProcessProber
from camsvc.testing import probe_result


class FakeTransport:
    def __init__(self):
        self.signals = []
        self.stdin_closed = False
        self.exited = False

    def signalProcess(self, sig):
        if self.exited:
            raise error.ProcessExitedAlready()
        self.signals.append(sig)

    def closeStdin(self):
        self.stdin_closed = True


class ProcessReactor(Clock):
    """Clock + spawnProcess that records children for the test to finish."""

    def __init__(self, fail=None):
        super().__init__()
        self.spawned = []
        self.fail = fail

    def spawnProcess(self, proto, executable, args, env=None, childFDs=None, **kw):
        if self.fail:
            raise self.fail
        transport = FakeTransport()
        proto.makeConnection(transport)
        self.spawned.append((proto, executable, args, env, transport))
        return transport

    def finish(self, index, code, out=b"", err=b""):
        proto, *_, transport = self.spawned[index]
        if out:
            proto.childDataReceived(1, out)
        if err:
            proto.childDataReceived(2, err)
        transport.exited = True
        exc = error.ProcessDone(None) if code == 0 else error.ProcessTerminated(exitCode=code)
        proto.processEnded(Failure(exc))


def outcome(d):
    """The result of a fired Deferred (consumed), or None while it has not fired."""
    if not d.called:
        return None
    box = []
    d.addBoth(box.append)
    return box[0]


def test_success_parses_the_cli_json():
    reactor = ProcessReactor()
    prober = ProcessProber(reactor, 5, argv=("/usr/bin/python3", "-m", "camsvc.cameras.v4l2"), env={"A": "1"})
    d = prober.probe("/dev/video0")
    proto, exe, args, env, transport = reactor.spawned[0]
    assert (exe, args, env) == (
        "/usr/bin/python3",
        ["/usr/bin/python3", "-m", "camsvc.cameras.v4l2", "/dev/video0"],
        {"A": "1"},
    )
    assert transport.stdin_closed and prober.running == 1
    result = probe_result("/dev/video0")
    reactor.finish(0, 0, json.dumps(result).encode() + b"\n")
    assert outcome(d) == result
    assert prober.running == 0 and reactor.getDelayedCalls() == []


@pytest.mark.parametrize("reason", ["vanished", "not_capture", "error"])
def test_probe_errors_keep_their_reason(reason):
    reactor = ProcessReactor()
    prober = ProcessProber(reactor, 5)
    d = prober.probe("/dev/video3")
    body = {"error": f"/dev/video3: {reason} happened", "reason": reason, "errno": 19, "path": "/dev/video3"}
    reactor.finish(0, 2, json.dumps(body).encode())
    failure = outcome(d)
    assert failure.check(ProbeFailed)
    assert (failure.value.reason, failure.value.message) == (reason, f"/dev/video3: {reason} happened")


def test_a_crash_reports_stderr():
    reactor = ProcessReactor()
    d = ProcessProber(reactor, 5).probe("/dev/video0")
    reactor.finish(0, 1, b"", b"Traceback...\nImportError: no module named camsvc\n")
    failure = outcome(d)
    assert failure.value.reason == "error"
    assert "ImportError: no module named camsvc" in failure.value.message
    d = ProcessProber(reactor, 5).probe("/dev/video0")
    reactor.finish(1, 0, b"not json")
    assert "exit status 0" in outcome(d).value.message


def test_timeout_kills_the_child_and_fails_at_once():
    reactor = ProcessReactor()
    prober = ProcessProber(reactor, 5)
    d = prober.probe("/dev/video0")
    reactor.advance(4.9)
    assert outcome(d) is None
    reactor.advance(0.1)
    failure = outcome(d)
    assert failure.value.reason == "timeout"
    assert failure.value.message == "capability probe of /dev/video0 timed out after 5s"
    transport = reactor.spawned[0][-1]
    assert transport.signals == ["KILL"]
    assert prober.running == 1  # until it is reaped
    reactor.finish(0, -9)
    assert prober.running == 0


def test_cancel_kills_the_child():
    reactor = ProcessReactor()
    prober = ProcessProber(reactor, 5)
    d = prober.probe("/dev/video0")
    d.cancel()
    assert outcome(d).check(CancelledError)
    assert reactor.spawned[0][-1].signals == ["KILL"]
    assert reactor.getDelayedCalls() == []
    reactor.finish(0, -9)
    assert prober.running == 0


def test_runaway_output_is_cut():
    reactor = ProcessReactor()
    d = ProcessProber(reactor, 5).probe("/dev/video0")
    proto = reactor.spawned[0][0]
    proto.childDataReceived(1, b"x" * (MAX_OUTPUT + 1))
    assert reactor.spawned[0][-1].signals == ["KILL"]
    reactor.finish(0, -9)
    assert "more than" in outcome(d).value.message


def test_spawn_failure_is_a_probe_error():
    reactor = ProcessReactor(fail=OSError(11, "Resource temporarily unavailable"))
    d = ProcessProber(reactor, 5).probe("/dev/video0")
    failure = outcome(d)
    assert failure.value.reason == "error" and "cannot start the probe" in failure.value.message
    assert reactor.getDelayedCalls() == []


def test_kill_all():
    reactor = ProcessReactor()
    prober = ProcessProber(reactor, 5)
    prober.probe("/dev/video0")
    prober.probe("/dev/video2")
    prober.kill_all()
    assert [s[-1].signals for s in reactor.spawned] == [["KILL"], ["KILL"]]
    for d in reactor.getDelayedCalls():
        d.cancel()


@pytest_twisted.inlineCallbacks
def test_real_child_on_a_missing_node():
    from twisted.internet import reactor

    prober = ProcessProber(reactor, 20)
    try:
        yield prober.probe("/dev/video-does-not-exist")
    except ProbeFailed as exc:
        assert exc.reason == "vanished"
        assert "cannot open" in exc.message
    else:
        raise AssertionError("probe of a missing node succeeded")
    assert prober.running == 0


@pytest_twisted.inlineCallbacks
def test_real_child_is_killed_on_timeout():
    from twisted.internet import reactor
    from twisted.internet.task import deferLater

    prober = ProcessProber(reactor, 0.5, argv=(sys.executable, "-c", "import time; time.sleep(60)"))
    try:
        yield prober.probe("/dev/video0")
    except ProbeFailed as exc:
        assert exc.reason == "timeout"
    else:
        raise AssertionError("a sleeping probe did not time out")
    for _ in range(200):
        if prober.running == 0:
            break
        yield deferLater(reactor, 0.02, lambda: None)
    assert prober.running == 0  # the child was killed and reaped


def test_default_command_runs_the_probe_niced(monkeypatch):
    import camsvc.cameras.probing as probing

    monkeypatch.setattr(probing.shutil, "which", lambda name: "/usr/bin/nice" if name == "nice" else None)
    assert probing.default_argv() == ("/usr/bin/nice", "-n", "10", sys.executable, "-m", "camsvc.cameras.v4l2")
    monkeypatch.setattr(probing.shutil, "which", lambda name: None)
    assert probing.default_argv() == (sys.executable, "-m", "camsvc.cameras.v4l2")
    assert ProcessProber(Clock(), 5).argv == (sys.executable, "-m", "camsvc.cameras.v4l2")
