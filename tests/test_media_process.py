"""camsvc.media.process: children on the reactor, timeouts, bounded output, shutdown."""

from __future__ import annotations

import sys

import pytest
import pytest_twisted
from twisted.internet.task import Clock

from camsvc.media.process import NotInstalled, OutputTooLarge, ProcessError, ProcessGroup, ProcessTimeout
from tests.support.processes import FakeProcessReactor


def outcome(d):
    box = []
    d.addBoth(box.append)
    return box


@pytest.fixture
def fake():
    return FakeProcessReactor()


@pytest.fixture
def clock():
    return Clock()


def test_collects_output_and_exit(fake, clock):
    group = ProcessGroup(fake, clock)
    got = outcome(group.run(["sh", "-c", "true"], timeout=5))
    proc = fake.last
    assert proc.stdin_closed and proc.executable.endswith("/sh") and proc.argv == ["sh", "-c", "true"]
    assert "PATH" in proc.env
    proc.out(b"hello ")
    proc.out(b"world")
    proc.err(b"warning\nreal error\n\n")
    assert got == [] and len(group) == 1
    proc.exit(3)
    (result,) = got
    assert result.stdout == b"hello world" and result.exit_code == 3 and not result.ok
    assert result.last_error_line() == "real error"
    assert len(group) == 0 and clock.getDelayedCalls() == []


def test_timeout_kills_and_reaps(fake, clock):
    group = ProcessGroup(fake, clock)
    got = outcome(group.run(["sh"], timeout=2))
    clock.advance(1.9)
    assert got == [] and fake.last.signals == []
    clock.advance(0.2)
    assert fake.last.signals == ["KILL"]
    assert got[0].check(ProcessTimeout) and "within 2 s" in str(got[0].value)
    assert len(group) == 0


def test_timeout_waits_for_the_child_to_exit(clock):
    fake = FakeProcessReactor(die_on_kill=False)
    group = ProcessGroup(fake, clock)
    got = outcome(group.run(["sh"], timeout=1))
    clock.advance(1)
    assert fake.last.signals == ["KILL"] and got == []  # not reaped yet: no answer yet
    fake.last.exit(None, signal=9)
    assert got[0].check(ProcessTimeout)


def test_output_bound(fake, clock):
    group = ProcessGroup(fake, clock)
    got = outcome(group.run(["sh"], timeout=5, max_stdout=10))
    fake.last.out(b"123456")
    fake.last.out(b"789012")
    assert fake.last.signals == ["KILL"]
    assert got[0].check(OutputTooLarge)
    assert clock.getDelayedCalls() == []


def test_stderr_keeps_the_tail(fake, clock):
    group = ProcessGroup(fake, clock)
    got = outcome(group.run(["sh"], timeout=5))
    fake.last.err(b"x" * 20000 + b"\nlast words\n")
    fake.last.exit(1)
    assert len(got[0].stderr) <= 8192 and got[0].last_error_line() == "last words"


def test_missing_executable_and_spawn_errors(clock):
    got = outcome(ProcessGroup(FakeProcessReactor(), clock).run(["no-such-program-camsvc"], timeout=1))
    assert got[0].check(NotInstalled)
    got = outcome(ProcessGroup(FakeProcessReactor(fail_with=OSError(7, "E2BIG")), clock).run(["sh"], timeout=1))
    assert got[0].check(ProcessError) and clock.getDelayedCalls() == []


def test_kill_all_on_shutdown(fake, clock):
    group = ProcessGroup(fake, clock)
    first = outcome(group.run(["sh"], timeout=5))
    second = outcome(group.run(["sh"], timeout=5))
    done = outcome(group.kill_all())
    assert [p.signals for p in fake.spawned] == [["KILL"], ["KILL"]]
    assert done and first[0].check(ProcessError) and second[0].check(ProcessError)
    assert clock.getDelayedCalls() == []


def test_kill_after_exit_is_harmless(fake, clock):
    group = ProcessGroup(fake, clock)
    got = outcome(group.run(["sh"], timeout=5))
    fake.last.exit(0)
    assert got[0].ok
    assert outcome(group.kill_all())


@pytest_twisted.inlineCallbacks
def test_real_children():
    from twisted.internet import reactor

    group = ProcessGroup(reactor, reactor)
    result = yield group.run(
        [sys.executable, "-c", "import sys; sys.stdout.write('x' * 100000); sys.stderr.write('e')"], timeout=20
    )
    assert result.ok and result.stdout == b"x" * 100000 and result.stderr == b"e"
    with pytest.raises(ProcessTimeout):
        yield group.run(["sleep", "30"], timeout=0.3)
    assert len(group) == 0
