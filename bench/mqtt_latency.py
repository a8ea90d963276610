"""MQTT latency: uevent -> the camera's state message at an MQTT subscriber.

camsvc runs under ``twistd -n camsvc`` (default discovery settings, the MQTT
bridge on, QoS 1, Home Assistant discovery on) preloaded into a umockdev test
bed, connected to a real Mosquitto on loopback (tests/support/mosquitto.py).  A
paho subscriber in this process timestamps every message on
``camsvc/bench/cameras/+/state`` the moment its network thread hands it over.
The uevent timestamp is the test-bed helper's, taken right before it sends the
capture node's uevent (CLOCK_MONOTONIC is system-wide), so the figure covers
libudev, the reactor, discovery, the registry, the bridge, paho, the broker and
the subscriber's client.

    .venv/bin/python bench/mqtt_latency.py [-n 200] [--cameras 8] [--json]

The same cameras are unplugged and plugged again in turn (known ids, cached
capabilities), each camera's events at least ``debounce + 100 ms`` apart.
Reported: p50/p99/max of uevent -> the state message with the new status
(CONNECTED for an add, DISCONNECTED for a remove).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.stats import summary  # noqa: E402

DEBOUNCE = 0.3  # camsvc's default discovery.debounce
MARGIN = 0.1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=200, help="add/remove uevents to measure (default 200)")
    ap.add_argument("--cameras", type=int, default=8, help="cameras taking turns (default 8)")
    ap.add_argument("--json", action="store_true", help="print only the JSON result")
    args = ap.parse_args()

    import paho.mqtt.client as paho

    from tests.support.mosquitto import PAHO_V2, Broker
    from tests.support.server import ServiceProcess
    from tests.support.umockdev import Testbed, umockdev_available

    ok, reason = umockdev_available()
    if not ok:
        print(f"umockdev not available: {reason}", file=sys.stderr)
        return 1
    tmp = Path(tempfile.mkdtemp(prefix="bench-mqtt."))
    broker = Broker(tmp / "broker").start()
    received: list[tuple[float, dict]] = []
    lock = threading.Lock()

    def on_message(client, userdata, msg):
        t = time.monotonic()
        if msg.payload:
            with lock:
                received.append((t, json.loads(msg.payload)))

    client = paho.Client(paho.CallbackAPIVersion.VERSION2) if PAHO_V2 else paho.Client()
    client.on_message = on_message
    client.connect("127.0.0.1", broker.port)
    client.subscribe("camsvc/bench/cameras/+/state", qos=1)
    client.loop_start()
    events = []  # (kind, t_sent, device)
    load_before = os.getloadavg()
    slot = (DEBOUNCE + MARGIN) / args.cameras
    try:
        with Testbed() as tb:
            for i in range(args.cameras):
                tb.add_camera(f"cam{i}", serial=f"BENCH{i:04d}", card="Bench Cam", port=str(i + 1), video=2 * i)
            config = {
                "discovery": {"enabled": True},
                "logging": {"level": "info"},
                "mqtt": {"enabled": True, "url": broker.url, "host_id": "bench"},
            }
            svc = ServiceProcess(tmp / "camsvc", config, env=tb.env(), wait_ready=True).start()
            try:
                time.sleep(1.5)  # start-up probes, the first retained burst
                present = dict.fromkeys(range(args.cameras), True)
                last: dict = {}
                for i in range(args.n):
                    idx = i % args.cameras
                    due = max(last.get(idx, 0) + DEBOUNCE + MARGIN, last.get("any", 0) + slot)
                    delay = due - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    if present[idx]:
                        reply = tb.remove(f"cam{idx}")
                        events.append(("remove", reply["t"], f"/dev/video{2 * idx}"))
                    else:
                        reply = tb.add_camera(
                            f"cam{idx}", serial=f"BENCH{idx:04d}", card="Bench Cam", port=str(idx + 1), video=2 * idx
                        )
                        events.append(("add", reply["t"], reply["devnode"]))
                    last[idx] = last["any"] = reply["t"]
                    present[idx] = not present[idx]
                time.sleep(2.0)
            finally:
                svc.stop()
    finally:
        client.loop_stop()
        broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    with lock:
        frames = list(received)
    latencies = {"add": [], "remove": []}
    missing = 0
    for kind, t_sent, device in events:
        want = "CONNECTED" if kind == "add" else "DISCONNECTED"
        hit = next((t for t, p in frames if t >= t_sent and p["device"] == device and p["status"] == want), None)
        if hit is None:
            missing += 1
            continue
        latencies[kind].append((hit - t_sent) * 1000)
    load_after = os.getloadavg()
    result = {
        "events": len(events),
        "cameras": args.cameras,
        "missing": missing,
        "state_message": summary(latencies["add"] + latencies["remove"]),
        "add": summary(latencies["add"]),
        "remove": summary(latencies["remove"]),
        "loadavg_1min": [round(load_before[0], 2), round(load_after[0], 2)],
        "cpus": os.cpu_count(),
    }
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{len(events)} uevents over {args.cameras} cameras, {missing} unmatched")
    for label in ("state_message", "add", "remove"):
        s = result[label]
        if s["n"]:
            print(
                f"  {label:14s} n={s['n']:4d}  p50 {s['p50_ms']:7.3f} ms  p99 {s['p99_ms']:7.3f} ms  max {s['max_ms']:7.3f} ms"
            )
    print(f"  load average (1 min) before/after: {result['loadavg_1min']}, {result['cpus']} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
