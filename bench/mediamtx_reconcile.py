"""Reconcile time after a MediaMTX restart: MediaMTX back -> every camera path restored.

Usage:
    python bench/mediamtx_reconcile.py [--runs 20] [--cameras 4] [--health-interval 5] [--seed 1]

camsvc runs in-process (``camsvc.tap.build`` on the real reactor, real treq
over loopback TCP) next to the MediaMTX stand-in (``tests.support.mediamtx``,
same reactor, its own listening port), with ``--cameras`` cameras put into
the registry.  Each run waits a random time (uniform in one health interval,
so restarts land at every phase of the probe schedule), restarts the
stand-in (it forgets every API-made path and reports a new ``started``), and
records:

* ``restored``: from the moment the restarted MediaMTX answers to the moment
  its configuration holds every camera path again (taken from inside the
  stand-in, no polling), the user-visible figure;
* ``detect``: from restart to camsvc's monitor reporting it (bounded by
  ``mediamtx.health_interval``);
* ``apply``: from detection to the last path added (the reconcile pass).

With ``--process`` the stand-in is a separate process instead, killed with
SIGKILL and started again on the same port (a crash and restart as systemd
would do it); the bench polls its configuration every 5 ms and reports the
time from the new process answering (``back``) and from the kill (``kill``).

Prints the median, p90 and max of each over ``--runs`` runs, and the
configuration used.  Defaults are camsvc's shipped ones (health_interval 5 s,
reconcile_interval 30 s).
"""

from __future__ import annotations

import argparse
import random
import signal
import statistics
import sys
import tempfile
from pathlib import Path

from twisted.internet import defer, task

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from camsvc.cameras.registry import CONNECTED, Camera  # noqa: E402
from camsvc.config import parse_config_dict  # noqa: E402
from camsvc.tap import build  # noqa: E402
from tests.support.mediamtx import MediaMTXStandIn  # noqa: E402

CAPS = {"formats": [{"format": "MJPG", "sizes": [{"width": 1280, "height": 720, "fps": [30]}]}]}


def camera(n: int) -> Camera:
    return Camera(
        camera_id=f"camera{n}",
        device=f"/dev/video{2 * n}",
        status=CONNECTED,
        links=(f"/dev/v4l/by-id/usb-Bench_{n}-video-index0",),
        capabilities=CAPS,
        default={"format": "MJPG", "width": 1280, "height": 720, "fps": 30},
    )


def summary(name: str, values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    p90 = ms[min(len(ms) - 1, int(round(0.9 * (len(ms) - 1))))]
    return f"{name:9s} median {statistics.median(ms):8.1f} ms   p90 {p90:8.1f} ms   max {ms[-1]:8.1f} ms"


async def run(reactor, args) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="camsvc-bench-mediamtx-"))
    standin = MediaMTXStandIn(reactor, rtsp_port=None, record_root=tmp, validate_responses=False)
    await standin.start()
    config = parse_config_dict(
        {
            "server": {"host": "127.0.0.1", "endpoint": "tcp:0:interface=127.0.0.1"},
            "auth": {"required": False},
            "mediamtx": {
                "api_url": standin.url,
                "health_interval": args.health_interval,
                "reconcile_interval": args.reconcile_interval,
            },
            "storage": {
                "state_dir": str(tmp / "state"),
                "recordings_dir": str(tmp / "rec"),
                "snapshots_dir": str(tmp / "snap"),
            },
            "discovery": {"enabled": False},
            "logging": {"level": "warn"},
        }
    )
    app = build(config, reactor)
    app.service.startService()
    names = {f"camera{n}" for n in range(args.cameras)}
    for n in range(args.cameras):
        app.cameras.put(camera(n))

    marks: dict[str, float] = {}
    all_there: list[defer.Deferred] = []
    original_commit = standin._commit

    def commit(paths, defaults=None):
        original_commit(paths, defaults)
        if names <= set(standin._optional_paths) and all_there:
            marks.setdefault("restored", reactor.seconds())
            all_there.pop().callback(None)

    standin._commit = commit

    def monitor_event(event, info):
        if event == "restarted":
            marks.setdefault("detected", reactor.seconds())

    app.mediamtx.monitor.subscribe(monitor_event)

    async def wait_all() -> None:
        while not names <= set(standin._optional_paths):
            await task.deferLater(reactor, 0.01, lambda: None)

    await wait_all()
    rng = random.Random(args.seed)
    restored, detect, apply = [], [], []
    for i in range(args.runs):
        await task.deferLater(reactor, rng.uniform(0, args.health_interval), lambda: None)
        marks.clear()
        done: defer.Deferred = defer.Deferred()
        all_there.append(done)
        await standin.restart()
        t0 = reactor.seconds()
        await done
        restored.append(marks["restored"] - t0)
        detect.append(marks["detected"] - t0)
        apply.append(marks["restored"] - marks["detected"])
        print(
            f"run {i + 1:2d}: restored in {restored[-1] * 1000:7.1f} ms "
            f"(detect {detect[-1] * 1000:7.1f} ms + apply {apply[-1] * 1000:5.1f} ms)",
            flush=True,
        )
    await app.service.stopService()
    await standin.stop()
    print()
    print(
        f"{args.runs} MediaMTX restarts, {args.cameras} cameras, health_interval {args.health_interval:g} s, "
        f"reconcile_interval {args.reconcile_interval:g} s, Python {sys.version.split()[0]}"
    )
    print(summary("restored", restored))
    print(summary("detect", detect))
    print(summary("apply", apply))


async def run_process(reactor, args) -> None:
    """``--process``: MediaMTX (the stand-in) is a separate process, killed and started again."""
    import treq

    from tests.support.mediamtx_process import StandInProcess

    tmp = Path(tempfile.mkdtemp(prefix="camsvc-bench-mediamtx-"))
    proc = StandInProcess(tmp / "mediamtx").start()
    config = parse_config_dict(
        {
            "server": {"host": "127.0.0.1", "endpoint": "tcp:0:interface=127.0.0.1"},
            "auth": {"required": False},
            "mediamtx": {
                "api_url": proc.url,
                "health_interval": args.health_interval,
                "reconcile_interval": args.reconcile_interval,
            },
            "storage": {
                "state_dir": str(tmp / "state"),
                "recordings_dir": str(tmp / "rec"),
                "snapshots_dir": str(tmp / "snap"),
            },
            "discovery": {"enabled": False},
            "logging": {"level": "warn"},
        }
    )
    app = build(config, reactor)
    app.service.startService()
    names = {f"camera{n}" for n in range(args.cameras)}
    for n in range(args.cameras):
        app.cameras.put(camera(n))

    async def configured() -> set:
        try:
            resp = await treq.get(proc.url + "/v3/config/paths/list", persistent=False, timeout=1)
            doc = await resp.json()
        except Exception:
            return set()
        return {item["name"] for item in doc.get("items", [])}

    async def wait_restored() -> float:
        while not names <= await configured():
            await task.deferLater(reactor, 0.005, lambda: None)
        return reactor.seconds()

    seen: dict[str, float] = {}
    app.mediamtx.monitor.subscribe(lambda event, info: seen.setdefault(event, reactor.seconds()))
    await wait_restored()
    rng = random.Random(args.seed)
    from_ready, from_kill, detect = [], [], []
    for i in range(args.runs):
        await task.deferLater(reactor, rng.uniform(0, args.health_interval), lambda: None)
        t_kill = reactor.seconds()
        seen.clear()
        proc.stop(signal.SIGKILL)
        proc.spawn()  # camsvc's reactor keeps running while MediaMTX starts
        while not proc.poll_ready():
            await task.deferLater(reactor, 0.002, lambda: None)
        t_ready = reactor.seconds()
        t_done = await wait_restored()
        from_ready.append(t_done - t_ready)
        from_kill.append(t_done - t_kill)
        detect.append(seen.get("restarted", t_done) - t_ready)
        print(
            f"run {i + 1:2d}: restored {from_ready[-1] * 1000:7.1f} ms after MediaMTX was back "
            f"(restart seen after {detect[-1] * 1000:6.1f} ms; {from_kill[-1] * 1000:7.1f} ms after the kill)",
            flush=True,
        )
    await app.service.stopService()
    proc.stop()
    print()
    print(
        f"{args.runs} MediaMTX process restarts (SIGKILL + start), {args.cameras} cameras, "
        f"health_interval {args.health_interval:g} s, Python {sys.version.split()[0]}"
    )
    print(summary("back", from_ready))
    print(summary("detect", detect))
    print(summary("kill", from_kill))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--health-interval", type=float, default=5.0)
    parser.add_argument("--reconcile-interval", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--process", action="store_true", help="run MediaMTX as a separate process")
    args = parser.parse_args()
    bench = run_process if args.process else run
    task.react(lambda reactor: defer.ensureDeferred(bench(reactor, args)))


if __name__ == "__main__":
    main()
