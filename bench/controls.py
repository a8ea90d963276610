"""Control call latency at a WebSocket client, and how long control ioctls block the reactor.

Owns one measurement, not a camsvc feature.  Starts a :class:`tests.support.livestack.LiveStack`
(camsvc under twistd, the umockdev C920 with ``camsvc.testing.webcam_controls()``, MediaMTX
stand-in) unless ``--url`` points at a running camsvc (``--device`` then names the camera,
e.g. a vivid node in the QEMU guest), then over one connection, sequentially:

1. ``set_camera_controls {brightness: N}`` (N alternating, so every call writes), ``-n`` times;
2. ``get_camera_controls`` (enumerate every control, menus, values) ``-n`` times;

and prints p50 / p99 / max of the round trip at the client, plus the ``controls`` section
of ``get_status``: p50 / p99 / max of the time one batch of control ioctls kept the reactor
(set = validate + up to three S_EXT_CTRLS + read back; get = the whole enumeration).

umockdev answers each ioctl over a unix socket from another process (~0.2 ms), so these
figures are an upper bound of vivid's (microseconds per ioctl) and comparable to a UVC
camera's (one USB control transfer per value).

    .venv/bin/python bench/controls.py [-n 300] [--json]
    make bench-controls
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.support.wsclient import RpcClient  # noqa: E402


def percentiles(samples: list[float]) -> dict:
    s = sorted(samples)

    def at(q: float) -> float:
        return round(s[min(len(s) - 1, int(q * len(s)))] * 1000, 2)

    return {"n": len(s), "p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": round(s[-1] * 1000, 2)}


def measure(url: str, device: str | None, n: int, token: str | None) -> dict:
    with RpcClient(url, timeout=30) as c:
        if token:
            c.call("authenticate", {"auth_token": token})
        if device is None:
            cams = [x for x in c.call("get_camera_list")["cameras"] if x["status"] == "CONNECTED"]
            device = cams[0]["camera_id"]
        c.call("get_camera_controls", {"device": device})  # warm: the node is opened once
        sets, gets = [], []
        for i in range(n):
            t = time.perf_counter()
            c.call("set_camera_controls", {"device": device, "controls": {"brightness": 100 + i % 2}})
            sets.append(time.perf_counter() - t)
        for _ in range(n):
            t = time.perf_counter()
            result = c.call("get_camera_controls", {"device": device})
            gets.append(time.perf_counter() - t)
        count = sum(len(g["controls"]) for g in result["classes"])
        status = c.call("get_status")["components"].get("controls") or {}
    return {
        "device": device,
        "controls": count,
        "set_camera_controls": percentiles(sets),
        "get_camera_controls": percentiles(gets),
        "reactor_block_ms": status.get("block_ms"),
        "slow_calls": status.get("slow_calls"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=300, help="calls of each method (default 300)")
    parser.add_argument("--url", help="a running camsvc (default: start a LiveStack)")
    parser.add_argument("--device", help="camera to use with --url (default: the first connected)")
    parser.add_argument("--token", help="API key or JWT for --url")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.url:
        out = measure(args.url, args.device, args.n, args.token)
    else:
        from tests.support.livestack import LiveStack

        with tempfile.TemporaryDirectory() as tmp:
            stack = LiveStack(Path(tmp), cameras=1, config={"logging": {"level": "warn"}})
            stack.start()
            try:
                token = stack.admin_key if stack.auth_required else None
                out = measure(stack.url, None, args.n, token)
            finally:
                stack.stop()
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    print(f"camera {out['device']}: {out['controls']} controls, {args.n} calls each, one connection")
    for name in ("set_camera_controls", "get_camera_controls"):
        p = out[name]
        print(f"  {name:20s} p50 {p['p50_ms']:6.2f} ms  p99 {p['p99_ms']:6.2f} ms  max {p['max_ms']:6.2f} ms")
    b = out["reactor_block_ms"] or {}
    print(f"  reactor blocked per control batch: p50 {b.get('p50')} ms  p99 {b.get('p99')} ms  max {b.get('max')} ms")
    print(f"  batches over 50 ms: {out['slow_calls']}")
    budget = max(out["set_camera_controls"]["p99_ms"], out["get_camera_controls"]["p99_ms"])
    print(f"  budget p99 <= 50 ms: {'met' if budget <= 50 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
