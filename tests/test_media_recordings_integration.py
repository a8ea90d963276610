"""Recordings end to end in-process: camsvc + the MediaMTX stand-in over HTTP + a real reader child.

The stand-in records real fMP4 segments named exactly like MediaMTX (``recordPath``);
the keep-alive reader is ``tests/support/standin_reader.py``, a separate process that
attaches to the stand-in's fake RTSP port (configured as ``recording.reader_command``).
"""

from __future__ import annotations

import json
import os
import sys

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred

from camsvc.config import parse_config_dict
from camsvc.media import mp4
from camsvc.tap import build
from tests.support.cameras import acme_camera as cam
from tests.support.waiting import eventually

READER = f"{sys.executable} -m tests.support.standin_reader 127.0.0.1:{{rtsp_port}} {{camera_id}}"


def make_config(tmp_path, standin, **recording):
    return parse_config_dict(
        {
            "server": {"host": "127.0.0.1", "endpoint": "tcp:0:interface=127.0.0.1"},
            "auth": {"required": False},
            "mediamtx": {
                "api_url": standin.url,
                "rtsp_port": standin.rtsp_port,
                "health_interval": 0.2,
                "reconcile_interval": 1.0,
                "request_timeout": 1.0,
            },
            "storage": {
                "state_dir": str(tmp_path / "state"),
                "recordings_dir": str(tmp_path / "recordings"),
                "snapshots_dir": str(tmp_path / "snapshots"),
            },
            "recording": {"reader_command": READER, "start_timeout": 5, **recording},
            "discovery": {"enabled": False},
        }
    )


class Running:
    def __init__(self, app):
        self.app = app
        self.notes: list = []
        app.hub.subscribe(lambda method, params: self.notes.append((method, params)))
        self.session = app.make_session("t1", peer="127.0.0.1:1", host="127.0.0.1")

    async def call(self, method: str, params=None) -> dict:
        text = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}})
        out = self.app.engine.handle(self.session, text)
        if isinstance(out, Deferred):
            out = await out
        return json.loads(out)

    async def result(self, method: str, params=None):
        reply = await self.call(method, params)
        assert "result" in reply, reply
        return reply["result"]

    def statuses(self):
        return [(p["status"], p.get("reason")) for m, p in self.notes if m == "recording_status_update"]


async def start_app(tmp_path, standin, **recording) -> Running:
    app = build(make_config(tmp_path, standin, **recording), reactor)
    app.service.startService()
    running = Running(app)
    await eventually(lambda: app.mediamtx.available, what="MediaMTX contact")
    app.cameras.put(cam(0))
    await eventually(lambda: "camera0" in standin.config_paths, what="camera0 path")
    return running


@pytest_twisted.async_yield_fixture
async def camsvc(tmp_path, mediamtx_standin):
    running = await start_app(tmp_path, mediamtx_standin)
    yield running
    await running.app.service.stopService()


def readers(standin, path="camera0") -> int:
    state = standin.path_state(path)
    return len(state["readers"]) if state else 0


@pytest_twisted.ensureDeferred
async def test_start_record_list_and_stop(camsvc, mediamtx_standin):
    app = camsvc.app
    t0 = reactor.seconds()
    started = await camsvc.result("start_recording", {"device": "/dev/video0"})
    name = started["filename"]
    rec_dir = app.config.storage.recordings_dir
    assert started["status"] == "STARTED" and started["duration"] is None and started["camera_id"] == "camera0"
    assert name.startswith("camera0_") and os.path.exists(os.path.join(rec_dir, name))
    assert mediamtx_standin.config_paths["camera0"]["record"] is True
    assert readers(mediamtx_standin) == 1  # our keep-alive reader runs the on-demand publisher
    camera = (await camsvc.result("get_camera_list"))["cameras"][0]
    assert camera["recording"] is True
    again = await camsvc.call("start_recording", {"device": "camera0"})
    assert again["error"]["code"] == -32005
    await eventually(lambda: (mp4.duration(os.path.join(rec_dir, name)) or 0) >= 1.0, what="fragments")
    info = await camsvc.result("get_recording_info", {"filename": name})
    assert info["recording"] is True and info["duration"] >= 1.0
    assert (await camsvc.call("delete_recording", {"filename": name}))["error"]["code"] == -32005

    stopped = await camsvc.result("stop_recording", {"device": "camera0"})
    assert stopped["status"] == "STOPPED" and stopped["session_id"] == started["session_id"]
    assert stopped["filename"] == name and stopped["files"] == [name] and stopped["file_size"] > 0
    assert 0 < stopped["duration"] <= reactor.seconds() - t0 and stopped["download_url"].endswith(
        f"/files/recordings/{name}"
    )
    assert mediamtx_standin.config_paths["camera0"]["record"] is False
    await eventually(lambda: readers(mediamtx_standin) == 0, what="reader gone")
    assert (await camsvc.call("stop_recording", {"device": "camera0"}))["error"]["code"] == -32005
    assert (await camsvc.result("get_recording_info", {"filename": name}))["recording"] is False
    assert camsvc.statuses() == [("STARTED", None), ("STOPPED", "requested")]
    updates = [p for m, p in camsvc.notes if m == "camera_status_update" and p["camera_id"] == "camera0"]
    assert [u["recording"] for u in updates[-2:]] == [True, False]
    assert app.metrics.registry.get_sample_value("camsvc_recordings_total", {"event": "stopped"}) == 1


@pytest_twisted.ensureDeferred
async def test_duration_auto_stops(camsvc, mediamtx_standin):
    started = await camsvc.result("start_recording", {"device": "camera0", "duration": 1})
    assert started["duration"] == 1
    await eventually(lambda: ("STOPPED", "duration") in camsvc.statuses(), what="auto-stop")
    assert mediamtx_standin.config_paths["camera0"]["record"] is False
    assert not camsvc.app.recordings.is_recording("camera0")
    bad = await camsvc.call("start_recording", {"device": "camera0", "duration": 10**9})
    assert bad["error"]["code"] == -32602


@pytest_twisted.ensureDeferred
async def test_mediamtx_restart_while_recording(camsvc, mediamtx_standin):
    app = camsvc.app
    started = await camsvc.result("start_recording", {"device": "camera0"})
    await mediamtx_standin.restart()
    # The reconciler restores the path with record on; the reader comes back and a new segment starts.
    await eventually(
        lambda: mediamtx_standin.config_paths.get("camera0", {}).get("record") is True, what="record restored"
    )
    await eventually(lambda: readers(mediamtx_standin) == 1, what="reader re-attached")
    await eventually(lambda: len(app.recordings._session_files(app.recordings.sessions["camera0"])) >= 2)
    stopped = await camsvc.result("stop_recording", {"device": "camera0"})
    assert stopped["filename"] == started["filename"] and len(stopped["files"]) >= 2


@pytest_twisted.ensureDeferred
async def test_unplug_while_recording(camsvc, mediamtx_standin):
    app = camsvc.app
    await camsvc.result("start_recording", {"device": "camera0"})
    app.cameras.mark_disconnected("camera0")
    await eventually(lambda: ("FAILED", "camera_disconnected") in camsvc.statuses(), what="finalised")
    await eventually(lambda: "camera0" not in mediamtx_standin.config_paths, what="path deleted")
    assert not app.recordings.is_recording("camera0") and readers(mediamtx_standin) == 0
    assert app.recordings.status()["active"] == []


@pytest_twisted.ensureDeferred
async def test_shutdown_stops_and_keep_resumes(tmp_path, mediamtx_standin):
    first = await start_app(tmp_path, mediamtx_standin)
    await first.result("start_recording", {"device": "camera0"})
    await first.app.service.stopService()  # on_shutdown: stop (default)
    assert mediamtx_standin.config_paths["camera0"]["record"] is False
    assert first.statuses()[-1] == ("STOPPED", "shutdown")

    keep = await start_app(tmp_path, mediamtx_standin, on_shutdown="keep")
    started = await keep.result("start_recording", {"device": "camera0"})
    await keep.app.service.stopService()
    assert mediamtx_standin.config_paths["camera0"]["record"] is True  # left to MediaMTX
    await eventually(lambda: readers(mediamtx_standin) == 0, what="reader stopped with camsvc")

    resumed = await start_app(tmp_path, mediamtx_standin, on_shutdown="keep")
    try:
        await eventually(lambda: resumed.app.recordings.is_recording("camera0"), what="resumed")
        assert resumed.statuses() == [("STARTED", "resumed")]
        (note,) = [p for m, p in resumed.notes if m == "recording_status_update"]
        assert note["session_id"] == started["session_id"]
        assert mediamtx_standin.config_paths["camera0"]["record"] is True
        await eventually(lambda: readers(mediamtx_standin) == 1, what="reader back")
        stopped = await resumed.result("stop_recording", {"device": "camera0"})
        assert stopped["session_id"] == started["session_id"] and stopped["filename"] == started["filename"]
    finally:
        await resumed.app.service.stopService()


@pytest_twisted.ensureDeferred
async def test_a_package_upgrade_s_restart_keeps_and_resumes_recordings(tmp_path, mediamtx_standin):
    # debian/camsvc.postinst leaves the marker before the restart; on_shutdown stays "stop".
    first = await start_app(tmp_path, mediamtx_standin)
    started = await first.result("start_recording", {"device": "camera0"})
    marker = os.path.join(first.app.config.storage.state_dir, "upgrade-restart")
    open(marker, "w").close()
    await first.app.service.stopService()
    assert mediamtx_standin.config_paths["camera0"]["record"] is True  # left to MediaMTX
    assert ("STOPPED", "shutdown") not in first.statuses()

    upgraded = await start_app(tmp_path, mediamtx_standin)
    try:
        assert not os.path.exists(marker)  # the new version's start consumed it
        await eventually(lambda: upgraded.app.recordings.is_recording("camera0"), what="resumed")
        assert upgraded.statuses() == [("STARTED", "resumed")]
        stopped = await upgraded.result("stop_recording", {"device": "camera0"})
        assert stopped["session_id"] == started["session_id"] and stopped["filename"] == started["filename"]
        # Without the marker the next shutdown does what on_shutdown says again.
        await upgraded.result("start_recording", {"device": "camera0"})
    finally:
        await upgraded.app.service.stopService()
    assert mediamtx_standin.config_paths["camera0"]["record"] is False
    assert upgraded.statuses()[-1] == ("STOPPED", "shutdown")


@pytest_twisted.ensureDeferred
async def test_on_upgrade_stop_finalises_on_an_upgrade_s_restart(tmp_path, mediamtx_standin):
    first = await start_app(tmp_path, mediamtx_standin, on_upgrade="stop")
    await first.result("start_recording", {"device": "camera0"})
    open(os.path.join(first.app.config.storage.state_dir, "upgrade-restart"), "w").close()
    await first.app.service.stopService()
    assert mediamtx_standin.config_paths["camera0"]["record"] is False
    assert first.statuses()[-1] == ("STOPPED", "shutdown")


# -- time zones (issue 15) ----------------------------------------------------------------


@pytest.mark.parametrize(
    "standin_offset, camsvc_tz",
    [(0, "CET-1"), (1, "UTC0")],
    ids=["mediamtx-UTC-camsvc-UTC+1", "mediamtx-UTC+1-camsvc-UTC"],
)
@pytest_twisted.ensureDeferred
async def test_recording_bookkeeping_does_not_depend_on_time_zones(
    tmp_path, mediamtx_standin, monkeypatch, standin_offset, camsvc_tz
):
    """Segment names carry MediaMTX's local time: parsed in camsvc's zone, MediaMTX in UTC
    and camsvc in UTC+1 gave "no segment"; the other way round the auto-stop fired an hour late."""
    import datetime as dt
    import time

    monkeypatch.setenv("TZ", camsvc_tz)
    time.tzset()
    try:
        mediamtx_standin.timezone = dt.timezone(dt.timedelta(hours=standin_offset))
        running = await start_app(tmp_path, mediamtx_standin)
        try:
            started = await running.result("start_recording", {"device": "camera0", "duration": 2})
            assert started["status"] == "STARTED"
            await eventually(lambda: ("STOPPED", "duration") in running.statuses(), what="auto-stop on time")
            assert running.statuses() == [("STARTED", None), ("STOPPED", "duration")]
            stopped = [p for m, p in running.notes if m == "recording_status_update" and p["status"] == "STOPPED"]
            assert stopped[0]["filename"] == started["filename"] and 0 < stopped[0]["duration"] < 60
        finally:
            await running.app.service.stopService()
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
