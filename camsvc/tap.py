"""twistd entry point: command-line options and the service wiring.

``twistd -n camsvc --config FILE`` lands here.  :class:`Options` loads and
validates the configuration before the reactor starts (an invalid file ends
the process with one line naming the key and exit status 78, EX_CONFIG).
:func:`build` wires every component into an :class:`~camsvc.app.App`;
:func:`makeService` is the only code that touches the global reactor.
"""

from __future__ import annotations

import os
import sys
from importlib import import_module
from typing import Any

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.logger import ILogObserver, Logger
from twisted.python import usage
from twisted.python.failure import Failure

from camsvc import __version__
from camsvc.config import Config, ConfigError, load_config

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
        from camsvc.ops.lean import skip_tls_stack_if_unused

        skip_tls_stack_if_unused(self.config)


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


class ListenerService(Service):
    """Listens on an endpoint with the Site; on stop, closes WebSockets gracefully.

    Binding happens in ``privilegedStartService`` so a port that cannot be
    bound stops startup with a clear message.  ``port`` is the
    IListeningPort once bound.  Collaborators: the endpoint, the Site, the
    WebSocket factory (for the 1001 "going away" close) and the App's health.
    """

    name = "listener"

    def __init__(
        self,
        endpoint: Any,
        endpoint_text: str,
        site: Any,
        ws_factory: Any,
        health: Any,
        clock: Any,
        shutdown_timeout: float,
    ) -> None:
        self.endpoint = endpoint
        self.endpoint_text = endpoint_text
        self.site = site
        self.ws_factory = ws_factory
        self.health = health
        self.clock = clock
        self.shutdown_timeout = shutdown_timeout
        self.port: Any = None
        self._listening: Deferred | None = None
        health.require("listening")

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        outcome: list = []
        self._listening = self.endpoint.listen(self.site)
        self._listening.addBoth(outcome.append)
        if not outcome:  # an endpoint that binds asynchronously
            self._listening.addCallbacks(self._bound, self._failed_later)
        elif isinstance(outcome[0], Failure):
            message = outcome[0].getErrorMessage()
            self.health.set("listening", False, f"cannot listen: {message}")
            sys.stderr.write(f"camsvc: cannot listen on {self.endpoint_text}: {message}\n")
            raise SystemExit(1)
        else:
            self._bound(outcome[0])

    def _bound(self, port: Any) -> Any:
        self.port = port
        address = port.getHost()
        log.info("Listening on {host}:{port}", host=address.host, port=address.port)
        self.health.set("listening", True)
        return port

    def _failed_later(self, failure: Failure) -> None:
        self.health.set("listening", False, f"cannot listen: {failure.getErrorMessage()}")
        log.failure("Cannot listen on {endpoint}; stopping", failure, endpoint=self.endpoint_text)
        self.clock.stop()

    def startService(self) -> None:
        if self._listening is None:
            self.privilegedStartService()
        super().startService()

    def stopService(self) -> Deferred:
        super().stopService()
        self.health.set("listening", False, "shutting down")
        steps = []
        if self.port is not None:
            steps.append(maybeDeferred(self.port.stopListening))
        self.ws_factory.close_all()
        steps.append(self._wait_closed())
        return DeferredList(steps)

    def _wait_closed(self) -> Deferred:
        """Wait until every WebSocket has closed, at most shutdown_timeout seconds."""
        d: Deferred = Deferred()
        deadline = self.clock.seconds() + self.shutdown_timeout

        def check() -> None:
            if not len(self.ws_factory.hub) or self.clock.seconds() >= deadline:
                for conn in self.ws_factory.hub.connections:
                    conn.dropConnection(abort=True)
                d.callback(None)
            else:
                self.clock.callLater(0.05, check)

        check()
        return d


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


#: Component modules, each with ``setup(app)``: creates its services (as
#: children of ``app.service``), readiness conditions, HTTP resources and
#: status providers.  Order matters: later components may use earlier ones.
COMPONENTS: tuple[str, ...] = (
    "camsvc.ops.metrics",
    "camsvc.mediamtx.component",
    "camsvc.cameras.discovery",
    "camsvc.media.component",
    "camsvc.server.limits",
    "camsvc.auth",
)


def build(config: Config, reactor: Any, *, root: MultiService | None = None) -> Any:
    """Wire every component for ``config``; return the App (its ``service`` is the root)."""
    from twisted.internet.endpoints import serverFromString

    from camsvc.api import register_all
    from camsvc.app import App
    from camsvc.server.web import build_site
    from camsvc.server.ws import RpcServerFactory, RpcWebSocketResource

    app = App(config, reactor)
    if root is not None:
        app.service = root
    for name in COMPONENTS:
        import_module(name).setup(app)
    register_all(app)

    factory = RpcServerFactory(
        engine=app.engine,
        hub=app.hub,
        make_session=app.make_session,
        server_config=config.server,
        reactor=reactor,
        metrics=app.metrics,
        auth_required=config.auth.required,
        login_timeout=config.auth.login_timeout,
    )
    app.ws_factory = factory
    site = build_site(app, RpcWebSocketResource(factory), extra=app.http_children)
    description = endpoint_description(config.server)
    endpoint = serverFromString(reactor, description)
    listener = ListenerService(
        endpoint, description, site, factory, app.health, reactor, config.server.shutdown_timeout
    )
    listener.setServiceParent(app.service)
    app.listener = listener

    if not config.auth.required:
        log.warn("Authentication is DISABLED (auth.required: false): every client is admin. Development use only.")
    app.when_ready().addCallback(
        lambda _: log.info("camsvc {version} ready in {elapsed:.3f}s", version=__version__, elapsed=app.uptime())
    )
    return app


def makeService(options: Options) -> MultiService:
    from twisted.internet import reactor

    from camsvc.ops.lifecycle import HARD_MARGIN, STOP_MARGIN, SignalService
    from camsvc.ops.logs import LevelControl, make_observer, stdout_is_journal
    from camsvc.ops.reload import Reloader
    from camsvc.ops.systemd import setup_systemd

    config = options.config
    control = LevelControl(config.logging.level)
    stop_timeout = config.server.shutdown_timeout + STOP_MARGIN
    observer = make_observer(config.logging.format, control, journal=stdout_is_journal(os.environ))
    root = RootService(observer, clock=reactor, stop_timeout=stop_timeout)
    app = build(config, reactor, root=root)
    app.log_control = control
    app.on_reload(lambda old, new: control.set_level(new.logging.level), ("logging.level",))
    # systemd's variables are read once and removed, so child processes do not inherit them.
    systemd = setup_systemd(app, reactor, os.environ)
    app.reloader = Reloader(app, options["config"], systemd=systemd)
    SignalService(reactor, on_reload=app.reloader.reload, deadline=stop_timeout + HARD_MARGIN).setServiceParent(root)
    # The last child stops first: STOPPING=1 goes out as soon as shutdown begins.
    systemd.setServiceParent(root)
    return app.service
