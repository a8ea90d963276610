"""The WebSocket transport: Autobahn frames in, JSON-RPC engine calls out.

This module owns the WebSocket connection lifecycle and nothing of the API: it
accepts or refuses the opening handshake (capacity, Origin), registers each
connection with the :class:`~camsvc.hub.Hub`, passes every text message to the
:class:`~camsvc.rpc.Engine` and writes back what the engine answers.

Flow control: each connection registers a push producer on its transport.
While the kernel buffer toward the client is full (the transport paused us),
outgoing messages queue in a bounded buffer; a client that lets it overflow is
disconnected with a logged reason, so a slow reader never blocks the others
or grows our memory.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from zope.interface import implementer

from camsvc.session import Session
from camsvc.streams import client_host

log = Logger()

#: WebSocket close codes used by the server.
CLOSE_GOING_AWAY = 1001
CLOSE_UNSUPPORTED = 1003
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_TRY_AGAIN = 1013


@implementer(IPushProducer)
class _Flow:
    """Told by the transport when its send buffer is full (pause) or drained (resume)."""

    def __init__(self, proto: "RpcServerProtocol") -> None:
        self.proto = proto

    def pauseProducing(self) -> None:
        self.proto._paused = True

    def resumeProducing(self) -> None:
        self.proto._paused = False
        self.proto._flush()

    def stopProducing(self) -> None:
        self.proto._paused = True


class RpcServerProtocol(WebSocketServerProtocol):
    """One client connection.  Holds no business logic."""

    session: Session | None = None
    _paused = False
    _queued_bytes = 0
    _closing = False

    def onConnect(self, request: Any) -> None:
        factory: RpcServerFactory = self.factory
        refusal = factory.admit(request)
        if refusal is not None:
            code, reason = refusal
            log.warn("Refused WebSocket connection from {peer}: {reason}", peer=request.peer, reason=reason)
            raise ConnectionDeny(code, reason)
        self._queue: deque = deque()
        conn_id = factory.hub.next_id()
        # Stream URLs are built for the host the client used to reach us.
        host = client_host(request.headers.get("host", "")) or self.transport.getHost().host
        self.session = factory.make_session(conn_id, request.peer, host, self.send_text)
        # The full Host header (with its port) is where download URLs point.
        self.session.extra["http_host"] = request.headers.get("host", "")

    def onOpen(self) -> None:
        transport = self.transport
        if getattr(transport, "producer", None) is not None:
            transport.unregisterProducer()
        transport.registerProducer(_Flow(self), True)
        self.factory.hub.add(self)
        log.debug("Connection {conn_id} open from {peer}", conn_id=self.session.id, peer=self.session.peer)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if isBinary:
            self.close_with(CLOSE_UNSUPPORTED, "binary messages are not supported: send JSON-RPC as text")
            return
        result = self.factory.engine.handle(self.session, payload)
        if result is None:
            return
        if isinstance(result, str):
            self.send_text(result)
        elif isinstance(result, Deferred):
            result.addCallback(self._deliver).addErrback(
                lambda f: log.failure("Answering connection {conn_id} failed", f, conn_id=self.session.id)
            )

    def _deliver(self, text: str | None) -> None:
        if text is not None:
            self.send_text(text)

    # -- sending -------------------------------------------------------------

    def send_text(self, text: str) -> bool:
        """Send one text message now or queue it; False if the client was dropped."""
        if self._closing or self.state != self.STATE_OPEN:
            return False
        data = text.encode("utf-8")
        if not self._paused and not self._queue:
            self.sendMessage(data, isBinary=False)
            return True
        return self._enqueue(("raw", data), len(data))

    def send_notification(self, text: str, shared: dict) -> bool:
        """Hub entry point: send a notification, preparing its frame once per publish."""
        if self._closing or self.state != self.STATE_OPEN:
            return False
        prepared = shared.get("prepared")
        if prepared is None:
            prepared = shared["prepared"] = self.factory.prepareMessage(text.encode("utf-8"), isBinary=False)
        if not self._paused and not self._queue:
            self.sendPreparedMessage(prepared)
            return True
        return self._enqueue(("prepared", prepared), len(prepared.payload))

    def _enqueue(self, item: tuple, size: int) -> bool:
        limit = self.factory.outgoing_buffer_size
        if self._queued_bytes + size > limit:
            self._drop(f"outgoing buffer over {limit} bytes: the client does not read fast enough")
            return False
        self._queue.append(item)
        self._queued_bytes += size
        return True

    def _flush(self) -> None:
        while self._queue and not self._paused and self.state == self.STATE_OPEN:
            kind, item = self._queue.popleft()
            if kind == "raw":
                self._queued_bytes -= len(item)
                self.sendMessage(item, isBinary=False)
            else:
                self._queued_bytes -= len(item.payload)
                self.sendPreparedMessage(item)

    def _drop(self, reason: str) -> None:
        if self._closing:
            return
        self._closing = True
        self._queue.clear()
        self._queued_bytes = 0
        metrics = self.factory.metrics
        if metrics is not None:
            metrics.connection_dropped("slow_client")
        log.warn(
            "Dropping connection {conn_id} ({peer}): {reason}",
            conn_id=self.session.id,
            peer=self.session.peer,
            reason=reason,
        )
        self.factory.hub.remove(self)
        self.dropConnection(abort=True)

    def close_with(self, code: int, reason: str) -> None:
        """Start a closing handshake with any RFC 6455 code (Autobahn's sendClose allows only 1000/3000-4999)."""
        if self.state == self.STATE_OPEN:
            self.sendCloseFrame(code=code, reasonUtf8=reason.encode("utf-8")[:123], isReply=False)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if self.session is None:
            return
        self.factory.hub.remove(self)
        self._queue.clear()
        log.debug(
            "Connection {conn_id} closed (code {code}, clean {clean})",
            conn_id=self.session.id,
            code=code,
            clean=wasClean,
        )


class RpcServerFactory(WebSocketServerFactory):
    """Builds connections; owns the admission policy and shared collaborators.

    Collaborators: the JSON-RPC ``engine``, the ``hub``, ``make_session``
    (``(conn_id, peer, host, send) -> Session``), the server config section
    and optionally ``metrics`` (:class:`camsvc.metrics.Metrics`).
    """

    protocol = RpcServerProtocol

    def __init__(
        self,
        *,
        engine: Any,
        hub: Any,
        make_session: Callable[[str, str, str, Callable], Session],
        server_config: Any,
        reactor: Any,
        url: str | None = None,
        metrics: Any = None,
    ) -> None:
        super().__init__(url=url, reactor=reactor)
        self.metrics = metrics
        self.engine = engine
        self.hub = hub
        self.make_session = make_session
        self.max_connections = server_config.max_connections
        self.outgoing_buffer_size = server_config.outgoing_buffer_size
        self.allowed_origins = [o.rstrip("/").lower() for o in server_config.allowed_origins]
        self.setProtocolOptions(
            maxMessagePayloadSize=server_config.max_message_size,
            maxFramePayloadSize=server_config.max_message_size,
            autoPingInterval=30,
            autoPingTimeout=15,
            openHandshakeTimeout=10,
            closeHandshakeTimeout=5,
            # Protocol violations (e.g. an oversized message, 1009) get a
            # closing handshake with the code rather than a bare TCP drop.
            failByDrop=False,
            # Browsers send Origin; the allow-list is checked in admit().
            allowedOrigins=["*"],
        )

    def admit(self, request: Any) -> tuple[int, str] | None:
        """Return (HTTP status, reason) to refuse the handshake, or None to accept."""
        if len(self.hub) >= self.max_connections:
            self._rejected("max_connections")
            return (503, f"too many connections (limit {self.max_connections}); try again later")
        origin = request.headers.get("origin")
        if origin and "*" not in self.allowed_origins:
            # Browsers always send Origin: accept the page camsvc serves itself
            # (same host) and the configured allow-list, nothing else, so a
            # foreign web page cannot drive the API with a visitor's network.
            normalized = origin.rstrip("/").lower()
            same_origin = normalized.split("://", 1)[-1] == request.headers.get("host", "").strip().lower()
            if not same_origin and normalized not in self.allowed_origins:
                self._rejected("origin")
                return (403, f"origin {origin} is not allowed")
        return None

    def _rejected(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.connection_rejected(reason)

    def close_all(self, code: int = CLOSE_GOING_AWAY, reason: str = "server shutting down") -> None:
        for conn in self.hub.connections:
            try:
                conn.close_with(code, reason)
            except Exception:
                log.failure("Closing connection failed")


class RpcWebSocketResource(WebSocketResource):
    """The ``/ws`` resource.  Disarms twisted.web's idle timer once upgraded."""

    def render(self, request: Any) -> Any:
        request.channel.setTimeout(None)
        return super().render(request)
