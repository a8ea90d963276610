"""Wiring of the MediaMTX integration, and the facade other components use.

``setup(app)`` builds the treq client (with its own connection pool, closed on
stop), the :class:`~camsvc.mediamtx.monitor.Monitor` and the
:class:`~camsvc.mediamtx.reconcile.Reconciler`, adds them under
``app.service``, and returns :class:`MediaMTX` (the composition root keeps it
as ``app.mediamtx``):

* ``set_recording(camera_id, enabled) -> Deferred`` (recordings use it);
* ``check_available()`` / ``unavailable(error)`` to fail with -32006 and a
  clear reason;
* ``streams()`` (``get_streams``), ``camera_metrics(camera)`` (cached, never
  blocking) and ``status()`` (``get_status``'s ``mediamtx`` section).

With ``mediamtx.enabled: false`` a :class:`DisabledMediaMTX` takes its place:
every call that needs MediaMTX fails with -32006 and readiness ignores it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail
from twisted.logger import Logger

from camsvc.common.errors import MediaMTXUnavailable

if TYPE_CHECKING:
    from camsvc.mediamtx.client import MediaMTXError
    from camsvc.mediamtx.monitor import Monitor
    from camsvc.mediamtx.reconcile import Reconciler

# The client, monitor and reconciler (and with them treq and twisted.web.client: 0.6 MiB
# resident in the venv, ~5 MiB on Debian 12, whose treq imports requests) are imported by
# setup() only when the integration is enabled.

log = Logger()


class PoolService(Service):
    """Owns the HTTP connection pool: closes its cached connections on stop."""

    name = "mediamtx-http-pool"

    def __init__(self, pool: Any) -> None:
        self.pool = pool

    def stopService(self) -> Any:
        super().stopService()
        return self.pool.closeCachedConnections()


class MediaMTX:
    """The MediaMTX integration as the rest of camsvc sees it (``app.mediamtx``).

    Collaborators: ``client``, ``monitor``, ``reconciler``, ``cameras`` (the
    registry) and ``clock``.
    """

    enabled = True

    def __init__(self, client: Any, monitor: Monitor, reconciler: Reconciler, cameras: Any, clock: Any) -> None:
        self.client = client
        self.monitor = monitor
        self.reconciler = reconciler
        self.cameras = cameras
        self.clock = clock

    # -- for other components ---------------------------------------------------------

    @property
    def available(self) -> bool:
        return self.monitor.available

    def check_available(self) -> None:
        """Raise MediaMTXUnavailable (-32006) with the reason when MediaMTX is down."""
        self.monitor.check_available()

    def unavailable(self, error: MediaMTXError) -> MediaMTXUnavailable:
        """The -32006 error for a failed MediaMTX request (and note the failure)."""
        return self.monitor.unavailable(error)

    def set_recording(self, camera_id: str, enabled: bool) -> Deferred:
        """See :meth:`camsvc.mediamtx.reconcile.Reconciler.set_recording`."""
        return self.reconciler.set_recording(camera_id, enabled)

    def is_recording(self, camera_id: str) -> bool:
        return self.reconciler.recording.get(camera_id, False)

    def stream_settings_changed(self, camera_id: str) -> None:
        """A camera's stream settings changed: reconcile soon (its path is replaced, and so
        the publisher restarted, only when the publisher command changed)."""
        self.reconciler.trigger(f"{camera_id} stream settings changed", camera_id)

    async def streams(self) -> list[dict]:
        """Every MediaMTX path's run-time state, fresh from ``/v3/paths/list`` (all pages)."""
        from camsvc.mediamtx.client import MediaMTXError
        from camsvc.mediamtx.monitor import path_stats

        self.check_available()
        try:
            items = await self.client.list_paths()
        except MediaMTXError as exc:
            raise self.unavailable(exc) from None
        out = []
        for item in items:
            stats = path_stats(item)
            camera = self.cameras.get(stats["name"])
            stats["camera_id"] = camera.camera_id if camera is not None else None
            out.append(stats)
        return out

    def camera_metrics(self, camera: Any) -> dict:
        """``{"stream": {...}}`` for ``camera`` from the last poll (no I/O)."""
        state = self.reconciler.path_states().get(camera.camera_id)
        entry: dict = {
            "path": camera.camera_id,
            "mediamtx_available": self.monitor.available,
            "path_state": state["state"] if state else "none",
            "recording": self.is_recording(camera.camera_id),
        }
        stats = self.monitor.stats.get(camera.camera_id)
        if stats is not None:
            entry.update(
                ready=stats["ready"],
                readers=stats["readers"],
                bytes_received=stats["bytes_received"],
                bytes_sent=stats["bytes_sent"],
                tracks=stats["tracks"],
                updated=self.monitor.stats_time,
            )
        return {"stream": entry}

    def status(self) -> dict:
        out = {"enabled": True}
        out.update(self.monitor.status())
        out.update(self.reconciler.status())
        return out


class DisabledMediaMTX:
    """``mediamtx.enabled: false``: nothing is configured; calls needing MediaMTX get -32006."""

    enabled = False
    available = False
    REASON = "the MediaMTX integration is disabled (mediamtx.enabled: false)"

    def check_available(self) -> None:
        raise MediaMTXUnavailable(f"MediaMTX is unavailable: {self.REASON}", data={"reason": self.REASON})

    def unavailable(self, error: Any) -> MediaMTXUnavailable:
        return MediaMTXUnavailable(f"MediaMTX is unavailable: {self.REASON}", data={"reason": self.REASON})

    def set_recording(self, camera_id: str, enabled: bool) -> Deferred:
        return fail(self.unavailable(None))

    def is_recording(self, camera_id: str) -> bool:
        return False

    def stream_settings_changed(self, camera_id: str) -> None:
        return None  # no paths to change

    async def streams(self) -> list[dict]:
        self.check_available()
        return []  # pragma: no cover - check_available() always raises in the disabled integration

    def camera_metrics(self, camera: Any) -> dict:
        return {}

    def status(self) -> dict:
        return {"enabled": False, "available": False, "reason": self.REASON}


def setup(app: Any, stream_settings: Any = None) -> MediaMTX | DisabledMediaMTX:
    """Component entry point: the MediaMTX client, monitor and reconciler (or the null object).

    Adds their services, the ``mediamtx`` section of ``get_status`` and the
    per-camera stream metrics; the composition root keeps the result as ``app.mediamtx``.
    """
    config = app.config
    mcfg = config.mediamtx
    if not mcfg.enabled:
        log.warn("MediaMTX integration disabled (mediamtx.enabled: false): cameras get no streams")
        disabled = DisabledMediaMTX()
        app.status_providers["mediamtx"] = disabled.status
        return disabled
    from camsvc.mediamtx.client import MediaMTXClient, make_http_client
    from camsvc.mediamtx.monitor import Monitor
    from camsvc.mediamtx.reconcile import LEDGER_NAME, OwnershipLedger, Reconciler

    http, pool = make_http_client(app.reactor, connect_timeout=mcfg.request_timeout)
    client = MediaMTXClient(
        http,
        mcfg.api_url,
        app.clock,
        timeout=mcfg.request_timeout,
        user=mcfg.api_user,
        password=mcfg.api_pass,
        metrics=app.metrics,
    )
    monitor = Monitor(client, app.clock, app.health, app.hub.publish, mcfg.health_interval, mcfg.api_url)
    # MediaMTX closing our idle kept-alive connection is the first sign of a restart.
    pool.on_idle_lost = monitor.poke
    ledger = OwnershipLedger(os.path.join(config.storage.state_dir, LEDGER_NAME))
    reconciler = Reconciler(
        client, monitor, app.cameras, config, app.clock, ledger, metrics=app.metrics, stream_settings=stream_settings
    )
    app.on_reload(reconciler.config_reloaded, Reconciler.RELOAD_KEYS)
    pool_service = PoolService(pool)
    # Stopped in reverse order: the pool closes last, after the users of its connections.
    pool_service.setServiceParent(app.service)
    monitor.setServiceParent(app.service)
    reconciler.setServiceParent(app.service)
    mediamtx = MediaMTX(client, monitor, reconciler, app.cameras, app.clock)
    app.status_providers["mediamtx"] = mediamtx.status
    app.camera_metrics.append(mediamtx.camera_metrics)
    return mediamtx
