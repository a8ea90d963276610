"""The cameras' component entry points that keep an idle camsvc from loading camera code.

Owns two choices :func:`camsvc.tap.build` makes.  ``app.controls`` is
:class:`ControlsOnFirstUse`: :class:`camsvc.cameras.controls.CameraControls` (and with it
the V4L2 control bindings) is made at the first camera or control call.  For ``app.discovery``: with
``discovery.enabled`` it is :func:`camsvc.cameras.discovery.setup` (imported here, at that
moment); without it :class:`DisabledDiscovery`, so a camsvc that never looks for cameras
does not import the discovery chain (:mod:`.discovery`, :mod:`.udev`, :mod:`.probing`,
:mod:`.selection`, :mod:`.presence`, :mod:`.scheduling`, :mod:`.identity`, :mod:`.v4l2`:
about 1 MiB of an idle process, docs/performance.md).  ``discovery.enabled`` takes a restart
(the reloader says so), so the choice holds for the process's life.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from camsvc.cameras.registry import CONNECTED, DISCONNECTED, ERROR

if TYPE_CHECKING:
    from camsvc.cameras.controls import CameraControls

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


def setup_discovery(app: Any) -> Any:
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


class ControlsOnFirstUse(Service):
    """``app.controls``: :class:`~camsvc.cameras.controls.CameraControls`, made when the
    registry adds the first camera or a control method (or attribute) is first asked for.

    Until then nothing of it is imported: ``status()`` is an empty component's, stopping
    flushes pending camera settings as CameraControls' stop does, and ``open_device`` (a
    test's fake node) is kept for the component.  It is subscribed to the registry where
    CameraControls would be (before MediaMTX), and forwards every observer call to it
    synchronously, so stored values are still applied before MediaMTX hears of a camera.
    """

    def __init__(
        self,
        cameras: Any,
        settings: Any,
        clock: Any,
        publish: Callable[[str, dict], Any],
        *,
        poll_interval: float,
    ) -> None:
        self._args = (cameras, settings, clock, publish)
        self._poll_interval = poll_interval
        self._open_device: Any = None
        self.component: CameraControls | None = None

    def made(self) -> CameraControls:
        """The CameraControls (made now if it is not yet), started if this service runs."""
        if self.component is None:
            from camsvc.cameras.controls import CameraControls

            extra = {} if self._open_device is None else {"open_device": self._open_device}
            self.component = CameraControls(*self._args, poll_interval=self._poll_interval, **extra)
            if self.running:
                self.component.startService()
        return self.component

    @property
    def open_device(self) -> Any:
        return self.made().open_device

    @open_device.setter
    def open_device(self, value: Any) -> None:
        if self.component is None:
            self._open_device = value
        else:
            self.component.open_device = value

    def __getattr__(self, name: str) -> Any:
        # describe, set, reset, stats, poll, ...: the component's (only names not found here).
        if name.startswith("__") or name in ("_args", "_poll_interval", "_open_device", "component"):
            raise AttributeError(name)
        return getattr(self.made(), name)

    def startService(self) -> None:
        super().startService()
        if self.component is not None:
            self.component.startService()

    def stopService(self) -> Any:
        super().stopService()
        if self.component is not None:
            return self.component.stopService()
        settings = self._args[1]
        if settings.pending:
            settings.flush()
        return None

    def status(self) -> dict:
        if self.component is not None:
            return self.component.status()
        return {
            "open_devices": 0,
            "applied": 0,
            "apply_failures": 0,
            "slow_calls": 0,
            "block_ms": {"p50": None, "p99": None, "max": 0.0},
        }

    # -- registry observer: the first camera makes the component --------------------------

    def camera_added(self, camera: Any) -> None:
        self.made().camera_added(camera)

    def camera_removed(self, camera: Any) -> None:
        if self.component is not None:
            self.component.camera_removed(camera)

    def camera_changed(self, camera: Any) -> None:
        if self.component is not None:
            self.component.camera_changed(camera)


def setup_controls(app: Any, settings: Any) -> ControlsOnFirstUse:
    """``app.controls`` (see :class:`ControlsOnFirstUse`); subscribed to the camera registry,
    a child of ``app.service``, the ``controls`` section of ``get_status``.  Called before
    MediaMTX's setup (stored values are applied before MediaMTX hears of a camera)."""
    controls = ControlsOnFirstUse(
        app.cameras, settings, app.clock, app.hub.publish, poll_interval=app.config.controls.poll_interval
    )
    app.cameras.subscribe(controls)
    controls.setServiceParent(app.service)
    app.status_providers["controls"] = controls.status
    return controls
