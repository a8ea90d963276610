"""Where camsvc's fsyncs happen: ``strace -f -T`` on a running camsvc while cameras appear.

Owns one check of "the reactor never waits on fsync of the id map": camsvc runs under
``twistd -n camsvc`` preloaded into a umockdev test bed; ``strace -f -T -e
trace=fsync,fdatasync,rename`` is attached while the bed plugs ``--cameras`` new
cameras (each one a new id, so an id-map write); the report lists every fsync with its
thread and duration and fails when one ran on the main (reactor) thread.

    flock /tmp/bench.lock .venv/bin/python bench/fsync_off_reactor.py [--cameras 4]

Needs strace (Debian: strace) and umockdev; root or ptrace permission.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

LINE = re.compile(r"^(\d+)\s+\S+\s+(fsync|fdatasync)\(\d+.*<(\d+\.\d+)>$")
RESUMED = re.compile(r"^(\d+)\s+\S+\s+<\.\.\. (fsync|fdatasync) resumed>.*<(\d+\.\d+)>$")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cameras", type=int, default=4)
    args = ap.parse_args()
    if not shutil.which("strace"):
        print("strace is not installed", file=sys.stderr)
        return 1
    from tests.support.server import ServiceProcess
    from tests.support.umockdev import Testbed

    tmp = Path(tempfile.mkdtemp(prefix="bench-fsync."))
    with Testbed() as tb:
        config = {"discovery": {"enabled": True}, "logging": {"level": "warn"}}
        svc = ServiceProcess(tmp, config, env=tb.env(), wait_ready=True).start()
        out = tmp / "strace.txt"
        try:
            main_pid = svc.proc.pid
            st = subprocess.Popen(
                ["strace", "-f", "-T", "-tt", "-e", "trace=fsync,fdatasync,rename", "-o", str(out), "-p", str(main_pid)]
            )
            time.sleep(1.0)
            for i in range(args.cameras):
                tb.add_camera(f"c{i}", serial=f"FSYNC{i:04d}", port=str(i + 1), video=2 * i)
                time.sleep(0.5)
            time.sleep(1.0)
            st.terminate()
            st.wait(10)
            text = out.read_text()
        finally:
            svc.stop()
            shutil.rmtree(tmp, ignore_errors=True)
    calls = []
    for line in text.splitlines():
        m = LINE.match(line) or RESUMED.match(line)
        if m:
            calls.append((int(m.group(1)), m.group(2), float(m.group(3)) * 1000))
    on_main = [c for c in calls if c[0] == main_pid]
    threads = sorted({c[0] for c in calls})
    longest = max((c[2] for c in calls), default=0.0)
    print(
        f"{len(calls)} fsync/fdatasync calls for {args.cameras} new cameras; threads {threads} "
        f"(reactor thread {main_pid}); longest {longest:.1f} ms; on the reactor thread: {len(on_main)}"
    )
    return 1 if on_main or not calls else 0


if __name__ == "__main__":
    sys.exit(main())
