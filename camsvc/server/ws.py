"""The WebSocket transport: Autobahn frames in, JSON-RPC engine calls out.

This module owns the WebSocket connection lifecycle and nothing of the API: it
accepts or refuses the opening handshake (capacity, Origin), registers each
connection with the :class:`~camsvc.server.hub.Hub`, passes every text message to the
:class:`~camsvc.server.rpc.Engine` and writes back what the engine answers.

Admission: authenticated and unauthenticated connections are separate pools.
A handshake carrying a credential (``Authorization: Bearer`` or ``X-API-Key``)
is authenticated before it is accepted and counts against
``server.max_connections``; one without counts against the unauthenticated
pool (``server.max_unauthenticated`` in total and
``server.max_unauthenticated_per_address``) until it calls ``authenticate``,
and is closed after ``auth.login_timeout`` if it does not.  So strangers can
neither take an authenticated client's slot nor keep theirs by reconnecting.

Flow control: each connection registers a push producer on its transport.
While the kernel buffer toward the client is full (the transport paused us),
outgoing messages queue in a bounded buffer; a client that lets it overflow is
disconnected with a logged reason, so a slow reader never blocks the others
or grows our memory.

The hot path is our own, on Autobahn's protocol object: a read holding whole, unfragmented,
masked text frames (the shape of every JSON-RPC request) is parsed, unmasked and answered
here, and answers and notifications are framed and written here (sent at once when nothing
is queued, not on the next reactor turn); everything else (control frames, fragments,
oversized or 64-bit-length frames, protocol violations) goes to Autobahn's general parser,
which stays in charge of the protocol.  The text is decoded strictly as UTF-8 and invalid
UTF-8 fails the connection with 1007, on both paths, so Autobahn's incremental validator is
off (``utf8validateIncoming``).  Autobahn's per-read and per-write debug log calls, traffic
statistics and its generic frame machinery cost more per request than camsvc's own work;
see docs/performance.md.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable
from typing import Any

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny
from twisted.internet import tcp
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from zope.interface import implementer

from camsvc.common.addresses import client_address, parse_networks, peer_address, peer_string
from camsvc.common.clocks import steady
from camsvc.common.hosts import host_of
from camsvc.config import is_loopback_host
from camsvc.server.session import Session

log = Logger()

#: WebSocket close codes used by the server.
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_UNSUPPORTED = 1003
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_TRY_AGAIN = 1013

_STATE_OPEN = WebSocketServerProtocol.STATE_OPEN
_from_bytes = int.from_bytes
_pack_126 = struct.Struct("!BBH").pack
_pack_127 = struct.Struct("!BBQ").pack
#: Frame headers of unfragmented server text frames up to 125 bytes, by length.
_SHORT_HEADERS = [bytes((0x81, n)) for n in range(126)]


def _unmask(data: bytes, mask: bytes) -> bytes:
    """XOR ``data`` with the 4-byte frame ``mask``: two big-int conversions, no Python loop
    (faster for request-sized payloads than Autobahn's CFFI masker, ~0.4 vs 2.3 us)."""
    n = len(data)
    if mask == b"\0\0\0\0":
        return data
    return (_from_bytes(data, "little") ^ _from_bytes((mask * ((n >> 2) + 1))[:n], "little")).to_bytes(n, "little")


class _Masker:
    """Autobahn's masker interface (``process``, ``pointer``, ``reset``) on :func:`_unmask`.

    Handed to Autobahn's protocol module (:func:`use_own_masker`) for the frames its general
    parser sees (control frames, fragments, long messages) and the frames it sends, so camsvc
    does not need Autobahn's native masker (see camsvc.ops.lean) nor its pure-Python one
    (~270 ms per MiB; this is ~10 ms).
    """

    __slots__ = ("_mask", "_ptr")

    def __init__(self, mask: bytes, length: int | None = None) -> None:
        self._mask = bytes(mask)
        self._ptr = 0

    def pointer(self) -> int:
        return self._ptr

    def reset(self) -> None:
        self._ptr = 0

    def process(self, data: bytes) -> bytes:
        shift = self._ptr & 3
        mask = self._mask[shift:] + self._mask[:shift] if shift else self._mask
        self._ptr += len(data)
        return _unmask(bytes(data), mask)


def use_own_masker() -> bool:
    """Make Autobahn's protocol module build :class:`_Masker` s where it would use its
    pure-Python masker; a native one (NVX, Debian's wsaccel) is kept.  Idempotent."""
    import autobahn.websocket.protocol as autobahn_protocol

    current = autobahn_protocol.create_xor_masker
    if current is _Masker:
        return True
    if getattr(current, "__module__", "") != "autobahn.websocket.xormasker":
        return False  # native
    autobahn_protocol.create_xor_masker = _Masker
    return True


_PLAIN_TCP = tcp.Server


def write_through(transport: Any, data: bytes) -> None:
    """``transport.write(data)``, sending at once when the transport has nothing queued.

    Twisted's ``write`` only queues: it registers the socket for writability (one
    ``epoll_ctl``), sends on the next reactor turn, and unregisters (another one): two
    syscalls and a reactor event per answer.  On a plain TCP transport with an empty buffer
    we call ``send`` ourselves; whatever the kernel does not take (or an error) goes through
    ``write`` as before, so ordering, flow control and error handling stay Twisted's.
    TLS and other transports always use ``write``.
    """
    if (
        type(transport) is _PLAIN_TCP
        and transport.connected
        and not transport.disconnecting
        and not transport._writeDisconnected
        and not transport.dataBuffer
        and not transport._tempDataBuffer
    ):
        try:
            sent = transport.socket.send(data)
        except OSError:  # EAGAIN, or an error Twisted's own write path will report
            sent = 0
        if sent == len(data):
            return
        data = data[sent:]
    transport.write(data)


def text_frame(data: bytes) -> bytes:
    """One unfragmented, unmasked (server-to-client) text frame carrying ``data``."""
    n = len(data)
    if n < 126:
        return _SHORT_HEADERS[n] + data
    if n < 65536:
        return _pack_126(0x81, 126, n) + data
    return _pack_127(0x81, 127, n) + data


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
    _idle_call: Any = None
    _login_call: Any = None
    _last_heard = 0.0

    def onConnect(self, request: Any) -> None:
        factory: RpcServerFactory = self.factory
        address = client_address(
            peer_address(request.peer), request.headers.get("x-forwarded-for"), factory.trusted_proxies
        )
        credential = _handshake_credential(request.headers) if factory.auth_required else None
        refusal = factory.admit(request, address=address, credentialed=credential is not None)
        if refusal is not None:
            code, reason = refusal
            factory.log_refusal(request.peer, reason)
            raise ConnectionDeny(code, reason)
        self._queue: deque = deque()
        conn_id = factory.hub.next_id()
        # Stream URLs are built for the host the client used to reach us.
        host = host_of(request.headers.get("host", "")) or self.transport.getHost().host
        self.session = factory.make_session(conn_id, request.peer, host, self.send_text)
        # The full Host header (with its port) is where download URLs point.
        self.session.extra["http_host"] = request.headers.get("host", "")
        self.session.extra["client_address"] = address
        if credential is not None and (
            factory.handshake_auth is None or not factory.handshake_auth(self.session, credential)
        ):
            factory._rejected("handshake_auth")
            raise ConnectionDeny(401, "authentication failed")

    def onOpen(self) -> None:
        transport = self.transport
        if getattr(transport, "producer", None) is not None:
            transport.unregisterProducer()
        transport.registerProducer(_Flow(self), True)
        self.factory.hub.add(self)
        if self.session.role is None:
            self.factory.pools.add_unauthenticated(self, self.session.extra.get("client_address", ""))
            self.session.on_grant = self._granted
        log.debug("Connection {conn_id} open from {peer}", conn_id=self.session.id, peer=self.session.peer)
        if self.factory.idle_timeout:
            self._heard()
            self._idle_call = self.factory.reactor.callLater(self.factory.idle_timeout, self._check_idle)
        if self.factory.login_timeout and self.session.role is None:
            self._login_call = self.factory.reactor.callLater(self.factory.login_timeout, self._check_login)

    def _granted(self) -> None:
        """The session authenticated in-band: move it to the authenticated pool (if there is room)."""
        self.session.on_grant = None
        factory = self.factory
        factory.pools.remove(self)
        if factory.pools.authenticated(len(factory.hub)) > factory.max_connections:
            factory._rejected("max_connections")
            limit = factory.max_connections
            # After the authenticate answer has gone out.
            factory.reactor.callLater(
                0, self.close_with, CLOSE_TRY_AGAIN, f"too many authenticated connections (limit {limit})"
            )

    def _check_login(self) -> None:
        self._login_call = None
        if self.state != self.STATE_OPEN or self._closing or self.session.role is not None:
            return
        timeout = self.factory.login_timeout
        log.info(
            "Closing connection {conn_id} ({peer}): not authenticated within {timeout:g} s",
            conn_id=self.session.id,
            peer=self.session.peer,
            timeout=timeout,
        )
        self.close_with(CLOSE_POLICY, f"authentication timeout: call authenticate within {timeout:g} s")

    # -- idle timeout: anything the client sends (messages, pings, the pongs
    # answering our auto-pings) counts as life, so a connected client whose
    # WebSocket stack answers pings is never idle; a dead or silent peer is.

    def _heard(self) -> None:
        self._last_heard = steady(self.factory.reactor)

    def _check_idle(self) -> None:
        self._idle_call = None
        if self.state != self.STATE_OPEN or self._closing:
            return
        timeout = self.factory.idle_timeout
        silent = steady(self.factory.reactor) - self._last_heard  # a clock step is no silence
        if silent >= timeout:
            log.info(
                "Closing connection {conn_id} ({peer}): nothing received for {silent:.0f} s",
                conn_id=self.session.id,
                peer=self.session.peer,
                silent=silent,
            )
            self._count_drop("idle")
            self.close_with(CLOSE_NORMAL, f"idle timeout: nothing received for {timeout:g} s")
            return
        self._idle_call = self.factory.reactor.callLater(timeout - silent, self._check_idle)

    def _count_drop(self, reason: str) -> None:
        metrics = self.factory.metrics
        if metrics is not None:
            metrics.connection_dropped(reason)

    def onPing(self, payload: bytes) -> None:
        self._heard()
        super().onPing(payload)

    def onPong(self, payload: bytes) -> None:
        self._heard()

    # -- receiving -----------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        """Twisted's entry point: whole masked text frames here, anything else to Autobahn."""
        if (
            self.state != _STATE_OPEN
            or self.current_frame is not None
            or self.data
            or self._perMessageCompress is not None
            or self._closing
        ):
            self._dataReceived(data)
            return
        if self.factory.idle_timeout:
            self._heard()
        # autoPingRestartOnAnyTraffic: Autobahn >= 22.4 (Ubuntu 22.04's 21.11 has no such option).
        if self.autoPingTimeoutCall is not None and getattr(self, "autoPingRestartOnAnyTraffic", False):
            self._cancelAutoPingTimeoutCall()
        limit = self.maxMessagePayloadSize
        n = len(data)
        pos = 0
        while n - pos >= 6 and data[pos] == 0x81:
            length = data[pos + 1] ^ 0x80  # masked: 0x80 set; anything >= 0x80 after the XOR was unmasked
            if length < 126:
                start = pos + 6
            elif length == 126 and n - pos >= 8:
                length = (data[pos + 2] << 8) | data[pos + 3]
                if length < 126:
                    break  # not the minimal encoding: Autobahn fails the connection
                start = pos + 8
            else:
                break
            end = start + length
            if end > n or 0 < limit < length:
                break
            payload = _unmask(data[start:end], data[start - 4 : start])
            pos = end
            try:
                text = payload.decode("utf-8")
            except UnicodeDecodeError:
                self._invalid_utf8()
                return
            self._answer(text)
            if self.state != _STATE_OPEN or self._closing:
                if pos < n and self.state != self.STATE_CLOSED and not self._closing:
                    self._dataReceived(data[pos:] if pos else data)
                return
        if pos < n:
            self._dataReceived(data[pos:] if pos else data)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        """A message that came through Autobahn's general parser (fragmented, long, after a control frame)."""
        self._heard()
        if isBinary:
            self._count_drop("binary_message")
            self.close_with(CLOSE_UNSUPPORTED, "binary messages are not supported: send JSON-RPC as text")
            return
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            self._invalid_utf8()
            return
        self._answer(text)

    def _invalid_utf8(self) -> None:
        self._count_drop("invalid_utf8")
        self._fail_connection(self.CLOSE_STATUS_CODE_INVALID_PAYLOAD, "invalid UTF-8 in a text message")

    def _answer(self, text: str) -> None:
        result = self.factory.engine.handle(self.session, text)
        if result is None:
            return
        if isinstance(result, Deferred):
            result.addCallback(self._deliver).addErrback(
                lambda f: log.failure("Answering connection {conn_id} failed", f, conn_id=self.session.id)
            )
        else:  # a str, or a cached document's pre-encoded str subclass
            self.send_text(result)

    def _deliver(self, text: str | None) -> None:
        if text is not None:
            self.send_text(text)

    # -- sending -------------------------------------------------------------

    def send_text(self, text: str) -> bool:
        """Send one text message now or queue it; False if the client was dropped."""
        if self._closing or self.state != self.STATE_OPEN:
            return False
        data = text.encode("utf-8")
        if not self._paused and not self._queue and not self.send_queue:
            write_through(self.transport, text_frame(data))
            return True
        return self._enqueue(("raw", data), len(data))

    def send_notification(self, text: str, shared: dict) -> bool:
        """Hub entry point: send a notification, framing it once per publish.

        Sent at once like an answer (:func:`write_through`): a notification handed to
        ``transport.write`` would wait for the next reactor turn, behind whatever the
        event that caused it scheduled (a MediaMTX pass, the probe start, log lines).
        With permessage-deflate (camsvc's factory never accepts it) Autobahn frames it."""
        if self._closing or self.state != self.STATE_OPEN:
            return False
        if self._perMessageCompress is not None:
            prepared = shared.get("prepared")
            if prepared is None:
                prepared = shared["prepared"] = self.factory.prepareMessage(text.encode("utf-8"), isBinary=False)
            if not self._paused and not self._queue:
                self.sendPreparedMessage(prepared)
                return True
            return self._enqueue(("prepared", prepared), len(prepared.payload))
        entry = shared.get("frame")
        if entry is None:
            data = text.encode("utf-8")
            entry = shared["frame"] = (data, text_frame(data))
        if not self._paused and not self._queue and not self.send_queue:
            write_through(self.transport, entry[1])
            return True
        return self._enqueue(("raw", entry[0]), len(entry[0]))

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
                self.transport.write(text_frame(item))
            else:
                self._queued_bytes -= len(item.payload)
                self.sendPreparedMessage(item)

    def _drop(self, reason: str) -> None:
        if self._closing:
            return
        self._closing = True
        self._queue.clear()
        self._queued_bytes = 0
        self._count_drop("slow_client")
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
        for call in (self._idle_call, self._login_call):
            if call is not None and call.active():
                call.cancel()
        self._idle_call = self._login_call = None
        if self.session is None:
            return
        self.factory.pools.remove(self)
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
    (``(conn_id, peer, host, send) -> Session``), the server config section,
    optionally ``metrics`` (:class:`camsvc.ops.metrics.Metrics`), and
    ``auth_required`` (without authentication, the same-origin rule only
    trusts Host names that cannot be DNS-rebound: see :meth:`admit`) and
    ``login_timeout`` (seconds a connection may stay unauthenticated; 0: no limit).
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
        auth_required: bool = True,
        login_timeout: float = 0.0,
        handshake_auth: Callable[[Session, str], bool] | None = None,
    ) -> None:
        super().__init__(url=url, reactor=reactor)
        use_own_masker()
        self.handshake_auth = handshake_auth
        self._refusal_logged_at = float("-inf")
        self._refusals_unlogged = 0
        self.pools = Pools(
            server_config.max_unauthenticated,
            server_config.max_unauthenticated_per_address,
        )
        self.metrics = metrics
        self.auth_required = auth_required
        self.login_timeout = login_timeout if auth_required else 0.0
        self.idle_timeout = server_config.idle_timeout
        self.trusted_proxies = parse_networks(server_config.trusted_proxies)
        self.engine = engine
        self.hub = hub
        self.make_session = make_session
        self.max_connections = server_config.max_connections
        self.outgoing_buffer_size = server_config.outgoing_buffer_size
        self.allowed_origins = [o.rstrip("/").lower() for o in server_config.allowed_origins]
        self.setProtocolOptions(
            maxMessagePayloadSize=server_config.max_message_size,
            maxFramePayloadSize=server_config.max_message_size,
            # Pings find dead peers.  With an idle timeout they come often
            # enough that a live client always answers within it, and their
            # own timeout is a little longer, so a silent peer gets the idle
            # close (1000, with a reason) and the ping timeout is the backstop.
            # (Autobahn schedules them on whole seconds, hence the floors.)
            autoPingInterval=max(1.0, min(30.0, self.idle_timeout / 2)) if self.idle_timeout else 30,
            autoPingTimeout=max(2.0, min(15.0, self.idle_timeout / 2)) + 2 if self.idle_timeout else 15,
            openHandshakeTimeout=10,
            closeHandshakeTimeout=5,
            # Protocol violations (e.g. an oversized message, 1009) get a
            # closing handshake with the code rather than a bare TCP drop.
            failByDrop=False,
            # Text is decoded strictly (UTF-8) before the engine sees it and invalid UTF-8
            # fails the connection with 1007 (RpcServerProtocol._invalid_utf8), so Autobahn's
            # incremental validator would only check every byte a second time.
            utf8validateIncoming=False,
            # Browsers send Origin; the allow-list is checked in admit().
            allowedOrigins=["*"],
        )

    def admit(self, request: Any, *, address: str = "", credentialed: bool = True) -> tuple[int, str] | None:
        """Return (HTTP status, reason) to refuse the handshake, or None to accept.

        ``credentialed``: the handshake carries a credential (the authenticated
        pool); otherwise the unauthenticated pool's caps apply to ``address``.
        """
        if credentialed or not self.auth_required:
            if self.pools.authenticated(len(self.hub)) >= self.max_connections:
                self._rejected("max_connections")
                return (503, f"too many connections (limit {self.max_connections}); try again later")
        else:
            refusal = self.pools.refusal(address)
            if refusal is not None:
                self._rejected("unauthenticated")
                return (503, refusal)
        origin = request.headers.get("origin")
        if origin and "*" not in self.allowed_origins:
            # Browsers always send Origin: accept the page camsvc serves itself
            # (same host) and the configured allow-list, nothing else, so a
            # foreign web page cannot drive the API with a visitor's network.
            normalized = origin.rstrip("/").lower()
            host = request.headers.get("host", "").strip().lower()
            same_origin = _same_authority(normalized, host)
            if same_origin and not self.auth_required and not _rebinding_safe(host):
                # Without authentication, "same origin" could be a hostile
                # page whose DNS name was re-pointed at this machine (DNS
                # rebinding): trust only IP literals and localhost then.
                same_origin = False
            if not same_origin and normalized not in self.allowed_origins:
                self._rejected("origin")
                return (403, f"origin {origin} is not allowed")
        return None

    def log_refusal(self, peer: str, reason: str) -> None:
        """Log a refused handshake; in a flood, one line per second with the count (the log is no lever)."""
        now = self.reactor.seconds()
        if now - self._refusal_logged_at < 1.0:
            self._refusals_unlogged += 1
            return
        more = self._refusals_unlogged
        self._refusal_logged_at, self._refusals_unlogged = now, 0
        log.warn(
            "Refused WebSocket connection from {peer}: {reason}{more}",
            peer=peer,
            reason=reason,
            more=f" (and {more} more refused in the last second)" if more else "",
        )

    def _rejected(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.connection_rejected(reason)

    def close_all(self, code: int = CLOSE_GOING_AWAY, reason: str = "server shutting down") -> None:
        for conn in self.hub.connections:
            try:
                conn.close_with(code, reason)
            except Exception:
                log.failure("Closing connection {conn_id} failed", conn_id=getattr(conn.session, "id", "?"))


class Pools:
    """Counts of unauthenticated connections, in total and per client address.

    The authenticated pool is everything else in the hub.  ``max_total`` and
    ``max_per_address`` cap the unauthenticated pool.
    """

    def __init__(self, max_total: int, max_per_address: int) -> None:
        self.max_total = max_total
        self.max_per_address = max_per_address
        self._conns: dict[Any, str] = {}
        self._by_address: dict[str, int] = {}

    def refusal(self, address: str) -> str | None:
        if len(self._conns) >= self.max_total:
            return f"too many unauthenticated connections (limit {self.max_total}); authenticate in the handshake"
        if self._by_address.get(address, 0) >= self.max_per_address:
            return f"too many unauthenticated connections from {address} (limit {self.max_per_address})"
        return None

    def add_unauthenticated(self, conn: Any, address: str) -> None:
        if conn not in self._conns:
            self._conns[conn] = address
            self._by_address[address] = self._by_address.get(address, 0) + 1

    def remove(self, conn: Any) -> None:
        address = self._conns.pop(conn, None)
        if address is not None:
            left = self._by_address[address] - 1
            if left:
                self._by_address[address] = left
            else:
                del self._by_address[address]

    def authenticated(self, hub_size: int) -> int:
        return hub_size - len(self._conns)

    def __len__(self) -> int:
        return len(self._conns)


def _handshake_credential(headers: dict) -> str | None:
    """A credential sent with the opening handshake: ``Authorization: Bearer <t>`` or ``X-API-Key``."""
    value = headers.get("authorization")
    if value:
        scheme, _, token = value.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    key = headers.get("x-api-key")
    if key and key.strip():
        return key.strip()
    return None


class RpcWebSocketResource(WebSocketResource):
    """The ``/ws`` resource.  Disarms twisted.web's idle timer once upgraded.

    A handshake without a credential while the unauthenticated pool has no room for its
    address is refused here, with the 503 and reason :meth:`RpcServerFactory.admit` gives,
    before Autobahn makes a protocol for it: Autobahn's connection set-up formats every
    option for a debug line (``pformat``) and its handshake parses and logs the request, the
    largest part of what a flood of refused strangers cost the reactor (``make bench-flood``,
    docs/performance.md).
    """

    def render(self, request: Any) -> Any:
        refused = self._refuse_stranger(request)
        if refused is not None:
            return refused
        request.channel.setTimeout(None)
        upgraded = getattr(request.channel, "upgraded", None)  # no HTTP deadlines, out of the HTTP count
        if upgraded is not None:
            upgraded()
        return super().render(request)

    def _refuse_stranger(self, request: Any) -> bytes | None:
        factory = self._factory
        if not factory.auth_required or (request.getHeader(b"upgrade") or b"").lower() != b"websocket":
            return None
        headers = {
            name: (request.getHeader(name.encode()) or b"").decode("latin-1") for name in ("authorization", "x-api-key")
        }
        if _handshake_credential(headers) is not None:
            return None
        peer = peer_string(request.channel.transport.getPeer())
        forwarded = request.getHeader(b"x-forwarded-for")
        address = client_address(
            peer_address(peer), forwarded.decode("latin-1") if forwarded else None, factory.trusted_proxies
        )
        reason = factory.pools.refusal(address)
        if reason is None:
            return None
        factory._rejected("unauthenticated")
        factory.log_refusal(peer, reason)
        request.setResponseCode(503, reason.encode("ascii", "replace"))
        request.setHeader(b"connection", b"close")
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return reason.encode("utf-8") + b"\n"


def _same_authority(origin: str, host: str) -> bool:
    """Does the Origin name the host (and port) the client connected to?

    Ports are compared when both sides give one; a side without one (a
    default port, or a TLS-terminating proxy in front) matches on the name.
    """
    scheme, sep, rest = origin.partition("://")
    if not sep or not host:
        return False  # "null" (sandboxed frames, file://) is never same-origin
    o_name, o_port = _split_port(rest)
    h_name, h_port = _split_port(host)
    if o_name != h_name:
        return False
    return not (o_port and h_port) or o_port == h_port


def _split_port(hostport: str) -> tuple[str, str]:
    if hostport.startswith("["):
        name, _, rest = hostport.partition("]")
        return name + "]", rest[1:] if rest.startswith(":") else ""
    if hostport.count(":") == 1:
        name, _, port = hostport.partition(":")
        return name, port
    return hostport, ""


def _rebinding_safe(host: str) -> bool:
    name, _ = _split_port(host)
    name = name.strip("[]")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    if is_loopback_host(name):
        return True
    try:
        import ipaddress

        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False
