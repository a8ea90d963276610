"""Snapshot latency and recording start-up time (``make bench-media``).

Owns three measurements, not a camsvc feature.  Everything runs on one real reactor
in this process, through camsvc's own code (``Snapshotter``, the JSON-RPC engine of a
fully built App), with real child processes:

1. **snapshot from a live RTSP stream**: GStreamer's gst-rtsp-server
   (``tests/support/rtsp_source.py``) serves H.264 (x264, ``zerolatency``, a key frame
   every second) and ``take_snapshot``'s stream path runs ffmpeg against it, the way it
   reads MediaMTX when a camera is streaming;
2. **snapshot from an idle device source**: the device path of ``take_snapshot`` with
   ``snapshots.device_input`` pointed at ffmpeg's ``lavfi`` test source (this machine has
   no V4L2 device; the real ``v4l2`` path runs in the QEMU/vivid system test);
3. **start_recording -> first segment on disk**: camsvc against the MediaMTX stand-in
   (real HTTP control API, fake RTSP port, real fMP4 files) with
   ``tests/support/standin_reader.py`` as the keep-alive reader: the time until the
   segment file exists (polled every 2 ms here) and until ``start_recording`` returns
   (camsvc polls every 0.2 s).  The stand-in's publisher is ready 50 ms after the
   first reader; a real camera's on-demand ffmpeg publisher adds its own start-up.

Each figure is p50 / p90 / max over ``--runs`` (default 20) runs, after one warm-up.

    /work/main/.venv/bin/python bench/media.py [--runs 20] [--size 1280x720] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet import reactor, task  # noqa: E402
from twisted.internet.defer import Deferred, ensureDeferred  # noqa: E402

from camsvc.cameras.registry import CONNECTED, Camera, CameraRegistry  # noqa: E402
from camsvc.config import parse_config_dict  # noqa: E402
from camsvc.media.files import FileStore  # noqa: E402
from camsvc.media.process import ProcessGroup  # noqa: E402
from camsvc.media.snapshots import Snapshotter  # noqa: E402


def summary(values: list[float]) -> dict:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
    return {
        "runs": len(values),
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p90_ms": round(p90 * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


def camera(width: int, height: int, fps: int) -> Camera:
    return Camera(
        camera_id="camera0",
        device="/dev/video0",
        status=CONNECTED,
        default={"format": "YUYV", "width": width, "height": height, "fps": fps},
        capabilities={"formats": [{"format": "MJPG", "sizes": [{"width": width, "height": height, "fps": [fps]}]}]},
    )


async def snapshots(tmp: str, source: str, runs: int, width: int, height: int, fps: int, rtsp_port: int) -> dict:
    config = parse_config_dict(
        {
            "mediamtx": {"rtsp_port": rtsp_port},
            "snapshots": {"device_input": "-f lavfi -i testsrc=size={width}x{height}:rate={fps}"},
        }
    )
    cams = CameraRegistry(reactor)
    cam = cams.put(camera(width, height, fps))
    store = FileStore(os.path.join(tmp, "rec"), os.path.join(tmp, source))
    snap = Snapshotter(
        processes=ProcessGroup(reactor, reactor),
        store=store,
        clock=reactor,
        cameras=cams,
        config=config,
        path_ready=lambda cid: source == "stream",
        require_space=lambda kind: None,
    )
    times = []
    for i in range(runs + 1):
        t0 = time.perf_counter()
        shot = await snap.take(cam, fmt="jpg", quality=85, filename=None)
        elapsed = time.perf_counter() - t0
        assert shot["source"] == source, shot
        if i:
            times.append(elapsed)
    return {**summary(times), "size": f"{width}x{height}", "last_file_size": shot["file_size"]}


async def recording_start(tmp: str, runs: int) -> dict:
    from camsvc.tap import build
    from tests.support.mediamtx import MediaMTXStandIn, ensure_clip

    standin = MediaMTXStandIn(reactor, record_root=tmp, clip_path=ensure_clip(os.path.join(tmp)))
    await standin.start()
    rec_dir = os.path.join(tmp, "recordings")
    config = parse_config_dict(
        {
            "server": {"host": "127.0.0.1", "endpoint": "tcp:0:interface=127.0.0.1"},
            "auth": {"required": False},
            "mediamtx": {"api_url": standin.url, "rtsp_port": standin.rtsp_port, "health_interval": 0.5},
            "storage": {
                "state_dir": os.path.join(tmp, "state"),
                "recordings_dir": rec_dir,
                "snapshots_dir": os.path.join(tmp, "snapshots"),
            },
            "recording": {
                "reader_command": f"{sys.executable} -m tests.support.standin_reader 127.0.0.1:{{rtsp_port}} {{camera_id}}"
            },
            "discovery": {"enabled": False},
            "logging": {"level": "warn"},
        }
    )
    app = build(config, reactor)
    app.service.startService()
    session = app.make_session("bench", peer="127.0.0.1:1", host="127.0.0.1")
    try:
        while not app.mediamtx.available:
            await task.deferLater(reactor, 0.02, lambda: None)
        app.cameras.put(camera(640, 480, 30))
        while "camera0" not in standin.config_paths:
            await task.deferLater(reactor, 0.02, lambda: None)

        async def call(method: str) -> dict:
            out = app.engine.handle(
                session, json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": {"device": "camera0"}})
            )
            if isinstance(out, Deferred):
                out = await out
            reply = json.loads(out)
            assert "result" in reply, reply
            return reply["result"]

        to_file, to_return = [], []
        for i in range(runs + 1):
            before = set(os.listdir(rec_dir)) if os.path.isdir(rec_dir) else set()
            seen: list[float] = []
            t0 = time.perf_counter()

            def look(before=before, seen=seen, t0=t0) -> None:
                if not seen and os.path.isdir(rec_dir) and set(os.listdir(rec_dir)) - before:
                    seen.append(time.perf_counter() - t0)

            watcher = task.LoopingCall(look)
            watcher.start(0.002)
            await call("start_recording")
            returned = time.perf_counter() - t0
            watcher.stop()
            await call("stop_recording")
            if i:
                to_file.append(seen[0])
                to_return.append(returned)
            # the stand-in keeps the on-demand publisher for runOnDemandCloseAfter (10 s): restart
            # it so every run starts from an idle path, as after a quiet period
            await standin.restart()
            while "camera0" not in standin.config_paths:
                await task.deferLater(reactor, 0.02, lambda: None)
        return {"segment_on_disk": summary(to_file), "start_recording_returned": summary(to_return)}
    finally:
        await app.service.stopService()
        await standin.stop()


async def main(args: argparse.Namespace) -> dict:
    from tests.support.rtsp import RTSPSource, rtsp_source_available

    width, height = (int(v) for v in args.size.split("x"))
    results: dict = {"runs": args.runs}
    with tempfile.TemporaryDirectory(prefix="camsvc-bench-media-") as tmp:
        ok, reason = rtsp_source_available()
        if ok:
            with RTSPSource(("camera0",), size=args.size, fps=args.fps) as source:
                results["snapshot_live_stream"] = await snapshots(
                    tmp, "stream", args.runs, width, height, args.fps, source.port
                )
        else:
            results["snapshot_live_stream"] = {"skipped": reason}
        results["snapshot_idle_device_source"] = await snapshots(tmp, "device", args.runs, width, height, args.fps, 1)
        results["recording_start"] = await recording_start(tmp, args.runs)
    return results


def report(results: dict) -> str:
    lines = [f"camsvc media benchmark ({results['runs']} runs each, p50 / p90 / max)"]

    def row(name: str, r: dict) -> None:
        if "skipped" in r:
            lines.append(f"  {name:42s} skipped: {r['skipped']}")
        else:
            lines.append(f"  {name:42s} {r['p50_ms']:8.1f} {r['p90_ms']:8.1f} {r['max_ms']:8.1f} ms")

    row(
        f"snapshot, live RTSP stream {results['snapshot_live_stream'].get('size', '')}", results["snapshot_live_stream"]
    )
    row(
        f"snapshot, idle device source {results['snapshot_idle_device_source']['size']}",
        results["snapshot_idle_device_source"],
    )
    row("start_recording -> first segment on disk", results["recording_start"]["segment_on_disk"])
    row("start_recording -> result", results["recording_start"]["start_recording_returned"])
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()

    async def run(_reactor) -> None:
        results = await main(options)
        print(json.dumps(results, indent=2) if options.json else report(results), flush=True)

    task.react(lambda r: ensureDeferred(run(r)))
