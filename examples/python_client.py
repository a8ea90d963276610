#!/usr/bin/env python3
"""A minimal camsvc client in plain asyncio with the `websockets` library.

It does not use any of camsvc's own code: copy it into your project and
adapt it.  It connects, authenticates when given a token, prints the server
and its cameras, then prints notifications (camera plugged/unplugged,
recordings, system health) as they arrive.

    pip install websockets            # or: apt install python3-websockets
    python3 python_client.py --url ws://127.0.0.1:8002/ws [--token TOKEN] [--watch 30]

Works with websockets 10.4 (Debian 12) and newer.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import sys

import websockets


class RpcError(Exception):
    def __init__(self, error: dict) -> None:
        self.code = error.get("code")
        self.message = error.get("message", "")
        super().__init__(f"{self.message} ({self.code})")


class Client:
    """JSON-RPC 2.0 over one WebSocket: ``call()`` awaits a response; notifications go to a queue."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future] = {}
        self.notifications: asyncio.Queue = asyncio.Queue()
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        try:
            async for text in self.ws:
                message = json.loads(text)
                if "id" not in message:  # a notification
                    await self.notifications.put(message)
                elif message["id"] in self.pending:
                    self.pending.pop(message["id"]).set_result(message)
        finally:
            for future in self.pending.values():
                future.set_exception(ConnectionError("connection closed"))

    async def call(self, method: str, params: dict | None = None, timeout: float = 10.0):
        request_id = next(self.ids)
        request = {"jsonrpc": "2.0", "method": method, "id": request_id}
        if params is not None:
            request["params"] = params
        future = asyncio.get_running_loop().create_future()
        self.pending[request_id] = future
        await self.ws.send(json.dumps(request))
        response = await asyncio.wait_for(future, timeout)
        if "error" in response:
            raise RpcError(response["error"])
        return response["result"]


async def main(args: argparse.Namespace) -> int:
    async with websockets.connect(args.url, max_size=None) as ws:
        client = Client(ws)
        if args.token:
            auth = await client.call("authenticate", {"auth_token": args.token})
            print(f"authenticated as {auth.get('role')}")
        info = await client.call("get_server_info")
        print(f"{info['name']} {info['version']}, API {info['api_version']}")
        try:
            cameras = await client.call("get_camera_list")
        except RpcError as exc:
            if exc.code != -32601:
                raise
            print("this camsvc does not list cameras")
        else:
            print(f"{cameras['total']} camera(s), {cameras['connected']} connected")
            for cam in cameras["cameras"]:
                print(f"  {cam['camera_id']:<9} {cam['status']:<12} {cam['device']:<12} {cam['name']}")
        if args.watch > 0:
            print(f"watching notifications for {args.watch:g} s", flush=True)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + args.watch
            while (left := deadline - loop.time()) > 0:
                try:
                    note = await asyncio.wait_for(client.notifications.get(), left)
                except TimeoutError:
                    break
                print(f"{note['method']}: {json.dumps(note.get('params'))}", flush=True)
        client.reader.cancel()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Minimal camsvc client (asyncio + websockets).")
    parser.add_argument("--url", default=os.environ.get("CAMSVC_URL", "ws://127.0.0.1:8002/ws"))
    parser.add_argument("--token", default=os.environ.get("CAMSVC_TOKEN"), help="JWT or API key")
    parser.add_argument("--watch", type=float, default=0, help="print notifications for this many seconds")
    try:
        sys.exit(asyncio.run(main(parser.parse_args())))
    except (OSError, websockets.exceptions.WebSocketException) as exc:
        sys.exit(f"cannot talk to camsvc: {exc}")
    except RpcError as exc:
        sys.exit(f"camsvc said: {exc}")
