#!/usr/bin/env python3
"""camsvc's own client module (camsvc.tools.client) from a Twisted program.

Connects (reconnecting with backoff if camsvc restarts), lists the cameras
and prints every camera plug/unplug as it happens::

    python3 twisted_client.py --url ws://127.0.0.1:8002/ws [--token T] [--events N]

camsvc.tools.client ships with camsvc (also in the Debian package); it needs only
Twisted, Autobahn and treq.  ``await`` works on its Deferreds.
"""

from __future__ import annotations

import argparse
import os

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import react

from camsvc.tools.client import Client, RpcError


async def main(reactor, args: argparse.Namespace) -> None:
    client = Client(args.url, token=args.token, reactor=reactor, reconnect=True)
    client.on_state(lambda state, detail: print(f"[{state}] {detail}", flush=True))
    await client.connect()
    try:
        cameras = await client.call("get_camera_list")
    except RpcError as exc:  # e.g. -32601 on a server without discovery
        print(f"no camera list: {exc.message} ({exc.code})")
    else:
        for cam in cameras["cameras"]:
            print(f"{cam['camera_id']}: {cam['status']} {cam['name']} {cam['resolution']}", flush=True)
    done: Deferred = Deferred()
    seen = 0

    def changed(method: str, params: dict) -> None:
        nonlocal seen
        if method != "camera_status_update":
            return
        print(f"{params['camera_id']} is now {params['status']} ({params['name']})", flush=True)
        seen += 1
        if seen == args.events and not done.called:
            done.callback(None)

    client.subscribe(changed)
    if args.events is None:
        print("waiting for camera changes (Ctrl-C to stop)", flush=True)
        await Deferred()  # forever: Ctrl-C stops the reactor, which closes the client
    elif args.events > 0:
        print(f"waiting for {args.events} camera change(s)", flush=True)
        await done
    await client.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("CAMSVC_URL", "ws://127.0.0.1:8002/ws"))
    parser.add_argument("--token", default=os.environ.get("CAMSVC_TOKEN"))
    parser.add_argument("--events", type=int, help="exit after this many camera changes (default: run until Ctrl-C)")
    arguments = parser.parse_args()
    react(lambda reactor: ensureDeferred(main(reactor, arguments)))
