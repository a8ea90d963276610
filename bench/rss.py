"""Idle resident memory of a running camsvc (VmRSS), and what its imports cost.

Usage:
    python bench/rss.py [--python /usr/bin/python3] [--seconds 5]

Starts ``python -m camsvc -n camsvc`` (as the unit does) with a loopback config (TLS off, auth off,
discovery off unless --discovery, MediaMTX pointed at a closed port), waits
until /health/live answers, idles for --seconds, and prints VmRSS, RssAnon
and RssFile of the service process, then stops it.  With
``--python /usr/bin/python3`` it measures on Debian's packages (the budget's
reference: idle RSS <= 35 MB with TLS off).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


FLOOR = """
import sys
from camsvc.ops.lean import _RefuseTLSStack  # loaded the way camsvc loads its dependencies: no pyOpenSSL
sys.meta_path.insert(0, _RefuseTLSStack())
from twisted.internet import reactor
from twisted.web.resource import Resource
from twisted.web.server import Site
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.twisted.resource import WebSocketResource
import treq, pyudev, yaml

class Live(Resource):
    isLeaf = True
    def render_GET(self, request):
        return b"{}"

root = Resource()
health = Resource()
health.putChild(b"live", Live())
root.putChild(b"health", health)
factory = WebSocketServerFactory()
factory.protocol = WebSocketServerProtocol
root.putChild(b"ws", WebSocketResource(factory))
reactor.listenTCP(int(sys.argv[1]), Site(root), interface="127.0.0.1")
reactor.run()
"""


def status(pid: int) -> dict:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--discovery", action="store_true")
    parser.add_argument(
        "--floor",
        action="store_true",
        help="measure the dependency floor instead: a bare Twisted web Site with an Autobahn "
        "WebSocket resource and treq imported (what camsvc is built from), no camsvc code",
    )
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="camsvc-rss-"))
    port = free_port()
    (tmp / "c.yaml").write_text(
        f"""
server: {{host: 127.0.0.1, port: {port}}}
auth: {{required: false, jwt_secret_file: {tmp}/jwt, api_keys_file: {tmp}/keys.json}}
mediamtx: {{api_url: "http://127.0.0.1:{free_port()}"}}
discovery: {{enabled: {str(args.discovery).lower()}}}
storage: {{recordings_dir: {tmp}/r, snapshots_dir: {tmp}/s, state_dir: {tmp}/st}}
logging: {{level: warn}}
"""
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [
            args.python,
            "-m",
            "camsvc",
            "-n",
            "--pidfile=",
            "camsvc",
            "--config",
            str(tmp / "c.yaml"),
        ],
        cwd=tmp,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("camsvc did not start") from None
                time.sleep(0.05)
        time.sleep(args.seconds)
        figures = status(proc.pid)
        version = subprocess.run(
            [args.python, "-c", "import twisted; print(twisted.__version__)"], capture_output=True, text=True
        ).stdout.strip()
        what = "dependency floor (no camsvc)" if args.floor else "camsvc"
        print(f"{what}: python={args.python} twisted={version} idle {args.seconds:.0f}s")
        print(" ".join(f"{k}={v:.1f}MB" for k, v in figures.items()))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)


if __name__ == "__main__":
    main()
