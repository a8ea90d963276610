"""Wall-clock steps and the reactor's timers (camsvc.ops.clockstep, camsvc.common.clocks).

A real (not running, not installed) Twisted reactor with a fake wall and monotonic
clock: without the guard a step of an hour fires a 10-s timer at once (forward) or not
for an hour (back); with it, the timer fires after its 10 s either way.  The
end-to-end check under libfaketime is faults/test_clock_faults.py.
"""

from __future__ import annotations

import pytest
from twisted.internet.selectreactor import SelectReactor
from twisted.internet.task import Clock

from camsvc.common.clocks import steady
from camsvc.ops import clockstep


class Clocks:
    def __init__(self) -> None:
        self.mono = 1000.0
        self.wall_offset = 1_800_000_000.0

    def wall(self) -> float:
        return self.mono + self.wall_offset

    def steady(self) -> float:
        return self.mono


@pytest.fixture
def reactor():
    r = SelectReactor()
    yield r
    r.removeAll()
    r.waker.connectionLost(None)  # its pipe


def fired_after(reactor, clocks: Clocks, step: float) -> list[float]:
    fired: list[float] = []
    start = clocks.mono
    reactor.callLater(10, lambda: fired.append(clocks.mono - start))
    clocks.mono += 2
    reactor.runUntilCurrent()
    clocks.wall_offset += step  # the wall clock is stepped
    for _ in range(20):
        clocks.mono += 0.5
        reactor.runUntilCurrent()
    clocks.mono += 3600  # an hour on: whatever was late has fired
    reactor.runUntilCurrent()
    return fired


@pytest.mark.parametrize("step", [3600.0, -3600.0])
def test_without_the_guard_a_step_moves_the_timer(reactor, step):
    clocks = Clocks()
    reactor.seconds = clocks.wall
    fired = fired_after(reactor, clocks, step)
    assert fired == ([2.5] if step > 0 else [3612.0])  # Twisted alone: at once, or an hour late


@pytest.mark.parametrize("step", [3600.0, -3600.0])
def test_with_the_guard_a_timer_keeps_its_delay(reactor, step):
    clocks = Clocks()
    guard = clockstep.install(reactor, wall=clocks.wall, steady=clocks.steady)
    fired = fired_after(reactor, clocks, step)
    assert fired == [10.0]
    assert guard.steps == 1 and guard.stepped == step
    assert reactor.seconds() == clocks.wall()  # still the wall clock: timestamps stay true
    assert steady(reactor) == clocks.mono


def test_small_differences_are_no_step(reactor):
    clocks = Clocks()
    guard = clockstep.install(reactor, wall=clocks.wall, steady=clocks.steady)
    clocks.wall_offset += 0.3
    reactor.seconds()
    assert guard.steps == 0


def test_steady_falls_back_on_seconds():
    clock = Clock()
    clock.advance(42)
    assert steady(clock) == 42


class SteppedClock:
    """A clock with a wall (``seconds``) and a monotonic (``steady``) side."""

    def __init__(self) -> None:
        self.mono = 500.0
        self.offset = 1_800_000_000.0

    def seconds(self) -> float:
        return self.mono + self.offset

    def steady(self) -> float:
        return self.mono


class Conn:
    def __init__(self) -> None:
        self.extra: dict = {}
        self.role = None


@pytest.mark.parametrize("step", [3600.0, -3600.0])
def test_rate_limits_ignore_a_clock_step(step):
    from camsvc.server.limits import AddressBuckets, RateLimiter, UnauthenticatedBudget

    clock = SteppedClock()
    limiter = RateLimiter(60, clock)
    budget = UnauthenticatedBudget(60, 5, clock)
    buckets = AddressBuckets(60, 5, clock)
    conn = Conn()
    ping = type("M", (), {"name": "ping"})()
    for _ in range(5):
        limiter(conn, ping)
        budget(conn, ping)
        assert buckets.allow("192.0.2.1") is None
    clock.offset += step  # the wall clock jumps; a second passes
    clock.mono += 1.0
    limiter(conn, ping)  # refused for an hour before the fix (a step back)
    budget(conn, ping)
    assert buckets.allow("192.0.2.1") is None


def test_failure_lockout_ignores_a_clock_step():
    from camsvc.auth.limiter import FailureLimiter

    clock = SteppedClock()
    limiter = FailureLimiter(3, 60.0, clock, max_backoff=60.0)
    for _ in range(3):
        limiter.record("k")
    assert limiter.retry_after("k") is not None
    clock.offset -= 3600.0  # stepped back: a lock of a minute must not become an hour and more
    clock.mono += 61.0
    assert limiter.retry_after("k") is None


@pytest.mark.parametrize("step", [3600.0, -3600.0])
def test_a_camera_plugged_just_before_a_step_is_probed_on_time(tmp_path, step):
    from camsvc.testing import usb_camera
    from tests.test_discovery import Harness

    h = Harness(tmp_path)
    stepped = [0.0]
    h.reactor.steady = lambda: h.reactor.seconds() - stepped[0]
    h.start()
    h.udev.add(usb_camera(0, serial="S1", card="HD Webcam"))
    h.deliver()
    # the wall clock steps; the reactor's pending timers move with it (camsvc.ops.clockstep)
    h.reactor.rightNow += step
    stepped[0] += step
    for call in h.reactor.getDelayedCalls():
        call.time += step
    h.probes_start()
    assert h.prober.pending == ["/dev/video0"]  # an hour late after a step back before the fix
    h.svc.stopService()
