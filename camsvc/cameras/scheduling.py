"""Probe scheduling: what discovery knows about each camera's capability probe.

This module owns :class:`ProbeState` (per camera id, kept across unplug so
capabilities stay known) and the delays that order probes after notifications.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred

from camsvc.cameras.presence import Node

#: Seconds between a commit and the probes it starts: the notification frame leaves
#: first (a fork in the same reactor turn would delay it), bursts coalesce.
PROBE_START_DELAY = 0.01
#: Seconds before re-probing a node that vanished mid-probe while udev still lists it.
VANISHED_RETRY_DELAY = 0.5


class ProbeState:
    """Probe knowledge of one camera id (kept across unplug: capabilities stay known)."""

    __slots__ = ("caps", "default", "card", "error", "done_for", "running", "retried", "retry", "waiters")

    def __init__(self) -> None:
        self.caps: dict | None = None
        self.default: dict | None = None
        self.card = ""
        self.error: str | None = None
        self.done_for: Node | None = None  # the node the current outcome belongs to
        self.running: tuple[Node, Deferred] | None = None
        self.retried = False
        self.retry: Any = None
        self.waiters: list[Deferred] = []
