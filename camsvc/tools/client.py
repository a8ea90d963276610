"""A small reusable JSON-RPC client for camsvc, on Twisted and Autobahn.

This module owns the client side of the WebSocket API: connecting (ws:// or
wss://), authenticating on every (re)connection, numbering requests and
matching responses, turning error objects into exceptions that carry the
JSON-RPC code, handing server notifications to subscribers, reconnecting with
exponential backoff, and downloading files from ``/files/...``.  ``camsvc-cli``
(:mod:`camsvc.tools.cli`) is built on it.

Why Twisted + Autobahn: they are already camsvc's own dependencies, so the
client works from the Debian package with nothing more installed (Debian 12's
python3-websockets 10.4 would add a dependency and a second event loop), and
it follows the service's conventions: an injectable reactor, Deferreds that
can be awaited from ``async def`` code.

Typical use::

    from twisted.internet.defer import ensureDeferred
    from twisted.internet.task import react
    from camsvc.tools.client import Client

    async def main(reactor):
        client = Client("ws://127.0.0.1:8002/ws", token=None, reactor=reactor)
        await client.connect()
        print(await client.call("get_camera_list"))
        await client.close()

    react(lambda reactor: ensureDeferred(main(reactor)))

Errors: a JSON-RPC error response raises the matching class of
:mod:`camsvc.common.errors` (``CameraNotFound`` for -32004, ...; any code has
``.code``, ``.message`` and ``.data``); transport problems raise
:class:`ConnectError` (with a one-line explanation), :class:`ConnectionLost`
or :class:`RequestTimeout`, all subclasses of :class:`ClientError`.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urljoin, urlsplit

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.application.internet import backoffPolicy
from twisted.internet import error as neterror
from twisted.internet.defer import CancelledError, Deferred, DeferredQueue, ensureDeferred, succeed
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from camsvc import __version__
from camsvc.common.errors import ALL_ERRORS, RpcError

log = Logger()

__all__ = [
    "Client",
    "ClientError",
    "ConnectError",
    "ConnectionLost",
    "DownloadError",
    "RequestTimeout",
    "RpcError",
    "error_from_object",
    "explain_failure",
    "http_base",
]

DEFAULT_URL = "ws://127.0.0.1:8002/ws"

_ERRORS_BY_CODE = {cls.code: cls for cls in ALL_ERRORS}
_JWT = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")


class ClientError(Exception):
    """A problem on the client's side of the wire (not a JSON-RPC error)."""


class ConnectError(ClientError):
    """The WebSocket could not be opened; ``str(err)`` explains why in one line."""


class ConnectionLost(ClientError):
    """The connection closed while a request was waiting for its response."""


class RequestTimeout(ClientError):
    """No response within the request's timeout."""


def error_from_object(error: Any) -> RpcError:
    """The exception for a JSON-RPC error object (the camsvc.common.errors class for its code)."""
    if not isinstance(error, dict):
        return RpcError(f"malformed error object: {error!r}")
    code = error.get("code")
    message = str(error.get("message") or "")
    cls = _ERRORS_BY_CODE.get(code, RpcError)
    exc = cls(message or None, error.get("data"))
    if cls is RpcError and isinstance(code, int):
        exc.code = code
    return exc


def http_base(ws_url: str) -> str:
    """The http(s):// origin of a ws(s):// URL (``ws://h:8002/ws`` -> ``http://h:8002/``)."""
    parts = urlsplit(ws_url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return f"{scheme}://{parts.netloc}/"


def auth_headers(token: str | None) -> dict[str, str]:
    """HTTP headers authorising a download with ``token`` (a JWT as Bearer, else an API key)."""
    if not token:
        return {}
    if _JWT.match(token):
        return {"Authorization": f"Bearer {token}"}
    return {"X-API-Key": token}


def explain_failure(failure: Any, url: str) -> str:
    """One line saying why connecting to ``url`` failed, for people."""
    exc = failure.value if isinstance(failure, Failure) else failure
    if isinstance(exc, ConnectError):
        return str(exc)
    where = _where(url)
    if isinstance(exc, neterror.ConnectionRefusedError):
        return f"cannot connect to {where}: connection refused (is camsvc running and listening there?)"
    if isinstance(exc, neterror.DNSLookupError):
        return f"cannot connect to {where}: host name not found"
    if isinstance(exc, (neterror.TimeoutError, neterror.TCPTimedOutError)):
        return f"cannot connect to {where}: no answer (timed out; check the address and any firewall)"
    if isinstance(exc, neterror.NoRouteError):
        return f"cannot connect to {where}: no route to host"
    name = type(exc).__name__
    if name == "Error" and type(exc).__module__.startswith("OpenSSL"):
        return f"cannot connect to {where}: TLS handshake failed ({_openssl_reason(exc)})"
    if isinstance(exc, neterror.ConnectionLost) or isinstance(exc, neterror.ConnectionDone):
        return f"cannot connect to {where}: the server closed the connection during the handshake"
    text = str(exc).strip() or name
    return f"cannot connect to {where}: {text}"


def _openssl_reason(exc: Any) -> str:
    try:
        parts = [item[2] for item in exc.args[0] if len(item) > 2]
    except (IndexError, TypeError):
        parts = []
    return "; ".join(parts) or str(exc) or "unknown TLS error"


def _where(url: str) -> str:
    return url


class _Protocol(WebSocketClientProtocol):
    """One WebSocket connection; hands frames to its :class:`Client` and nothing more."""

    client: Client | None = None

    def __init__(self) -> None:
        super().__init__()
        self.ws_opened: Deferred = Deferred()
        self.ws_closed: Deferred = Deferred()
        self.ws_is_open = False

    def onOpen(self) -> None:
        self.ws_is_open = True
        self.ws_opened.callback(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if isBinary:
            log.warn("camsvc sent a binary frame; ignored")
            return
        try:
            message = json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            log.warn("camsvc sent a frame that is not JSON; ignored: {text!r}", text=payload[:200])
            return
        if self.factory.client is not None:
            self.factory.client._received(self, message)

    def onClose(self, wasClean: bool, code: Any, reason: Any) -> None:
        self.ws_is_open = False
        detail = reason or ""
        if not self.ws_opened.called:
            self.ws_opened.errback(Failure(ConnectError(self._handshake_problem(detail))))
        if not self.ws_closed.called:
            self.ws_closed.callback((code, detail))

    def _handshake_problem(self, detail: str) -> str:
        where = _where(self.factory.client.url if self.factory.client else "camsvc")
        # Autobahn >= 22: "upgrade failed [404]: Not Found"; 21.x (Ubuntu 22.04):
        # "upgrade failed (404 - NotFound)".
        match = re.search(r"upgrade failed \[(\d+)\]: ?([^\")]*)", detail) or re.search(
            r"upgrade failed \((\d{3}) - ?([^)]*)\)", detail
        )
        if match:
            status, text = match.group(1), match.group(2).strip()
            hints = {
                "403": "refused by the server",
                "404": "no WebSocket at this path (is the URL's path /ws?)",
                "503": "the server is busy",
            }
            hint = hints.get(status, "refused by the server")
            return f"cannot connect to {where}: {hint} (HTTP {status}{': ' + text if text else ''})"
        tls = re.search(r"SSL error: ([^(\")]+)", detail)
        if tls:
            return (
                f"cannot connect to {where}: TLS handshake failed: {tls.group(1).strip()}"
                " (to trust the server's own certificate or CA: --cafile FILE, Client(cafile=...))"
            )
        secure = where.startswith("wss:")
        if "opening handshake timeout" in detail:
            hint = " (is TLS on at that port? if not, use ws://)" if secure else ""
            return f"cannot connect to {where}: the server did not complete the WebSocket handshake in time{hint}"
        if "peer dropped the TCP connection" in detail or not detail:
            hint = "is this a camsvc WebSocket URL?" + ("" if secure else " does it need wss://?")
            return f"cannot connect to {where}: the server closed the connection ({hint})"
        return f"cannot connect to {where}: {detail}"


class _Factory(WebSocketClientFactory):
    protocol = _Protocol
    client: Client | None = None


class Client:
    """A JSON-RPC 2.0 client connection to camsvc.

    ``url``: ``ws://host:port/ws`` or ``wss://...``.  ``token``: a JWT or API
    key sent with ``authenticate`` after every (re)connection; ``None`` for a
    server that allows anonymous access.  ``reconnect``: after a lost
    connection, reconnect with exponential backoff (``backoff(attempt) ->
    seconds``, default 0.5 s doubling to 30 s, jittered) and re-authenticate;
    calls made while disconnected wait for the next connection (bounded by
    their timeout).  Without it, a lost connection stays lost.
    ``timeout``: default seconds a call waits for its response (also the
    connect timeout).  ``tls``: an ``IOpenSSLClientConnectionCreator`` for
    wss:// (default: ``optionsForClientTLS(host)``, the system CAs).
    ``endpoint``: an ``IStreamClientEndpoint`` to use instead of one built
    from the URL (tests).  ``origin``: an Origin header to send.

    Collaborators: the reactor (TCP, time), Autobahn's client protocol, and
    for :meth:`download` an HTTP agent (treq) on the same reactor.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        token: str | None = None,
        reactor: Any = None,
        timeout: float = 10.0,
        reconnect: bool = False,
        backoff: Callable[[int], float] | None = None,
        tls: Any = None,
        cafile: str | None = None,
        endpoint: Any = None,
        origin: str | None = None,
        max_message_size: int = 64 * 1024 * 1024,
        notification_backlog: int = 1000,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = global_reactor
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            hint = ""
            if parts.scheme in ("http", "https") and parts.netloc:
                hint = f"; did you mean {'wss' if parts.scheme == 'https' else 'ws'}://{parts.netloc}/ws ?"
            raise ValueError(f"not a WebSocket URL (ws://host:port/ws or wss://...): {url}{hint}")
        self.url = url
        self.secure = parts.scheme == "wss"
        self.host = parts.hostname
        try:
            self.port = parts.port or (443 if self.secure else 80)
        except ValueError:
            raise ValueError(f"invalid port in URL {url!r}") from None
        self.token = token
        self.reactor = reactor
        self.timeout = timeout
        self.reconnect = reconnect
        self.backoff = backoff or backoffPolicy(initialDelay=0.5, maxDelay=30.0, factor=2.0)
        self.tls = tls
        self.trust_root = load_trust_root(cafile) if cafile else None
        self._endpoint = endpoint
        self.origin = origin
        self.max_message_size = max_message_size
        #: The ``authenticate`` result of the current connection (None: anonymous).
        self.auth: dict | None = None
        self._ids = itertools.count(1)
        self._pending: dict[Any, tuple[Deferred, Any]] = {}
        self._proto: _Protocol | None = None
        self._connecting: Deferred | None = None
        self._waiters: list[Deferred] = []
        self._closing = False
        self._retry_call: Any = None
        self._attempt = 0
        self._subscribers: list[Callable[[str, Any], None]] = []
        self._state_subscribers: list[Callable[[str, str], None]] = []
        self._queues: list[tuple[DeferredQueue, int]] = []
        self._backlog = notification_backlog
        self.last_error: str | None = None
        self._shutdown_trigger: Any = None

    # -- public API ---------------------------------------------------------------

    @property
    def closing(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closing

    @property
    def connected(self) -> bool:
        """True while the WebSocket is open and (with a token) authenticated."""
        return self._proto is not None and self._proto.ws_is_open and self._connecting is None

    def connect(self) -> Deferred:
        """Open the connection (and authenticate); fires with self.

        Without ``reconnect`` a failure errbacks with :class:`ConnectError`
        (or the JSON-RPC error of ``authenticate``); with it, attempts repeat
        with backoff until one succeeds or :meth:`close` is called, except
        that an authentication failure stops the attempts (retrying a refused
        token cannot help).
        """
        self._closing = False
        add_trigger = getattr(self.reactor, "addSystemEventTrigger", None)
        if add_trigger is not None and self._shutdown_trigger is None:
            # Reactor shutdown (Ctrl-C, SIGTERM): close cleanly, and do not try to reconnect.
            self._shutdown_trigger = add_trigger("before", "shutdown", self._shutting_down)
        if self.connected:
            return succeed(self)
        d = self._wait_connected()
        if self._connecting is None and self._retry_call is None:
            self._attempt_connect()
        return d

    def call(self, method: str, params: Any = None, *, timeout: float | None = None) -> Deferred:
        """Call ``method``; the Deferred fires with its result or fails with RpcError/ClientError."""
        return ensureDeferred(self._call(method, params, self.timeout if timeout is None else timeout))

    # -- camera controls and stream settings (thin wrappers of call) ------------------------

    def get_camera_controls(self, device: str) -> Deferred:
        """Every V4L2 control of ``device``, grouped by class (``get_camera_controls``)."""
        return self.call("get_camera_controls", {"device": device})

    def set_camera_controls(self, device: str, controls: dict) -> Deferred:
        """Set ``{name or id: value}``; fires with the values read back (``set_camera_controls``)."""
        return self.call("set_camera_controls", {"device": device, "controls": dict(controls)})

    def reset_camera_controls(self, device: str, controls: list | None = None) -> Deferred:
        """Return ``controls`` (default: all) to their defaults and forget their stored values."""
        params: dict = {"device": device}
        if controls is not None:
            params["controls"] = list(controls)
        return self.call("reset_camera_controls", params)

    def get_stream_settings(self, device: str) -> Deferred:
        """The active mode, the stored settings and the choices of ``device``."""
        return self.call("get_stream_settings", {"device": device})

    def set_stream_settings(self, device: str, **settings: Any) -> Deferred:
        """``format``, ``width``, ``height``, ``fps``, ``encoder``, ``bitrate``, ``gop`` (None = default)."""
        return self.call("set_stream_settings", {"device": device, **settings})

    def notify(self, method: str, params: Any = None) -> None:
        """Send a JSON-RPC notification (no response expected); raises ConnectionLost when not connected."""
        if not self.connected:
            raise ConnectionLost("not connected to camsvc")
        message: dict = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        self._send(message)

    def subscribe(self, callback: Callable[[str, Any], None]) -> Callable[[], None]:
        """Call ``callback(method, params)`` for every server notification; returns an unsubscribe function."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    def on_state(self, callback: Callable[[str, str], None]) -> None:
        """Call ``callback(state, detail)`` on ``connected``, ``disconnected`` and ``retrying`` (detail: seconds)."""
        self._state_subscribers.append(callback)

    def notification_queue(self, maxlen: int | None = None) -> DeferredQueue:
        """A DeferredQueue receiving ``(method, params)`` for every notification from now on.

        ``queue.get()`` returns a Deferred.  At most ``maxlen`` (default the
        client's backlog) unread notifications are kept; older ones are dropped.
        """
        queue: DeferredQueue = DeferredQueue()
        self._queues.append((queue, maxlen or self._backlog))
        return queue

    def close(self) -> Deferred:
        """Close the connection (no reconnect); fires when it is closed."""
        self._closing = True
        if self._shutdown_trigger is not None:
            self.reactor.removeSystemEventTrigger(self._shutdown_trigger)
            self._shutdown_trigger = None
        if self._retry_call is not None and self._retry_call.active():
            self._retry_call.cancel()
        self._retry_call = None
        if self._connecting is not None:
            self._connecting.cancel()
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.errback(Failure(ConnectionLost("client closed")))
        proto = self._proto
        if proto is None:
            return succeed(None)
        if proto.ws_closed.called:
            return succeed(None)
        done: Deferred = Deferred()
        proto.ws_closed.addBoth(lambda _: done.callback(None))
        if proto.ws_is_open:
            proto.sendClose(code=1000, reason="client closing")
        else:
            proto.dropConnection(abort=True)
        return done

    def _shutting_down(self) -> Deferred:
        self._shutdown_trigger = None  # it is firing: never remove it
        return self.close()

    def download(self, url: str, sink: Any, *, timeout: float | None = None) -> Deferred:
        """GET ``url`` (absolute, or relative to the server's http(s) origin) into ``sink.write``.

        Sends the token as ``Authorization: Bearer`` (JWT) or ``X-API-Key``,
        only to camsvc's own origin (a signed ``download_url`` needs none).
        Fires with the number of bytes written; fails with
        :class:`DownloadError` on an HTTP error status.
        """
        return ensureDeferred(self._download(url, sink, self.timeout if timeout is None else timeout))

    def absolute(self, url: str) -> str:
        """``url`` resolved against the server's http(s) origin."""
        return urljoin(http_base(self.url), url)

    # -- connecting ----------------------------------------------------------------

    def _make_endpoint(self) -> Any:
        if self._endpoint is not None:
            return self._endpoint
        endpoint = HostnameEndpoint(self.reactor, self.host, self.port, timeout=self.timeout)
        if self.secure:
            endpoint = wrapClientTLS(self.tls_for(self.host), endpoint)
        return endpoint

    def tls_for(self, host: str) -> Any:
        """The TLS client options for ``host``: ``tls`` if given, else verification against ``cafile`` or the system CAs."""
        if self.tls is not None:
            return self.tls
        from twisted.internet.ssl import optionsForClientTLS

        return optionsForClientTLS(host, trustRoot=self.trust_root)

    def _make_factory(self) -> _Factory:
        factory = _Factory(
            url=self.url,
            origin=self.origin,
            useragent=f"camsvc-client/{__version__}",
            reactor=self.reactor,
        )
        factory.client = self
        factory.setProtocolOptions(
            maxMessagePayloadSize=self.max_message_size,
            maxFramePayloadSize=self.max_message_size,
            openHandshakeTimeout=self.timeout,
            closeHandshakeTimeout=2,
        )
        return factory

    def _wait_connected(self) -> Deferred:
        d: Deferred = Deferred(lambda d: self._waiters.remove(d) if d in self._waiters else None)
        self._waiters.append(d)
        return d

    def _attempt_connect(self) -> None:
        self._retry_call = None
        self._connecting = ensureDeferred(self._open())
        self._connecting.addCallbacks(self._opened, self._open_failed)

    async def _open(self) -> _Protocol:
        factory = self._make_factory()
        proto = await self._make_endpoint().connect(factory)
        try:
            await proto.ws_opened
        except BaseException:
            proto.dropConnection(abort=True)
            raise
        self._proto = proto
        proto.ws_closed.addCallback(self._closed, proto)
        if self.token:
            try:
                self.auth = await self._call("authenticate", {"auth_token": self.token}, self.timeout, ready=True)
            except RpcError as exc:
                if exc.code == -32601:  # a server without authentication
                    self.auth = None
                else:
                    proto.sendClose(code=1000, reason="authentication failed")
                    raise
        return proto

    def _opened(self, proto: _Protocol) -> None:
        self._connecting = None
        self._attempt = 0
        self.last_error = None
        log.debug("Connected to {url}", url=self.url)
        self._tell_state("connected", self.url)
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(self)

    def _open_failed(self, failure: Failure) -> None:
        self._connecting = None
        self._proto = None
        if failure.check(CancelledError) and self._closing:
            return
        if failure.check(RpcError):
            fatal = True
            self.last_error = f"authentication failed: {failure.value.message}"
        else:
            fatal = False
            self.last_error = explain_failure(failure, self.url)
        if self.reconnect and not self._closing and not fatal:
            self._schedule_retry()
            return
        waiters, self._waiters = self._waiters, []
        if not failure.check(RpcError):
            failure = Failure(ConnectError(self.last_error))
        for d in waiters:
            d.errback(failure)

    def _schedule_retry(self) -> None:
        delay = self.backoff(self._attempt)
        self._attempt += 1
        log.debug("Reconnecting to {url} in {delay:.1f}s: {why}", url=self.url, delay=delay, why=self.last_error)
        self._tell_state("retrying", f"{delay:.1f}")
        self._retry_call = self.reactor.callLater(delay, self._attempt_connect)

    def _closed(self, reason: tuple, proto: _Protocol) -> None:
        if self._proto is proto:
            self._proto = None
        code, detail = reason
        pending, self._pending = self._pending, {}
        for d, timer in pending.values():
            if timer.active():
                timer.cancel()
            d.errback(Failure(ConnectionLost(f"connection to camsvc closed ({detail or code})")))
        self._tell_state("disconnected", str(detail or code))
        if self.reconnect and not self._closing and self._connecting is None and self._retry_call is None:
            self._schedule_retry()

    def _tell_state(self, state: str, detail: str) -> None:
        for callback in list(self._state_subscribers):
            try:
                callback(state, detail)
            except Exception:
                log.failure("connection state subscriber failed")

    # -- requests ------------------------------------------------------------------

    async def _call(self, method: str, params: Any, timeout: float, *, ready: bool = False) -> Any:
        if not ready and not self.connected:
            if self._closing or not self.reconnect:
                raise ConnectionLost("not connected to camsvc")
            await self._with_timeout(self._wait_connected(), timeout, f"connecting for {method}")
        req_id = next(self._ids)
        message: dict = {"jsonrpc": "2.0", "method": method, "id": req_id}
        if params is not None:
            message["params"] = params
        d: Deferred = Deferred()
        timer = self.reactor.callLater(timeout, self._timed_out, req_id, method, timeout)
        self._pending[req_id] = (d, timer)
        try:
            self._send(message)
        except Exception:
            self._pending.pop(req_id, None)
            timer.cancel()
            raise
        response = await d
        if "error" in response:
            raise error_from_object(response["error"])
        return response.get("result")

    async def _with_timeout(self, d: Deferred, timeout: float, what: str) -> Any:
        timer = self.reactor.callLater(timeout, d.cancel)
        try:
            return await d
        except CancelledError:
            raise RequestTimeout(f"no connection to camsvc within {timeout:g}s ({what})") from None
        finally:
            if timer.active():
                timer.cancel()

    def _send(self, message: dict) -> None:
        proto = self._proto
        if proto is None or not proto.ws_is_open:
            raise ConnectionLost("not connected to camsvc")
        proto.sendMessage(json.dumps(message, separators=(",", ":")).encode("utf-8"), isBinary=False)

    def _timed_out(self, req_id: Any, method: str, timeout: float) -> None:
        entry = self._pending.pop(req_id, None)
        if entry is not None:
            entry[0].errback(Failure(RequestTimeout(f"no response to {method} within {timeout:g}s")))

    def _received(self, proto: _Protocol, message: Any) -> None:
        if isinstance(message, list):  # a batch response
            for item in message:
                self._received(proto, item)
            return
        if not isinstance(message, dict):
            log.warn("camsvc sent an unexpected message: {message!r}", message=message)
            return
        if "method" in message and "id" not in message:
            self._notification(message.get("method"), message.get("params"))
            return
        entry = self._pending.pop(message.get("id"), None)
        if entry is None:
            if "error" in message:
                log.warn("camsvc error without a matching request: {error}", error=message.get("error"))
            return
        d, timer = entry
        if timer.active():
            timer.cancel()
        d.callback(message)

    def _notification(self, method: Any, params: Any) -> None:
        for callback in list(self._subscribers):
            try:
                callback(method, params)
            except Exception:
                log.failure("notification subscriber failed for {method}", method=method)
        for queue, maxlen in self._queues:
            while len(queue.pending) >= maxlen:  # a reader that fell behind loses the oldest
                queue.pending.pop(0)
            queue.put((method, params))

    # -- downloads -----------------------------------------------------------------

    async def _download(self, url: str, sink: Any, timeout: float) -> int:
        import treq
        from treq.client import HTTPClient
        from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, HTTPConnectionPool

        target = self.absolute(url)
        # The token goes only to camsvc itself, never to another host a URL might name.
        same_origin = http_base(target) == http_base(self.url)
        headers = auth_headers(self.token) if same_origin else {}
        policy = (
            _ClientTLS(self) if self.tls is not None or self.trust_root is not None else BrowserLikePolicyForHTTPS()
        )
        pool = HTTPConnectionPool(self.reactor, persistent=False)
        agent = Agent(self.reactor, contextFactory=policy, pool=pool, connectTimeout=timeout)
        http = HTTPClient(agent)
        response = await http.get(target, headers=headers, timeout=timeout)
        if response.code != 200:
            body = await response.content()
            raise DownloadError(response.code, f"cannot download {url}: {_http_reason(response.code, body)}", target)
        written = 0

        def write(data: bytes) -> None:
            nonlocal written
            written += len(data)
            sink.write(data)

        await treq.collect(response, write)
        return written


@implementer(IPolicyForHTTPS)
class _ClientTLS:
    """The client's own TLS settings (e.g. a private CA) for downloads too."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def creatorForNetloc(self, hostname: bytes, port: int) -> Any:
        return self.client.tls_for(hostname.decode("ascii"))


def load_trust_root(cafile: str) -> Any:
    """A trust root from a PEM file of one or more certificates (a private CA or a self-signed cert)."""
    from twisted.internet.ssl import Certificate, trustRootFromCertificates

    try:
        with open(cafile, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ValueError(f"cannot read {cafile}: {exc.strerror or exc}") from None
    blocks = re.findall(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", data, re.S)
    if not blocks:
        raise ValueError(f"{cafile} holds no PEM certificate")
    try:
        return trustRootFromCertificates([Certificate.loadPEM(block) for block in blocks])
    except Exception as exc:
        raise ValueError(f"{cafile}: not a usable certificate ({exc})") from None


class DownloadError(ClientError):
    """An HTTP error status from ``/files/...``: ``code``, a readable message, ``url``."""

    def __init__(self, code: int, message: str, url: str) -> None:
        self.code = code
        self.url = url
        super().__init__(message)


def _http_reason(code: int, body: bytes) -> str:
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        data = None
    if isinstance(data, dict):
        text = data.get("error") or data.get("message") or data.get("reason")
        if isinstance(text, dict):
            text = text.get("message")
        if text:
            return f"HTTP {code}: {text}"
    words = {401: "authentication required", 403: "not allowed", 404: "file not found", 416: "bad range"}
    return f"HTTP {code}: {words.get(code, 'download failed')}"
