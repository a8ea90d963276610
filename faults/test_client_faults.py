"""1,000 authenticated clients, 10 slow readers and the unauthenticated flood at once.

Injected against a real ``twistd camsvc`` (auth on, umockdev cameras): the flood of
``bench/unauth_flood.py`` (``FAULT_FLOODERS`` (100) unauthenticated sockets from
127.0.0.2-..., batches of ``rpc.discover``, reconnecting) in a process of its own;
``FAULT_CLIENTS`` (1,000) authenticated WebSocket clients (API key in the handshake)
multiplexed in one asyncio process; 10 slow readers (authenticated, a 4 KiB receive
buffer and 536-byte segments, never read); then ``FAULT_PLUGS`` (3) camera plug/unplug cycles on the test
bed and ``FAULT_NOTIFICATIONS`` (200) ``set_stream_settings`` changes (more, up to
``EXTRA``, until camsvc has dropped every slow reader), each a
``camera_status_update`` to every authenticated client.

Must survive: every normal client receives every notification, in the same order as
the others; the operator's calls are answered throughout; the slow readers are
dropped once ``server.outgoing_buffer_size`` is queued for them (docs/security.md),
so camsvc's memory stays bounded; no authenticated connection is refused.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import time

import pytest

from camsvc.server.rpc import Role
from tests.support.security import make_key
from tests.support.server import ROOT, ServiceProcess
from tests.support.umockdev import Testbed, umockdev_available

CLIENTS = int(os.environ.get("FAULT_CLIENTS", "1000"))
SLOW = int(os.environ.get("FAULT_SLOW_READERS", "10"))
FLOODERS = int(os.environ.get("FAULT_FLOODERS", "100"))
PLUGS = int(os.environ.get("FAULT_PLUGS", "3"))
NOTIFICATIONS = int(os.environ.get("FAULT_NOTIFICATIONS", "200"))
#: server.outgoing_buffer_size for the run: small, so that the slow readers reach it after
#: the kernel's socket buffers (~100 KiB with the readers' small segments) are full.
OUTGOING = 16384
#: Further notifications allowed while waiting for the slow readers to be dropped.
EXTRA = 1000

FLOOD = """
import json, sys
sys.path.insert(0, {root!r})
from bench.unauth_flood import flood_process
class Out:
    def put(self, stats):
        print(json.dumps(stats), flush=True)
flood_process({url!r}, {flooders}, {seconds}, Out())
"""


def dropped_slow(log: str) -> int:
    """Slow readers camsvc dropped: their outgoing buffer full, or no pong to a WebSocket ping."""
    return log.count("outgoing buffer over") + log.count("ping timeout")


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def slow_reader(port: int, key: str) -> socket.socket:
    """An authenticated WebSocket that reads its handshake answer, then never reads again."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)  # small segments: camsvc's kernel buffers stay small
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        (
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            f"X-API-Key: {key}\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


class Clients:
    """Many WebSocket clients on one event loop; each keeps its notifications."""

    def __init__(self, url: str, key: str) -> None:
        self.url = url
        self.key = key
        self.received: list[list[str]] = []
        self.refused: list[str] = []
        self.conns: list = []
        self.tasks: list = []

    async def connect(self, n: int) -> None:
        import websockets

        sem = asyncio.Semaphore(50)

        async def one(i: int) -> None:
            async with sem:
                for _attempt in range(3):
                    try:
                        ws = await websockets.connect(
                            self.url, additional_headers={"X-API-Key": self.key}, open_timeout=30, max_size=None
                        )
                        break
                    except Exception as exc:  # noqa: BLE001 - counted: must not happen
                        self.refused.append(repr(exc)[:200])
                        await asyncio.sleep(0.2)
                else:
                    return
            box: list[str] = []
            self.received.append(box)
            self.conns.append(ws)
            self.tasks.append(asyncio.create_task(self._read(ws, box)))

        await asyncio.gather(*(one(i) for i in range(n)))

    @staticmethod
    async def _read(ws, box: list[str]) -> None:
        try:
            async for message in ws:  # these clients send nothing: all they get is notifications
                box.append(message)  # encoded once per publish: the same text for everyone
        except Exception:  # noqa: BLE001 - a closed connection ends the reader; the counts tell
            pass

    async def close(self) -> None:
        await asyncio.gather(*(ws.close() for ws in self.conns), return_exceptions=True)
        for task in self.tasks:
            task.cancel()


async def scenario(proc: ServiceProcess, bed: Testbed, key: str, operator_key: str) -> dict:
    import websockets

    clients = Clients(proc.url, key)
    t0 = time.monotonic()
    await clients.connect(CLIENTS)
    connected_in = time.monotonic() - t0
    rss_connected = rss_kib(proc.proc.pid)
    slow = [slow_reader(proc.port, key) for _ in range(SLOW)]
    calls: list[float] = []
    seen: list[str] = []  # the operator's own notifications: the reference
    async with websockets.connect(proc.url, additional_headers={"X-API-Key": operator_key}, max_size=None) as op:
        ids = iter(range(1, 10**9))

        async def call(method: str, params: dict | None = None) -> dict:
            req_id = next(ids)
            t = time.perf_counter()
            await op.send(json.dumps({"jsonrpc": "2.0", "id": req_id, "method": method, "params": params or {}}))
            while True:
                raw = await asyncio.wait_for(op.recv(), 30)
                reply = json.loads(raw)
                if "method" in reply and "id" not in reply:
                    seen.append(raw)
                if reply.get("id") == req_id:
                    calls.append(time.perf_counter() - t)
                    assert "result" in reply, reply
                    return reply["result"]

        for _ in range(PLUGS):
            bed.add_camera("lifecam", card="Microsoft LifeCam HD-3000", serial="LC3000X7", port="1.3")
            await asyncio.sleep(0.5)
            bed.remove("lifecam")
            await asyncio.sleep(0.5)
        t1 = time.monotonic()
        # NOTIFICATIONS at least, and on until camsvc dropped every slow reader (at most EXTRA more).
        sent = 0
        while sent < NOTIFICATIONS or (dropped_slow(proc.log()) < SLOW and sent < NOTIFICATIONS + EXTRA):
            await call("set_stream_settings", {"device": "camera0", "bitrate": 1000 + sent % 2})
            sent += 1
        await call("ping")  # every notification published so far is before its answer
        # All published: each normal client must end with what the operator has.
        deadline = time.monotonic() + 60
        want = len(seen)
        while time.monotonic() < deadline:
            if all(len(box) >= want for box in clients.received):
                break
            await asyncio.sleep(0.2)
        delivered_in = time.monotonic() - t1
        await asyncio.sleep(1.0)  # anything extra would show as a difference
        status = await call("get_status")
    rss_after = rss_kib(proc.proc.pid)
    dropped = []
    for sock in slow:
        sock.setblocking(False)
        try:
            while sock.recv(65536):
                pass
            dropped.append(False)  # still open: data waiting, never closed
        except BlockingIOError:
            dropped.append(False)
        except ConnectionResetError:
            dropped.append(True)
        sock.close()
    await clients.close()
    return {
        "clients": clients,
        "connected_in": connected_in,
        "delivered_in": delivered_in,
        "rss_connected": rss_connected,
        "rss_after": rss_after,
        "calls": calls,
        "status": status,
        "want": want,
        "sent": sent,
        "seen": seen,
        "slow_dropped": dropped,
    }


def test_thousand_clients_slow_readers_and_flood(tmp_path):
    ok, reason = umockdev_available()
    if not ok:
        pytest.skip(reason)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = CLIENTS + SLOW + FLOODERS + 256
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(need, 4096)), hard))
    with Testbed() as bed:
        bed.add_camera("c920", card="HD Pro Webcam C920", serial="8A1B2C3D", port="1.1")
        proc = ServiceProcess(
            tmp_path / "camsvc",
            {
                "auth": {"required": True},
                "server": {"max_connections": CLIENTS + SLOW + 50, "outgoing_buffer_size": OUTGOING},
                "discovery": {"enabled": True, "debounce": 0.05},
                "logging": {"level": "warn"},
            },
            env=bed.env(),
            nofile=max(need * 2, 8192),
        )
        key = make_key(proc.tmp / "state" / "api_keys.json", Role.VIEWER, "viewers")
        operator_key = make_key(proc.tmp / "state" / "api_keys.json", Role.OPERATOR, "operator")
        proc.start(timeout=30)
        flood = None
        try:
            code = FLOOD.format(root=str(ROOT), url=proc.url, flooders=FLOODERS, seconds=600)
            flood = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
            time.sleep(1.0)  # the flood is on first
            out = asyncio.run(scenario(proc, bed, key, operator_key))
        finally:
            if flood is not None:
                flood.kill()
                flood.wait()
            log = proc.log()
            proc.stop()
    clients: Clients = out["clients"]
    assert clients.refused == [], f"{len(clients.refused)} authenticated connections refused: {clients.refused[:3]}"
    assert len(clients.received) == CLIENTS
    reference = out["seen"]
    assert len(reference) >= PLUGS * 2 + out["sent"], f"the operator saw {len(reference)} notifications"
    # A client may have more at the start (connected before the operator): the rest is the same.
    short = [len(box) for box in clients.received if box[len(box) - len(reference) :] != reference]
    assert short == [], f"{len(short)} clients missed or reordered notifications (counts {sorted(set(short))[:5]})"
    assert all(out["slow_dropped"]), f"slow readers not dropped: {out['slow_dropped']}\n{log[-3000:]}"
    # Dropped when outgoing_buffer_size is queued for them, or earlier by the WebSocket ping
    # timeout (they answer no ping either) when the run is slow.
    over, pings = log.count("outgoing buffer over"), log.count("ping timeout")
    assert over + pings >= SLOW, f"{over} dropped for the buffer, {pings} for the ping timeout"
    growth = out["rss_after"] - out["rss_connected"]
    assert growth < 64 * 1024, f"camsvc grew by {growth} KiB with {SLOW} slow readers (bounded: {OUTGOING} B each)"
    assert "Traceback" not in log
    calls = sorted(out["calls"])
    print(
        f"\n{CLIENTS} clients (connected in {out['connected_in']:.1f} s) + {SLOW} slow readers + {FLOODERS} "
        f"flooders: {out['want']} notifications each, all delivered in order in "
        f"{out['delivered_in']:.1f} s; slow readers dropped ({over} buffer, {pings} ping timeout); "
        f"operator calls p50 {statistics.median(calls) * 1000:.0f} ms, max {calls[-1] * 1000:.0f} ms; "
        f"camsvc RSS {out['rss_connected'] // 1024} MiB -> {out['rss_after'] // 1024} MiB"
    )
