"""Per-connection session state: identity, role and authentication expiry.

A :class:`Session` is created by the transport for each WebSocket connection
and handed to every API method.  It is bound to that one connection: nothing
else can reach it.  Authorisation (who may call what) is decided by
:func:`authorize`, which the JSON-RPC engine runs as a guard before every call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from camsvc.common.errors import AuthenticationRequired, PermissionDenied
from camsvc.server.rpc import Method, Role


class Session:
    """State of one client connection.

    ``id`` is a short connection id used in logs; ``peer`` the remote address;
    ``host`` the Host header the client connected with (stream URLs are built
    from it when ``mediamtx.public_host`` is unset).  ``role`` is ``None``
    until the client authenticates (or the server runs without
    authentication, where every session is admin).  ``expires_at`` is the
    clock time at which the authentication lapses (``None``: never).
    """

    __slots__ = (
        "id",
        "peer",
        "host",
        "role",
        "subject",
        "expires_at",
        "session_id",
        "auth_method",
        "clock",
        "send",
        "extra",
        "default_role",
        "on_grant",
    )

    def __init__(
        self,
        conn_id: str,
        *,
        peer: str = "",
        host: str = "",
        clock: Any = None,
        auth_required: bool = True,
        send: Callable[[str], None] | None = None,
    ) -> None:
        self.id = conn_id
        self.peer = peer
        self.host = host
        self.clock = clock
        self.send = send
        self.subject: str | None = None
        self.session_id: str | None = None
        self.auth_method: str | None = None
        self.expires_at: float | None = None
        self.extra: dict = {}
        #: Called after grant() (the transport moves the connection to the authenticated pool).
        self.on_grant: Callable[[], None] | None = None
        #: The role without authentication: None, or admin when the server
        #: runs without authentication (development); revoke() returns to it.
        self.default_role: Role | None = None if auth_required else Role.ADMIN
        self.role: Role | None = self.default_role
        if not auth_required:
            self.auth_method = "none"

    @property
    def authenticated(self) -> bool:
        """True while the session holds a role that has not expired."""
        if self.role is None:
            return False
        if self.expires_at is not None and self.clock is not None and self.clock.seconds() >= self.expires_at:
            return False
        return True

    def grant(self, role: Role, *, subject: str, expires_at: float | None, method: str, session_id: str) -> None:
        self.role = role
        self.subject = subject
        self.expires_at = expires_at
        self.auth_method = method
        self.session_id = session_id
        if self.on_grant is not None:
            self.on_grant()

    def revoke(self) -> None:
        """Forget the authentication: back to the default role (none, or admin without auth)."""
        self.role = self.default_role
        self.subject = None
        self.expires_at = None
        self.auth_method = None if self.default_role is None else "none"
        self.session_id = None


def authorize(session: Session, method: Method) -> None:
    """Engine guard: refuse calls the session's role does not allow.

    Methods with role NONE are open.  Otherwise an unauthenticated (or
    expired) session gets -32001 and an insufficient role -32003.
    """
    if method.role is Role.NONE:
        return
    if session.role is not None and not session.authenticated:
        session.revoke()
        if session.role is None:
            raise AuthenticationRequired("Authentication expired: authenticate again", data={"reason": "expired"})
    if session.role is None:
        raise AuthenticationRequired(f"Authentication required: call 'authenticate' before '{method.name}'")
    if session.role < method.role:
        raise PermissionDenied(
            f"Permission denied: '{method.name}' needs the {method.role.label} role, this session is {session.role.label}",
            data={"required_role": method.role.label, "role": session.role.label},
        )
