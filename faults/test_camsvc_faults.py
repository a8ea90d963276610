"""camsvc faults: the service SIGKILLed during recordings and started again.

Injected: ``FAULT_CAMSVC_KILLS`` (10) SIGKILLs of a real ``twistd camsvc`` (its whole
process group, keep-alive readers included, as systemd kills a unit's cgroup) while two
umockdev cameras record through the MediaMTX stand-in (its own process, left running),
each followed by a restart with the same configuration and state directory.  Must
survive: after every restart both recordings are resumed with the same session ids and
camera ids, new segments keep coming; at the end every segment on disk is a readable
fMP4 (``ffprobe``), listed by ``list_recordings``, downloadable byte for byte, and
reported by ``stop_recording`` as the session's files.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.support.mediamtx_process import StandInProcess
from tests.support.server import ServiceProcess, free_port
from tests.support.umockdev import Testbed, umockdev_available
from tests.support.wsclient import RpcClient

KILLS = int(os.environ.get("FAULT_CAMSVC_KILLS", "10"))
READER = f"{sys.executable} -m tests.support.standin_reader 127.0.0.1:{{rtsp_port}} {{camera_id}}"
CARDS = {"HD Webcam C270": "C270AAA1", "LifeCam HD-3000": "LC3000B2"}


def until(what, predicate, timeout=20.0, log=lambda: ""):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n{log()[-6000:]}"
        time.sleep(0.1)


def camsvc_config(standin: StandInProcess, port: int) -> dict:
    return {
        "server": {"port": port},
        "mediamtx": {
            "enabled": True,
            "api_url": standin.url,
            "rtsp_port": standin.rtsp_port,
            "health_interval": 0.2,
            "reconcile_interval": 2,
            "request_timeout": 2,
        },
        "recording": {"reader_command": READER, "start_timeout": 10, "segment_duration": 1, "resume_timeout": 30},
        "discovery": {"enabled": True, "debounce": 0.05},
        "logging": {"level": "info"},
    }


def all_recordings(client: RpcClient) -> list[dict]:
    files, offset = [], 0
    while True:
        page = client.call("list_recordings", {"limit": 1000, "offset": offset})
        files += page["files"]
        offset += len(page["files"])
        if offset >= page["total"] or not page["files"]:
            return files


def ffprobe_duration(path: Path) -> float:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, f"ffprobe refused {path.name}: {out.stderr}"
    return float(json.loads(out.stdout)["format"]["duration"])


def active(client: RpcClient) -> dict:
    """camera_id -> (session_id, state) of camsvc's recording sessions."""
    recordings = client.call("get_status")["components"].get("recordings", {})
    return {a["camera_id"]: (a["session_id"], a["state"]) for a in recordings.get("active", [])}


def test_camsvc_sigkilled_during_recordings_recovers(tmp_path):
    ok, reason = umockdev_available()
    if not ok:
        pytest.skip(reason)
    standin = StandInProcess(tmp_path / "mediamtx").start()
    port = free_port()
    recordings = tmp_path / "camsvc" / "recordings"
    procs: list[ServiceProcess] = []
    resumes: list[float] = []

    def start(bed: Testbed) -> ServiceProcess:
        proc = ServiceProcess(
            tmp_path / "camsvc", camsvc_config(standin, port), env=bed.env(), wait_ready=True, new_session=True
        )
        procs.append(proc)
        return proc.start(timeout=30)

    def segments(camera_id: str) -> list[str]:
        return sorted(p.name for p in recordings.glob(f"{camera_id}_*.mp4"))

    try:
        with Testbed() as bed:
            for n, (card, serial) in enumerate(CARDS.items()):
                bed.add_camera(f"cam{n}", card=card, serial=serial, port=f"1.{n + 1}")
            proc = start(bed)
            with RpcClient(proc.url) as client:
                until("two cameras", lambda: client.call("get_camera_list")["connected"] == 2, log=proc.log)
                ids = {c["name"]: c["camera_id"] for c in client.call("get_camera_list")["cameras"]}

                def record(params):
                    return lambda: client.request("start_recording", params).get("result")

                first = until("camera0 recording", record({"device": "camera0"}), log=proc.log)
                second = until("camera1 recording", record({"device": "camera1", "duration": 3600}), log=proc.log)
            sessions = {"camera0": first["session_id"], "camera1": second["session_id"]}
            for i in range(KILLS):
                counts = {cid: len(segments(cid)) for cid in sessions}
                until(
                    f"new segments before kill {i + 1}",
                    lambda counts=counts: all(len(segments(cid)) > counts[cid] for cid in sessions),
                    log=proc.log,
                )
                code = proc.kill_group()
                assert code == -9, f"camsvc exited with {code}, not SIGKILL"
                t0 = time.monotonic()
                proc = start(bed)
                with RpcClient(proc.url) as client:
                    until(
                        f"both recordings resumed after kill {i + 1}",
                        lambda: active(client) == {cid: (sid, "recording") for cid, sid in sessions.items()},
                        timeout=30,
                        log=proc.log,
                    )
                    resumes.append(time.monotonic() - t0)
                    cams = {c["name"]: c["camera_id"] for c in client.call("get_camera_list")["cameras"]}
                    assert cams == ids, "camera ids changed across a SIGKILL"
            counts = {cid: len(segments(cid)) for cid in sessions}
            until("segments after the last restart", lambda: all(len(segments(c)) > counts[c] for c in sessions))
            with RpcClient(proc.url, timeout=30) as client:
                stopped = {cid: client.call("stop_recording", {"device": cid}) for cid in sessions}
                listed = {f["filename"]: f for f in all_recordings(client)}
            assert {cid: r["session_id"] for cid, r in stopped.items()} == sessions
            on_disk = sorted(p.name for p in recordings.iterdir())
            assert sorted(listed) == on_disk, "list_recordings does not show every file on disk"
            for cid, result in stopped.items():
                assert result["files"] == segments(cid), f"stop_recording of {cid} does not report every segment"
                assert result["files"][0] == {"camera0": first, "camera1": second}[cid]["filename"]
            total = 0.0
            for name in on_disk:
                total += ffprobe_duration(recordings / name)
                url = urllib.parse.urlsplit(listed[name]["download_url"])
                with urllib.request.urlopen(f"{proc.http}{url.path}?{url.query}", timeout=10) as r:
                    assert r.read() == (recordings / name).read_bytes(), f"download of {name} differs"
            log = proc.log()
            proc.stop_cleanly()
    finally:
        for p in procs:
            p.stop()
        violations = standin.spec_violations()
        standin.stop()
    assert violations == []
    assert "Traceback" not in log
    print(
        f"\ncamsvc SIGKILLed {KILLS} times while 2 cameras recorded: resumed after p50 "
        f"{statistics.median(resumes):.2f} s, max {max(resumes):.2f} s (restart included); "
        f"{len(on_disk)} segments, {total:.1f} s of video, all readable, listed and downloadable"
    )
