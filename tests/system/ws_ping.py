#!/usr/bin/python3
"""Send one JSON-RPC `ping` over WebSocket and expect "pong" (make test-deb).

Runs on Debian's python3 with python3-websockets (10.4 on Debian 12; the
asyncio client API used here is the same in later releases).
    ws_ping.py [--wait SECONDS] ws://127.0.0.1:PORT/ws
"""

import argparse
import asyncio
import json
import sys
import time

import websockets


async def ping(url, wait):
    deadline = time.monotonic() + wait
    while True:
        try:
            async with websockets.connect(url, open_timeout=5) as ws:
                t0 = time.monotonic()
                await ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
                reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
                rtt = time.monotonic() - t0
                break
        except (TimeoutError, OSError, websockets.exceptions.InvalidHandshake):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
    print(f"ws_ping: {url} -> {reply} ({rtt * 1000:.1f} ms)")
    return reply == {"jsonrpc": "2.0", "id": 1, "result": "pong"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wait", type=float, default=0)
    ap.add_argument("url")
    args = ap.parse_args()
    sys.exit(0 if asyncio.run(ping(args.url, args.wait)) else 1)


if __name__ == "__main__":
    main()
