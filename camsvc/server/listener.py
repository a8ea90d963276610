"""The listening socket: binds the endpoint with the Site, closes WebSockets gracefully on stop.

:class:`ListenerService` owns the ``listening`` readiness condition; a port
that cannot be bound stops startup with one line (exit status 1).  With
``loopback_only`` (``auth.required: false``), the address actually bound must
be a loopback one: an explicit ``server.endpoint`` can listen on every
interface whatever ``server.host`` says, so the rule is checked on the
bound socket, and a violation closes it and exits with one line and status 78.
"""

from __future__ import annotations

import ipaddress
import sys
from typing import Any

from twisted.application.service import Service
from twisted.internet.address import UNIXAddress
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure

log = Logger()


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
        *,
        loopback_only: bool = False,
    ) -> None:
        self.endpoint = endpoint
        self.endpoint_text = endpoint_text
        self.site = site
        self.ws_factory = ws_factory
        self.health = health
        self.clock = clock
        self.shutdown_timeout = shutdown_timeout
        self.loopback_only = loopback_only
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
            _one_line(f"camsvc: cannot listen on {self.endpoint_text}: {message}")
            raise SystemExit(1)
        else:
            self._bound(outcome[0])

    def _bound(self, port: Any) -> Any:
        address = port.getHost()
        host = getattr(address, "host", None)
        if self.loopback_only and not _is_loopback(address):
            port.stopListening()
            message = (
                f"auth.required: false is only allowed on a loopback address, but {self.endpoint_text} "
                f"listens on {host}; set auth.allow_insecure_bind: true to override (development only)"
            )
            self.health.set("listening", False, "refused: not a loopback address")
            _one_line(f"camsvc: invalid configuration: {message}")
            raise SystemExit(78)
        self.port = port
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


def _is_loopback(address: Any) -> bool:
    """True for a loopback IP (127.0.0.0/8, ::1, ::ffff:127.x) or a UNIX socket (local by nature);
    False for a wildcard or any other address."""
    if isinstance(address, UNIXAddress):
        return True
    host = getattr(address, "host", None)
    if not isinstance(host, str):
        return False
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool(ip.is_loopback or (mapped is not None and mapped.is_loopback))


def _one_line(text: str) -> None:
    """The startup failure line, on the real stderr (twistd has redirected sys.stderr into the log by now)."""
    stream = sys.__stderr__ or sys.stderr
    stream.write(text + "\n")
    stream.flush()
