"""The credential files: the JWT secret and the API key file.

- **JWT secret** in ``auth.jwt_secret_file``: generated (mode 0600, created
  exclusively) on first start when missing; ``camsvc-admin secret rotate``
  replaces it.
- **API keys** ``camsvc_<id>_<secret>``: 8 random bytes of id (the lookup
  prefix, not secret) and 32 random bytes of secret.  Only the SHA-256 of the
  whole key is stored in ``auth.api_keys_file`` (JSON, mode 0600, replaced
  atomically).  A fast hash is the right tool for a 256-bit random secret:
  slow password hashes (scrypt, PBKDF2) exist to protect low-entropy
  passwords from guessing, which a 2^256 space already rules out, and a slow
  hash would hand attackers a cheap way to burn our CPU.

Used by the service (:class:`~camsvc.auth.authenticator.Authenticator`) and by
``camsvc-admin``; every write goes through :func:`camsvc.common.fileio.atomic_write`.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets

from twisted.logger import Logger

from camsvc.common.fileio import atomic_write
from camsvc.common.roles import Role

log = Logger()

KEY_PREFIX = "camsvc_"
_ID_BYTES = 8
_SECRET_BYTES = 32
_MIN_SECRET_CHARS = 32


class AuthSetupError(Exception):
    """The secret or key file cannot be read or created (startup stops)."""


def write_private(path: str, data: bytes, *, exclusive: bool = False) -> None:
    """Write ``data`` to ``path`` atomically, mode 0600, in a 0700 directory.

    ``exclusive``: fails with :class:`FileExistsError` if ``path`` appeared
    meanwhile, so two processes creating the same file never overwrite each
    other.  Run as root, the file gets the owner of its directory, so
    ``sudo camsvc-admin`` leaves files the service can read.  See
    :func:`camsvc.common.fileio.atomic_write`.
    """
    atomic_write(path, data, mode=0o600, exclusive=exclusive, chown_to_directory=True, dir_mode=0o700)


def signature(path: str) -> tuple | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def warn_if_exposed(path: str) -> None:
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
    warn_if_exposed(path)
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


# Scopes an API key can be limited to: "metrics" reads /metrics (Prometheus) and nothing else.
SCOPES = ("metrics",)


class KeyStore:
    """The API key file: ``{"version": 1, "keys": [record, ...]}``.

    A record: ``id``, ``name``, ``role``, ``hash`` (SHA-256 hex of the whole
    key), ``created_at`` (epoch seconds), ``revoked_at`` (epoch or null) and,
    for a key limited to one HTTP resource, ``scope`` (one of :data:`SCOPES`).
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
        sig = signature(self.path)
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
                if rec.get("scope") not in (None, *SCOPES):
                    raise ValueError(f"unknown scope {rec.get('scope')!r}")
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

    def create(self, role: Role, name: str, now: float, scope: str | None = None) -> tuple[str, dict]:
        """Add a key; return (the key, shown once; its record).  With ``scope``
        the key opens only that HTTP resource (``role`` is then not used)."""
        if scope not in (None, *SCOPES):
            raise ValueError(f"unknown scope {scope!r} ({', '.join(SCOPES)})")
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
        if scope is not None:
            record["scope"] = scope
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
