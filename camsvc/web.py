"""The HTTP surface: one twisted.web Site on one port.

This module owns the resource tree: ``/ws`` (the WebSocket resource),
``/health/live``, ``/health/ready``, ``/openrpc.json`` and ``/``.  Other
modules attach further children (``/metrics``, ``/files/...``) through
:func:`build_site`'s ``extra`` mapping.
"""

from __future__ import annotations

from typing import Any

from twisted.web.resource import Resource
from twisted.web.server import Site

from camsvc.openrpc import build_document
from camsvc.rpc import dumps


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


class OpenRPC(JSONResource):
    def __init__(self, registry: Any) -> None:
        super().__init__()
        self.registry = registry

    def render_json(self, request: Any) -> tuple[int, Any]:
        return 200, build_document(self.registry)


class Index(Resource):
    """``/``: a short text pointing at the API until the dashboard lands."""

    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"camsvc: JSON-RPC 2.0 over WebSocket at /ws; API description at /openrpc.json\n"


class QuietSite(Site):
    """A Site that does not log every request at info level (noisy for health probes)."""

    def log(self, request: Any) -> None:
        pass


def build_site(app: Any, ws_resource: Resource, extra: dict[bytes, Resource] | None = None) -> Site:
    health = Resource()
    health.putChild(b"live", Live())
    health.putChild(b"ready", Ready(app.health))
    root = Resource()
    root.putChild(b"", Index())
    root.putChild(b"ws", ws_resource)
    root.putChild(b"health", health)
    root.putChild(b"openrpc.json", OpenRPC(app.registry))
    for name, resource in (extra or {}).items():
        root.putChild(name, resource)
    site = QuietSite(root)
    site.displayTracebacks = False
    return site
