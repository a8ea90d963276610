"""Discovery's own cost: CPU time camsvc spends per uevent, and uevent → hand-off to the hub.

Owns one measurement that a busy host cannot blur much: the *CPU time* (``time.process_time``,
camsvc has no threads) the service spends from the moment the reactor calls the udev
reader's ``doRead`` to the moment the ``camera_status_update`` frame is handed to a
connection — pyudev/libudev, the event handling, the registry, the observers, JSON
encoding.  Wall-clock latencies on a loaded machine include time the process waits for
a CPU; this figure does not.  Also reported: the wall-clock time from the helper's
uevent timestamp to that hand-off (no WebSocket, no client).

    /work/main/.venv/bin/python bench/discovery_cpu.py [-n 200] [--cameras 4]
    BENCH_PROFILE=/tmp/discovery.prof ... (cProfile of the event handling, for pstats)

The service under test is the real App (``camsvc.tap.build``: discovery with the real
pyudev backend, the API module's notifier, the hub) on a real reactor in a preloaded
child process (``--serve``); a stand-in hub connection records the hand-off.  The probe
children run as in production (they are not counted: other processes).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.stats import summary  # noqa: E402

DEBOUNCE = 0.3
MARGIN = 0.1


def serve() -> None:
    """The preloaded child: camsvc's App on the reactor, reporting every hand-off."""
    from twisted.internet import protocol, reactor, stdio

    import camsvc.cameras.discovery as discovery
    from camsvc.config import parse_config_dict
    from camsvc.tap import build

    state = tempfile.mkdtemp(prefix="bench-discovery-cpu.")
    config = parse_config_dict(
        {
            "server": {"host": "127.0.0.1", "port": 18998},
            "auth": {"required": False},
            "storage": {"state_dir": state, "recordings_dir": state, "snapshots_dir": state},
            "mediamtx": {"enabled": False},
            "logging": {"level": "info"},
        }
    )
    app = build(config, reactor)
    out = sys.stdout
    mark = {"wall": 0.0, "cpu": 0.0}

    original = discovery.DiscoveryService.read_events

    profile_to = os.environ.get("BENCH_PROFILE")  # a path: cProfile of every read_events
    profiler = None
    if profile_to:
        import cProfile

        profiler = cProfile.Profile()

    def read_events(self):
        mark["wall"], mark["cpu"] = time.monotonic(), time.process_time()
        if profiler is None:
            return original(self)
        profiler.enable()
        try:
            return original(self)
        finally:
            profiler.disable()

    discovery.DiscoveryService.read_events = read_events

    class Connection:
        session = app.make_session("bench", peer="bench", host="127.0.0.1")

        def send_notification(self, text, shared):
            now, cpu = time.monotonic(), time.process_time()
            params = json.loads(text)["params"]
            out.write(json.dumps({"t": now, "cpu": cpu - mark["cpu"], "wall": now - mark["wall"], "p": params}) + "\n")
            out.flush()
            return True

    app.hub.add(Connection())
    app.discovery.startService()
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()

    class Quit(protocol.Protocol):
        def connectionLost(self, reason):
            if profiler is not None:
                profiler.dump_stats(profile_to)
            app.discovery.stopService()
            shutil.rmtree(state, ignore_errors=True)
            reactor.stop()

    stdio.StandardIO(Quit())
    reactor.run()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=200, help="add/remove uevents (default 200)")
    ap.add_argument("--cameras", type=int, default=4, help="cameras taking turns (default 4)")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve()
        return 0

    from tests.support.umockdev import Testbed, umockdev_available

    ok, reason = umockdev_available()
    if not ok:
        print(f"umockdev not available: {reason}", file=sys.stderr)
        return 1
    cpu, handoff = [], []
    kinds: list[str] = []
    with Testbed() as tb:
        for i in range(args.cameras):
            tb.add_camera(f"cam{i}", serial=f"CPU{i}", card="Bench Cam", port=str(i + 1), video=2 * i)
        child = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=tb.env(),
            text=True,
        )
        try:
            while "ready" not in json.loads(child.stdout.readline()):
                pass
            tb.wait_for_listeners(1)
            time.sleep(1.0)  # start-up probes
            present = [True] * args.cameras
            last: dict = {}
            for i in range(args.n):
                k = i % args.cameras
                due = max(last.get(k, 0) + DEBOUNCE + MARGIN, last.get("any", 0) + (DEBOUNCE + MARGIN) / args.cameras)
                if due > time.monotonic():
                    time.sleep(due - time.monotonic())
                if present[k]:
                    reply, want = tb.remove(f"cam{k}"), "DISCONNECTED"
                else:
                    reply = tb.add_camera(f"cam{k}", serial=f"CPU{k}", card="Bench Cam", port=str(k + 1), video=2 * k)
                    want = "CONNECTED"
                present[k] = not present[k]
                last[k] = last["any"] = reply["t"]
                while True:
                    msg = json.loads(child.stdout.readline())
                    p = msg.get("p")
                    if p and p["device"] == f"/dev/video{2 * k}" and p["status"] == want and msg["t"] >= reply["t"]:
                        break
                kinds.append("add" if want == "CONNECTED" else "remove")
                cpu.append(msg["cpu"] * 1000)
                handoff.append((msg["t"] - reply["t"]) * 1000)
        finally:
            child.stdin.close()
            child.wait(timeout=30)
    result = {
        "events": len(cpu),
        "cpu_per_event": summary(cpu),
        "uevent_to_handoff": summary(handoff),
        **{
            f"{what}_{kind}": summary([v for v, k in zip(values, kinds, strict=True) if k == kind])
            for what, values in (("cpu", cpu), ("handoff", handoff))
            for kind in ("add", "remove")
        },
        "loadavg_1min": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
    }
    print(
        f"{len(cpu)} uevents: camsvc CPU from doRead to hand-off p50 {result['cpu_per_event']['p50_ms']} ms, "
        f"p99 {result['cpu_per_event']['p99_ms']} ms, max {result['cpu_per_event']['max_ms']} ms; "
        f"wall uevent -> hand-off p50 {result['uevent_to_handoff']['p50_ms']} ms, "
        f"p99 {result['uevent_to_handoff']['p99_ms']} ms (load {result['loadavg_1min']} on {result['cpus']} CPUs)"
    )
    for kind in ("add", "remove"):
        c, h = result[f"cpu_{kind}"], result[f"handoff_{kind}"]
        if c["n"]:
            print(
                f"  {kind:6s} n={c['n']:4d}  CPU p50 {c['p50_ms']} ms, p99 {c['p99_ms']} ms; "
                f"wall to hand-off p50 {h['p50_ms']} ms, p99 {h['p99_ms']} ms"
            )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
