"""Authorisation for the HTTP surface: :class:`Protected` wraps a twisted.web resource.

Health endpoints, ``/openrpc.json`` and ``/`` stay open; ``/metrics`` and the
file downloads are wrapped::

    from camsvc.auth.http import protect
    app.http_children[b"metrics"] = protect(app, MetricsResource(...), Role.ADMIN, scope="metrics")
    app.http_children[b"files"] = protect(app, files_resource, Role.VIEWER, downloads=True)

A request is let through with any of:

- ``Authorization: Bearer <JWT or API key>`` whose role is at least ``role``;
- ``X-API-Key: <API key>`` likewise;
- with ``scope="metrics"``, an API key of that scope (``camsvc-admin key create
  --scope metrics``), whatever its role; such a key opens nothing else (403);
- with ``downloads=True``, ``?token=<download token>`` signed by
  :meth:`camsvc.auth.authenticator.Authenticator.sign_download` for exactly the file asked
  for.  Below a download resource only ``<kind>/<filename>`` with plain names
  (no ``/``, backslash, NUL, ``.`` or ``..``, even percent-encoded) gets
  through, whatever the credential: another shape is 404, an unsafe name 400,
  before the files code sees it.

Otherwise it gets 401 (``WWW-Authenticate: Bearer``), 403 (role too low) or
429 (``Retry-After``: too many failed attempts from this client address,
counted with the WebSocket's ``authenticate`` failures).  The body is
``{"error": "..."}``.  Without authentication (``auth.required: false``)
everything is let through.  The wrapped resource is used unchanged: leaf
resources render with ``request.postpath`` as usual, others resolve children.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger
from twisted.web.resource import Resource

from camsvc.auth.tokens import AuthError, credential_fingerprint
from camsvc.common.addresses import client_address, parse_networks
from camsvc.common.roles import Role
from camsvc.server.rpc import dumps

log = Logger()


class Denied(Resource):
    """A JSON error answer with a status and extra headers."""

    isLeaf = True

    def __init__(self, status: int, message: str, headers: dict[bytes, bytes] | None = None) -> None:
        super().__init__()
        self.status = status
        self.message = message
        self.headers = headers or {}

    def render(self, request: Any) -> bytes:
        request.setResponseCode(self.status)
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        for name, value in self.headers.items():
            request.setHeader(name, value)
        return dumps({"error": self.message}).encode("utf-8")


class Protected(Resource):
    """Let a request reach ``resource`` only with credentials for ``role``.

    Collaborators: ``auth`` (the :class:`~camsvc.auth.authenticator.Authenticator`),
    ``required`` (``auth.required``), ``trusted_proxies`` (networks whose
    ``X-Forwarded-For`` names the client).
    """

    def __init__(
        self,
        resource: Resource,
        role: Role,
        auth: Any,
        *,
        required: bool = True,
        trusted_proxies: Any = (),
        downloads: bool = False,
        scope: str | None = None,
    ) -> None:
        super().__init__()
        self.wrapped = resource
        self.scope = scope
        self.role = Role(role)
        self.auth = auth
        self.required = required
        self.trusted_proxies = list(trusted_proxies)
        self.downloads = downloads
        self.isLeaf = bool(getattr(resource, "isLeaf", False))

    # -- twisted.web's resource protocol ------------------------------------------

    def getChildWithDefault(self, path: bytes, request: Any) -> Resource:
        denial = self.check(request, [path, *request.postpath])
        if denial is not None:
            return denial
        return self.wrapped.getChildWithDefault(path, request)

    def render(self, request: Any) -> Any:
        denial = self.check(request, list(request.postpath))
        if denial is not None:
            return denial.render(request)
        return self.wrapped.render(request)

    def putChild(self, path: bytes, child: Resource) -> None:
        self.wrapped.putChild(path, child)

    # -- the decision -----------------------------------------------------------------

    def check(self, request: Any, segments: list[bytes]) -> Denied | None:
        """None to let the request through, else the answer to give."""
        denial = self._authorize(request, segments)
        if denial is None and self.downloads and _file_of(segments) is None:
            # Defence in depth: below a download resource only /<kind>/<plain name>
            # reaches the files code: no separators, no dot names, no NUL.
            if len(segments) != 2 or not segments[1] or not _utf8(segments):
                return Denied(404, "not found")
            return Denied(400, "invalid file name: plain names only (no /, \\, NUL, . or ..)")
        return denial

    def allows(self, request: Any, kind: str, filename: str) -> bool:
        """May ``request`` have ``<kind>/<filename>``?  The files resource asks again
        with the same rules (defence in depth behind this wrapper)."""
        return self.check(request, [kind.encode("utf-8"), filename.encode("utf-8")]) is None

    def _authorize(self, request: Any, segments: list[bytes]) -> Denied | None:
        if not self.required:
            return None
        address = self._address(request)
        credential = _credential(request)
        if credential is not None:
            # The credential is checked first: a valid one always works, whatever
            # the failure count of its address; only failures are refused.
            keys = (f"addr:{address}", f"cred:{address}:{credential_fingerprint(credential)}")
            try:
                cred = self.auth.check(credential)
            except AuthError as exc:
                wait = self.auth.failures.retry_after(*keys)
                self.auth.failures.record(*keys)
                if wait is not None:
                    return _too_many(address, self.auth.failures.retry_after(*keys) or wait)
                log.warn(
                    "HTTP {method} {path} from {address}: authentication failed: {reason}",
                    method=_text(request.method),
                    path=_text(request.path),
                    address=address,
                    reason=exc.message,
                )
                return _unauthorized(f"authentication failed: {exc.message}")
            self.auth.failures.forget(keys[1])
            if cred.scope is not None:
                if cred.scope == self.scope:
                    return None
                return Denied(403, f"permission denied: this API key is for /{cred.scope} only")
            if cred.role < self.role:
                return Denied(
                    403,
                    f"permission denied: this needs the {self.role.label} role, the credential is {cred.role.label}",
                )
            return None
        if self.downloads:
            token = (request.args or {}).get(b"token", [None])[0]
            if token is not None:
                target = _file_of(segments)
                state = self.auth.download_state(_text(token), *target) if target is not None else "invalid"
                if state == "ok":
                    return None
                if state == "expired":  # a stale link: not an attack, not counted
                    return _unauthorized("the download link has expired; ask for a new one")
                key = f"addr:{address}"
                wait = self.auth.download_failures.retry_after(key)
                self.auth.download_failures.record(key)
                if wait is not None:
                    return _too_many(address, self.auth.download_failures.retry_after(key) or wait)
                return _unauthorized("the download link is invalid or for another file")
        return _unauthorized("authentication required: send Authorization: Bearer <token> or X-API-Key")

    def _address(self, request: Any) -> str:
        peer = request.getClientAddress()
        host = getattr(peer, "host", None) or "unix"
        forwarded = request.getHeader(b"x-forwarded-for")
        return client_address(host, _text(forwarded) if forwarded else None, self.trusted_proxies)


def protect(
    app: Any, resource: Resource, role: Role, *, downloads: bool = False, scope: str | None = None
) -> Protected:
    """Wrap ``resource`` with the app's authenticator and configuration."""
    return Protected(
        resource,
        role,
        app.auth,
        required=app.config.auth.required,
        trusted_proxies=parse_networks(app.config.server.trusted_proxies),
        downloads=downloads,
        scope=scope,
    )


def _credential(request: Any) -> str | None:
    header = request.getHeader(b"authorization")
    if header:
        scheme, _, value = _text(header).strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return ""  # present but not a bearer credential: refused (and counted)
    key = request.getHeader(b"x-api-key")
    if key is not None:
        return _text(key).strip()
    return None


def _file_of(segments: list[bytes]) -> tuple[str, str] | None:
    if len(segments) != 2:
        return None
    try:
        kind, filename = (s.decode("utf-8") for s in segments)
    except UnicodeDecodeError:
        return None
    for name in (kind, filename):
        if not name or name in (".", "..") or any(c in name for c in _UNSAFE):
            return None
    return kind, filename


def _utf8(segments: list[bytes]) -> bool:
    try:
        for segment in segments:
            segment.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


_UNSAFE = ("/", "\\", "\x00")


def _too_many(address: str, wait: float) -> Denied:
    seconds = max(1, int(wait + 0.999))
    return Denied(
        429,
        f"too many failed authentication attempts from {address}; retry in {seconds} s",
        {b"retry-after": str(seconds).encode()},
    )


def _unauthorized(message: str) -> Denied:
    return Denied(401, message, {b"www-authenticate": b'Bearer realm="camsvc"'})


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)
