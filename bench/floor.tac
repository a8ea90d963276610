"""The floor of camsvc's stack: a minimal JSON-RPC ``ping`` server on Twisted + Autobahn.

Owns one benchmark reference, not a camsvc feature.  ``bench/ping.py`` and ``bench/rss.py``
start it next to camsvc, with the same interpreter and libraries and the same way camsvc
runs (twistd's runner, ``-n``, no plugin scan — camsvc runs as ``python -m camsvc``, this as
``-y`` — and pyOpenSSL kept unloaded as camsvc does without TLS), and report
camsvc's figures as ratios to it:

    python -c "<install camsvc.ops.lean's hook>; from twisted.scripts.twistd import run; run()" \
        -n --pidfile= -y bench/floor.tac          # port in $FLOOR_PORT

It is what anyone would write first with this stack: a twisted.web ``Site`` with an Autobahn
``WebSocketResource`` on ``/ws`` and ``/health/live``, Autobahn's default options, each text
message decoded with ``json.loads``, answered with ``json.dumps`` and ``sendMessage``.  No
sessions, limits, metrics or logging: what camsvc adds to that is what the ratio measures.
"""

import json
import os

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from twisted.application import internet, service
from twisted.web.resource import Resource
from twisted.web.server import Site


class PingProtocol(WebSocketServerProtocol):
    def onMessage(self, payload, isBinary):
        try:
            request = json.loads(payload)
        except ValueError:
            self.sendMessage(b'{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}')
            return
        if request.get("method") == "ping":
            reply = {"jsonrpc": "2.0", "result": "pong", "id": request.get("id")}
        else:
            reply = {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": request.get("id")}
        self.sendMessage(json.dumps(reply, separators=(",", ":")).encode())


class Live(Resource):
    isLeaf = True

    def render_GET(self, request):
        return b"{}"


root = Resource()
health = Resource()
health.putChild(b"live", Live())
root.putChild(b"health", health)
factory = WebSocketServerFactory()
factory.protocol = PingProtocol
root.putChild(b"ws", WebSocketResource(factory))

application = service.Application("floor")
internet.TCPServer(int(os.environ["FLOOR_PORT"]), Site(root), interface="127.0.0.1").setServiceParent(application)
