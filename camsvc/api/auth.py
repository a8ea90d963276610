"""The ``authenticate`` method: bind a JWT's or API key's role to this connection."""

from __future__ import annotations

import secrets
from typing import Any

from twisted.logger import Logger

from camsvc.auth.keystore import KEY_PREFIX
from camsvc.auth.tokens import AuthError, credential_fingerprint
from camsvc.common.addresses import peer_address
from camsvc.common.errors import AuthenticationRequired, RateLimitExceeded
from camsvc.common.timefmt import iso
from camsvc.server.rpc import Role

log = Logger()


def register(app: Any) -> None:
    auth = app.auth
    metrics = app.metrics

    def authenticate(session: Any, params: dict) -> dict:
        address = session.extra.get("client_address") or peer_address(session.peer)
        token = params["auth_token"]
        # Keyed by connection, address, and address + credential; only failures
        # are limited: the credential is checked first and a valid one always works.
        keys = (f"conn:{session.id}", f"addr:{address}", f"cred:{address}:{credential_fingerprint(token)}")
        try:
            cred = auth.check(token)
        except AuthError as exc:
            wait = auth.failures.retry_after(*keys)
            auth.failures.record(*keys)
            if metrics is not None:
                metrics.auth_attempt("api_key" if token.startswith(KEY_PREFIX) else "jwt", False)
            # The session reflects the last authenticate call: a failed one ends the previous session.
            session.extra.pop("credential", None)
            session.revoke()
            if wait is not None:
                retry_after = round((auth.failures.retry_after(*keys) or wait) + 0.05, 1)
                log.warn(
                    "Connection {conn_id} ({address}): authentication failed again while locked out",
                    conn_id=session.id,
                    address=address,
                )
                raise RateLimitExceeded(
                    "Too many failed authentication attempts from this connection or address; "
                    f"retry in {retry_after:g} s (valid credentials are always accepted)",
                    data={"retry_after": retry_after},
                ) from None
            log.warn(
                "Connection {conn_id} ({address}): authentication failed: {reason}",
                conn_id=session.id,
                address=address,
                reason=exc.message,
            )
            raise AuthenticationRequired(f"Authentication failed: {exc.message}", data={"reason": exc.reason}) from None
        auth.failures.forget(keys[0])
        auth.failures.forget(keys[2])
        if cred.scope is not None:
            # Not a failed guess (the key is valid): refused, not counted.
            session.extra.pop("credential", None)
            session.revoke()
            log.warn(
                "Connection {conn_id} ({address}): refused {subject}: a {scope}-only API key",
                conn_id=session.id,
                address=address,
                subject=cred.subject,
                scope=cred.scope,
            )
            raise AuthenticationRequired(
                f"Authentication failed: this API key is for /{cred.scope} only", data={"reason": "scope"}
            )
        session_id = secrets.token_urlsafe(12)
        session.grant(
            cred.role,
            subject=cred.subject,
            expires_at=cred.expires_at,
            method=cred.method,
            session_id=session_id,
        )
        session.extra["credential"] = cred
        if metrics is not None:
            metrics.auth_attempt(cred.method, True)
        log.info(
            "Connection {conn_id} ({address}) authenticated as {subject} ({role}) by {method}",
            conn_id=session.id,
            address=address,
            subject=cred.subject,
            role=cred.role.label,
            method=cred.method,
        )
        return {
            "authenticated": True,
            "role": cred.role.label,
            "expires_at": iso(cred.expires_at, "seconds") if cred.expires_at is not None else None,
            "session_id": session_id,
        }

    def handshake(session: Any, token: str) -> bool:
        """Authenticate ``session`` with a credential sent in the WebSocket handshake
        (``Authorization: Bearer`` or ``X-API-Key``): the same checks, limits and logs."""
        if not isinstance(token, str) or not token or len(token) > 4096:
            return False
        try:
            authenticate(session, {"auth_token": token})
        except (AuthenticationRequired, RateLimitExceeded):
            return False
        return True

    app.handshake_auth = handshake

    app.registry.add(
        "authenticate",
        authenticate,
        role=Role.NONE,
        params={
            "auth_token": {
                "type": "string",
                "minLength": 1,
                "maxLength": 4096,
                "description": "A JWT (HS256) or a camsvc API key (camsvc_<id>_<secret>).",
            }
        },
        required=("auth_token",),
        summary="Authenticate this connection with a JWT or an API key; the role applies to this connection only.",
        description=(
            "On success the connection gets the token's role until the token's exp (API keys do not expire; "
            "revoking one ends its sessions). A failed attempt ends any previous session of the connection. "
            "Failed attempts are limited per connection and per client address (auth.max_failed_attempts "
            "in auth.failed_attempts_window seconds): past the limit, -32002 with data.retry_after."
        ),
        result={
            "type": "object",
            "properties": {
                "authenticated": {"type": "boolean", "const": True},
                "role": {"type": "string", "enum": ["viewer", "operator", "admin"]},
                "expires_at": {"type": ["string", "null"], "format": "date-time"},
                "session_id": {"type": "string"},
            },
        },
        errors=(AuthenticationRequired, RateLimitExceeded),
    )
