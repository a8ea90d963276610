"""twistd entry point: command-line options and the service wiring.

``twistd -n camsvc --config FILE`` (and ``python3 -m camsvc``, :mod:`camsvc.__main__`) lands
here.  :class:`Options` loads and validates the configuration before the reactor starts (an invalid file ends
the process with one line naming the key and exit status 78, EX_CONFIG).
:func:`build` wires every component into an :class:`~camsvc.app.App`;
:func:`makeService` is the only code that touches the global reactor.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred
from twisted.logger import ILogObserver, Logger
from twisted.python import usage

from camsvc import __version__
from camsvc.config import Config, ConfigError, load_config

if TYPE_CHECKING:
    from camsvc.app import App

log = Logger()

EX_CONFIG = 78


class Options(usage.Options):
    synopsis = "[--config FILE]"
    longdesc = "Run camsvc: USB camera discovery and a JSON-RPC 2.0 WebSocket API around MediaMTX."
    optParameters = [
        [
            "config",
            "c",
            None,
            "YAML configuration file (default: built-in defaults plus CAMSVC_* environment overrides)",
        ],
    ]

    def postOptions(self) -> None:
        try:
            self.config = load_config(self["config"])
        except ConfigError as exc:
            sys.stderr.write(f"camsvc: invalid configuration: {exc}\n")
            sys.stderr.flush()
            raise SystemExit(EX_CONFIG) from None
        from camsvc.ops.lean import skip_native_websocket_helpers, skip_tls_stack_if_unused

        skip_tls_stack_if_unused(self.config)
        skip_native_websocket_helpers()


def endpoint_description(server: Any) -> str:
    """The Twisted endpoint string for the server section (TCP or TLS)."""
    if server.endpoint:
        return server.endpoint

    def esc(value: str) -> str:
        return value.replace("\\", "\\\\").replace(":", "\\:").replace("=", "\\=")

    host = server.host.strip("[]")
    if server.tls.cert:
        return f"ssl:port={server.port}:interface={esc(host)}:privateKey={esc(server.tls.key)}:certKey={esc(server.tls.cert)}"
    return f"tcp:port={server.port}:interface={esc(host)}"


def parse_endpoint(reactor: Any, server: Any, description: str, from_string: Any) -> Any:
    """The server endpoint for ``description``; ConfigError naming the key when it cannot be made.

    ``serverFromString`` raises for an unknown endpoint type, a malformed
    argument, and (for ``ssl:``) a certificate or key file that cannot be read.
    """
    key = "server.endpoint" if server.endpoint else ("server.tls" if server.tls.cert else "server.host")
    try:
        return from_string(reactor, description)
    except Exception as exc:  # noqa: BLE001 - any parse or load error is a configuration error
        reason = (getattr(exc, "strerror", None) and f"{exc.strerror}: {getattr(exc, 'filename', '')}") or str(exc)
        reason = reason.strip() or type(exc).__name__
        raise ConfigError(key, f"cannot make the listening endpoint: {reason}") from None


class RootService(MultiService):
    """The top service; installs camsvc's log observer on the twistd Application.

    With a ``clock``, stopping is sequential and bounded: children stop one
    after another in reverse order of creation (the listener first, so
    clients are gone before components finish their work) and the whole
    takes at most ``stop_timeout`` seconds (see
    :func:`camsvc.ops.lifecycle.stop_in_order`); child processes still running
    afterwards are killed.
    """

    def __init__(self, log_observer: Any = None, clock: Any = None, stop_timeout: float = 20.0) -> None:
        super().__init__()
        self.log_observer = log_observer
        self.clock = clock
        self.stop_timeout = stop_timeout

    def setServiceParent(self, parent: Any) -> None:
        if self.log_observer is not None and hasattr(parent, "setComponent"):
            parent.setComponent(ILogObserver, self.log_observer)
        super().setServiceParent(parent)

    def stopService(self) -> Deferred:
        if self.clock is None:
            return super().stopService()
        from camsvc.ops.lifecycle import kill_leftover_children, stop_in_order

        Service.stopService(self)
        d = stop_in_order(list(reversed(list(self))), self.clock, self.stop_timeout)
        return d.addCallback(lambda _: kill_leftover_children())


def build(config: Config, reactor: Any, *, root: MultiService | None = None) -> App:
    """Wire every component for ``config``; return the App (its ``service`` is the root).

    The one place components are created and connected, in start order:
    services are children of ``app.service`` and stop in reverse order, so a
    component may use the ones created before it while it stops.
    """
    from twisted.internet.endpoints import serverFromString

    from camsvc.api import register_all
    from camsvc.api.cameras import CameraNotifier
    from camsvc.api.http_files import protected_files
    from camsvc.app import App
    from camsvc.auth.http import protect
    from camsvc.cameras import component as camera_components
    from camsvc.cameras.settings import FILENAME as SETTINGS_FILE
    from camsvc.cameras.settings import CameraSettings
    from camsvc.cameras.stream_settings import EncoderProbe
    from camsvc.common.roles import Role
    from camsvc.media import component as media
    from camsvc.mediamtx import component as mediamtx
    from camsvc.ops.metrics import MetricsResource
    from camsvc.server.listener import ListenerService
    from camsvc.server.web import build_site
    from camsvc.server.ws import RpcServerFactory, RpcWebSocketResource

    app = App(config, reactor)
    if root is not None:
        app.service = root
    # The engine's guards (rate limit, revoked credentials, roles) are ordered in App.__init__.
    app.on_reload(app.rate_limiter.config_reloaded, app.rate_limiter.RELOAD_KEYS)
    app.on_reload(app.unauthenticated_budget.config_reloaded, app.unauthenticated_budget.RELOAD_KEYS)

    # The first camera observer: a presence change reaches clients before the other
    # observers' work in the same turn (stored controls, MediaMTX, recordings, systemd).
    app.camera_notifier = CameraNotifier(app)
    app.cameras.subscribe(app.camera_notifier)

    # -- components (core) --------------------------------------------------------------
    app.camera_settings = CameraSettings(os.path.join(config.storage.state_dir, SETTINGS_FILE), app.clock)
    # Before MediaMTX: a plugged camera gets its stored controls before its path exists.
    # CameraControls (and the V4L2 bindings) made at the first camera or control call.
    app.controls = camera_components.setup_controls(app, app.camera_settings)
    app.encoders = EncoderProbe(reactor)
    app.mediamtx = mediamtx.setup(app, stream_settings=app.camera_settings.stream)
    # Without discovery.enabled its null object: the discovery chain stays unimported.
    app.discovery = camera_components.setup_discovery(app)

    def republish(camera: Any) -> None:  # a camera's recording state changed
        if app.camera_notifier is not None:
            app.camera_notifier.publish(camera)

    app.media = media.setup(
        app,
        # Without authentication a token would open nothing more: URLs carry none.
        sign_download=app.auth.sign_download if config.auth.required else None,
        camera_changed=republish,
    )
    app.recordings = app.media.recordings
    # Started after the components: the first to stop of them, while the others still run.
    app.auth.setServiceParent(app.service)

    # -- the API: JSON-RPC methods and HTTP resources beyond the WebSocket ---------------
    register_all(app)
    # /metrics needs what get_metrics needs; /files what listing the files needs.
    # ... or an API key of scope "metrics" (a Prometheus scraper's, which opens nothing else).
    app.http_children[b"metrics"] = protect(app, MetricsResource(app.metrics), Role.ADMIN, scope="metrics")
    app.http_children[b"files"] = protected_files(app)
    # The MQTT bridge runs commands through the engine, so it comes after the methods.
    # Imported only when enabled: paho-mqtt stays out of an idle camsvc's memory.
    if config.mqtt.enabled:
        from camsvc.mqtt import component as mqtt

        app.mqtt = mqtt.setup(app)

    # -- the server: WebSocket transport, HTTP site, listening socket --------------------
    factory = RpcServerFactory(
        engine=app.engine,
        hub=app.hub,
        make_session=app.make_session,
        server_config=config.server,
        reactor=reactor,
        metrics=app.metrics,
        auth_required=config.auth.required,
        login_timeout=config.auth.login_timeout,
        handshake_auth=app.handshake_auth,
    )
    app.ws_factory = factory
    site = build_site(app, RpcWebSocketResource(factory), extra=app.http_children)
    description = endpoint_description(config.server)
    endpoint = parse_endpoint(reactor, config.server, description, serverFromString)
    listener = ListenerService(
        endpoint,
        description,
        site,
        factory,
        app.health,
        reactor,
        config.server.shutdown_timeout,
        loopback_only=not config.auth.required and not config.auth.allow_insecure_bind,
    )
    listener.setServiceParent(app.service)
    app.listener = listener

    if not config.auth.required:
        log.warn("Authentication is DISABLED (auth.required: false): every client is admin. Development use only.")
    app.when_ready().addCallback(
        lambda _: log.info("camsvc {version} ready in {elapsed:.3f}s", version=__version__, elapsed=app.uptime())
    )
    return app


def full_registry() -> Any:
    """The method registry of a fully wired camsvc with default configuration (nothing started).

    What ``docs/openrpc.json`` (``make openrpc``, :mod:`camsvc.apidoc`) and the
    permission tests are generated from.
    """
    from twisted.internet import reactor

    from camsvc.config import parse_config_dict

    return build(parse_config_dict({}), reactor).registry


#: Seconds after start when start-up's freed heap is handed back (camsvc.ops.lean.trim_heap),
#: and how often after that (what a burst of load freed goes back too).
TRIM_AFTER = 2.0
TRIM_EVERY = 60.0


def makeService(options: Options) -> MultiService:
    from twisted.internet import reactor

    from camsvc.ops import clockstep, dispatch, lean
    from camsvc.ops.lifecycle import HARD_MARGIN, STOP_MARGIN, SignalService
    from camsvc.ops.logs import LevelControl, make_observer, stdout_is_journal
    from camsvc.ops.reload import Reloader
    from camsvc.ops.systemd import setup_systemd

    config = options.config
    clockstep.install(reactor)  # first: every timer scheduled from here on survives clock steps
    dispatch.install(reactor)
    lean.schedule_trims(reactor, first=TRIM_AFTER, every=TRIM_EVERY)
    control = LevelControl(config.logging.level)
    stop_timeout = config.server.shutdown_timeout + STOP_MARGIN
    observer = make_observer(config.logging.format, control, journal=stdout_is_journal(os.environ))
    root = RootService(observer, clock=reactor, stop_timeout=stop_timeout)
    try:
        app = build(config, reactor, root=root)
    except ConfigError as exc:
        sys.stderr.write(f"camsvc: invalid configuration: {exc}\n")
        sys.stderr.flush()
        raise SystemExit(EX_CONFIG) from None
    app.log_control = control
    app.on_reload(lambda old, new: control.set_level(new.logging.level), ("logging.level",))
    # systemd's variables are read once and removed, so child processes do not inherit them.
    systemd = setup_systemd(app, reactor, os.environ)
    app.reloader = Reloader(app, options["config"], systemd=systemd)
    SignalService(reactor, on_reload=app.reloader.reload, deadline=stop_timeout + HARD_MARGIN).setServiceParent(root)
    # The last child stops first: STOPPING=1 goes out as soon as shutdown begins.
    systemd.setServiceParent(root)
    return app.service
