"""The HTTP surface: one twisted.web Site on one port.

This module owns the resource tree: ``/ws`` (the WebSocket resource),
``/health/live``, ``/health/ready``, ``/openrpc.json``, the dashboard page
at ``/`` and its assets under ``/static/`` (files shipped in
``camsvc/server/static/``).  Other modules attach further children (``/metrics``,
``/files/...``) through :func:`build_site`'s ``extra`` mapping.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.web.resource import Resource
from twisted.web.server import Site

from camsvc.server.httplimits import LimitedSite
from camsvc.server.limits import AddressBuckets
from camsvc.server.rpc import dumps


class JSONResource(Resource):
    """A GET-only resource answering ``render_json() -> (status, body)``."""

    isLeaf = True

    def render_json(self, request: Any) -> tuple[int, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def render_GET(self, request: Any) -> bytes:
        status, body = self.render_json(request)
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        return dumps(body).encode("utf-8")

    def render_HEAD(self, request: Any) -> bytes:
        return self.render_GET(request)


class Live(JSONResource):
    def render_json(self, request: Any) -> tuple[int, Any]:
        return 200, {"status": "alive"}


class Ready(JSONResource):
    """200 when every readiness condition holds, else 503 with the reasons."""

    def __init__(self, health: Any) -> None:
        super().__init__()
        self.health = health

    def render_json(self, request: Any) -> tuple[int, Any]:
        report = self.health.report()
        if report["ready"]:
            return 200, {"status": "ready", "checks": report["checks"]}
        return 503, {"status": "not ready", "reasons": self.health.reasons(), "checks": report["checks"]}


class OpenRPC(Resource):
    """``/openrpc.json``: the cached document, with an ETag (304 on If-None-Match) and a
    per-address rate limit (429), since anyone may ask."""

    isLeaf = True

    def __init__(self, cache: Any, buckets: Any) -> None:
        super().__init__()
        self.cache = cache
        self.buckets = buckets

    def render_GET(self, request: Any) -> bytes:
        peer = request.getClientAddress()
        wait = self.buckets.allow(getattr(peer, "host", None) or "unix")
        if wait is not None:
            request.setResponseCode(429)
            request.setHeader(b"retry-after", str(max(1, int(wait + 0.999))).encode())
            request.setHeader(b"content-type", b"application/json")
            return b'{"error":"too many requests"}'
        etag = self.cache.etag
        request.setHeader(b"etag", etag)
        request.setHeader(b"cache-control", b"public, max-age=60")
        request.setHeader(b"content-type", b"application/json")
        match = request.getHeader(b"if-none-match")
        if match is not None and (match.strip() == b"*" or etag in [m.strip() for m in match.split(b",")]):
            request.setResponseCode(304)
            return b""
        body = self.cache.body
        request.setHeader(b"content-length", str(len(body)).encode())
        return body if request.method != b"HEAD" else b""

    render_HEAD = render_GET


#: The dashboard's files (index.html, app.js, style.css, icon.svg), shipped as package data.
STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")


class OnFirstUse(Resource):
    """A resource made by ``make()`` when a request first reaches it, then that resource.

    The dashboard's files are served by twisted.web.static, whose import reads the system's
    MIME types (``mimetypes.init()``: 0.4 MiB resident) and, with Twisted 22.4, its not-found
    page the ``twisted.web.template`` machinery: loaded when someone opens the page, not by a
    service nobody has browsed to.
    """

    def __init__(self, make: Any) -> None:
        super().__init__()
        self._make = make
        self._resource: Resource | None = None

    def resource(self) -> Resource:
        if self._resource is None:
            self._resource = self._make()
        return self._resource

    def getChildWithDefault(self, path: bytes, request: Any) -> Resource:
        return self.resource().getChildWithDefault(path, request)

    def render(self, request: Any) -> Any:
        return self.resource().render(request)


class Index(Resource):
    """``/`` when the dashboard's files are missing (a broken install): a short text."""

    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"camsvc: JSON-RPC 2.0 over WebSocket at /ws; API description at /openrpc.json\n"


def dashboard(static_dir: str = STATIC_DIR) -> tuple[Resource, Resource]:
    """The resources for ``/`` (index.html) and ``/static/`` (:mod:`camsvc.server.dashboard`'s
    files, made on first use)."""
    index = os.path.join(static_dir, "index.html")

    def make(path: str | None) -> Any:
        def resource() -> Resource:
            from camsvc.server.dashboard import StaticFile, not_found

            return StaticFile(path) if path else not_found()

        return resource

    if not os.path.isfile(index):
        return Index(), OnFirstUse(make(None))
    return OnFirstUse(make(index)), OnFirstUse(make(static_dir))


class QuietSite(LimitedSite):
    """The HTTP Site (with :mod:`camsvc.server.httplimits`' limits); does not log every
    request at info level (noisy for health probes)."""

    def log(self, request: Any) -> None:
        pass


def build_site(app: Any, ws_resource: Resource, extra: dict[bytes, Resource] | None = None) -> Site:
    health = Resource()
    health.putChild(b"live", Live())
    health.putChild(b"ready", Ready(app.health))
    root = Resource()
    index, static = dashboard()
    root.putChild(b"", index)
    root.putChild(b"static", static)
    root.putChild(b"ws", ws_resource)
    root.putChild(b"health", health)
    root.putChild(b"openrpc.json", OpenRPC(app.openrpc, AddressBuckets(120, 30, app.clock)))
    for name, resource in (extra or {}).items():
        root.putChild(name, resource)
    site = QuietSite(root, app.config.server)
    site.displayTracebacks = False
    return site
