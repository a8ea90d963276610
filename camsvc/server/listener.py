"""The listening socket: binds the endpoint with the Site, closes WebSockets gracefully on stop.

:class:`ListenerService` owns the ``listening`` readiness condition; a port
that cannot be bound stops startup with one line (exit status 1).
"""

from __future__ import annotations

import sys
from typing import Any

from twisted.application.service import Service
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
