"""camsvc.media.recordings on fakes: sessions, reader, auto-stop, unplug, shutdown, recovery."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import pytest
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock

from camsvc.cameras.registry import Camera, CameraRegistry
from camsvc.common.errors import CameraNotFound, InsufficientStorage, InvalidParams, InvalidState, MediaMTXUnavailable
from camsvc.config import parse_config_dict
from camsvc.media.files import RECORDINGS, FileStore, stamp
from camsvc.media.recordings import BACKOFF_CAP, KILL_AFTER, POLL, SETTLE, RecordingFailed, Recordings
from tests.support.processes import FakeProcessReactor

NOW = 1_700_000_000.0


class FakeMediaMTX:
    def __init__(self):
        self.available = True
        self.calls: list = []
        self.error: Exception | None = None
        self.record_flags: dict = {}
        self.listeners: list = []
        self.monitor = SimpleNamespace(subscribe=self.listeners.append)
        self.client = SimpleNamespace(get_path_config=self._get)

    def set_recording(self, camera_id, enabled):
        self.calls.append((camera_id, enabled))
        if self.error is not None:
            return fail(self.error)
        self.record_flags[camera_id] = enabled
        return succeed(None)

    def _get(self, name):
        d: Deferred = Deferred()
        d.callback({"record": self.record_flags.get(name, False)})
        return d

    def event(self, name):
        for listener in self.listeners:
            listener(name, {})


def camera(n=0, **kw):
    return Camera(
        camera_id=f"camera{n}",
        device=f"/dev/video{2 * n}",
        default={"format": "MJPG", "width": 640, "height": 480, "fps": 30},
        **kw,
    )


class Bed:
    def __init__(self, tmp_path, config=None, *, start=True):
        self.tmp = tmp_path
        cfg = {
            "storage": {
                "recordings_dir": str(tmp_path / "rec"),
                "snapshots_dir": str(tmp_path / "snap"),
                "state_dir": str(tmp_path / "state"),
            },
            "recording": {"start_timeout": 5, "max_duration": 3600},
        }
        for key, value in (config or {}).items():
            cfg.setdefault(key, {}).update(value)
        self.config = parse_config_dict(cfg)
        self.clock = Clock()
        self.clock.advance(NOW)
        self.reactor = FakeProcessReactor()
        self.mediamtx = FakeMediaMTX()
        self.cameras = CameraRegistry(self.clock)
        self.cam = self.cameras.put(camera())
        self.store = FileStore(str(tmp_path / "rec"), str(tmp_path / "snap"))
        self.store.ensure_dirs()
        self.notes: list = []
        self.republished: list = []
        self.critical = False
        self.events: list = []
        self.rec = Recordings(
            mediamtx=self.mediamtx,
            cameras=self.cameras,
            reactor=self.reactor,
            clock=self.clock,
            config=self.config,
            store=self.store,
            require_space=self._space,
            publish=lambda method, params: self.notes.append((method, params)),
            camera_changed=self.republished.append,
            metrics=SimpleNamespace(
                recording_event=self.events.append,
                recordings_active=SimpleNamespace(set=lambda n: setattr(self, "active", n)),
            ),
        )
        if start:
            self.rec.startService()

    def _space(self, kind):
        if self.critical:
            raise InsufficientStorage("full")

    def segment(self, camera_id="camera0", at=None, size=100):
        name = f"{camera_id}_{stamp(self.clock.seconds() if at is None else at)}.mp4"
        with open(os.path.join(self.store.dirs[RECORDINGS], name), "wb") as fh:
            fh.write(b"\0" * size)
        return name

    def run(self, coro):
        box: list = []
        Deferred.fromCoroutine(coro).addBoth(box.append)
        return box

    def start(self, **kw):
        return self.run(self.rec.start(self.cameras.get(kw.pop("camera_id", "camera0")), **kw))

    def stop(self, camera_id="camera0"):
        return self.run(self.rec.stop(self.cameras.get(camera_id)))

    def started(self, **kw):
        got = self.start(**kw)
        self.clock.advance(POLL)
        name = self.segment()
        self.clock.advance(POLL)
        assert got and isinstance(got[0], dict), got
        return got[0], name

    def statuses(self):
        return [(p["status"], p.get("reason")) for m, p in self.notes if m == "recording_status_update"]

    def state_file(self):
        with open(self.tmp / "state" / "recordings.json") as fh:
            return json.load(fh)


@pytest.fixture
def bed(tmp_path):
    return Bed(tmp_path)


def test_start_waits_for_the_first_segment(bed):
    got = bed.start(duration=None)
    assert bed.mediamtx.calls == [("camera0", True)]
    reader = bed.reactor.last
    assert "rtsp://127.0.0.1:8554/camera0" in reader.argv and reader.argv[0].endswith("ffmpeg")
    assert reader.stdin_closed
    bed.clock.advance(POLL * 3)
    assert got == [] and not bed.rec.is_recording("camera0")
    name = bed.segment()
    bed.clock.advance(POLL)
    result = got[0]
    assert result["filename"] == name and result["status"] == "STARTED" and result["duration"] is None
    assert result["device"] == "/dev/video0" and result["format"] == "fmp4" and len(result["session_id"]) == 32
    # The recording began when MediaMTX wrote its first segment (the time in its name).
    assert result["start_time"] == pytest.approx(bed.clock.seconds() - POLL, abs=0.001)
    assert bed.rec.is_recording("camera0")
    assert bed.statuses() == [("STARTED", None)] and bed.notes[0][1]["filename"] == name
    assert [c.camera_id for c in bed.republished] == ["camera0"]
    assert bed.state_file()["camera0"]["session_id"] == result["session_id"]
    assert bed.events == ["started"] and bed.active == 1
    assert bed.rec.protected() == {(RECORDINGS, name)}


def test_old_files_of_the_camera_are_not_the_new_segment(bed):
    old = bed.segment(at=NOW - 3600)
    got = bed.start()
    bed.clock.advance(POLL * 2)
    assert got == []
    new = bed.segment()
    bed.clock.advance(POLL)
    assert got[0]["filename"] == new != old


def test_second_start_and_stop_when_idle_are_invalid_state(bed):
    bed.started()
    second = bed.start()
    assert second[0].check(InvalidState) and "already recording" in second[0].value.message
    assert len(bed.reactor.spawned) == 1
    bed.cameras.put(camera(1))
    idle = bed.stop("camera1")
    assert idle[0].check(InvalidState) and idle[0].value.message == "Camera camera1 is not recording"


def test_start_while_starting_is_refused(bed):
    bed.start()
    again = bed.start()
    assert again[0].check(InvalidState)
    stop = bed.stop()
    assert stop[0].check(InvalidState) and "still starting" in stop[0].value.message


@pytest.mark.parametrize("duration", [0, -1, 3600.5])
def test_duration_bounds(bed, duration):
    got = bed.start(duration=duration)
    assert got[0].check(InvalidParams) and bed.mediamtx.calls == []


def test_refusals(bed):
    bed.critical = True
    assert bed.start()[0].check(InsufficientStorage)
    bed.critical = False
    bed.cameras.mark_disconnected("camera0")
    assert bed.start()[0].check(CameraNotFound)
    assert bed.mediamtx.calls == [] and bed.reactor.spawned == []


def test_stop(bed):
    result, first = bed.started()
    reader = bed.reactor.last
    bed.clock.advance(30)
    second = bed.segment(size=50)
    got = bed.stop()
    assert bed.mediamtx.calls[-1] == ("camera0", False)
    assert reader.signals == ["TERM"] and reader.ended
    assert got == []  # settling: MediaMTX closes the last segment
    bed.clock.advance(SETTLE)
    out = got[0]
    assert out["status"] == "STOPPED" and out["session_id"] == result["session_id"] and out["reason"] == "requested"
    assert out["filename"] == first and out["files"] == [first, second] and out["file_size"] == 150
    assert out["start_time"] == result["start_time"] and out["end_time"] == bed.clock.seconds()
    assert out["duration"] == pytest.approx(out["end_time"] - out["start_time"]) and out["duration"] > 30
    assert not bed.rec.is_recording("camera0") and bed.state_file() == {}
    assert bed.statuses() == [("STARTED", None), ("STOPPED", "requested")]
    assert bed.events == ["started", "stopped"] and bed.active == 0
    assert bed.clock.getDelayedCalls() == []


def test_stop_even_when_mediamtx_cannot_be_told(bed):
    bed.started()
    bed.mediamtx.error = MediaMTXUnavailable("down")
    got = bed.stop()
    bed.clock.advance(SETTLE)
    assert got[0]["status"] == "STOPPED" and not bed.rec.is_recording("camera0")


def test_duration_stops_on_the_clock(bed):
    result, _ = bed.started(duration=10)
    assert result["duration"] == 10
    bed.clock.advance(result["start_time"] + 10 - bed.clock.seconds() - 0.05)
    assert bed.rec.is_recording("camera0")
    bed.clock.advance(0.05)
    bed.clock.advance(SETTLE)
    assert not bed.rec.is_recording("camera0")
    assert bed.statuses()[-1] == ("STOPPED", "duration")
    assert bed.mediamtx.calls[-1] == ("camera0", False) and bed.events[-1] == "auto_stopped"
    stopped = [p for m, p in bed.notes if m == "recording_status_update"][-1]
    assert stopped["duration"] == pytest.approx(10 + SETTLE, abs=0.01)


def test_reader_restarts_with_backoff_while_recording(bed):
    bed.started()
    delays = []
    for _ in range(8):
        count = len(bed.reactor.spawned)
        bed.reactor.last.err(b"Connection refused\n")
        bed.reactor.last.exit(1)
        waited = 0.0
        while len(bed.reactor.spawned) == count:
            bed.clock.advance(0.25)
            waited += 0.25
        delays.append(waited)
    assert delays[:4] == [0.5, 1.0, 2.0, 4.0] and max(delays) <= BACKOFF_CAP
    bed.clock.advance(60)  # a long healthy run resets the backoff
    bed.reactor.last.exit(1)
    bed.clock.advance(0.5)
    assert len(bed.reactor.running()) == 1
    session = bed.rec.sessions["camera0"]
    assert session.reader.failures == 9
    assert bed.rec.status()["active"][0]["reader_restarts"] == 9


def test_a_reader_deaf_to_sigterm_is_killed(tmp_path):
    bed = Bed(tmp_path)
    bed.reactor.die_on_kill = False
    bed.started()
    reader = bed.reactor.last
    got = bed.stop()
    assert reader.signals == ["TERM"]
    bed.clock.advance(KILL_AFTER)
    assert reader.signals == ["TERM", "KILL"]
    reader.exit(None, signal=9)
    bed.clock.advance(SETTLE)
    assert got[0]["status"] == "STOPPED"


def test_no_segment_in_time_rolls_back(bed):
    got = bed.start()
    reader = bed.reactor.last
    bed.clock.advance(5)
    bed.clock.advance(SETTLE)
    assert got[0].check(RecordingFailed) and "no segment within 5 s" in got[0].value.message
    assert bed.mediamtx.calls == [("camera0", True), ("camera0", False)] and reader.ended
    assert not bed.rec.is_recording("camera0") and bed.statuses() == [("FAILED", got[0].value.message)]
    assert bed.clock.getDelayedCalls() == [] and bed.events == ["failed"]


def test_mediamtx_refusal_fails_the_start(bed):
    bed.mediamtx.error = MediaMTXUnavailable("MediaMTX is unavailable: down")
    got = bed.start()
    assert got[0].check(MediaMTXUnavailable) and bed.reactor.spawned == []
    assert not bed.rec.sessions and bed.statuses()[0][0] == "FAILED"


def test_unplug_while_recording_finalises(bed):
    bed.started()
    reader = bed.reactor.last
    calls = list(bed.mediamtx.calls)
    bed.cameras.mark_disconnected("camera0")
    bed.clock.advance(SETTLE)
    assert reader.ended and not bed.rec.is_recording("camera0")
    assert bed.mediamtx.calls == calls  # the reconciler drops the path itself
    assert bed.statuses()[-1] == ("FAILED", "camera_disconnected")
    assert bed.state_file() == {}


def test_unplug_while_starting(bed):
    got = bed.start()
    bed.cameras.mark_disconnected("camera0")
    bed.clock.advance(POLL)
    bed.clock.advance(SETTLE)
    assert got[0].check(CameraNotFound) and "disconnected while the recording was starting" in got[0].value.message
    assert bed.reactor.last.ended


def test_shutdown_stops_recordings_by_default(bed):
    bed.started()
    done = []
    bed.rec.stopService().addCallback(done.append)
    bed.clock.advance(SETTLE)
    assert done and bed.mediamtx.calls[-1] == ("camera0", False)
    assert bed.statuses()[-1] == ("STOPPED", "shutdown") and bed.state_file() == {}


def test_shutdown_can_leave_them_to_mediamtx_and_resume(tmp_path):
    bed = Bed(tmp_path, {"recording": {"on_shutdown": "keep"}})
    result, first = bed.started(duration=100)
    bed.clock.advance(40)
    done = []
    bed.rec.stopService().addCallback(done.append)
    assert done and bed.reactor.last.ended and bed.mediamtx.calls[-1] == ("camera0", True)
    assert bed.state_file()["camera0"]["session_id"] == result["session_id"]

    again = Bed(tmp_path, {"recording": {"on_shutdown": "keep"}}, start=False)
    again.clock.advance(bed.clock.seconds() - NOW + 10)  # camsvc was down for 10 s
    again.mediamtx.available = False
    again.rec.startService()
    assert again.rec.status()["resuming"] == ["camera0"] and not again.rec.is_recording("camera0")
    assert again.rec.protected() == {(RECORDINGS, first)}  # its last segment stays safe
    again.mediamtx.available = True
    again.mediamtx.event("up")
    assert again.rec.is_recording("camera0") and again.mediamtx.calls == [("camera0", True)]
    assert len(again.reactor.running()) == 1
    assert again.statuses() == [("STARTED", "resumed")]
    assert again.notes[0][1]["session_id"] == result["session_id"]
    end = result["start_time"] + 100
    again.clock.advance(end - again.clock.seconds() - 0.05)
    assert again.rec.is_recording("camera0")
    again.clock.advance(0.05)
    again.clock.advance(SETTLE)
    out = again.statuses()[-1]
    assert out == ("STOPPED", "duration") and not again.rec.is_recording("camera0")


def test_resume_waits_for_the_camera(tmp_path):
    bed = Bed(tmp_path)
    bed.started()
    bed.rec.sessions["camera0"].reader.stop()  # a crash: no stopService
    again = Bed(tmp_path, start=False)
    again.cameras.mark_disconnected("camera0")
    again.rec.startService()
    assert not again.rec.is_recording("camera0")
    again.cameras.put(camera())
    assert again.rec.is_recording("camera0") and again.statuses() == [("STARTED", "resumed")]


def test_resume_of_an_expired_session_finalises_it(tmp_path):
    bed = Bed(tmp_path)
    bed.started(duration=5)
    again = Bed(tmp_path, start=False)
    again.clock.advance(60)
    again.rec.startService()
    again.clock.advance(SETTLE)
    assert again.statuses() == [("STOPPED", "duration")] and again.state_file() == {}
    assert again.mediamtx.calls == [("camera0", False)]


def test_resume_gives_up_when_the_camera_does_not_return(tmp_path):
    bed = Bed(tmp_path)
    bed.started()
    again = Bed(tmp_path, start=False)
    again.cameras.mark_disconnected("camera0")
    again.rec.startService()
    again.clock.advance(60)
    again.clock.advance(SETTLE)
    assert again.statuses() == [("FAILED", "not_resumable")] and again.state_file() == {}
    assert again.clock.getDelayedCalls() == []


def test_a_pending_resume_can_be_stopped(tmp_path):
    bed = Bed(tmp_path)
    bed.started()
    again = Bed(tmp_path, start=False)
    again.mediamtx.available = False
    again.rec.startService()
    got = again.stop()
    again.clock.advance(SETTLE)
    assert got[0]["status"] == "STOPPED" and again.statuses() == [("STOPPED", "requested")]
    assert again.clock.getDelayedCalls() == []


def test_corrupt_state_is_ignored(tmp_path):
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "recordings.json").write_text('{"camera0": {"start_time": "x"}, "camera1": 3}')
    bed = Bed(tmp_path)
    assert bed.rec.status()["resuming"] == [] and not bed.rec.sessions
    (tmp_path / "state" / "recordings.json").write_text("not json")
    assert Bed(tmp_path).rec.status()["resuming"] == []


def test_reader_command_placeholders(tmp_path):
    bed = Bed(
        tmp_path,
        {
            "recording": {"reader_command": "python3 -m reader {rtsp_host}:{rtsp_port} {camera_id}"},
            "mediamtx": {"rtsp_port": 9554},
        },
    )
    bed.start()
    assert bed.reactor.last.argv[1:] == ["-m", "reader", "127.0.0.1:9554", "camera0"]
