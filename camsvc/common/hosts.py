"""The HTTP Host header: the one parser camsvc uses for it.

:func:`host_of` takes the host part (stream URLs are built for the host a
client used to reach us); :func:`valid_host_header` tells whether a whole
header (host and optional port) is safe to echo into a URL (download URLs).
"""

from __future__ import annotations

import re

_HOST_HEADER = re.compile(r"^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")


def host_of(host_header: str) -> str:
    """The host part of a Host header ("[::1]:8002" -> "[::1]", "box:8002" -> "box")."""
    host = host_header.strip()
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end > 0 else host
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    if host.count(":") > 1:  # a bare IPv6 address
        return f"[{host}]"
    return host


def valid_host_header(header: str) -> bool:
    """Is ``header`` a plain ``host[:port]`` (name, IPv4 or bracketed IPv6) and nothing else?"""
    return bool(_HOST_HEADER.match(header))
