"""The application object: the running service's components, each a typed attribute.

:class:`App` is the container :func:`camsvc.tap.build` fills, part of the
composition root.  Its constructor builds what every camsvc has (config,
reactor and clock, the readiness conditions, the connection hub, the method
registry and the JSON-RPC engine with its guards, the camera registry,
metrics, the authenticator); :func:`camsvc.tap.build` then sets the
components (MediaMTX, discovery, media, the WebSocket factory, ...), which
stay ``None`` in an App a unit test builds bare.  API methods close over it;
nothing in here touches the network or the global reactor.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from camsvc.auth.authenticator import Authenticator
from camsvc.cameras.registry import CameraRegistry
from camsvc.config import Config
from camsvc.ops.health import Health
from camsvc.ops.metrics import Metrics
from camsvc.ops.reload import ReloadListeners
from camsvc.server.hub import Hub
from camsvc.server.limits import RateLimiter, UnauthenticatedBudget
from camsvc.server.openrpc import DocumentCache
from camsvc.server.rpc import Engine, Registry
from camsvc.server.session import Session, authorize

if TYPE_CHECKING:
    from twisted.web.resource import Resource

    from camsvc.api.cameras import CameraNotifier
    from camsvc.cameras.component import ControlsOnFirstUse, DisabledDiscovery
    from camsvc.cameras.controls import CameraControls
    from camsvc.cameras.discovery import DiscoveryService
    from camsvc.cameras.registry import Camera
    from camsvc.cameras.settings import CameraSettings
    from camsvc.cameras.stream_settings import EncoderProbe
    from camsvc.media.component import Media
    from camsvc.media.recordings import Recordings
    from camsvc.mediamtx.component import DisabledMediaMTX, MediaMTX
    from camsvc.mqtt.bridge import MQTTBridge
    from camsvc.ops.logs import LevelControl
    from camsvc.ops.reload import Reloader
    from camsvc.server.listener import ListenerService
    from camsvc.server.ws import RpcServerFactory

log = Logger()


class App:
    """Shared state of one running camsvc.

    ``status_providers`` maps a component name to a callable returning a
    JSON-able dict for ``get_status``; ``camera_metrics`` are per-camera
    contributors ``fn(camera) -> dict`` merged into ``get_camera_status``;
    ``http_children`` are the HTTP resources beyond the API, by first path
    segment (``b"metrics"``, ``b"files"``).
    """

    # -- built by the constructor: every camsvc has them ------------------------------
    config: Config
    reactor: Any
    clock: Any
    started_at: float
    started_wall: float
    health: Health
    hub: Hub
    registry: Registry
    rate_limiter: RateLimiter
    unauthenticated_budget: UnauthenticatedBudget
    #: The OpenRPC document, built once (rpc.discover, /openrpc.json).
    openrpc: DocumentCache
    auth: Authenticator
    engine: Engine
    service: MultiService
    cameras: CameraRegistry
    metrics: Metrics
    reloads: ReloadListeners
    http_children: dict[bytes, Resource]
    status_providers: dict[str, Callable[[], dict]]
    camera_metrics: list[Callable[[Camera], Any]]

    # -- set by camsvc.tap.build (None in a bare App) ----------------------------------
    #: MediaMTX, or its null object when ``mediamtx.enabled`` is false.
    #: Stored control values and stream settings per camera id (camera-settings.json).
    camera_settings: CameraSettings | None = None
    #: V4L2 controls of the cameras (re-applies stored values on plug).
    controls: ControlsOnFirstUse | CameraControls | None = None
    #: Which encoders ffmpeg offers (for stream settings; probed on first use).
    encoders: EncoderProbe | None = None
    mediamtx: MediaMTX | DisabledMediaMTX | None = None
    discovery: DiscoveryService | DisabledDiscovery | None = None
    media: Media | None = None
    recordings: Recordings | None = None
    camera_notifier: CameraNotifier | None = None
    ws_factory: RpcServerFactory | None = None
    #: ``(session, credential) -> bool``: authenticate in the WebSocket handshake (camsvc.api.auth).
    handshake_auth: Callable[[Session, str], bool] | None = None
    listener: ListenerService | None = None
    #: The MQTT bridge (camsvc.mqtt), None unless ``mqtt.enabled``.
    mqtt: MQTTBridge | None = None
    # -- set by camsvc.tap.makeService (the real process only) -------------------------
    log_control: LevelControl | None = None
    reloader: Reloader | None = None

    def __init__(self, config: Config, reactor: Any, clock: Any | None = None) -> None:
        self.config = config
        self.reactor = reactor
        self.clock = clock or reactor
        self.started_at = self.clock.seconds()
        self.started_wall = time.time()
        self.health = Health(self.clock)
        self.hub = Hub()
        self.registry = Registry()
        self.service = MultiService()
        self.cameras = CameraRegistry(self.clock)
        #: Components that apply configuration keys live on SIGHUP (see on_reload).
        self.reloads = ReloadListeners()
        self.http_children = {}
        self.status_providers = {}
        self.camera_metrics = []
        #: Prometheus metrics and the recording API for components (camsvc.ops.metrics).
        self.metrics = Metrics(self)
        self.hub.on_sent = self.metrics.notifications
        #: Credentials (JWT secret, API keys, download tokens); camsvc.tap.build
        #: starts it with the service.
        self.auth = Authenticator(config.auth, self.clock, self.hub)
        self.rate_limiter = RateLimiter(config.server.rate_limit_per_minute, self.clock)
        self.unauthenticated_budget = UnauthenticatedBudget(
            config.server.unauthenticated_rate_per_minute, config.server.unauthenticated_burst, self.clock
        )
        self.openrpc = DocumentCache(self.registry)
        self.engine = Engine(
            self.registry,
            # The guards, in the order they run (this is the one place that orders them):
            # the rate limit counts every request; a revoked credential is refused as
            # such before the unauthenticated budget (three methods, a small rate) and
            # authorize() checks the method's role.
            guards=[self.rate_limiter, self.auth.revalidate, self.unauthenticated_budget, authorize],
            max_batch_size=config.server.max_batch_size,
            clock=self.clock,
        )
        self.engine.observe = self.metrics.observe_rpc
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

    @property
    def was_ready(self) -> bool:
        """True once every health condition has been ok at least once (ready, or degraded since)."""
        return self._was_ready

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
