"""The wall clock stepped by +1 h and by -1 h under a running camsvc.

Injected: a real ``twistd camsvc`` (the MediaMTX stand-in as its own process; one
camera put into the registry by faults/twistd_with_cameras.py, since umockdev's preload
and libfaketime deadlock together) runs under Debian's libfaketime (``LD_PRELOAD``) with
``FAKETIME_TIMESTAMP_FILE`` and ``FAKETIME_NO_CACHE=1``; the test rewrites that file
from ``+0`` to ``+1h`` (or ``-1h``) while a recording with a ``duration`` runs: the
process's ``CLOCK_REALTIME`` jumps, its ``CLOCK_MONOTONIC`` does not
(``FAKETIME_DONT_FAKE_MONOTONIC=1``), exactly as for an NTP step or ``date -s``.

Must survive: the ``duration`` auto-stop fires after its duration (not at the step,
not an hour late), the reported duration and the recorded video are that long;
retention keeps running every ``retention.interval`` and judges file ages by the new
wall clock; a quiet WebSocket client is not dropped as idle.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from faults.test_camsvc_faults import READER, ffprobe_duration, until
from tests.support.mediamtx_process import StandInProcess
from tests.support.server import ServiceProcess
from tests.support.wsclient import RpcClient

LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
#: Seconds of the recording's ``duration``; the step comes STEP_AFTER seconds into it.
DURATION = float(os.environ.get("FAULT_CLOCK_DURATION", "8"))
STEP_AFTER = 2.0
DAY = 86400.0


def libfaketime() -> str | None:
    for path in (LIBFAKETIME, "/usr/lib/faketime/libfaketime.so.1", "/usr/lib64/faketime/libfaketime.so.1"):
        if os.path.exists(path):
            return path
    return None


def aged(directory: Path, name: str, age: float, staging: Path) -> Path:
    """A snapshot file whose modification time is ``age`` seconds ago (real time), moved in whole."""
    src = staging / name
    src.write_bytes(b"\xff\xd8\xff\xd9")
    mtime = time.time() - age
    os.utime(src, (mtime, mtime))
    os.rename(src, directory / name)
    return directory / name


@pytest.mark.parametrize("step", ["+1h", "-1h"])
def test_wall_clock_step_keeps_auto_stop_and_retention(tmp_path, step):
    lib = libfaketime()
    if lib is None:
        pytest.skip("libfaketime is not installed (Debian package faketime)")
    sign = 1 if step.startswith("+") else -1
    stamp = tmp_path / "faketime"
    stamp.write_text("+0\n")
    standin = StandInProcess(tmp_path / "mediamtx").start()
    try:
        env = {
            "LD_PRELOAD": lib,
            "FAKETIME_TIMESTAMP_FILE": str(stamp),
            "FAKETIME_NO_CACHE": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        }
        proc = ServiceProcess(
            tmp_path / "camsvc",
            {
                "server": {"idle_timeout": 3},
                "mediamtx": {
                    "enabled": True,
                    "api_url": standin.url,
                    "rtsp_port": standin.rtsp_port,
                    "health_interval": 0.2,
                    "reconcile_interval": 2,
                    "request_timeout": 2,
                },
                "recording": {"reader_command": READER, "start_timeout": 10, "segment_duration": 1},
                "retention": {"enabled": True, "interval": 4, "max_age_days": 1},
                "logging": {"level": "info"},
            },
            env=env,
            wait_ready=True,
            launcher=[sys.executable, "-m", "faults.twistd_with_cameras"],
        ).start(timeout=30)
        snapshots = tmp_path / "camsvc" / "snapshots"
        recordings = tmp_path / "camsvc" / "recordings"
        staging = tmp_path / "staging"
        staging.mkdir()
        try:
            quiet = RpcClient(proc.url)  # says nothing after this: must not be taken for idle
            quiet.call("ping")
            with RpcClient(proc.url, timeout=60) as client:
                until("camera0", lambda: client.call("get_camera_list")["connected"] == 1, log=proc.log)

                def start():
                    return client.request("start_recording", {"device": "camera0", "duration": DURATION}).get("result")

                started = until("recording started", start, log=proc.log)
                time.sleep(STEP_AFTER)
                stamp.write_text(f"{step}\n")  # the step
                stepped_at = time.monotonic()
                seen = client.call("get_server_info")  # camsvc's clock now reads the new time
                assert seen["name"] == "camsvc"
                # Files aged across the step: ages by camsvc's (new) wall clock decide.
                old = aged(snapshots, "camera0_2020-01-01_00-00-00-000000.jpg", DAY + 3 * 3600, staging)
                young = aged(snapshots, "camera0_2020-01-02_00-00-00-000000.jpg", DAY - 3 * 3600, staging)
                # +1 h: really 23.5 h old, 24.5 h by the clock (goes); -1 h: 24.5 h, 23.5 h (stays)
                border = aged(snapshots, "camera0_2020-01-03_00-00-00-000000.jpg", DAY - sign * 1800, staging)
                time.sleep(1.0)
                assert client.call("get_camera_list")["cameras"][0]["recording"] is True, (
                    f"the recording stopped at the {step} step\n{proc.log()[-4000:]}"
                )
                note = client.wait_notification(
                    "recording_status_update", lambda p: p["status"] == "STOPPED", timeout=DURATION + 20
                )
                stopped_after = time.monotonic() - stepped_at + STEP_AFTER
                until("a retention run after the step", lambda: not old.exists(), timeout=20, log=proc.log)
                assert young.exists(), "retention deleted a file younger than max_age_days"
                assert border.exists() is (sign < 0), f"retention misjudged a file's age after the {step} step"
                assert quiet.call("ping") == "pong", "a quiet client was dropped as idle at the step"
                quiet.close()
            log = proc.log()
            proc.stop_cleanly()
        finally:
            proc.stop()
    finally:
        standin.stop()
    params = note["params"]
    assert params["session_id"] == started["session_id"] and params["reason"] == "duration"
    # The reported duration is the time it recorded, on the monotonic clock.
    assert DURATION - 0.5 <= params["duration"] <= DURATION + 3, params
    segments = sorted(recordings.glob("camera0_*.mp4"))
    video = sum(ffprobe_duration(p) for p in segments)
    assert DURATION - 2 <= video <= DURATION + 3, f"{video:.1f} s of video for a {DURATION:g}-s recording"
    assert "The wall clock stepped by" in log
    assert "Traceback" not in log
    print(
        f"\nwall clock stepped {step} {STEP_AFTER:g} s into a {DURATION:g}-s recording: auto-stop after "
        f"{stopped_after:.1f} s (reported {params['duration']:.1f} s, {video:.1f} s of video in "
        f"{len(segments)} segments), retention ran, quiet client kept"
    )
