"""The application object: the running service's shared collaborators.

:class:`App` is a plain container built once by :func:`camsvc.tap.build`:
config, reactor and clock, the readiness conditions, the connection hub, the
method registry and engine, and the components later modules attach
(cameras, MediaMTX, media, ...).  API methods close over it; nothing in here
touches the network or the global reactor.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from camsvc.auth import Authenticator
from camsvc.cameras.registry import CameraRegistry
from camsvc.config import Config
from camsvc.ops.health import Health
from camsvc.ops.metrics import Metrics
from camsvc.ops.reload import ReloadListeners
from camsvc.server.hub import Hub
from camsvc.server.rpc import Engine, Registry
from camsvc.server.session import Session, authorize

log = Logger()


class App:
    """Shared state of one running camsvc.

    ``cameras`` is the :class:`~camsvc.cameras.registry.CameraRegistry`.
    ``status_providers`` maps a component name to a callable returning a
    JSON-able dict for ``get_status``; components add themselves there.
    """

    def __init__(self, config: Config, reactor: Any, clock: Any | None = None) -> None:
        self.config = config
        self.reactor = reactor
        self.clock = clock or reactor
        self.started_at = self.clock.seconds()
        self.started_wall = time.time()
        self.health = Health(self.clock)
        self.hub = Hub()
        self.registry = Registry()
        self.engine = Engine(
            self.registry,
            guards=[authorize],
            max_batch_size=config.server.max_batch_size,
            clock=self.clock,
        )
        self.service = MultiService()
        self.cameras = CameraRegistry(self.clock)
        #: Prometheus metrics and the recording API for components (camsvc.ops.metrics).
        self.metrics = Metrics(self)
        self.engine.observe = self.metrics.observe_rpc
        self.hub.on_sent = self.metrics.notifications
        #: Credentials (JWT secret, API keys, download tokens); its service and
        #: engine guard are installed by the camsvc.auth component.
        self.auth = Authenticator(config.auth, self.clock, self.hub)
        #: Extra HTTP resources by first path segment (b"metrics", b"files"), added by components.
        self.http_children: dict = {}
        self.status_providers: dict[str, Callable[[], dict]] = {}
        #: Per-camera metrics contributors: ``fn(camera) -> dict`` merged into get_camera_status.
        self.camera_metrics: list[Callable[[Any], dict]] = []
        #: Components that apply configuration keys live on SIGHUP (see on_reload).
        self.reloads = ReloadListeners()
        self._ready_waiters: list[Deferred] = []
        self._was_ready = False
        self.health.subscribe(self._health_changed)

    def make_session(self, conn_id: str, peer: str, host: str, send: Callable | None = None) -> Session:
        return Session(
            conn_id,
            peer=peer,
            host=host,
            clock=self.clock,
            auth_required=self.config.auth.required,
            send=send,
        )

    def on_reload(self, callback: Callable[[Config, Config], Any] | None, keys: tuple[str, ...]) -> None:
        """Apply ``keys`` live: ``callback(old, new)`` runs after a SIGHUP reload changed any of them.

        ``keys`` are dotted keys (``"retention.max_age_days"``) or section
        prefixes ending in a dot (``"retention."``).  By the time the callback
        runs, ``self.config`` is already ``new``.  ``callback`` None declares
        keys whose users read ``app.config`` at every use.  Changed keys nobody
        applies are reported as needing a restart and keep their values.
        """
        self.reloads.subscribe(callback, keys)

    def uptime(self) -> float:
        return self.clock.seconds() - self.started_at

    # -- readiness ------------------------------------------------------------

    def when_ready(self) -> Deferred:
        """A Deferred that fires the first time every health condition is ok."""
        d: Deferred = Deferred()
        if self._was_ready:
            d.callback(self)
        else:
            self._ready_waiters.append(d)
        return d

    def _health_changed(self, name: str, ok: bool, reason: str) -> None:
        if self._was_ready or not self.health.ready:
            return
        self._was_ready = True
        waiters, self._ready_waiters = self._ready_waiters, []
        for d in waiters:
            d.callback(self)
