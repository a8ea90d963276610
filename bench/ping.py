"""JSON-RPC ``ping`` throughput of a running camsvc, and its idle memory.

Owns one measurement, not a camsvc feature.  Starts camsvc under twistd
(``tests.support.server.ServiceProcess``: loopback, no auth, log level warn)
unless ``--url`` points at one already running, then:

1. **one connection**: sequential round trips (send ping, wait for pong, repeat);
2. **N connections** (default 50): each one a closed loop with one request in
   flight, all at once; the figure is total responses per second;
3. the server's ``VmRSS`` (``/proc/PID/status``) idle after start, and after the load.

With a server it started, it also reads the server's CPU time (``/proc/PID/stat``) over
each phase: CPU microseconds per request, and the requests per second that would make one
core busy.  On a machine shared with other work req/s swings with the load; the CPU cost
per request does much less, so it is the figure to compare before/after a change.

The client is deliberately cheap so the server is what is measured: plain
asyncio protocols speaking RFC 6455 by hand (pre-built masked frames, replies
counted by parsing frame headers; every reply is checked once against the
expected ``pong``).

    /work/main/.venv/bin/python bench/ping.py [--seconds 5] [--connections 50] [--json]
    make bench-ping
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

REQUEST = b'{"jsonrpc":"2.0","method":"ping","id":1}'
EXPECTED = b'{"jsonrpc":"2.0","result":"pong","id":1}'


def client_frame(payload: bytes) -> bytes:
    """A masked text frame (mask key 0: a valid frame whose payload needs no XOR)."""
    assert len(payload) < 126
    return bytes([0x81, 0x80 | len(payload)]) + b"\0\0\0\0" + payload


FRAME = client_frame(REQUEST)


class PingClient(asyncio.Protocol):
    """One WebSocket connection keeping ``window`` pings in flight."""

    def __init__(self, host: str, path: str, window: int, done: asyncio.Future) -> None:
        self.host, self.path, self.window = host, path, window
        self.open = done
        self.buf = bytearray()
        self.upgraded = False
        self.replies = 0
        self.running = False
        self.checked = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            (
                f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )

    def start(self) -> None:
        self.running = True
        self.transport.write(FRAME * self.window)

    def stop(self) -> None:
        self.running = False

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.open.set_exception(RuntimeError(bytes(buf[:200]).decode(errors="replace")))
                return
            del buf[: end + 4]
            self.upgraded = True
            self.open.set_result(self)
        count = 0
        pos = 0
        n = len(buf)
        while n - pos >= 2:
            length = buf[pos + 1] & 0x7F
            head = 2
            if length == 126:
                if n - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                head = 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                head = 10
            if n - pos < head + length:
                break
            if buf[pos] & 0x0F == 1:
                if not self.checked:
                    payload = bytes(buf[pos + head : pos + head + length])
                    if payload != EXPECTED:
                        raise SystemExit(f"unexpected reply: {payload!r}")
                    self.checked = True
                count += 1
            pos += head + length
        if pos:
            del buf[:pos]
        if count:
            self.replies += count
            if self.running:
                self.transport.write(FRAME * count)


async def connect(url: str, window: int) -> PingClient:
    parsed = urlparse(url)
    loop = asyncio.get_running_loop()
    opened: asyncio.Future = loop.create_future()
    await loop.create_connection(
        lambda: PingClient(parsed.netloc, parsed.path or "/", window, opened), parsed.hostname, parsed.port
    )
    return await asyncio.wait_for(opened, 10)


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (``/proc/PID/stat``), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_phase(url: str, connections: int, seconds: float, window: int = 1, pid: int | None = None) -> dict:
    clients = [await connect(url, window) for _ in range(connections)]
    for c in clients:  # warm-up
        c.start()
    await asyncio.sleep(min(1.0, seconds / 5))
    base = sum(c.replies for c in clients)
    cpu0 = cpu_seconds(pid) if pid else 0.0
    t0 = time.perf_counter()
    await asyncio.sleep(seconds)
    got = sum(c.replies for c in clients) - base
    elapsed = time.perf_counter() - t0
    cpu = (cpu_seconds(pid) - cpu0) if pid else None
    for c in clients:
        c.stop()
    await asyncio.sleep(0.2)
    for c in clients:
        c.transport.close()
    out = {
        "connections": connections,
        "window": window,
        "seconds": round(elapsed, 3),
        "replies": got,
        "per_second": round(got / elapsed),
    }
    if cpu is not None and got:
        # Server CPU per request, and what a core of its own would sustain: a figure
        # that other load on the machine does not distort as much as req/s does.
        out["server_cpu_us_per_request"] = round(cpu / got * 1e6, 1)
        out["server_cpu_share"] = round(cpu / elapsed, 2)
        out["per_second_per_server_core"] = round(got / cpu) if cpu else None
    return out


def engine_cost(rounds: int = 200_000) -> dict:
    """In-process: microseconds per ``ping`` through the JSON-RPC engine of a fully built App,
    with and without the metrics hook (best of 5, so other load on the machine matters less)."""
    import timeit

    from twisted.internet.testing import MemoryReactorClock

    from camsvc.config import parse_config_dict
    from camsvc.tap import build

    tmp = tempfile.mkdtemp(prefix="camsvc-bench-")
    config = parse_config_dict(
        {
            "server": {"host": "127.0.0.1"},
            "auth": {"required": False},
            "mediamtx": {"enabled": False},
            "discovery": {"enabled": False},
            "storage": {"state_dir": tmp, "recordings_dir": tmp, "snapshots_dir": tmp},
        }
    )
    app = build(config, MemoryReactorClock())
    session = app.make_session("c1", "bench", "127.0.0.1")
    payload = REQUEST
    handle = app.engine.handle
    hook = app.engine.observe

    def once() -> float:
        return timeit.timeit(lambda: handle(session, payload), number=rounds // 10) / (rounds // 10)

    timings: dict = {True: [], False: []}
    for _ in range(10):  # interleaved, best of each
        for on in (True, False):
            app.engine.observe = hook if on else None
            timings[on].append(once())
    app.engine.observe = hook
    with_hook, without = min(timings[True]), min(timings[False])
    # The hook alone (a counter and a histogram update), timed directly: far below the noise above.
    n = 200_000
    alone = min(timeit.repeat(lambda: hook("ping", "ok", 0.00012), number=n, repeat=5)) / n
    return {
        "engine_us_per_ping": round(with_hook * 1e6, 2),
        "engine_us_per_ping_without_metrics": round(without * 1e6, 2),
        "metrics_hook_us": round(alone * 1e6, 3),
    }


def vm_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="ws:// URL of a running camsvc (default: start one)")
    parser.add_argument("--seconds", type=float, default=5.0, help="measurement time per phase")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--idle", type=float, default=3.0, help="seconds idle before reading VmRSS")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--engine", action="store_true", help="only the in-process engine cost per ping")
    args = parser.parse_args()
    if args.engine:
        print(json.dumps(engine_cost()) if args.json else engine_cost())
        return

    proc = None
    url = args.url
    report: dict = {}
    try:
        if url is None:
            from tests.support.server import ServiceProcess

            tmp = tempfile.TemporaryDirectory(prefix="camsvc-bench-")
            proc = ServiceProcess(Path(tmp.name), {"logging": {"level": "warn"}}).start()
            url = proc.url
            time.sleep(args.idle)
            report["idle_rss_kib"] = vm_rss_kib(proc.proc.pid)
        pid = proc.proc.pid if proc is not None else None
        report["one_connection"] = asyncio.run(run_phase(url, 1, args.seconds, pid=pid))
        report["many_connections"] = asyncio.run(run_phase(url, args.connections, args.seconds, pid=pid))
        if proc is not None:
            report["rss_after_load_kib"] = vm_rss_kib(proc.proc.pid)
    finally:
        if proc is not None:
            proc.stop()
    if args.json:
        print(json.dumps(report))
        return
    one, many = report["one_connection"], report["many_connections"]
    for label, phase, unit in (
        ("one connection", one, "ping round trips/s"),
        (f"{many['connections']} connections", many, "req/s"),
    ):
        line = f"{label + ':':<17} {phase['per_second']:>7} {unit} ({phase['replies']} in {phase['seconds']}s)"
        if "server_cpu_us_per_request" in phase:
            line += (
                f"; server CPU {phase['server_cpu_us_per_request']} us/request"
                f" ({phase['server_cpu_share']:.0%} of a core) = {phase['per_second_per_server_core']}/s per server core"
            )
        print(line)

    if "idle_rss_kib" in report:
        print(
            f"server VmRSS:     {report['idle_rss_kib'] / 1024:.1f} MiB idle, "
            f"{report['rss_after_load_kib'] / 1024:.1f} MiB after the load"
        )


if __name__ == "__main__":
    main()
