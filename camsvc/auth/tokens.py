"""Tokens: HS256 JWTs for the API and download tokens for one file (PyJWT).

- **API tokens**: claims ``sub`` (or ``user_id``), ``role``, ``iat``, ``exp``
  and optionally ``nbf``, HS256 only, checked against the service's clock
  (:func:`check_jwt`).
- **Download tokens**: short-lived JWTs bound to one file (``kind`` and
  ``file`` claims, audience ``camsvc-download``) signed with a key derived
  from the JWT secret (:func:`download_key`: HMAC-SHA256 of a fixed label),
  so a download token is never accepted by ``authenticate`` and an API token
  never opens a file.

Pure functions of a secret and a time: the
:class:`~camsvc.auth.authenticator.Authenticator` supplies both, and
``camsvc-admin token`` mints with the same code.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from camsvc.common.roles import Role

#: Seconds of clock skew tolerated on nbf and iat (a minting host slightly ahead of us).
LEEWAY = 5.0
DOWNLOAD_AUDIENCE = "camsvc-download"
MAX_TOKEN_CHARS = 4096
_DOWNLOAD_LABEL = b"camsvc download token v1"


class AuthError(Exception):
    """A credential was refused.  ``reason`` is a short machine-readable word."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        self.message = message
        super().__init__(message)


@dataclass(frozen=True)
class Credential:
    """Who a valid token or key says the client is."""

    role: Role
    subject: str
    method: str  # "jwt" or "api_key"
    expires_at: float | None
    key_id: str | None = None
    secret_generation: int | None = None
    # An API key created with a scope (camsvc-admin key create --scope metrics)
    # opens only the HTTP resources of that scope, never a WebSocket session.
    scope: str | None = None


def _jwt() -> Any:
    """PyJWT, imported at first use: it loads cryptography's asymmetric algorithms
    (~2.5 MB resident on Debian 12) that an idle camsvc does not need."""
    import jwt

    return jwt


def encode(claims: dict, key: bytes) -> str:
    token = _jwt().encode(claims, key, algorithm="HS256")
    return token.decode("ascii") if isinstance(token, bytes) else token


def mint_token(secret: bytes, role: Role, subject: str, lifetime: float, now: float) -> str:
    """An HS256 JWT for ``role`` valid ``lifetime`` seconds from ``now``."""
    claims = {"sub": subject, "role": role.label, "iat": int(now), "exp": int(now + lifetime)}
    return encode(claims, secret)


def check_jwt(token: str, secret: bytes, now: float, secret_generation: int) -> Credential:
    """The credential an API JWT stands for at time ``now``; AuthError when refused."""
    jwt = _jwt()
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            options={
                "verify_exp": False,  # checked below against our clock
                "verify_nbf": False,
                "verify_iat": False,
                "require": ["exp", "iat", "role"],
            },
        )
    except jwt.InvalidSignatureError:
        raise AuthError("bad_signature", "the token's signature is invalid") from None
    except jwt.MissingRequiredClaimError as exc:
        raise AuthError("missing_claim", f"the token lacks the {exc.claim!r} claim") from None
    except jwt.InvalidAlgorithmError:
        raise AuthError("bad_algorithm", "the token is not signed with HS256") from None
    except jwt.InvalidAudienceError:
        raise AuthError("bad_audience", "this token is not an API token") from None
    except jwt.InvalidTokenError:
        raise AuthError("malformed", "the token cannot be decoded") from None
    times = {}
    for claim in ("exp", "iat", "nbf"):
        if claim in claims:
            value = claims[claim]
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value:
                raise AuthError("bad_claim", f"the token's {claim!r} claim is not a number")
            times[claim] = float(value)
    # exp is exact (the session ends at exp, on this clock); the leeway
    # absorbs a minting host whose clock runs slightly ahead of ours.
    if times["exp"] <= now:
        raise AuthError("expired", "the token has expired")
    if "nbf" in times and times["nbf"] > now + LEEWAY:
        raise AuthError("not_yet_valid", "the token is not valid yet (nbf)")
    if times["iat"] > now + LEEWAY:
        raise AuthError("not_yet_valid", "the token was issued in the future (iat)")
    role_claim = claims.get("role")
    try:
        role = Role.parse(role_claim) if isinstance(role_claim, str) else None
    except ValueError:
        role = None
    if role is None:
        raise AuthError("bad_role", f"the token's role claim must be viewer, operator or admin, got {role_claim!r}")
    subject = claims.get("sub", claims.get("user_id"))
    if not isinstance(subject, (str, int)) or isinstance(subject, bool) or subject == "":
        raise AuthError("missing_claim", "the token lacks a 'sub' (or 'user_id') claim")
    return Credential(
        role=role,
        subject=str(subject)[:200],
        method="jwt",
        expires_at=times["exp"],
        secret_generation=secret_generation,
    )


def download_key(secret: bytes) -> bytes:
    """The key download tokens are signed with, derived from the JWT secret."""
    return hmac.new(secret, _DOWNLOAD_LABEL, hashlib.sha256).digest()


def sign_download(key: bytes, kind: str, filename: str, now: float, ttl: float) -> str:
    """A token that opens ``/files/<kind>/<filename>`` (and nothing else) for ``ttl`` seconds."""
    claims = {"aud": DOWNLOAD_AUDIENCE, "kind": kind, "file": filename, "exp": int(now + ttl)}
    return encode(claims, key)


def download_token_state(key: bytes, token: Any, kind: str, filename: str, now: float) -> str:
    """``"ok"``, ``"expired"`` (authentic, for this file, past its time: a stale link,
    not an attack) or ``"invalid"`` (forged, malformed or for another file)."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
        return "invalid"
    jwt = _jwt()
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=["HS256"],
            audience=DOWNLOAD_AUDIENCE,
            options={"verify_exp": False, "require": ["exp", "kind", "file"]},
        )
    except jwt.InvalidTokenError:
        return "invalid"
    if claims.get("kind") != kind or claims.get("file") != filename:
        return "invalid"
    exp = claims.get("exp")
    if not isinstance(exp, (int, float)) or isinstance(exp, bool):
        return "invalid"
    return "ok" if exp > now else "expired"


def verify_download(key: bytes, token: Any, kind: str, filename: str, now: float) -> bool:
    """True when ``token`` is a valid, unexpired download token for exactly this file."""
    return download_token_state(key, token, kind, filename, now) == "ok"


def credential_fingerprint(token: Any) -> str:
    """A short, non-reversible name for a presented credential (lockout keys; never logged as is)."""
    data = token.encode("utf-8", "surrogatepass") if isinstance(token, str) else repr(token).encode()
    return hashlib.sha256(data).hexdigest()[:16]
