#!/usr/bin/python3
"""Send one JSON-RPC `ping` over WebSocket and expect "pong" (make test-deb);
with --token, also `authenticate` with it and call `get_camera_list`.

Runs on Debian's python3 with python3-websockets (10.4 on Debian 12; the
asyncio client API used here is the same in later releases).
    ws_ping.py [--wait SECONDS] [--token JWT_OR_KEY] ws://127.0.0.1:PORT/ws
"""

import argparse
import asyncio
import json
import sys
import time

import websockets


async def ping(url, wait, token):
    deadline = time.monotonic() + wait
    while True:
        try:
            async with websockets.connect(url, open_timeout=5) as ws:
                t0 = time.monotonic()
                await ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
                reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
                rtt = time.monotonic() - t0
                print(f"ws_ping: {url} -> {reply} ({rtt * 1000:.1f} ms)")
                if reply != {"jsonrpc": "2.0", "id": 1, "result": "pong"}:
                    return False
                if not token:
                    return True
                for i, (method, params) in enumerate(
                    [("get_camera_list", None), ("authenticate", {"auth_token": token}), ("get_camera_list", None)]
                ):
                    req = {"jsonrpc": "2.0", "id": 10 + i, "method": method}
                    if params:
                        req["params"] = params
                    await ws.send(json.dumps(req))
                    reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    print(f"ws_ping: {method} -> {json.dumps(reply)[:200]}")
                    if i == 0 and reply.get("error", {}).get("code") != -32001:
                        return False  # auth is required: refused before authenticate
                    if i == 1 and not reply.get("result", {}).get("authenticated"):
                        return False
                    if i == 2 and "cameras" not in reply.get("result", {}):
                        return False
                return True
        except (TimeoutError, OSError, websockets.exceptions.InvalidHandshake):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wait", type=float, default=0)
    ap.add_argument("--token")
    ap.add_argument("url")
    args = ap.parse_args()
    sys.exit(0 if asyncio.run(ping(args.url, args.wait, args.token)) else 1)


if __name__ == "__main__":
    main()
