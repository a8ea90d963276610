"""Discovery's component entry point: the udev discovery service, or its null object.

Owns the choice :func:`camsvc.tap.build` makes for ``app.discovery``: with
``discovery.enabled`` it is :func:`camsvc.cameras.discovery.setup` (imported here, at that
moment); without it :class:`DisabledDiscovery`, so a camsvc that never looks for cameras
does not import the discovery chain (:mod:`.discovery`, :mod:`.udev`, :mod:`.probing`,
:mod:`.selection`, :mod:`.presence`, :mod:`.scheduling`, :mod:`.identity`, :mod:`.v4l2`:
about 1 MiB of an idle process, docs/performance.md).  ``discovery.enabled`` takes a restart
(the reloader says so), so the choice holds for the process's life.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from camsvc.cameras.registry import CONNECTED, DISCONNECTED, ERROR

log = Logger()

#: The counters of DiscoveryService.stats, all zero when discovery never runs.
_STATS = (
    "events",
    "enumerations",
    "overflows",
    "read_errors",
    "probes",
    "probe_failures",
    "probe_timeouts",
    "coalesced",
    "querycaps",
)


class DisabledDiscovery(Service):
    """``discovery.enabled: false``: no udev, no cameras; readiness and status as the real
    service reports them when disabled (the ``discovery`` condition ok at start)."""

    name = "discovery"

    def __init__(self, registry: Any, config: Any, health: Any = None) -> None:
        self.registry = registry
        self.config = config
        self.health = health
        self.started = False

    def startService(self) -> None:
        super().startService()
        log.info("Camera discovery is disabled (discovery.enabled: false): no cameras")
        if self.health is not None:
            self.health.set("discovery", True)

    def when_probed(self, camera_id: str) -> Deferred | None:
        return None  # nothing is ever probed

    def forget(self, camera_id: str, *, why: str = "forget_camera") -> bool:
        """As the real service: a DISCONNECTED record is dropped (none exists without discovery)."""
        camera = self.registry.get(camera_id)
        if camera is None or camera.status != DISCONNECTED:
            return False
        self.registry.forget(camera_id)
        log.info("Camera {camera_id} forgotten ({why})", camera_id=camera_id, why=why)
        return True

    def status(self) -> dict:
        cameras = self.registry.cameras()
        return {
            "enabled": False,
            "running": False,
            "error": None,
            "cameras": len(cameras),
            "connected": sum(1 for c in cameras if c.status == CONNECTED),
            "errors": sum(1 for c in cameras if c.status == ERROR),
            "known_ids": 0,
            "probes_running": 0,
            "probes_queued": 0,
            **dict.fromkeys(_STATS, 0),
        }


def setup(app: Any) -> Any:
    """``app.discovery``: :class:`~camsvc.cameras.discovery.DiscoveryService` when
    ``discovery.enabled``, else :class:`DisabledDiscovery`; either is a child of
    ``app.service``, holds the ``discovery`` readiness condition and the ``discovery``
    section of ``get_status``."""
    if app.config.discovery.enabled:
        from camsvc.cameras import discovery

        return discovery.setup(app)
    app.health.require("discovery")
    service = DisabledDiscovery(app.cameras, app.config.discovery, app.health)
    service.setServiceParent(app.service)
    app.status_providers["discovery"] = service.status
    return service
