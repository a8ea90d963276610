"""The minimal pyudev + Autobahn broadcaster: the baseline camsvc's discovery is held to.

Owns nothing but the shortest path from a udev event to a WebSocket frame: a
``pyudev.Monitor`` (subsystem ``video4linux``) read on a Twisted reactor, and for every
event of a ``videoN`` node udev calls a capture node (or any "remove") one JSON-RPC
``camera_status_update`` notification (``device``, ``camera_id``, ``status``) sent to
every client of an Autobahn WebSocket server at ``/ws``.  No ids, no probing, no
registry, no logging: what a service cannot do with less.

    python bench/broadcaster.py --port PORT

``bench/discovery_latency.py --compare`` runs it and camsvc against the same test bed in
one run and prints the ratio of their uevent → client latencies.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()

    import pyudev
    from autobahn.twisted.resource import WebSocketResource
    from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
    from twisted.internet import reactor
    from twisted.internet.interfaces import IReadDescriptor
    from twisted.web.resource import Resource
    from twisted.web.server import Site
    from zope.interface import implementer

    clients: set = set()

    class Proto(WebSocketServerProtocol):
        def onOpen(self) -> None:
            clients.add(self)

        def onClose(self, wasClean, code, reason) -> None:
            clients.discard(self)

    context = pyudev.Context()
    monitor = pyudev.Monitor.from_netlink(context)
    monitor.filter_by("video4linux")
    monitor.start()

    @implementer(IReadDescriptor)
    class Reader:
        def fileno(self) -> int:
            return monitor.fileno()

        def doRead(self) -> None:
            while True:
                device = monitor.poll(timeout=0)
                if device is None:
                    return
                node = device.device_node or ""
                if not os.path.basename(node).startswith("video"):
                    continue
                if device.action == "remove":
                    status = "DISCONNECTED"
                elif ":capture:" in (device.properties.get("ID_V4L_CAPABILITIES") or ""):
                    status = "CONNECTED"
                else:
                    continue
                params = {"device": node, "camera_id": node, "status": status, "resolution": ""}
                frame = json.dumps({"jsonrpc": "2.0", "method": "camera_status_update", "params": params}).encode()
                for client in list(clients):
                    client.sendMessage(frame)

        def connectionLost(self, reason) -> None:
            pass

        def logPrefix(self) -> str:
            return "udev"

    factory = WebSocketServerFactory(f"ws://127.0.0.1:{args.port}")
    factory.protocol = Proto
    root = Resource()
    root.putChild(b"ws", WebSocketResource(factory))
    root.putChild(b"health", Resource())
    reactor.listenTCP(args.port, Site(root), interface="127.0.0.1")
    reactor.addReader(Reader())
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
