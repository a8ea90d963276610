"""Credentials: the JWT secret, API keys, download tokens and failed-attempt limits.

This module owns everything that decides *who* a client is; what a role may
call is decided by :func:`camsvc.server.session.authorize`.

- **JWT** (HS256 only, via PyJWT): claims ``sub`` (or ``user_id``), ``role``,
  ``iat``, ``exp`` and optionally ``nbf``.  The secret lives in
  ``auth.jwt_secret_file``; it is generated (mode 0600, created exclusively)
  on first start when missing.  ``camsvc-admin secret rotate`` replaces it:
  the service notices the change and every token signed with the old secret
  stops working, including on connections that authenticated with one.
- **API keys** ``camsvc_<id>_<secret>``: 8 random bytes of id (the lookup
  prefix, not secret) and 32 random bytes of secret.  Only the SHA-256 of the
  whole key is stored in ``auth.api_keys_file`` (JSON, mode 0600, replaced
  atomically).  A fast hash is the right tool for a 256-bit random secret:
  slow password hashes (scrypt, PBKDF2) exist to protect low-entropy
  passwords from guessing, which a 2^256 space already rules out, and a slow
  hash would hand attackers a cheap way to burn our CPU.  Digests are
  compared with :func:`hmac.compare_digest`.  The service re-reads the file
  when it changes, so keys created or revoked with ``camsvc-admin`` take
  effect without a restart (a revoked key's connections lose their session at
  their next call or within :data:`SWEEP_INTERVAL` seconds).
- **Download tokens**: short-lived JWTs bound to one file (``kind`` and
  ``file`` claims, audience ``camsvc-download``) signed with a key derived
  from the JWT secret (HMAC-SHA256 of a fixed label), so a download token is
  never accepted by ``authenticate`` and an API token never opens a file.
- **Failed attempts**: :class:`FailureLimiter` counts failed authentications
  per connection and per client address in a sliding window.

Collaborators: the ``auth`` config section, a clock (``seconds()``; token
times are checked against it, the same clock that expires sessions), and the
connection hub (to drop sessions whose credential was revoked).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
import secrets
import sys
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

from twisted.application.service import Service
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from camsvc.common.errors import AuthenticationRequired
from camsvc.common.fileio import atomic_write
from camsvc.server.rpc import Role
from camsvc.server.session import authorize

log = Logger()

#: Seconds of clock skew tolerated on nbf and iat (a minting host slightly ahead of us).
LEEWAY = 5.0
#: Seconds between checks of the key and secret files for revocations (live sessions).
SWEEP_INTERVAL = 5.0
#: On the request path the files are stat()ed at most this often (two stat calls
#: cost more than the rest of a ping); authenticate always looks.
REFRESH_INTERVAL = 0.1
KEY_PREFIX = "camsvc_"
DOWNLOAD_AUDIENCE = "camsvc-download"
_ID_BYTES = 8
_SECRET_BYTES = 32
_MIN_SECRET_CHARS = 32
_MAX_TOKEN_CHARS = 4096
_DOWNLOAD_LABEL = b"camsvc download token v1"


class AuthError(Exception):
    """A credential was refused.  ``reason`` is a short machine-readable word."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        self.message = message
        super().__init__(message)


class AuthSetupError(Exception):
    """The secret or key file cannot be read or created (startup stops)."""


@dataclass(frozen=True)
class Credential:
    """Who a valid token or key says the client is."""

    role: Role
    subject: str
    method: str  # "jwt" or "api_key"
    expires_at: float | None
    key_id: str | None = None
    secret_generation: int | None = None


# -- files ----------------------------------------------------------------------


def write_private(path: str, data: bytes, *, exclusive: bool = False) -> None:
    """Write ``data`` to ``path`` atomically, mode 0600, in a 0700 directory.

    ``exclusive``: fails with :class:`FileExistsError` if ``path`` appeared
    meanwhile, so two processes creating the same file never overwrite each
    other.  Run as root, the file gets the owner of its directory, so
    ``sudo camsvc-admin`` leaves files the service can read.  See
    :func:`camsvc.common.fileio.atomic_write`.
    """
    atomic_write(path, data, mode=0o600, exclusive=exclusive, chown_to_directory=True, dir_mode=0o700)


def _signature(path: str) -> tuple | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _warn_if_exposed(path: str) -> None:
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if mode & 0o077:
        log.warn(
            "{path} is readable by other users (mode {mode:o}): chmod 600 it",
            path=path,
            mode=mode & 0o777,
        )


def new_secret() -> bytes:
    """A fresh HS256 secret: 32 random bytes, hex-encoded."""
    return secrets.token_hex(32).encode("ascii")


def load_or_create_secret(path: str) -> bytes:
    """Read the JWT secret, creating it (mode 0600) when missing."""
    try:
        with open(path, "rb") as fh:
            secret = fh.read().strip()
    except FileNotFoundError:
        try:
            write_private(path, new_secret() + b"\n", exclusive=True)
            log.info("Generated a new JWT secret in {path}", path=path)
        except FileExistsError:
            pass  # created concurrently (camsvc-admin): use theirs
        except OSError as exc:
            raise AuthSetupError(f"cannot create the JWT secret file {path}: {exc.strerror or exc}") from None
        return load_or_create_secret(path)
    except OSError as exc:
        raise AuthSetupError(f"cannot read the JWT secret file {path}: {exc.strerror or exc}") from None
    if len(secret) < _MIN_SECRET_CHARS:
        raise AuthSetupError(
            f"the JWT secret in {path} is too short ({len(secret)} characters, at least {_MIN_SECRET_CHARS}): "
            "delete it to have one generated, or run `camsvc-admin secret rotate`"
        )
    _warn_if_exposed(path)
    return secret


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def parse_key(key: str) -> str | None:
    """The id of an API key of the right shape, else None."""
    if not key.startswith(KEY_PREFIX):
        return None
    rest = key[len(KEY_PREFIX) :]
    key_id, sep, secret = rest.partition("_")
    if not sep or len(key_id) != 2 * _ID_BYTES or not secret:
        return None
    try:
        bytes.fromhex(key_id)
    except ValueError:
        return None
    return key_id


class KeyStore:
    """The API key file: ``{"version": 1, "keys": [record, ...]}``.

    A record: ``id``, ``name``, ``role``, ``hash`` (SHA-256 hex of the whole
    key), ``created_at`` (epoch seconds), ``revoked_at`` (epoch or null).
    :meth:`refresh` re-reads the file when its inode, mtime or size changed;
    a file that cannot be parsed keeps the last good copy (logged once).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._sig: tuple | None = ()
        self._records: dict[str, dict] = {}
        self._bad_sig: tuple | None = None

    def refresh(self) -> bool:
        """Re-read the file if it changed; return True when the content was (re)loaded."""
        sig = _signature(self.path)
        if sig == self._sig:
            return False
        if sig is None:
            self._sig, self._records = None, {}
            return True
        try:
            records = self.read()
        except AuthSetupError as exc:
            if sig != self._bad_sig:
                self._bad_sig = sig
                log.error("{problem}; keeping the keys loaded before", problem=str(exc))
            return False
        self._sig, self._records = sig, records
        return True

    def read(self) -> dict[str, dict]:
        try:
            with open(self.path, "rb") as fh:
                raw = fh.read()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise AuthSetupError(f"cannot read the API key file {self.path}: {exc.strerror or exc}") from None
        try:
            data = json.loads(raw)
            records = {}
            for rec in data["keys"]:
                if (
                    not isinstance(rec, dict)
                    or not isinstance(rec.get("id"), str)
                    or not isinstance(rec.get("hash"), str)
                ):
                    raise ValueError("a key record lacks id or hash")
                Role.parse(rec.get("role", ""))
                records[rec["id"]] = rec
        except (ValueError, KeyError, TypeError) as exc:
            raise AuthSetupError(f"the API key file {self.path} is not valid: {exc}") from None
        return records

    def write(self, records: dict[str, dict]) -> None:
        body = json.dumps({"version": 1, "keys": list(records.values())}, indent=2, sort_keys=True) + "\n"
        write_private(self.path, body.encode("utf-8"))
        self._sig = ()  # force a re-read

    def records(self) -> dict[str, dict]:
        return self._records

    def create(self, role: Role, name: str, now: float) -> tuple[str, dict]:
        """Add a key; return (the key, shown once; its record)."""
        records = self.read()
        while True:
            key_id = secrets.token_hex(_ID_BYTES)
            if key_id not in records:
                break
        key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(_SECRET_BYTES)}"
        record = {
            "id": key_id,
            "name": name,
            "role": role.label,
            "hash": hash_key(key),
            "created_at": now,
            "revoked_at": None,
        }
        records[key_id] = record
        self.write(records)
        return key, record

    def revoke(self, key_id: str, now: float) -> dict | None:
        """Mark a key revoked; return its record (None: unknown id)."""
        records = self.read()
        record = records.get(key_id)
        if record is None:
            return None
        if not record.get("revoked_at"):
            record["revoked_at"] = now
            self.write(records)
        return record


# -- failed attempts -------------------------------------------------------------


class FailureLimiter:
    """Failed authentications per connection and per client address, in a sliding window.

    After ``max_failures`` failures within ``window`` seconds, further
    attempts from that connection (or address) are refused until the oldest
    failure leaves the window.  At most ``max_tracked`` addresses are
    remembered (the least recently failing are forgotten first), so a flood
    from many addresses cannot grow memory without bound.
    """

    def __init__(self, max_failures: int, window: float, clock: Any, max_tracked: int = 10000) -> None:
        self.max_failures = max_failures
        self.window = window
        self.clock = clock
        self.max_tracked = max_tracked
        self._by_key: OrderedDict[str, deque] = OrderedDict()

    def retry_after(self, *keys: str) -> float | None:
        """Seconds until an attempt is allowed for every key, or None if allowed now."""
        now = self.clock.seconds()
        wait = 0.0
        for key in keys:
            times = self._prune(key, now)
            if times is not None and len(times) >= self.max_failures:
                wait = max(wait, times[0] + self.window - now)
        return wait if wait > 0 else None

    def record(self, *keys: str) -> None:
        now = self.clock.seconds()
        for key in keys:
            times = self._prune(key, now)
            if times is None:
                times = self._by_key[key] = deque(maxlen=self.max_failures)
            times.append(now)
            self._by_key.move_to_end(key)
        while len(self._by_key) > self.max_tracked:
            self._by_key.popitem(last=False)

    def forget(self, key: str) -> None:
        self._by_key.pop(key, None)

    def _prune(self, key: str, now: float) -> deque | None:
        times = self._by_key.get(key)
        if times is None:
            return None
        while times and times[0] + self.window <= now:
            times.popleft()
        if not times:
            del self._by_key[key]
            return None
        return times


# -- client addresses ------------------------------------------------------------


def peer_address(peer: str) -> str:
    """The address part of an Autobahn/Twisted peer string ("tcp4:1.2.3.4:5678" -> "1.2.3.4")."""
    kind, _, rest = peer.partition(":")
    if kind in ("tcp4", "tcp6", "tcp") and rest:
        host, _, _port = rest.rpartition(":")
        return host or rest
    return kind or peer


def parse_networks(values: list) -> list:
    return [ipaddress.ip_network(v, strict=False) for v in values]


def client_address(peer_addr: str, forwarded_for: str | None, trusted: list) -> str:
    """The client's address, honouring ``X-Forwarded-For`` only from trusted proxies.

    With a chain of proxies the right-most address not itself trusted is the
    client (entries further left are whatever the client claimed).
    """
    if not trusted or not forwarded_for:
        return peer_addr
    if not _in_networks(peer_addr, trusted):
        return peer_addr
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _in_networks(hop, trusted):
            return hop[:64]
    return hops[0][:64] if hops else peer_addr


def _in_networks(address: str, networks: list) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


# -- the authenticator -------------------------------------------------------------


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
            self._secret_sig = _signature(self.config.jwt_secret_file)
        self.keys.refresh()
        for path in (self.config.api_keys_file,):
            if os.path.exists(path):
                _warn_if_exposed(path)

    def _set_secret(self, secret: bytes) -> None:
        if secret != self._secret:
            if self._secret is not None:
                self.secret_generation += 1
                log.warn("The JWT secret changed: tokens signed with the previous one are no longer accepted")
            self._secret = secret
            self._download_key = hmac.new(secret, _DOWNLOAD_LABEL, hashlib.sha256).digest()

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
        sig = _signature(self.config.jwt_secret_file)
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
        claims = {"sub": subject, "role": role.label, "iat": int(now), "exp": int(now + lifetime)}
        return _encode(claims, self.secret)

    def check(self, token: Any) -> Credential:
        """The credential a JWT or API key stands for; AuthError when refused."""
        if not isinstance(token, str) or not token:
            raise AuthError("malformed", "the token is empty or not a string")
        if len(token) > _MAX_TOKEN_CHARS:
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
        )

    def _check_jwt(self, token: str) -> Credential:
        jwt = _jwt()
        try:
            claims = jwt.decode(
                token,
                self.secret,
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
        now = self.clock.seconds()
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
            secret_generation=self.secret_generation,
        )

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
        now = self.clock.seconds()
        claims = {"aud": DOWNLOAD_AUDIENCE, "kind": kind, "file": filename, "exp": int(now + ttl)}
        return _encode(claims, self._download_signing_key())

    def verify_download(self, token: str, kind: str, filename: str) -> bool:
        """True when ``token`` is a valid, unexpired download token for exactly this file."""
        if not isinstance(token, str) or not token or len(token) > _MAX_TOKEN_CHARS:
            return False
        self.refresh()
        jwt = _jwt()
        try:
            claims = jwt.decode(
                token,
                self._download_signing_key(),
                algorithms=["HS256"],
                audience=DOWNLOAD_AUDIENCE,
                options={"verify_exp": False, "require": ["exp", "kind", "file"]},
            )
        except jwt.InvalidTokenError:
            return False
        exp = claims.get("exp")
        if not isinstance(exp, (int, float)) or isinstance(exp, bool) or exp <= self.clock.seconds():
            return False
        return claims.get("kind") == kind and claims.get("file") == filename

    def download_path(self, kind: str, filename: str, ttl: float | None = None) -> str:
        """``/files/<kind>/<filename>?token=...``: the path part of a ``download_url``."""
        from urllib.parse import quote

        token = self.sign_download(kind, filename, ttl)
        return f"/files/{quote(kind, safe='')}/{quote(filename, safe='')}?token={token}"


def _jwt() -> Any:
    """PyJWT, imported at first use: it loads cryptography's asymmetric algorithms
    (~2.5 MB resident on Debian 12) that an idle camsvc does not need."""
    import jwt

    return jwt


def _encode(claims: dict, key: bytes) -> str:
    token = _jwt().encode(claims, key, algorithm="HS256")
    return token.decode("ascii") if isinstance(token, bytes) else token


#: HTTP resources (by first path segment) protected when present: (role, downloads).
#: ``/metrics`` needs what ``get_metrics`` needs; files what listing them needs.
PROTECTED_HTTP: dict[bytes, tuple[Role, bool]] = {
    b"metrics": (Role.ADMIN, False),
    b"files": (Role.VIEWER, True),
}


def setup(app: Any) -> None:
    """Component entry point: start ``app.auth`` with the service, add its guard, protect HTTP resources.

    Runs after the components that add ``/metrics`` and ``/files``; components
    added later wrap their resources themselves with
    :func:`camsvc.auth.http.protect`.  The media component's hooks get the real
    thing: ``download_url`` carries a token for that one file, and the files
    resource re-checks each request with the same rules (defence in depth
    behind the wrapper).
    """
    from camsvc.auth.http import Protected, protect

    auth = app.auth
    auth.setServiceParent(app.service)
    # Right before authorize() (after the rate limit): a revoked credential is refused as such.
    guards = app.engine.guards
    guards.insert(guards.index(authorize) if authorize in guards else len(guards), auth.revalidate)
    for name, (role, downloads) in PROTECTED_HTTP.items():
        resource = app.http_children.get(name)
        if resource is not None and not isinstance(resource, Protected):
            wrapped = app.http_children[name] = protect(app, resource, role, downloads=downloads)
            if name == b"files" and getattr(app, "media", None) is not None:
                if app.config.auth.required:  # without authentication a token would open nothing more
                    app.media.sign_download = auth.sign_download
                app.media.authorize_download = lambda request, kind, filename, wrapped=wrapped: (
                    wrapped.check(request, [kind.encode("utf-8"), filename.encode("utf-8")]) is None
                )
