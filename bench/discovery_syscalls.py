"""Discovery's critical path in syscalls: what camsvc's reactor thread does between
reading a camera's uevent and sending its ``camera_status_update`` frame.

Owns one measurement that host load cannot blur: ``strace`` attached to the main
(reactor) thread of camsvc under ``twistd -n camsvc`` (default discovery settings,
log level info), preloaded into a umockdev test bed, while the bed plugs and unplugs
one camera ``-n`` times, ``--spacing`` seconds apart (every add a camera never seen
unless ``--replug``).  For every change it counts the syscalls from the ``recvmsg`` of
the capture node's uevent to the ``sendto`` of the frame, and among them the reactor
turns (``epoll_wait``), the other uevents handled first (``recvmsg``: the metadata
node's), the QUERYCAP round trips to the test bed (``connect`` to an
ioctl socket) and the log lines written (``write`` to stdout).

    flock /tmp/bench.lock .venv/bin/python bench/discovery_syscalls.py [-n 20] [--replug]

Needs strace (Debian: strace) and umockdev; root or ptrace permission.  (Every uevent
costs libudev three ``getrandom`` calls for its hash maps, and the umockdev preload an
``access`` and two ``rt_sigprocmask`` per trapped call: the same for any listener.)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CALL = re.compile(r"^(?:\d+\s+)?([a-z_0-9]+)\(")
#: The capture node's uevent (its metadata sibling is video1): the bed's timestamp is taken
#: right before it, and the first frame after it is that change's.
CAPTURE_NODE = "/video4linux/video0\\0"


def windows(lines: list[str]) -> list[dict]:
    """One dict per change: the syscalls from the capture node's uevent ``recvmsg`` up to
    the next ``camera_status_update`` frame's ``sendto``."""
    out, current = [], None
    for line in lines:
        m = CALL.match(line)
        if not m:
            continue
        name = m.group(1)
        if current is None:
            if name == "recvmsg" and "libudev" in line and CAPTURE_NODE in line:
                action = "add" if "ACTION=add" in line else "remove" if "ACTION=remove" in line else "other"
                current = {"kind": action, "syscalls": 0, "epoll_wait": 0, "uevents": 1, "querycap": 0, "log_lines": 0}
            continue
        if name in ("sendto", "send", "write", "writev") and "camera_status_update" in line:
            out.append(current)
            current = None
            continue
        current["syscalls"] += 1
        if name == "epoll_wait":
            current["epoll_wait"] += 1
        elif name == "recvmsg" and "libudev" in line:
            current["uevents"] += 1
        elif name == "connect" and "/ioctl/" in line:
            current["querycap"] += 1
        elif name == "write" and line.startswith("write(1,"):
            current["log_lines"] += 1
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=20, help="changes (default 20)")
    ap.add_argument("--spacing", type=float, default=0.6, help="seconds between changes (default 0.6)")
    ap.add_argument("--replug", action="store_true", help="the same camera comes back (default: a new one each time)")
    args = ap.parse_args()
    if not shutil.which("strace"):
        print("strace is not installed", file=sys.stderr)
        return 1
    from bench.discovery_latency import FrameReader
    from tests.support.server import ServiceProcess
    from tests.support.umockdev import Testbed

    tmp = Path(tempfile.mkdtemp(prefix="bench-syscalls."))
    out = tmp / "strace.txt"
    try:
        with Testbed() as tb:
            tb.add_camera("c0", serial="SYS0000", card="Bench Cam", port="1", video=0)
            config = {"discovery": {"enabled": True}, "logging": {"level": "info"}}
            svc = ServiceProcess(tmp, config, env=tb.env(), wait_ready=True).start()
            reader = FrameReader("127.0.0.1", svc.port)
            reader.start()
            time.sleep(1.0)
            # the main thread only (no -f): the reactor's critical path
            st = subprocess.Popen(["strace", "-s", "256", "-o", str(out), "-p", str(svc.proc.pid)])
            time.sleep(1.0)
            present = True
            try:
                for i in range(args.n):
                    if present:
                        tb.remove("c0")
                    else:
                        serial = "SYS0000" if args.replug else f"SYS{i:04d}"
                        tb.add_camera("c0", serial=serial, card="Bench Cam", port="1", video=0)
                    present = not present
                    time.sleep(args.spacing)
            finally:
                st.terminate()
                st.wait(10)
                reader.close()
                svc.stop()
        found = windows(out.read_text(errors="replace").splitlines())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result = {"mode": "replug" if args.replug else "new cameras", "changes": args.n}
    for kind in ("add", "remove"):
        rows = [w for w in found if w["kind"] == kind]
        result[kind] = {
            "n": len(rows),
            **{
                key: statistics.median([w[key] for w in rows]) if rows else None
                for key in ("syscalls", "epoll_wait", "uevents", "querycap", "log_lines")
            },
        }
        r = result[kind]
        if rows:
            print(
                f"{kind:6s} n={r['n']:3d}  median per change, uevent -> frame: {r['syscalls']:g} syscalls, "
                f"{r['epoll_wait']:g} reactor turns, {r['uevents']:g} uevents read, {r['querycap']:g} QUERYCAP "
                f"round trips, {r['log_lines']:g} log lines"
            )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
