"""Resident memory of camsvc holding many idle, authenticated WebSocket clients.

Owns one measurement, not a camsvc feature.  Starts camsvc under twistd
(``tests.support.server.ServiceProcess``: authentication required, discovery and MediaMTX off,
``server.max_connections`` above the client count), reads its ``VmRSS`` idle, then opens
``--clients`` (1,000) connections with the ``websockets`` library's asyncio client, each
authenticating with an API key (``authenticate``), lets them sit idle for ``--idle`` seconds
and reads ``VmRSS`` again: the figure is the growth, in total and per client.  It then closes
them all and reads it once more (what a server keeps after its clients left).

    .venv/bin/python bench/idle_clients.py [--clients 1000] [--idle 5] [--json]
    make bench-idle-clients
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def vm_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def open_clients(url: str, key: str, count: int) -> list:
    try:
        from websockets.asyncio.client import connect
    except ImportError:  # websockets < 13 (Debian 12)
        from websockets.client import connect

    request = json.dumps({"jsonrpc": "2.0", "method": "authenticate", "params": {"auth_token": key}, "id": 1})

    async def one() -> object:
        ws = await connect(url, compression=None, ping_interval=None, open_timeout=30)
        await ws.send(request)
        reply = json.loads(await ws.recv())
        if reply.get("result", {}).get("role") != "viewer":
            raise SystemExit(f"authentication failed: {reply}")
        return ws

    clients = []
    for start in range(0, count, 50):  # 50 handshakes at a time: the listen backlog is 50
        clients += await asyncio.gather(*(one() for _ in range(min(50, count - start))))
    return clients


async def run(url: str, key: str, count: int, idle: float, pid: int) -> dict:
    before = vm_rss_kib(pid)
    t0 = time.perf_counter()
    clients = await open_clients(url, key, count)
    opened = time.perf_counter() - t0
    await asyncio.sleep(idle)
    held = vm_rss_kib(pid)
    await asyncio.gather(*(ws.close() for ws in clients))
    await asyncio.sleep(idle)
    after = vm_rss_kib(pid)
    return {
        "clients": count,
        "idle_rss_kib": before,
        "with_clients_rss_kib": held,
        "growth_mib": round((held - before) / 1024, 2),
        "per_client_kib": round((held - before) / count, 1),
        "after_close_rss_kib": after,
        "open_and_authenticate_seconds": round(opened, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--idle", type=float, default=5.0, help="seconds idle before each reading")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.clients + 100
    if soft < need:  # this process holds the clients; camsvc inherits the limit
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(need, soft), hard), hard))

    from camsvc.common.roles import Role
    from tests.support.security import make_key
    from tests.support.server import ServiceProcess

    tmp = tempfile.TemporaryDirectory(prefix="camsvc-idle-")
    proc = ServiceProcess(
        Path(tmp.name),
        {
            "auth": {"required": True},
            "server": {"max_connections": args.clients + 10},
            "logging": {"level": "warn"},
        },
    )
    key = make_key(proc.tmp / "state" / "api_keys.json", Role.VIEWER, "bench")
    proc.start()
    try:
        time.sleep(args.idle)
        report = asyncio.run(run(proc.url, key, args.clients, args.idle, proc.proc.pid))
    finally:
        proc.stop()
    report["load"] = round(os.getloadavg()[0], 1)
    if args.json:
        print(json.dumps(report))
        return
    print(
        f"camsvc VmRSS: {report['idle_rss_kib'] / 1024:.1f} MiB idle, "
        f"{report['with_clients_rss_kib'] / 1024:.1f} MiB with {args.clients} idle authenticated clients "
        f"(+{report['growth_mib']:.1f} MiB, {report['per_client_kib']:.1f} KiB each), "
        f"{report['after_close_rss_kib'] / 1024:.1f} MiB after they left; "
        f"opened and authenticated in {report['open_and_authenticate_seconds']} s (load {report['load']})"
    )


if __name__ == "__main__":
    main()
