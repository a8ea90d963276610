"""HTTP request limits: body size, deadlines that do not restart per byte, a connection cap.

This module owns what one HTTP client may cost before a resource runs:

* a body larger than ``server.max_request_body`` is refused with 413 as soon
  as its ``Content-Length`` is known (or, chunked, as soon as the count passes
  the limit), before anything is buffered to a temporary file; no resource
  sees that request;
* deadlines: the request line and headers must be complete within
  ``http_header_timeout`` seconds of the request's first byte (408), a whole
  request within ``http_request_timeout`` (the connection is closed), a new
  connection must complete its first request's headers within the header
  deadline too, and a
  connection may be silent for ``http_idle_timeout`` (Twisted's idle timer).
  None of them restarts when a byte arrives, so dripping one byte at a time
  (slowloris) holds a connection no longer than the header deadline;
* at most ``server.max_http_connections`` plain HTTP connections at once: a
  further one is closed as it is accepted (logged once per burst).  A
  connection upgraded to WebSocket leaves the count (:meth:`LimitedChannel.upgraded`)
  and is governed by :mod:`camsvc.server.ws`'s pools instead.

:class:`LimitedSite` is a ``twisted.web.server.Site`` with these limits;
:mod:`camsvc.server.web` builds it.
"""

from __future__ import annotations

import io
from typing import Any

from twisted.logger import Logger
from twisted.web.http import HTTPChannel
from twisted.web.server import Request, Site

log = Logger()


class LimitedRequest(Request):
    """A Request that refuses an oversized body before buffering any of it."""

    _refused = False
    _received = 0

    def gotLength(self, length: int | None) -> None:
        limit = self.channel.site.max_request_body
        if length is not None and length > limit:
            self.content = io.BytesIO()
            self._refuse(length)
            return
        # Small bodies (within the limit) stay in memory: never a temporary file.
        self.content = io.BytesIO()

    def handleContentChunk(self, data: bytes) -> None:
        if self._refused:
            return
        self._received += len(data)
        if self._received > self.channel.site.max_request_body:
            self._refuse(None)
            return
        self.content.write(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self._refused:
            return
        super().requestReceived(command, path, version)

    def _refuse(self, length: int | None) -> None:
        self._refused = True
        limit = self.channel.site.max_request_body
        log.info(
            "Refused an HTTP request body of {size} bytes from {peer} (limit {limit})",
            size=length if length is not None else f"more than {limit}",
            peer=_peer(self.channel),
            limit=limit,
        )
        self.channel.refuse(b"413 Payload Too Large", f"request body over {limit} bytes\n".encode())


class LimitedChannel(HTTPChannel):
    """An HTTPChannel with a header deadline and a whole-request deadline."""

    _header_call: Any = None
    _request_call: Any = None
    _counted = False
    _done = False

    def connectionMade(self) -> None:
        super().connectionMade()
        self.site.http_open += 1
        self._counted = True
        # A connection that sends nothing is due its first request's headers too.
        self._header_call = self.callLater(self.site.http_header_timeout, self._header_late)

    def dataReceived(self, data: bytes) -> None:
        if self._done:
            return
        if self._header_call is None and self._request_call is None and not self.requests:
            # The first byte of a request: its headers are due within the header deadline.
            self._header_call = self.callLater(self.site.http_header_timeout, self._header_late)
        super().dataReceived(data)

    def allHeadersReceived(self) -> None:
        self._cancel("_header_call")
        if self._request_call is None:
            self._request_call = self.callLater(self.site.http_request_timeout, self._request_late)
        super().allHeadersReceived()

    def requestDone(self, request: Any) -> None:
        self._cancel("_request_call")
        super().requestDone(request)

    def upgraded(self) -> None:
        """The connection became a WebSocket: no HTTP deadlines, out of the HTTP count."""
        self._cancel("_header_call")
        self._cancel("_request_call")
        self._uncount()

    def refuse(self, status: bytes, body: bytes) -> None:
        """Answer ``status`` and close, ignoring whatever else the client sends."""
        if self._done:
            return
        self._done = True
        self._cancel("_header_call")
        self._cancel("_request_call")
        self.transport.write(
            b"HTTP/1.1 "
            + status
            + b"\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        self.transport.loseConnection()

    def _header_late(self) -> None:
        self._header_call = None
        log.info(
            "Closing HTTP connection from {peer}: request headers not complete within {timeout:g} s",
            peer=_peer(self),
            timeout=self.site.http_header_timeout,
        )
        self.refuse(b"408 Request Timeout", b"request headers too slow\n")

    def _request_late(self) -> None:
        self._request_call = None
        log.info(
            "Closing HTTP connection from {peer}: request not complete within {timeout:g} s",
            peer=_peer(self),
            timeout=self.site.http_request_timeout,
        )
        self._done = True
        self.transport.abortConnection()

    def connectionLost(self, reason: Any) -> None:
        self._cancel("_header_call")
        self._cancel("_request_call")
        self._uncount()
        super().connectionLost(reason)

    def _cancel(self, name: str) -> None:
        call = getattr(self, name)
        if call is not None:
            setattr(self, name, None)
            if call.active():
                call.cancel()

    def _uncount(self) -> None:
        if self._counted:
            self._counted = False
            self.site.http_open -= 1


class LimitedSite(Site):
    """A Site with :class:`LimitedChannel` / :class:`LimitedRequest` and a cap on open HTTP connections.

    ``limits`` is the ``server`` configuration section (``max_request_body``,
    ``http_header_timeout``, ``http_idle_timeout``, ``http_request_timeout``,
    ``max_http_connections``).
    """

    protocol = LimitedChannel
    requestFactory = LimitedRequest

    def __init__(self, resource: Any, limits: Any, **kwargs: Any) -> None:
        super().__init__(resource, timeout=limits.http_idle_timeout, **kwargs)
        self.max_request_body = limits.max_request_body
        self.http_header_timeout = limits.http_header_timeout
        self.http_request_timeout = limits.http_request_timeout
        self.max_http_connections = limits.max_http_connections
        self.http_open = 0
        self.http_refused = 0
        self._warned = False
        #: ``() -> bool`` set by the listener (:class:`camsvc.server.listener.FdGuard`): False refuses.
        self.accept_guard: Any = None

    def buildProtocol(self, addr: Any) -> Any:
        if self.accept_guard is not None and not self.accept_guard():
            self.http_refused += 1
            return None
        if self.http_open >= self.max_http_connections:
            self.http_refused += 1
            if not self._warned:
                self._warned = True
                log.warn(
                    "Refusing HTTP connections: {open} open (server.max_http_connections {limit})",
                    open=self.http_open,
                    limit=self.max_http_connections,
                )
            return None
        self._warned = False
        return super().buildProtocol(addr)


def _peer(channel: Any) -> str:
    try:
        peer = channel.transport.getPeer()
        return f"{getattr(peer, 'host', peer)}"
    except Exception:  # noqa: BLE001 - only for a log line
        return "?"
