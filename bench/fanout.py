"""One event to many clients: uevent -> the same ``camera_status_update`` at every client.

Owns one measurement.  camsvc runs under ``twistd -n camsvc`` preloaded into a
umockdev test bed (as in ``bench/discovery_latency.py``); this process opens
``--clients`` WebSocket connections (default 1000: minimal RFC 6455 clients on
one selector, each timestamping a frame the moment its bytes are read), then
the test bed plugs and unplugs one emulated camera ``--rounds`` times.  For
each round: time from the uevent to the first client, to the median client and
to the *last* client holding the notification.  The budget is the last one:
one event to 1,000 clients within 50 ms.

    python bench/fanout.py [--clients 1000] [--rounds 10]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import resource
import selectors
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Client:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise RuntimeError("closed during the handshake")
            head += chunk
        head, self.buf = head.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise RuntimeError(f"handshake refused: {head[:120]!r}")
        self.sock.setblocking(False)
        self.notes: list[tuple[float, dict]] = []

    def read(self, now: float) -> None:
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        self.buf += data
        while len(self.buf) >= 2:
            opcode, length, pos = self.buf[0] & 0x0F, self.buf[1] & 0x7F, 2
            if length == 126:
                length, pos = int.from_bytes(self.buf[2:4], "big"), 4
            elif length == 127:
                length, pos = int.from_bytes(self.buf[2:10], "big"), 10
            if len(self.buf) < pos + length:
                return
            payload, self.buf = self.buf[pos : pos + length], self.buf[pos + length :]
            if opcode == 1:
                msg = json.loads(payload)
                if msg.get("method") == "camera_status_update":
                    self.notes.append((now, msg["params"]))
            elif opcode == 9:  # ping -> pong (masked, as a client must)
                mask = os.urandom(4)
                body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
                self.sock.send(bytes([0x8A, 0x80 | len(payload)]) + mask + body)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()

    from tests.support.server import ServiceProcess
    from tests.support.umockdev import Testbed, umockdev_available

    ok, reason = umockdev_available()
    if not ok:
        print(f"umockdev not available: {reason}", file=sys.stderr)
        return 1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * args.clients + 200
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))  # inherited by camsvc
    tmp = Path(tempfile.mkdtemp(prefix="bench-fanout."))
    config = {
        "discovery": {"enabled": True},
        "server": {"max_connections": args.clients + 10},
        "logging": {"level": "warn"},
    }
    results = []
    with Testbed() as tb:
        svc = ServiceProcess(tmp, config, env=tb.env(), wait_ready=False).start()
        try:
            clients = [Client(svc.port) for _ in range(args.clients)]
            sel = selectors.DefaultSelector()
            for c in clients:
                sel.register(c.sock, selectors.EVENT_READ, c)
            present = False
            for rnd in range(args.rounds):
                for c in clients:
                    c.notes.clear()
                want = "DISCONNECTED" if present else "CONNECTED"
                if present:
                    sent = tb.remove("cam")["t"]
                else:
                    sent = tb.add_camera("cam", serial="FANOUT1", card="Fanout Cam", port="1")["t"]
                present = not present
                arrivals: dict[int, float] = {}
                deadline = time.monotonic() + 10
                while len(arrivals) < len(clients) and time.monotonic() < deadline:
                    for key, _ in sel.select(timeout=0.5):
                        now = time.monotonic()
                        client = key.data
                        client.read(now)
                        if id(client) not in arrivals:
                            for t, params in client.notes:
                                if params.get("status") == want:
                                    arrivals[id(client)] = t
                                    break
                if len(arrivals) < len(clients):
                    print(
                        f"round {rnd}: only {len(arrivals)} of {len(clients)} clients got the notification",
                        file=sys.stderr,
                    )
                    return 1
                lat = sorted((t - sent) * 1000 for t in arrivals.values())
                results.append((lat[0], statistics.median(lat), lat[-1]))
                time.sleep(0.6)  # outside the camera's debounce window
        finally:
            svc.stop()
    firsts, medians, lasts = zip(*results, strict=True)
    print(
        f"{args.clients} clients, {args.rounds} events: uevent -> first client p50 {statistics.median(firsts):.1f} ms, "
        f"median client p50 {statistics.median(medians):.1f} ms, last client p50 {statistics.median(lasts):.1f} ms "
        f"(worst round {max(lasts):.1f} ms)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
