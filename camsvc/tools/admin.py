"""``camsvc-admin``: manage API keys, mint JWTs and rotate the JWT secret.

Reads the service's configuration file (``--config``, default
``/etc/camsvc/camsvc.yaml`` when it exists, plus ``CAMSVC_*`` overrides) to
find ``auth.api_keys_file`` and ``auth.jwt_secret_file``.  The running service
re-reads both files when they change: no restart is needed.

Exit status: 0 success, 1 the operation failed (unknown key id, unwritable
file...), 2 bad command line, 78 invalid configuration.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
from datetime import datetime, timezone
from typing import Any

from camsvc.auth.keystore import SCOPES, AuthSetupError, KeyStore, load_or_create_secret, new_secret, write_private
from camsvc.auth.tokens import mint_token
from camsvc.common.roles import Role
from camsvc.config import ConfigError, load_config

DEFAULT_CONFIG = "/etc/camsvc/camsvc.yaml"
EX_OK, EX_FAIL, EX_USAGE, EX_CONFIG = 0, 1, 2, 78


def _role(value: str) -> Role:
    try:
        return Role.parse(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _lifetime(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {value!r}") from None
    if not 0 < seconds < 10 * 365 * 86400 or seconds != seconds:
        raise argparse.ArgumentTypeError(f"must be between 0 and 10 years in seconds, got {value}")
    return seconds


def _when(ts: Any) -> str:
    if not ts:
        return "-"
    return datetime.fromtimestamp(float(ts), tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="camsvc-admin",
        description="Manage camsvc credentials: API keys, JWTs and the JWT secret.",
        epilog="The running service picks up every change within seconds; no restart is needed.",
    )
    parser.add_argument(
        "--config",
        "-c",
        metavar="FILE",
        help=f"the service's configuration file (default: {DEFAULT_CONFIG} if it exists, else built-in defaults)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    key = sub.add_parser("key", help="create, list or revoke API keys")
    key_sub = key.add_subparsers(dest="key_command", metavar="ACTION")
    key_sub.required = True
    create = key_sub.add_parser("create", help="create an API key and print it (shown once)")
    create.add_argument("--role", type=_role, help="viewer, operator or admin (required unless --scope)")
    create.add_argument(
        "--scope",
        choices=SCOPES,
        help="limit the key to one HTTP resource: 'metrics' reads /metrics (for Prometheus) and nothing else",
    )
    create.add_argument("--name", default="", help="a label to recognise the key by (e.g. who uses it)")
    lister = key_sub.add_parser("list", help="list API keys (ids, roles, names; never the keys)")
    lister.add_argument("--json", action="store_true", help="print JSON instead of a table")
    revoke = key_sub.add_parser("revoke", help="revoke an API key by id (its connections lose their session)")
    revoke.add_argument("id", help="the key id (the hex part after camsvc_, as shown by `key list`)")

    token = sub.add_parser("token", help="mint a JWT for a role and print it")
    token.add_argument("--role", required=True, type=_role, help="viewer, operator or admin")
    token.add_argument("--subject", default=None, help="the sub claim (default: your user name)")
    token.add_argument(
        "--lifetime", type=_lifetime, default=None, help="seconds until it expires (default: auth.token_lifetime)"
    )

    secret = sub.add_parser("secret", help="manage the JWT secret")
    secret_sub = secret.add_subparsers(dest="secret_command", metavar="ACTION")
    secret_sub.required = True
    secret_sub.add_parser("rotate", help="replace the JWT secret: every JWT issued so far stops working")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    path = args.config
    if path is None and os.path.exists(DEFAULT_CONFIG):
        path = DEFAULT_CONFIG
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(f"camsvc-admin: invalid configuration: {exc}", file=sys.stderr)
        return EX_CONFIG
    try:
        return _run(args, config.auth)
    except AuthSetupError as exc:
        print(f"camsvc-admin: {exc}", file=sys.stderr)
        return EX_FAIL
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        print(f"camsvc-admin: cannot write{where}: {exc.strerror or exc}", file=sys.stderr)
        return EX_FAIL


def _run(args: argparse.Namespace, auth: Any) -> int:
    now = time.time()
    if args.command == "key":
        store = KeyStore(auth.api_keys_file)
        if args.key_command == "create":
            if args.role is None and args.scope is None:
                print("camsvc-admin: key create needs --role or --scope", file=sys.stderr)
                return EX_USAGE
            # A scoped key's role is never used; the lowest one is recorded.
            key, record = store.create(args.role or Role.VIEWER, args.name, now, scope=args.scope)
            label = f", name {record['name']!r}" if record["name"] else ""
            what = f"scope {args.scope}: /{args.scope} only" if args.scope else f"role {record['role']}"
            print(key)
            print(
                f"Created API key {record['id']} ({what}{label}) in {auth.api_keys_file}.\n"
                "The key is shown only this once: store it now (camsvc keeps only its hash).",
                file=sys.stderr,
            )
            return EX_OK
        if args.key_command == "list":
            records = list(store.read().values())
            if args.json:
                shown = [{k: v for k, v in r.items() if k != "hash"} for r in records]
                print(json.dumps(shown, indent=2))
                return EX_OK
            if not records:
                print(f"No API keys in {auth.api_keys_file}.", file=sys.stderr)
                return EX_OK
            rows = [("ID", "ROLE", "CREATED", "STATUS", "NAME")]
            for r in sorted(records, key=lambda r: r.get("created_at") or 0):
                status = f"revoked {_when(r['revoked_at'])}" if r.get("revoked_at") else "active"
                role = f"{r['scope']} only" if r.get("scope") else r.get("role", "?")
                rows.append((r["id"], role, _when(r.get("created_at")), status, r.get("name") or ""))
            widths = [max(len(row[i]) for row in rows) for i in range(4)]
            for row in rows:
                print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4])
            return EX_OK
        if args.key_command == "revoke":
            key_id = args.id.strip()
            if key_id.startswith("camsvc_"):  # a whole key pasted: take its id
                key_id = key_id[len("camsvc_") :].split("_", 1)[0]
            before = store.read().get(key_id)
            record = store.revoke(key_id, now)
            if record is None:
                print(f"camsvc-admin: no API key with id {key_id!r} (see `camsvc-admin key list`)", file=sys.stderr)
                return EX_FAIL
            if before is not None and before.get("revoked_at"):
                print(f"API key {key_id} was already revoked on {_when(before['revoked_at'])}.", file=sys.stderr)
            else:
                print(
                    f"Revoked API key {key_id} ({record.get('role')}). Connections using it lose their session "
                    "within seconds.",
                    file=sys.stderr,
                )
            return EX_OK
    if args.command == "token":
        secret = load_or_create_secret(auth.jwt_secret_file)
        subject = args.subject
        if subject is None:
            try:
                subject = getpass.getuser()
            except Exception:
                subject = "camsvc-admin"
        if not subject:
            print("camsvc-admin: --subject must not be empty", file=sys.stderr)
            return EX_USAGE
        lifetime = auth.token_lifetime if args.lifetime is None else args.lifetime
        print(mint_token(secret, args.role, subject, lifetime, now))
        print(
            f"JWT for {subject!r} with role {args.role.label}, valid until {_when(int(now + lifetime))}.",
            file=sys.stderr,
        )
        return EX_OK
    if args.command == "secret" and args.secret_command == "rotate":
        write_private(auth.jwt_secret_file, new_secret() + b"\n")
        print(
            f"Rotated the JWT secret in {auth.jwt_secret_file}.\n"
            "Every JWT issued before now is invalid: clients must get new tokens (`camsvc-admin token`).\n"
            "The running service switches within seconds; connections authenticated with an old JWT lose their\n"
            "session. API keys are not affected; download links issued before now stop working.",
            file=sys.stderr,
        )
        return EX_OK
    raise AssertionError(f"unhandled command {args}")  # pragma: no cover - argparse requires one


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
