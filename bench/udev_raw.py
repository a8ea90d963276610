"""Raw udev latency on umockdev: uevent sent by the test bed → pyudev event on a reactor.

Owns one measurement, not a camsvc feature: how long a uevent takes from
``UMockdev.Testbed.uevent()`` (timestamp taken by the helper right before sending) to
the moment a ``pyudev.Monitor`` whose fd is registered with ``reactor.addReader`` hands
the device to Python (``doRead`` draining with ``monitor.poll(timeout=0)``).  Both times
are CLOCK_MONOTONIC, which is system-wide.

    /work/main/.venv/bin/python bench/udev_raw.py [-n 200] [--kind change|storm]

``change``: N ``change`` uevents on an existing capture node (pure transport).
``storm``: N/2 remove/add pairs of the node (``add`` includes umockdev creating the sysfs
entry, as ``add_device`` sends the event itself at the end).
The listener is a preloaded venv subprocess (``--listener`` mode of this file).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.stats import pct  # noqa: E402


def listener() -> None:
    """Run in the preloaded child: a Twisted reactor with the monitor fd as a reader."""
    import pyudev
    from twisted.internet import reactor
    from twisted.internet.interfaces import IReadDescriptor
    from zope.interface import implementer

    ctx = pyudev.Context()
    mon = pyudev.Monitor.from_netlink(ctx)
    mon.filter_by("video4linux")
    try:
        mon.set_receive_buffer_size(4 * 1024 * 1024)
        rcvbuf = "ok"
    except Exception as e:  # report, the bench goes on
        rcvbuf = repr(e)
    mon.start()
    out = sys.stdout

    @implementer(IReadDescriptor)
    class Reader:
        def fileno(self):
            return mon.fileno()

        def doRead(self):
            while True:
                dev = mon.poll(timeout=0)
                if dev is None:
                    return
                out.write(json.dumps({"t": time.monotonic(), "action": dev.action, "seq": dev.sequence_number}) + "\n")
                out.flush()

        def connectionLost(self, reason):
            pass

        def logPrefix(self):
            return "udev"

    reactor.addReader(Reader())
    out.write(json.dumps({"ready": True, "rcvbuf": rcvbuf}) + "\n")
    out.flush()
    # exit when stdin closes
    from twisted.internet import protocol, stdio

    class Quit(protocol.Protocol):
        def connectionLost(self, reason):
            reactor.stop()

    stdio.StandardIO(Quit())
    reactor.run()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=200, help="number of events (default 200)")
    ap.add_argument("--kind", choices=("change", "storm"), default="change")
    ap.add_argument("--listener", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.listener:
        listener()
        return 0

    from tests.support.umockdev import Testbed, umockdev_available

    ok, reason = umockdev_available()
    if not ok:
        print(f"umockdev not available: {reason}")
        return 1
    with Testbed() as tb:
        tb.add_camera("cam", serial="BENCH1", metadata=False)
        child = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--listener"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=tb.env(),
            text=True,
        )
        try:
            hello = json.loads(child.stdout.readline())
            tb.wait_for_listeners(1)
            sent: list[float] = []
            if args.kind == "change":
                for _ in range(args.n):
                    sent.append(tb.uevent("change", name="cam")["t"])
            else:
                r = tb.storm("cam", args.n // 2)
                for t_rm, t_add in r["times"]:
                    sent += [t_rm, t_add]
            got = []
            for _ in sent:
                got.append(json.loads(child.stdout.readline()))
        finally:
            child.stdin.close()
            child.wait(timeout=10)
    lat = [(g["t"] - s) * 1000 for g, s in zip(got, sent, strict=False)]
    res = {
        "kind": args.kind,
        "events": len(lat),
        "p50_ms": round(statistics.median(lat), 3),
        "p99_ms": round(pct(lat, 99), 3),
        "max_ms": round(max(lat), 3),
        "set_receive_buffer_size": hello["rcvbuf"],
    }
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
