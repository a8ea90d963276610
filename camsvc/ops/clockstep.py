"""Wall-clock steps: the reactor's timers keep their delays when the system clock jumps.

Twisted schedules ``callLater`` on ``reactor.seconds()``, which is the wall clock
(``time.time``).  A step of that clock (NTP correcting a board without a real-time
clock, an administrator's ``date -s``, a VM resumed) moves every pending timer with it:
stepped forward by an hour, every timer fires at once (a recording's ``duration``
auto-stop early, every WebSocket's idle check); stepped back, none fires for an hour
(health checks, the MediaMTX monitor, retention, auto-stop, keep-alive pings).

:func:`install` replaces the reactor's ``seconds`` with :meth:`StepGuard.seconds`: still
the wall clock (timestamps, token expiry and file ages stay true), but each call first
compares wall minus ``CLOCK_MONOTONIC`` with the last value seen; when it moved by
``STEP`` seconds or more, the clock was stepped, and every pending ``DelayedCall`` is
moved by the same amount, so each still fires after the delay it was given, as
measured on the monotonic clock.  The check costs two clock reads per call.  It also
gives the reactor ``steady()`` (the monotonic clock) for the few durations that span
a step (:func:`camsvc.common.clocks.steady`).

Owns only that.  Called once from :func:`camsvc.tap.makeService` with the running reactor,
before anything is scheduled.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from twisted.logger import Logger

log = Logger()

#: Seconds of difference between the wall and monotonic clocks taken as a step (NTP slews
#: both clocks alike; only a step moves one against the other).
STEP = 1.0


class StepGuard:
    """``seconds()`` for a reactor whose pending timers follow wall-clock steps."""

    def __init__(
        self,
        reactor: Any,
        wall: Callable[[], float] = time.time,
        steady: Callable[[], float] = time.monotonic,
        threshold: float = STEP,
    ) -> None:
        self.reactor = reactor
        self.wall = wall
        self.steady = steady
        self.threshold = threshold
        self._offset = wall() - steady()
        #: Steps seen, and their sum in seconds.
        self.steps = 0
        self.stepped = 0.0

    def seconds(self) -> float:
        now = self.wall()
        offset = now - self.steady()
        step = offset - self._offset
        if step >= self.threshold or step <= -self.threshold:
            self._offset = offset
            self._shift(step)
        return now

    def _shift(self, step: float) -> None:
        calls = list(getattr(self.reactor, "_pendingTimedCalls", ())) + list(
            getattr(self.reactor, "_newTimedCalls", ())
        )
        for call in calls:
            call.time += step  # the same shift for all: the heap keeps its order
        self.steps += 1
        self.stepped += step
        log.warn(
            "The wall clock stepped by {step:+.1f} s: {count} pending timers moved with it, each keeps its delay",
            step=step,
            count=len(calls),
        )


def install(reactor: Any, **kwargs: Any) -> StepGuard:
    """Give ``reactor`` a step-following ``seconds()`` and a monotonic ``steady()``."""
    guard = StepGuard(reactor, **kwargs)
    reactor.seconds = guard.seconds
    reactor.steady = guard.steady
    return guard
