"""The MediaMTX control-API client (``/v3``), over an injected treq ``HTTPClient``.

This module owns the HTTP conversation with MediaMTX and nothing else: which
routes exist (only those of MediaMTX v1.20.1's OpenAPI document), how requests
are built (JSON bodies, optional Basic credentials, percent-encoded path
names), how long they may take (every request and every body read is bounded
by ``timeout`` on the injected clock) and how replies are read:

* success bodies are ``{"status": "ok"}`` (v1.x) or empty (older releases);
  both are accepted, and JSON documents are returned as parsed;
* every non-2xx reply becomes a :class:`MediaMTXAPIError` subclass carrying the
  HTTP status and MediaMTX's ``error`` text (``{"status":"error","error":..}``,
  the older ``{"error": ...}``, or gin's plain ``404 page not found``);
* a connection that cannot be made, breaks, or does not answer in time is a
  :class:`MediaMTXUnreachable`.

:func:`make_http_client` builds the ``HTTPClient`` with its own connection
pool; whoever calls it owns the pool and closes it (``closeCachedConnections``).
Works with treq 22.2 / Twisted 22.4 (Debian 12) and later.
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote, urlencode

import treq
from twisted.internet import defer
from twisted.internet.error import ConnectError, ConnectingCancelledError, ConnectionClosed, DNSLookupError
from twisted.logger import Logger
from twisted.web._newclient import HTTP11ClientProtocol
from twisted.web.client import (
    Agent,
    HTTPConnectionPool,
    RequestTransmissionFailed,
    ResponseFailed,
    ResponseNeverReceived,
)
from twisted.web.http_headers import Headers

log = Logger()

#: Page size for list endpoints (MediaMTX's default is 100).
PAGE_SIZE = 100


class MediaMTXError(Exception):
    """Anything that went wrong talking to MediaMTX.  ``method``/``path`` name the request."""

    def __init__(self, message: str, *, method: str = "", path: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.method = method
        self.path = path

    @property
    def request(self) -> str:
        return f"{self.method} {self.path}".strip()


class MediaMTXUnreachable(MediaMTXError):
    """No answer: connection refused or reset, DNS failure, or the request timed out."""


class MediaMTXAPIError(MediaMTXError):
    """MediaMTX answered with a non-2xx status.

    ``status`` is the HTTP status, ``error`` MediaMTX's own error text (the
    ``error`` member of its JSON body, or the plain-text body).
    """

    def __init__(self, status: int, error: str, *, method: str = "", path: str = "") -> None:
        super().__init__(f"{method} {path} -> {status}: {error}", method=method, path=path)
        self.status = status
        self.error = error

    @property
    def route_missing(self) -> bool:
        """True for gin's plain-text 404: the route does not exist in this MediaMTX version."""
        return self.status == 404 and self.error == "404 page not found"


class MediaMTXBadRequest(MediaMTXAPIError):
    """400: MediaMTX refused the request (invalid config, path already exists, ...)."""


class MediaMTXUnauthorized(MediaMTXAPIError):
    """401: missing or wrong credentials, or the user lacks the ``api`` permission."""


class MediaMTXNotFound(MediaMTXAPIError):
    """404: no such path (or, with :attr:`route_missing`, no such route)."""


class MediaMTXServerError(MediaMTXAPIError):
    """5xx: MediaMTX failed internally."""


def api_error(status: int, error: str, *, method: str = "", path: str = "") -> MediaMTXAPIError:
    """The :class:`MediaMTXAPIError` subclass for ``status``."""
    if status == 400:
        cls: type[MediaMTXAPIError] = MediaMTXBadRequest
    elif status in (401, 403):
        cls = MediaMTXUnauthorized
    elif status == 404:
        cls = MediaMTXNotFound
    elif status >= 500:
        cls = MediaMTXServerError
    else:
        cls = MediaMTXAPIError
    return cls(status, error, method=method, path=path)


def error_text(body: bytes) -> str:
    """MediaMTX's error message from an error reply body (any generation)."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        doc = json.loads(text)
    except ValueError:
        return text[:500] or "(empty body)"
    if isinstance(doc, dict) and isinstance(doc.get("error"), str):
        return doc["error"]
    return text[:500]


class _WatchedPool(HTTPConnectionPool):
    """A connection pool that says when an idle kept-alive connection is closed by the server.

    MediaMTX closes every connection when it exits, so ``on_idle_lost()``
    (set by the owner) is an early hint that MediaMTX may have stopped or
    restarted, much sooner than the next periodic probe.  Its per-connection
    factories are also quiet (no "Starting/Stopping factory" line per attempt).
    """

    on_idle_lost: Any = None

    def __init__(self, reactor: Any, persistent: bool = True) -> None:
        super().__init__(reactor, persistent=persistent)
        pool = self

        class Protocol(HTTP11ClientProtocol):
            def connectionLost(self, reason: Any = None) -> None:
                idle = self.state == "QUIESCENT"
                super().connectionLost(reason)
                if idle and pool.on_idle_lost is not None:
                    try:
                        pool.on_idle_lost()
                    except Exception:
                        log.failure("idle-connection hook failed")

        class Factory(HTTPConnectionPool._factory):  # type: ignore[name-defined,misc]
            noisy = False

            def buildProtocol(self, addr: Any) -> Any:
                return Protocol(self._quiescentCallback)

        self._factory = Factory


def make_http_client(reactor: Any, *, connect_timeout: float = 5.0, max_per_host: int = 4) -> tuple:
    """``(treq HTTPClient, pool)`` for MediaMTX; the caller closes the pool.

    The pool is a :class:`_WatchedPool`: set ``pool.on_idle_lost`` to hear
    about server-closed idle connections.
    """
    pool = _WatchedPool(reactor, persistent=True)
    pool.maxPersistentPerHost = max_per_host
    pool.cachedConnectionTimeout = 30
    pool.retryAutomatically = True
    agent = Agent(reactor, connectTimeout=connect_timeout, pool=pool)
    return treq.client.HTTPClient(agent), pool


_UNREACHABLE = (
    ConnectError,
    ConnectingCancelledError,  # a timeout (or shutdown) while the TCP connection was being made
    DNSLookupError,
    ConnectionClosed,
    ResponseFailed,
    ResponseNeverReceived,
    RequestTransmissionFailed,
    defer.TimeoutError,
)


def _describe(failure_value: BaseException, timeout: float) -> str:
    if isinstance(failure_value, defer.TimeoutError):
        return f"no answer within {timeout:g}s"
    reasons = getattr(failure_value, "reasons", None)
    if reasons:  # ResponseFailed & co. wrap the underlying failures
        inner = "; ".join(r.getErrorMessage() for r in reasons)
        return f"connection failed: {inner}"
    return (str(failure_value) or failure_value.__class__.__name__).strip().rstrip(".")


class MediaMTXClient:
    """The ``/v3`` routes camsvc uses, as coroutines returning parsed JSON.

    Collaborators: ``http`` (a treq ``HTTPClient``; its pool belongs to the
    caller), ``clock`` (``IReactorTime``: timeouts), ``base_url``, the
    optional Basic credentials and ``metrics`` (``mediamtx_call(path, status, seconds)``).  Methods raise :class:`MediaMTXError` subclasses.
    """

    def __init__(
        self,
        http: Any,
        base_url: str,
        clock: Any,
        *,
        timeout: float = 5.0,
        user: str = "",
        password: str = "",
        metrics: Any = None,
    ) -> None:
        self.metrics = metrics
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.clock = clock
        self.timeout = timeout
        self._auth: bytes | None = None
        if user or password:
            token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
            self._auth = f"Basic {token}".encode("ascii")

    # -- plumbing ------------------------------------------------------------

    async def request(self, method: str, path: str, body: Any = None, query: dict | None = None) -> Any:
        """Send one request; return the parsed JSON body, or None for an empty one."""
        url = self.base_url + path
        if query:
            url += "?" + urlencode(query)
        headers = Headers({b"accept": [b"application/json"]})
        if self._auth is not None:
            headers.addRawHeader(b"authorization", self._auth)
        data = None
        if body is not None:
            data = json.dumps(body, separators=(",", ":")).encode("utf-8")
            headers.addRawHeader(b"content-type", b"application/json")
        started = self.clock.seconds()
        deadline = started + self.timeout
        expired: list[bool] = []
        try:
            response = await self._bounded(
                self.http.request(method, url, headers=headers, data=data), deadline, expired
            )
            content = await self._bounded(treq.content(response), deadline, expired)
        except (*_UNREACHABLE, defer.CancelledError) as exc:
            self._observe(path, "timeout" if expired else "error", started)
            why = f"no answer within {self.timeout:g}s" if expired else _describe(exc, self.timeout)
            raise MediaMTXUnreachable(
                f"MediaMTX API at {self.base_url} unreachable ({method} {path}): {why}",
                method=method,
                path=path,
            ) from None
        status = response.code
        self._observe(path, status, started)
        if not 200 <= status < 300:
            raise api_error(status, error_text(content), method=method, path=path)
        if not content.strip():
            return None
        try:
            return json.loads(content)
        except ValueError:
            raise MediaMTXServerError(
                status, f"reply is not JSON: {content[:200]!r}", method=method, path=path
            ) from None

    def _observe(self, path: str, status: int | str, started: float) -> None:
        if self.metrics is not None:
            self.metrics.mediamtx_call(path, status, self.clock.seconds() - started)

    async def _bounded(self, d: defer.Deferred, deadline: float, expired: list) -> Any:
        """Await ``d``, cancelling it at ``deadline`` (and noting that in ``expired``).

        Agent wraps a cancelled request in ResponseNeverReceived rather than
        CancelledError, so ``Deferred.addTimeout`` cannot tell a timeout apart.
        """

        def expire() -> None:
            expired.append(True)
            d.cancel()

        call = self.clock.callLater(max(0.0, deadline - self.clock.seconds()), expire)
        try:
            return await d
        finally:
            if call.active():
                call.cancel()

    async def _list_all(self, path: str) -> list[dict]:
        """Every item of a paginated list (pages are 0-based)."""
        items: list[dict] = []
        page = 0
        while True:
            doc = await self.request("GET", path, query={"itemsPerPage": PAGE_SIZE, "page": page})
            if not isinstance(doc, dict):
                raise MediaMTXServerError(200, f"unexpected list reply: {doc!r}"[:300], method="GET", path=path)
            items.extend(doc.get("items") or [])
            page += 1
            if page >= int(doc.get("pageCount") or 0):
                return items

    @staticmethod
    def _name(name: str) -> str:
        # Path names may hold slashes (gin catch-all): keep them, encode the rest.
        return quote(name, safe="/-_.~")

    # -- the routes ----------------------------------------------------------

    async def info(self) -> dict:
        """``GET /v3/info``: ``{"version", "started"}`` (absent before v1.9: route_missing)."""
        return await self.request("GET", "/v3/info") or {}

    async def global_config(self) -> dict:
        """``GET /v3/config/global/get``."""
        return await self.request("GET", "/v3/config/global/get") or {}

    async def list_path_configs(self) -> dict[str, dict]:
        """``GET /v3/config/paths/list`` (all pages), by path name."""
        return {item["name"]: item for item in await self._list_all("/v3/config/paths/list") if "name" in item}

    async def get_path_config(self, name: str) -> dict:
        return await self.request("GET", "/v3/config/paths/get/" + self._name(name)) or {}

    async def add_path(self, name: str, conf: dict) -> None:
        await self.request("POST", "/v3/config/paths/add/" + self._name(name), conf)

    async def patch_path(self, name: str, conf: dict) -> None:
        await self.request("PATCH", "/v3/config/paths/patch/" + self._name(name), conf)

    async def replace_path(self, name: str, conf: dict) -> None:
        await self.request("POST", "/v3/config/paths/replace/" + self._name(name), conf)

    async def delete_path(self, name: str) -> None:
        await self.request("DELETE", "/v3/config/paths/delete/" + self._name(name))

    async def list_paths(self) -> list[dict]:
        """``GET /v3/paths/list`` (all pages): run-time state of every path."""
        return await self._list_all("/v3/paths/list")

    async def get_path(self, name: str) -> dict:
        return await self.request("GET", "/v3/paths/get/" + self._name(name)) or {}

    async def list_recordings(self) -> list[dict]:
        return await self._list_all("/v3/recordings/list")

    async def get_recording(self, name: str) -> dict:
        return await self.request("GET", "/v3/recordings/get/" + self._name(name)) or {}

    async def delete_segment(self, path: str, start: str) -> None:
        """``DELETE /v3/recordings/deletesegment?path=..&start=..`` (``start`` in RFC 3339)."""
        await self.request("DELETE", "/v3/recordings/deletesegment", query={"path": path, "start": start})
