"""HTTP downloads: ``/files/recordings/<name>`` and ``/files/snapshots/<name>``.

This module owns the ``/files`` resource tree (the API layer serves HTTP; the media
core only names and finds files).  A request names exactly one file; the
name goes through the same checks as the API (:meth:`FileStore.lookup`: plain names
only, no escaping symbolic links), then one ``twisted.web.static.File`` (:mod:`camsvc.api.opened_file`) confined to
that single regular file serves it — with HTTP Range (206, multipart ranges, 416),
HEAD, ``Last-Modified`` and the right content type.  Directories are never listed:
``/files``, ``/files/recordings`` and ``/files/recordings/`` are 404.

Authorisation is one injected hook, ``authorize(request, kind, filename)``, returning
(or firing with) True to serve, False to answer 401.  :func:`protected_files` builds the
tree behind the HTTP guard (:class:`camsvc.auth.http.Protected`: Bearer token,
``X-API-Key`` or a signed ``download_url`` token) and gives the same guard as the hook,
so each request is checked again (defence in depth behind the wrapper).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import maybeDeferred
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from camsvc.auth.http import Protected, protect
from camsvc.common.errors import RpcError
from camsvc.common.roles import Role
from camsvc.media.files import CONTENT_TYPES, KINDS, FileStore

log = Logger()


def _error(request: Any, status: int, message: str) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"cache-control", b"no-store")
    if status == 401:
        request.setHeader(b"www-authenticate", b'Bearer realm="camsvc"')
    body = json.dumps({"error": message}).encode("utf-8")
    request.setHeader(b"content-length", str(len(body)).encode())
    return body if request.method != b"HEAD" else b""


class FileResource(Resource):
    """``/files/<kind>/<name>``: authorise, look the name up, serve that one file."""

    isLeaf = True

    def __init__(self, store: FileStore, kind: str, authorize: Callable[[Any, str, str], Any]) -> None:
        super().__init__()
        self.store = store
        self.kind = kind
        self.authorize = authorize

    def render(self, request: Any) -> Any:
        if request.method not in (b"GET", b"HEAD"):
            request.setHeader(b"allow", b"GET, HEAD")
            return _error(request, 405, "method not allowed")
        if len(request.postpath) != 1 or not request.postpath[0]:
            return _error(request, 404, "not found")
        try:
            name = request.postpath[0].decode("utf-8")
        except UnicodeDecodeError:
            return _error(request, 404, "not found")
        d = maybeDeferred(self.authorize, request, self.kind, name)
        d.addCallback(self._authorized, request, name)
        d.addErrback(self._failed, request, name)
        return NOT_DONE_YET

    def _authorized(self, allowed: Any, request: Any, name: str) -> None:
        if request.finished or getattr(request, "_disconnected", False):
            return
        if not allowed:
            log.info("Refused download of {kind}/{name}: not authorised", kind=self.kind, name=name)
            self._finish(request, _error(request, 401, "authentication required"))
            return
        from camsvc.api.opened_file import OpenedFile  # twisted.web.static: at the first download

        try:
            fd, media = self.store.open_file(self.kind, name)
        except RpcError as exc:
            status = 404 if exc.code == -32009 else 400
            self._finish(request, _error(request, status, exc.message))
            return
        try:
            resource = OpenedFile(fd, media.path, CONTENT_TYPES.get(media.extension, "application/octet-stream"))
        except BaseException:
            os.close(fd)
            raise
        try:
            resource.contentTypes = dict(CONTENT_TYPES)
            request.setHeader(b"cache-control", b"private, max-age=0")
            request.setHeader(b"x-content-type-options", b"nosniff")
            result = resource.render(request)
        finally:
            resource.close()  # HEAD, 304, 416: the descriptor was not handed out
        if result is not NOT_DONE_YET:
            self._finish(request, result)

    def _failed(self, failure: Any, request: Any, name: str) -> None:
        log.failure("Download of {kind}/{name} failed", failure, kind=self.kind, name=name)
        if not request.finished and not getattr(request, "_disconnected", False):
            self._finish(request, _error(request, 500, "internal error"))

    @staticmethod
    def _finish(request: Any, body: bytes) -> None:
        if body:
            request.write(body)
        request.finish()


class FilesRoot(Resource):
    """``/files``: children ``recordings`` and ``snapshots``; nothing else, no listings."""

    def __init__(self, store: FileStore, authorize: Callable[[Any, str, str], Any]) -> None:
        super().__init__()
        self.store = store
        self.authorize = authorize
        for kind in KINDS:
            self.putChild(kind.encode(), FileResource(store, kind, self._authorize))

    def _authorize(self, request: Any, kind: str, name: str) -> Any:
        return self.authorize(request, kind, name)

    def render(self, request: Any) -> bytes:
        return _error(request, 404, "not found")

    def getChild(self, path: bytes, request: Any) -> Resource:
        return _NotFound()


class _NotFound(Resource):
    isLeaf = True

    def render(self, request: Any) -> bytes:
        return _error(request, 404, "not found")


def protected_files(app: Any) -> Protected:
    """``/files`` for ``app.media``'s store behind the HTTP guard (role viewer, or a download token)."""
    files = FilesRoot(app.media.store, lambda request, kind, name: guarded.allows(request, kind, name))
    guarded = protect(app, files, Role.VIEWER, downloads=True)
    return guarded
