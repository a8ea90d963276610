"""Durations that span a wall-clock step: :func:`steady`.

The injected clock's ``seconds()`` is the wall clock (timestamps).  A duration measured
as the difference of two ``seconds()`` is off by any step of the clock in between; a
duration that can be long (a WebSocket's silence, a recording) is measured with
:func:`steady` instead: the clock's ``steady()`` when it has one (the production
reactor, :mod:`camsvc.ops.clockstep`: ``CLOCK_MONOTONIC``), else its ``seconds()`` (a
``task.Clock`` in tests, which never steps).  Owns only that; no I/O.
"""

from __future__ import annotations

from typing import Any


def steady(clock: Any) -> float:
    """Seconds on a clock that is never stepped (only differences mean anything)."""
    fn = getattr(clock, "steady", None)
    return fn() if fn is not None else clock.seconds()
