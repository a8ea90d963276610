"""The dashboard's files: index.html and the assets under ``/static/``.

This module owns how they are served: explicit content types, the page's security headers
(:func:`page_headers`), no directory listings.  :mod:`camsvc.server.web`
imports it when the first request for the page arrives (twisted.web.static reads the system's
MIME types when imported).
"""

from __future__ import annotations

import re
from typing import Any

from twisted.web.resource import Resource
from twisted.web.static import File

_HOST = re.compile(r"^[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")


def page_headers(request: Any) -> None:
    """Headers for the dashboard's files: a strict CSP, no framing, no sniffing, no referrer.

    Everything the page loads comes from camsvc itself; it may open its
    WebSocket to the host it was served from (ws: or wss:).  The stream
    player pages of MediaMTX open in their own tabs, so they need no
    allowance here.
    """
    host = (request.getHeader(b"host") or b"").decode("latin-1").strip()
    sockets = f" ws://{host} wss://{host}" if _HOST.match(host) else ""
    csp = (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        f"connect-src 'self'{sockets}; manifest-src 'self'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )
    request.setHeader(b"content-security-policy", csp.encode("ascii"))
    request.setHeader(b"x-content-type-options", b"nosniff")
    request.setHeader(b"x-frame-options", b"DENY")
    request.setHeader(b"referrer-policy", b"no-referrer")
    # Revalidate every time (Last-Modified is sent): an upgraded package shows its new page at once.
    request.setHeader(b"cache-control", b"no-cache")


def not_found() -> Resource:
    """Twisted's 404 resource (twisted.web.pages imports the template machinery)."""
    try:  # Twisted >= 22.10
        from twisted.web.pages import notFound
    except ImportError:  # Debian 12's Twisted 22.4
        from twisted.web.resource import NoResource as notFound
    return notFound()


class StaticFile(File):
    """A dashboard file or the static directory: explicit types, page headers, no listings."""

    contentTypes = {
        **File.contentTypes,
        ".html": "text/html; charset=utf-8",
        ".js": "text/javascript; charset=utf-8",
        ".css": "text/css; charset=utf-8",
        ".svg": "image/svg+xml",
        ".png": "image/png",
        ".json": "application/json",
    }
    indexNames: list = []

    def directoryListing(self) -> Resource:
        return not_found()

    def render_GET(self, request: Any) -> Any:
        page_headers(request)
        return super().render_GET(request)

    render_HEAD = render_GET
