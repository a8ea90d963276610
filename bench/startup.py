"""Start -> ready: how long ``python -m camsvc -n camsvc`` (the unit's start) takes until READY=1.

Owns one measurement.  Binds a unix datagram socket, starts camsvc with
``NOTIFY_SOCKET`` pointing at it (exactly what systemd does for
``Type=notify``), and times from just before ``exec`` to the ``READY=1``
datagram: interpreter start, imports, config, listening, first camera
enumeration.  MediaMTX is pointed at a closed port (camsvc does not wait for
it to be ready); discovery runs (no cameras on this machine) unless
``--no-discovery``.

    python bench/startup.py [--runs 10] [--python /usr/bin/python3]

With ``--python /usr/bin/python3`` it runs on Debian's packages.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_run(python: str, tmp: Path, discovery: bool) -> float:
    port = free_port()
    config = tmp / "c.yaml"
    config.write_text(
        f"""
server: {{host: 127.0.0.1, port: {port}}}
auth: {{required: false, jwt_secret_file: {tmp}/jwt, api_keys_file: {tmp}/keys.json}}
mediamtx: {{api_url: "http://127.0.0.1:{free_port()}"}}
discovery: {{enabled: {str(discovery).lower()}}}
storage: {{recordings_dir: {tmp}/r, snapshots_dir: {tmp}/s, state_dir: {tmp}/st}}
logging: {{level: warn}}
"""
    )
    sock_path = tmp / f"notify-{port}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(30)
    env = dict(os.environ, PYTHONPATH=str(ROOT), NOTIFY_SOCKET=str(sock_path))
    start = time.monotonic()
    proc = subprocess.Popen(
        [
            python,
            "-m",
            "camsvc",
            "-n",
            "--pidfile=",
            "camsvc",
            "--config",
            str(config),
        ],
        cwd=tmp,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            message = sock.recv(4096).decode()
            if "READY=1" in message.split("\n"):
                return time.monotonic() - start
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        sock.close()
        sock_path.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--no-discovery", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="camsvc-start-"))
    one_run(args.python, tmp, not args.no_discovery)  # warm the page cache and .pyc files
    times = [one_run(args.python, tmp, not args.no_discovery) for _ in range(args.runs)]
    times.sort()
    print(
        f"start -> READY=1 over {args.runs} runs ({args.python}): "
        f"p50 {statistics.median(times) * 1000:.0f} ms, min {times[0] * 1000:.0f} ms, max {times[-1] * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
