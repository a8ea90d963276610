"""SIGTERM during a recording: the real processes (twistd camsvc under umockdev, the
MediaMTX stand-in as its own process, the keep-alive reader as camsvc's child).

The shutdown is ordered (clients closed first, then the recording is stopped while
the MediaMTX client still works) and the recording is finalised: record switched
off in MediaMTX, the file complete, no child process left, exit status 0.
"""

from __future__ import annotations

import json
import signal
import sys
import time
import urllib.request

import pytest

from camsvc.media import mp4
from tests.support.mediamtx_process import StandInProcess
from tests.support.server import ServiceProcess
from tests.support.umockdev import Testbed, umockdev_available
from tests.support.wsclient import RpcClient
from tests.test_logs import check_context, read_json_log

READER = f"{sys.executable} -m tests.support.standin_reader 127.0.0.1:{{rtsp_port}} {{camera_id}}"


def until(what, predicate, timeout=20.0, log=lambda: ""):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n{log()}"
        time.sleep(0.1)


def test_sigterm_during_a_recording_finalises_it(tmp_path):
    ok, reason = umockdev_available()
    if not ok:
        pytest.skip(reason)
    standin = StandInProcess(tmp_path / "mediamtx").start()
    try:
        with Testbed() as bed:
            bed.add_camera("usbcam", card="HD Webcam C270", serial="ABC123", port="1.2")
            proc = ServiceProcess(
                tmp_path / "camsvc",
                {
                    "mediamtx": standin.camsvc_mediamtx(),
                    "recording": {"reader_command": READER, "start_timeout": 10},
                    "discovery": {"enabled": True, "debounce": 0.05},
                    "logging": {"format": "json", "level": "debug"},
                },
                env=bed.env(),
                wait_ready=True,
            ).start()
            try:
                with RpcClient(proc.url) as client:
                    until("camera0", lambda: client.call("get_camera_list")["connected"] == 1, log=proc.log)

                    def start():
                        reply = client.request("start_recording", {"device": "camera0"})
                        return reply.get("result")

                    started = until("recording started", start, log=proc.log)
                    assert started["status"] == "STARTED"
                    filename = started["filename"]
                    until(
                        "a first segment",
                        lambda: client.call("list_recordings")["total"] >= 1,
                        log=proc.log,
                    )
                proc.proc.send_signal(signal.SIGTERM)
                assert proc.proc.wait(30) == 0, proc.log()
            finally:
                proc.stop_cleanly()
    finally:
        with urllib.request.urlopen(standin.url + "/v3/config/paths/get/camera0", timeout=5) as resp:
            path_conf = json.loads(resp.read())
        standin.stop()
    log = proc.log()
    assert "Received SIGTERM" in log
    assert path_conf["record"] is False, "recording still on in MediaMTX after shutdown"
    recordings = tmp_path / "camsvc" / "recordings"
    files = sorted(p.name for p in recordings.iterdir())
    assert filename in files, files
    assert mp4.duration(str(recordings / filename)) > 0  # a complete, readable fMP4
    assert "still running after shutdown" not in log  # the reader was stopped by its owner
    assert standin.spec_violations() == []
    # Every line about the camera (discovery, MediaMTX paths, the recording) names it.
    records = read_json_log(proc)
    assert sum(1 for r in records if r.get("camera_id") == "camera0") >= 5
    check_context(records)
