"""Cost of authentication on the request path (engine level, no sockets).

Prints microseconds per call for: ping on an unauthenticated session, ping and
get_server_info on an authenticated one (rate limit + revocation check +
authorisation guards), and ``authenticate`` with a JWT and with an API key.
Run: ``.venv/bin/python bench/auth.py`` (``--n`` calls per figure).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from camsvc.server.rpc import Role  # noqa: E402
from tests.support.security import build_app, make_key  # noqa: E402


def per_call(fn, n: int, repeat: int = 5) -> float:
    """Best of ``repeat`` runs of ``n`` calls, in microseconds per call."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, time.perf_counter() - start)
    return best / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        app = build_app(Path(tmp), server={"rate_limit_per_minute": 0})
        limited = build_app(Path(tmp) / "b")
        key = make_key(app.config.auth.api_keys_file, Role.VIEWER)
        token = app.auth.mint_token(Role.VIEWER, "bench", 3600)
        ping = '{"jsonrpc":"2.0","method":"ping","id":1}'
        info = '{"jsonrpc":"2.0","method":"get_server_info","id":1}'

        def auth_call(_app, credential):
            return json.dumps(
                {"jsonrpc": "2.0", "method": "authenticate", "params": {"auth_token": credential}, "id": 1}
            )

        anon = app.make_session("c1", "tcp4:127.0.0.1:1", "h")
        jwt_session = app.make_session("c2", "tcp4:127.0.0.1:2", "h")
        app.engine.handle(jwt_session, auth_call(app, token))
        key_session = app.make_session("c3", "tcp4:127.0.0.1:3", "h")
        app.engine.handle(key_session, auth_call(app, key))
        lim = limited.make_session("c4", "tcp4:127.0.0.1:4", "h")
        limited.engine.handle(lim, auth_call(limited, limited.auth.mint_token(Role.VIEWER, "b", 3600)))
        limited.engine.guards[0].per_minute = limited.engine.guards[0].rate = 10**12  # counts, never refuses
        rows = [
            ("ping, unauthenticated", per_call(lambda: app.engine.handle(anon, ping), args.n)),
            ("ping, JWT session", per_call(lambda: app.engine.handle(jwt_session, ping), args.n)),
            ("ping, API key session", per_call(lambda: app.engine.handle(key_session, ping), args.n)),
            ("ping, JWT session + rate limit", per_call(lambda: limited.engine.handle(lim, ping), args.n)),
            ("get_server_info, JWT session", per_call(lambda: app.engine.handle(jwt_session, info), args.n)),
            (
                "authenticate (JWT)",
                per_call(lambda: app.engine.handle(jwt_session, auth_call(app, token)), args.n // 4),
            ),
            (
                "authenticate (API key)",
                per_call(lambda: app.engine.handle(key_session, auth_call(app, key)), args.n // 4),
            ),
        ]
        for name, us in rows:
            print(f"{name:34s} {us:8.1f} us")


if __name__ == "__main__":
    main()
