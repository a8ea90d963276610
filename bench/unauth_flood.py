"""An authenticated client's ``ping`` while unauthenticated sockets flood camsvc.

Owns one measurement, not a camsvc feature.  Starts camsvc under twistd (auth on,
log level warn; ``tests.support.server.ServiceProcess``), then for ``--seconds``:

* ``--flooders`` (200) unauthenticated sockets, spread over 127.0.0.2-127.0.0.201
  (so the per-address cap is not what stops them), each in a loop: connect, send
  batches of 100 ``rpc.discover``, read the answers, close, reconnect;
* one authenticated client (API key in the handshake) sending ``ping`` one after
  another and timing each round trip; every ``--reconnect`` seconds it closes and
  reconnects, counting any refused connection.

Prints the authenticated ping p50/p99/max, refused connections (must be 0), and what
the flood got done (connections, refusals, answered vs. rate-limited requests).

    .venv/bin/python bench/unauth_flood.py [--seconds 20] [--flooders 200] [--json]
    .venv/bin/python bench/unauth_flood.py --py-spy /tmp/flood.txt   # + camsvc's stacks (py-spy, collapsed)
    make bench-flood

It also prints camsvc's CPU share over the run (``/proc/PID/stat``) and the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BATCH = json.dumps([{"jsonrpc": "2.0", "method": "rpc.discover", "id": i} for i in range(100)])


async def flooder(url: str, source: str, stop: float, stats: dict) -> None:
    import websockets

    while time.monotonic() < stop:
        try:
            async with websockets.connect(url, open_timeout=5, max_size=None, sock=None, local_addr=(source, 0)) as ws:
                stats["connects"] += 1
                for _ in range(3):
                    await ws.send(BATCH)
                    reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    for item in reply:
                        if "result" in item:
                            stats["answered"] += 1
                        else:
                            stats["refused_requests"] += 1
        except Exception as exc:  # noqa: BLE001 - a refused/closed flooder just tries again
            stats["refused_connects"] += 1
            stats.setdefault("errors", {}).setdefault(type(exc).__name__, 0)
            stats["errors"][type(exc).__name__] += 1
            await asyncio.sleep(0.05)


async def authenticated(url: str, key: str, stop: float, reconnect: float, stats: dict) -> None:
    import websockets

    times = stats["ping_ms"]
    while time.monotonic() < stop:
        try:
            async with websockets.connect(url, additional_headers={"X-API-Key": key}, open_timeout=10) as ws:
                stats["auth_connects"] += 1
                until = min(stop, time.monotonic() + reconnect)
                n = 0
                while time.monotonic() < until:
                    n += 1
                    t0 = time.perf_counter()
                    await ws.send(json.dumps({"jsonrpc": "2.0", "method": "ping", "id": n}))
                    reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    times.append((time.perf_counter() - t0) * 1000)
                    assert reply.get("result") == "pong", reply
                    await asyncio.sleep(0.01)
        except Exception as exc:  # noqa: BLE001
            stats["auth_refused"] += 1
            stats.setdefault("auth_errors", []).append(repr(exc)[:200])
            await asyncio.sleep(0.1)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def flood_process(url: str, flooders: int, seconds: float, out: Any) -> None:
    """The flood, in a process of its own (so it does not slow the measuring client down)."""

    async def go() -> dict:
        stop = time.monotonic() + seconds
        stats = {"connects": 0, "refused_connects": 0, "answered": 0, "refused_requests": 0}
        tasks = [asyncio.create_task(flooder(url, f"127.0.0.{2 + i % 200}", stop, stats)) for i in range(flooders)]
        await asyncio.gather(*tasks, return_exceptions=True)
        return stats

    out.put(asyncio.run(go()))


def run(args: argparse.Namespace, url: str, key: str) -> dict:
    import multiprocessing

    queue: Any = multiprocessing.Queue()
    flood = multiprocessing.Process(target=flood_process, args=(url, args.flooders, args.seconds + 1.0, queue))
    flood.start()
    time.sleep(1.0)  # the flood is on before the client measures
    stats = {"ping_ms": [], "auth_connects": 0, "auth_refused": 0}
    asyncio.run(authenticated(url, key, time.monotonic() + args.seconds, args.reconnect, stats))
    stats.update(queue.get(timeout=60))
    flood.join(30)
    return stats


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--flooders", type=int, default=200)
    ap.add_argument("--reconnect", type=float, default=2.0)
    ap.add_argument("--json", action="store_true")
    ap.add_argument(
        "--pin", action="store_true", help="camsvc on CPU 0, this process, its client and the flood on CPU 1"
    )
    ap.add_argument("--py-spy", metavar="FILE", help="record camsvc with py-spy meanwhile (collapsed stacks)")
    args = ap.parse_args()

    from camsvc.server.rpc import Role
    from tests.support.security import make_key
    from tests.support.server import ServiceProcess

    with tempfile.TemporaryDirectory(prefix="camsvc-flood-") as tmp:
        proc = ServiceProcess(
            Path(tmp),
            {"auth": {"required": True}, "logging": {"level": "warn"}, "server": {"host": "0.0.0.0"}},
        )
        proc.config["server"]["host"] = "127.0.0.1"
        proc.start()
        try:
            key = make_key(proc.tmp / "state" / "api_keys.json", Role.VIEWER, "bench")
            if args.pin:  # before the flood process is forked: it inherits CPU 1
                os.sched_setaffinity(proc.proc.pid, {0})
                os.sched_setaffinity(0, {1})
            spy = None
            if args.py_spy:
                import subprocess

                exe = os.path.join(os.path.dirname(sys.executable), "py-spy")
                spy = subprocess.Popen(
                    [
                        exe if os.path.exists(exe) else "py-spy",
                        "record",
                        "--format",
                        "raw",
                        "-o",
                        args.py_spy,
                        "-p",
                        str(proc.proc.pid),
                    ]
                    + ["-d", str(int(args.seconds + 2)), "--nonblocking"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            load_before = os.getloadavg()[0]
            cpu0, t0 = cpu_seconds(proc.proc.pid), time.monotonic()
            stats = run(args, proc.url, key)
            stats["camsvc_cpu_share"] = round((cpu_seconds(proc.proc.pid) - cpu0) / (time.monotonic() - t0), 2)
            stats["load"] = f"{load_before:.1f} -> {os.getloadavg()[0]:.1f}"
            if spy is not None:
                spy.wait(60)
        finally:
            code = proc.stop()
            log = proc.log()
    shut_down = code == 0  # (log level warn: twistd's "Server Shut Down." line is not written)
    tracebacks = log.count("Traceback")
    pings = stats.pop("ping_ms")
    out = {
        "seconds": args.seconds,
        "flooders": args.flooders,
        "ping_count": len(pings),
        "ping_p50_ms": round(percentile(pings, 0.5), 2),
        "ping_p99_ms": round(percentile(pings, 0.99), 2),
        "ping_max_ms": round(max(pings), 2) if pings else None,
        **stats,
        "exit_status": code,
        "clean_shutdown": shut_down,
        "tracebacks": tracebacks,
    }
    if not shut_down:
        print("\n".join(log.splitlines()[-5:]), file=sys.stderr)
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:18s} {v}")
    return 0 if out["auth_refused"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
