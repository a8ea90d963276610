"""Readiness and liveness: named conditions that components report.

Each component that readiness depends on declares a condition at start
(``health.require("discovery")``, initially not ready with reason
``"starting"``) and reports changes with :meth:`Health.set`.  The service is
ready when every condition is.  Listeners (the status notifier, systemd
notify) are told about every change.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.logger import Logger

log = Logger()


class Health:
    """Named readiness conditions.  Collaborator: ``clock`` (``seconds()``)."""

    def __init__(self, clock: Any) -> None:
        self.clock = clock
        self._conditions: dict[str, tuple[bool, str, float]] = {}
        self._listeners: list[Callable[[str, bool, str], None]] = []

    def require(self, name: str, reason: str = "starting") -> None:
        self._conditions.setdefault(name, (False, reason, self.clock.seconds()))

    def set(self, name: str, ok: bool, reason: str = "") -> None:
        previous = self._conditions.get(name)
        self._conditions[name] = (ok, "" if ok else reason, self.clock.seconds())
        if previous is None or previous[0] != ok or (not ok and previous[1] != reason):
            for listener in list(self._listeners):
                try:
                    listener(name, ok, reason)
                except Exception:
                    log.failure("health listener failed for {name}", name=name)

    def subscribe(self, listener: Callable[[str, bool, str], None]) -> None:
        self._listeners.append(listener)

    def is_ok(self, name: str) -> bool:
        return self._conditions.get(name, (False, "", 0.0))[0]

    @property
    def ready(self) -> bool:
        return all(ok for ok, _, _ in self._conditions.values())

    def report(self) -> dict:
        """``{"ready": bool, "checks": {name: {"ok", "reason", "since"}}}``."""
        checks = {
            name: {"ok": ok, "reason": reason, "since": since}
            for name, (ok, reason, since) in sorted(self._conditions.items())
        }
        return {"ready": self.ready, "checks": checks}

    def reasons(self) -> list[str]:
        return [f"{name}: {reason}" for name, (ok, reason, _) in sorted(self._conditions.items()) if not ok]
