"""A disk that fills during a recording (issue 15), on a small real file system (tmpfs, size=).

Reproduces the finding first: the session kept saying "recording" while MediaMTX's
writes failed, and no FAILED notification went out.  Now the recordings file system
is checked every ``recording.disk_check_interval`` while something records: the
recording stops with FAILED (reason ``storage_full``), emergency retention runs
(retention enabled: old files go), and the last segment stays readable (ffprobe).
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest
import pytest_twisted
from twisted.internet import reactor

from camsvc.config import parse_config_dict
from camsvc.tap import build
from tests.support.waiting import eventually
from tests.test_media_recordings_integration import READER, Running, cam


@pytest.fixture
def small_fs(tmp_path):
    """tmp_path/recordings as a 3 MiB tmpfs (tests run as root, as in CI)."""
    mount = tmp_path / "recordings"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m,mode=0777", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(mount, leave: int) -> None:
    """Old recordings (100 days) until only about ``leave`` bytes are free."""
    st = os.statvfs(mount)
    free = st.f_bavail * st.f_frsize
    old = time.time() - 100 * 86400
    n = 0
    chunk = 256 * 1024
    while free - leave > 0:
        path = mount / f"camera9_2020-01-01_00-00-{n:02d}-000000.mp4"
        with open(path, "wb") as f:
            f.write(b"\0" * min(chunk, free - leave))
        os.utime(path, (old, old))
        n += 1
        st = os.statvfs(mount)
        free = st.f_bavail * st.f_frsize


@pytest_twisted.ensureDeferred
async def test_a_disk_filling_during_a_recording_fails_it_and_keeps_the_last_segment(
    tmp_path, small_fs, mediamtx_standin
):
    config = parse_config_dict(
        {
            "server": {"host": "127.0.0.1", "endpoint": "tcp:0:interface=127.0.0.1"},
            "auth": {"required": False},
            "mediamtx": {
                "api_url": mediamtx_standin.url,
                "rtsp_port": mediamtx_standin.rtsp_port,
                "health_interval": 0.2,
                "reconcile_interval": 1.0,
                "request_timeout": 1.0,
            },
            "storage": {
                "state_dir": str(tmp_path / "state"),
                "recordings_dir": str(small_fs),
                "snapshots_dir": str(tmp_path / "snapshots"),
                "critical_free_percent": 0,
                "warn_free_percent": 0,
            },
            "recording": {
                "reader_command": READER,
                "start_timeout": 5,
                "disk_check_interval": 0.2,
                "min_free_bytes": 0,  # only "no byte left and the segment stopped growing"
            },
            "retention": {"enabled": True, "max_age_days": 30, "interval": 3600},
            "discovery": {"enabled": False},
        }
    )
    app = build(config, reactor)
    app.service.startService()
    running = Running(app)
    try:
        await eventually(lambda: app.mediamtx.available, what="MediaMTX contact")
        app.cameras.put(cam(0))
        await eventually(lambda: "camera0" in mediamtx_standin.config_paths, what="camera0 path")
        fill(small_fs, leave=60 * 1024)  # room for the init and about three of the six fragments
        started = await running.result("start_recording", {"device": "camera0"})
        name = started["filename"]
        await eventually(
            lambda: ("FAILED", "storage_full") in running.statuses(), timeout=30, what="FAILED storage_full"
        )
        assert not app.recordings.is_recording("camera0")
        assert mediamtx_standin.config_paths["camera0"]["record"] is False
        # Emergency retention removed the old recordings ...
        await eventually(lambda: not any(n.startswith("camera9_") for n in os.listdir(small_fs)), what="retention")
        # ... and the last segment is a readable file.
        probe = subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(small_fs / name)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert probe.returncode == 0 and float(probe.stdout.strip()) > 0, probe.stderr
        failed = [p for m, p in running.notes if m == "recording_status_update" and p["status"] == "FAILED"]
        assert failed[0]["filename"] == name
    finally:
        await app.service.stopService()
