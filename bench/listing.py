"""``list_recordings`` latency over a directory of many files (cached listing vs a full scan).

Owns one measurement, not a camsvc feature.  Builds a camsvc in process
(``camsvc.tap.build`` on a MemoryReactorClock, auth on, an admin session),
fills ``storage.recordings_dir`` with ``--files`` (100,000) empty recordings of
10 cameras, lets the directory settle, and times ``--calls`` (200)
``list_recordings`` requests through the JSON-RPC engine (first page of 100, all
cameras; then one camera), with the listing cache (as shipped) and with it
dropped before every call (what every call cost before the cache).

    .venv/bin/python bench/listing.py [--files 100000] [--calls 200] [--json]
    make bench-listing
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from camsvc.server.rpc import Role
    from tests.support.security import build_app, new_session

    with tempfile.TemporaryDirectory(prefix="camsvc-listing-") as tmp:
        app = build_app(Path(tmp))
        rec = app.media.store.dirs["recordings"]
        os.makedirs(rec, exist_ok=True)
        start = datetime(2024, 1, 1)
        made = time.perf_counter()
        for i in range(args.files):
            t = start + timedelta(seconds=60 * i)
            name = f"camera{i % 10}_{t:%Y-%m-%d_%H-%M-%S}-000000.mp4"
            fd = os.open(os.path.join(rec, name), os.O_WRONLY | os.O_CREAT, 0o644)
            os.close(fd)
        past = time.time() - 3600
        for name in os.listdir(rec):
            os.utime(os.path.join(rec, name), (past, past))
        os.utime(rec, (past, past))
        made = time.perf_counter() - made
        session = new_session(app)
        token = app.auth.mint_token(Role.ADMIN, "bench", 3600)
        app.engine.handle(
            session, json.dumps({"jsonrpc": "2.0", "method": "authenticate", "params": {"auth_token": token}, "id": 0})
        )
        results = {}
        for label, params, cached in (
            ("all cameras, cached", {"limit": 100}, True),
            ("one camera, cached", {"limit": 100, "device": "camera3"}, True),
            ("all cameras, no cache (before)", {"limit": 100}, False),
        ):
            request = json.dumps({"jsonrpc": "2.0", "method": "list_recordings", "params": params, "id": 1})
            times = []
            calls = args.calls if cached else max(10, args.calls // 10)
            for _ in range(calls):
                if not cached:
                    app.media.store._listings.clear()
                t0 = time.perf_counter()
                out = app.engine.handle(session, request)
                times.append((time.perf_counter() - t0) * 1000)
                reply = json.loads(out)
                assert len(reply["result"]["files"]) == 100, reply
            results[label] = {
                "calls": calls,
                "first_ms": round(times[0], 1),
                "p50_ms": round(percentile(times[1:], 0.5), 2),
                "p99_ms": round(percentile(times[1:], 0.99), 2),
            }
    if args.json:
        print(json.dumps({"files": args.files, "results": results}))
    else:
        print(f"{args.files} files (made in {made:.1f} s); list_recordings, first page of 100:")
        for label, r in results.items():
            print(f"  {label:32s} first {r['first_ms']:8.1f} ms  p50 {r['p50_ms']:8.2f} ms  p99 {r['p99_ms']:8.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
