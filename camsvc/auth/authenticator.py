"""The authenticator: who a client is, for the WebSocket API and the HTTP surface.

:class:`Authenticator` checks API tokens (:mod:`.tokens`) and API keys
(:mod:`.keystore`), signs and verifies download tokens, counts failed attempts
(:mod:`.limiter`) and, as a service, notices revoked keys and a rotated
secret: the service re-reads the files when they change, so keys created or
revoked with ``camsvc-admin`` take effect without a restart (a revoked key's
connections lose their session at their next call or within
:data:`SWEEP_INTERVAL` seconds); every token signed with a rotated-out secret
stops working, including on connections that authenticated with one.  What a
role may call is decided by :func:`camsvc.server.session.authorize`.

Collaborators: the ``auth`` config section, a clock (``seconds()``; token
times are checked against it, the same clock that expires sessions), and the
connection hub (to drop sessions whose credential was revoked).
"""

from __future__ import annotations

import hmac
import os
import sys
from typing import Any

from twisted.application.service import Service
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from camsvc.auth.keystore import (
    KEY_PREFIX,
    AuthSetupError,
    KeyStore,
    hash_key,
    load_or_create_secret,
    parse_key,
    signature,
    warn_if_exposed,
)
from camsvc.auth.limiter import FailureLimiter
from camsvc.auth.tokens import (
    MAX_TOKEN_CHARS,
    AuthError,
    Credential,
    check_jwt,
    download_key,
    download_token_state,
    mint_token,
    sign_download,
)
from camsvc.common.errors import AuthenticationRequired
from camsvc.common.roles import Role

log = Logger()

#: Seconds between checks of the key and secret files for revocations (live sessions).
SWEEP_INTERVAL = 5.0
#: On the request path the files are stat()ed at most this often (two stat calls
#: cost more than the rest of a ping); authenticate always looks.
REFRESH_INTERVAL = 0.1


class Authenticator(Service):
    """Checks tokens and keys; signs and verifies download tokens.

    Loads (or creates) the secret and reads the key file in
    ``privilegedStartService`` (failure stops startup with one line); methods
    load lazily too, so unit tests need not start it.  While running, a
    LoopingCall every :data:`SWEEP_INTERVAL` seconds notices revoked keys and
    a rotated secret and drops the sessions that relied on them.
    """

    name = "auth"

    def __init__(self, config: Any, clock: Any, hub: Any = None) -> None:
        self.config = config
        self.clock = clock
        self.hub = hub
        self.keys = KeyStore(config.api_keys_file)
        self.failures = FailureLimiter(config.max_failed_attempts, config.failed_attempts_window, clock)
        #: Forged download links, counted apart from credentials (stale links are not counted).
        self.download_failures = FailureLimiter(
            config.max_failed_attempts, config.failed_attempts_window, clock, max_backoff=60.0
        )
        self._secret: bytes | None = None
        self._secret_sig: tuple | None = None
        self._download_key: bytes = b""
        self.secret_generation = 0
        self._sweeper: LoopingCall | None = None
        self._refreshed_at = float("-inf")

    # -- life cycle ----------------------------------------------------------------

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        try:
            self.load()
        except AuthSetupError as exc:
            sys.stderr.write(f"camsvc: {exc}\n")
            sys.stderr.flush()
            raise SystemExit(1) from None

    def startService(self) -> None:
        super().startService()
        self.load()
        self._sweeper = LoopingCall(self.sweep)
        self._sweeper.clock = self.clock
        self._sweeper.start(SWEEP_INTERVAL, now=False).addErrback(
            lambda f: log.failure("The credential sweeper stopped", f)
        )

    def stopService(self) -> None:
        super().stopService()
        if self._sweeper is not None and self._sweeper.running:
            self._sweeper.stop()
        self._sweeper = None

    def load(self) -> None:
        """Load the secret (creating it) and the keys; raises AuthSetupError."""
        if self._secret is None:
            self._set_secret(load_or_create_secret(self.config.jwt_secret_file))
            self._secret_sig = signature(self.config.jwt_secret_file)
        self.keys.refresh()
        for path in (self.config.api_keys_file,):
            if os.path.exists(path):
                warn_if_exposed(path)

    def _set_secret(self, secret: bytes) -> None:
        if secret != self._secret:
            if self._secret is not None:
                self.secret_generation += 1
                log.warn("The JWT secret changed: tokens signed with the previous one are no longer accepted")
            self._secret = secret
            self._download_key = download_key(secret)

    def refresh(self, *, throttle: bool = False) -> None:
        """Pick up changes to the secret and key files (two stat calls).

        ``throttle``: not if the files were looked at in the last REFRESH_INTERVAL seconds.
        """
        now = self.clock.seconds()
        if throttle and now - self._refreshed_at < REFRESH_INTERVAL:
            return
        self._refreshed_at = now
        if self._secret is None:
            self.load()
            return
        sig = signature(self.config.jwt_secret_file)
        if sig != self._secret_sig:
            self._secret_sig = sig
            if sig is None:
                log.warn(
                    "The JWT secret file {path} disappeared; keeping the secret in memory",
                    path=self.config.jwt_secret_file,
                )
            else:
                try:
                    self._set_secret(load_or_create_secret(self.config.jwt_secret_file))
                except AuthSetupError as exc:
                    log.error("{problem}; keeping the previous secret", problem=str(exc))
        self.keys.refresh()

    @property
    def secret(self) -> bytes:
        if self._secret is None:
            self.load()
        return self._secret

    def _download_signing_key(self) -> bytes:
        if self._secret is None:
            self.load()
        return self._download_key

    # -- tokens and keys ------------------------------------------------------------

    def mint_token(self, role: Role, subject: str, lifetime: float, *, now: float | None = None) -> str:
        """An HS256 JWT for ``role`` valid ``lifetime`` seconds."""
        now = self.clock.seconds() if now is None else now
        return mint_token(self.secret, role, subject, lifetime, now)

    def check(self, token: Any) -> Credential:
        """The credential a JWT or API key stands for; AuthError when refused."""
        if not isinstance(token, str) or not token:
            raise AuthError("malformed", "the token is empty or not a string")
        if len(token) > MAX_TOKEN_CHARS:
            raise AuthError("malformed", "the token is too long")
        self.refresh()
        if token.startswith(KEY_PREFIX):
            return self._check_key(token)
        if token.count(".") == 2:
            return self._check_jwt(token)
        raise AuthError("malformed", "the token is neither a JWT nor a camsvc API key")

    def _check_key(self, key: str) -> Credential:
        key_id = parse_key(key)
        if key_id is None:
            raise AuthError("malformed", "the API key is incomplete or malformed")
        record = self.keys.records().get(key_id)
        # Compare even for unknown ids so timing says nothing about which ids exist.
        expected = record["hash"] if record is not None else "0" * 64
        matches = hmac.compare_digest(hash_key(key).encode("ascii"), expected.encode("ascii", "replace"))
        if record is None or not matches:
            raise AuthError("unknown_key", "unknown API key")
        if record.get("revoked_at"):
            raise AuthError("revoked", "the API key was revoked")
        return Credential(
            role=Role.parse(record["role"]),
            subject=f"key:{key_id}" + (f" ({record['name']})" if record.get("name") else ""),
            method="api_key",
            expires_at=None,
            key_id=key_id,
            scope=record.get("scope"),
        )

    def _check_jwt(self, token: str) -> Credential:
        return check_jwt(token, self.secret, self.clock.seconds(), self.secret_generation)

    # -- live sessions ----------------------------------------------------------------

    def still_valid(self, session: Any) -> bool:
        """False when the session's API key was revoked or its JWT's secret rotated."""
        extra = session.extra
        cred = extra.get("credential")
        if cred is None or session.role is None or session.auth_method in (None, "none"):
            return True
        if cred.method == "api_key":
            record = self.keys.records().get(cred.key_id)
            return record is not None and not record.get("revoked_at")
        return cred.secret_generation == self.secret_generation

    def revalidate(self, session: Any, method: Any) -> None:
        """Engine guard: end sessions whose credential was revoked (-32001).

        Methods open to everyone skip it (the sweeper still ends such sessions).
        """
        if method.role is Role.NONE or session.extra.get("credential") is None:
            return
        self.refresh(throttle=True)
        if not self.still_valid(session):
            self._drop(session)
            if method.role is not Role.NONE and session.role is None:
                raise AuthenticationRequired(
                    "Authentication revoked: the credential of this session is no longer valid; authenticate again",
                    data={"reason": "revoked"},
                )

    def _drop(self, session: Any) -> None:
        cred = session.extra.pop("credential", None)
        log.info(
            "Connection {conn_id}: session of {subject} ended: its {kind} was revoked",
            conn_id=session.id,
            subject=session.subject,
            kind="API key" if cred is not None and cred.method == "api_key" else "token's secret",
        )
        session.revoke()

    def sweep(self) -> None:
        """End revoked sessions on every connection (push-only clients included)."""
        if self.hub is None:
            return
        try:
            self.refresh()
            for conn in self.hub.connections:
                session = getattr(conn, "session", None)
                if session is not None and session.extra.get("credential") is not None:
                    if not self.still_valid(session):
                        self._drop(session)
        except Exception:
            log.failure("Checking sessions for revoked credentials failed")

    # -- download tokens --------------------------------------------------------------

    def sign_download(self, kind: str, filename: str, ttl: float | None = None) -> str:
        """A token that opens ``/files/<kind>/<filename>`` (and nothing else) for ``ttl`` seconds."""
        ttl = self.config.download_token_lifetime if ttl is None else ttl
        return sign_download(self._download_signing_key(), kind, filename, self.clock.seconds(), ttl)

    def verify_download(self, token: str, kind: str, filename: str) -> bool:
        """True when ``token`` is a valid, unexpired download token for exactly this file."""
        return self.download_state(token, kind, filename) == "ok"

    def download_state(self, token: str, kind: str, filename: str) -> str:
        """``"ok"``, ``"expired"`` (a stale link) or ``"invalid"`` (see :func:`tokens.download_token_state`)."""
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
            return "invalid"
        self.refresh()
        return download_token_state(self._download_signing_key(), token, kind, filename, self.clock.seconds())

    def download_path(self, kind: str, filename: str, ttl: float | None = None) -> str:
        """``/files/<kind>/<filename>?token=...``: the path part of a ``download_url``."""
        from urllib.parse import quote

        token = self.sign_download(kind, filename, ttl)
        return f"/files/{quote(kind, safe='')}/{quote(filename, safe='')}?token={token}"
