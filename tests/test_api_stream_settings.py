"""Stream settings: get/set_stream_settings, the active mode, the publisher command, EncoderProbe."""

from __future__ import annotations

import pytest
from twisted.internet.defer import succeed

from camsvc.cameras.discovery import PROBE_START_DELAY
from camsvc.cameras.stream_settings import EncoderProbe
from camsvc.testing import usb_camera
from tests.support.processes import FakeProcessReactor
from tests.test_api_cameras import Env


class Encoders:
    def __init__(self, names=("libx264", "copy", "h264_v4l2m2m")):
        self.names = names

    def available(self):
        return succeed(self.names)


class StreamEnv(Env):
    def before_start(self):
        self.app.encoders = Encoders()

    def probed(self):
        self.reactor.advance(PROBE_START_DELAY)
        self.prober.succeed("/dev/video0")

    def command(self):
        return self.app.mediamtx.reconciler.desired("camera0")["runOnDemand"]

    def error(self, method, params):
        reply = self.call(method, params)
        assert "error" in reply, reply
        return reply["error"]


@pytest.fixture
def senv(tmp_path):
    made = []

    def factory(*a, **kw):
        e = StreamEnv(tmp_path, *a, **kw)
        made.append(e)
        return e

    yield factory
    for e in made:
        e.stop()


def test_choices_and_active_mode(senv):
    e = senv([usb_camera(0, serial="S1")])
    before = e.result("get_stream_settings", {"device": "camera0"})
    assert before["active"] is None and before["formats"] == []
    e.probed()
    out = e.result("get_stream_settings", {"device": "camera0"})
    assert out["active"] == {
        "format": "MJPG",
        "width": 1920,
        "height": 1080,
        "fps": 30,
        "encoder": "libx264",
        "bitrate": None,
        "gop": None,
        "custom": False,
    }
    assert [f["format"] for f in out["formats"]] == ["MJPG", "YUYV"]
    assert out["formats"][0]["sizes"][1] == {"width": 640, "height": 480, "fps": [30, 15]}
    assert [(x["name"], x["formats"]) for x in out["encoders"]] == [
        ("libx264", ["MJPG", "YUYV"]),
        ("copy", ["MJPG"]),
        ("h264_v4l2m2m", ["MJPG", "YUYV"]),
    ]
    assert out["stored"] == {}


def test_set_applies_to_the_path_and_the_camera_object(senv):
    e = senv([usb_camera(0, serial="S1")])
    e.probed()
    conn = e.connect("box.example")
    assert "-video_size 1920x1080 -framerate 30" in e.command() and "libx264" in e.command()
    out = e.result(
        "set_stream_settings", {"device": "camera0", "width": 640, "height": 480, "fps": 15, "encoder": "copy"}
    )
    assert out["changed"] is True
    assert out["stored"] == {"width": 640, "height": 480, "fps": 15, "encoder": "copy"}
    assert out["active"]["encoder"] == "copy" and out["active"]["custom"] is True
    cmd = e.command()
    assert "-input_format mjpeg -video_size 640x480 -framerate 15" in cmd and "-c:v copy" in cmd
    cam = e.result("get_camera_status", {"device": "camera0"})
    assert (cam["resolution"], cam["fps"], cam["mode"]["encoder"]) == ("640x480", 15, "copy")
    updates = [m["params"] for m in conn.sent if m["method"] == "camera_status_update"]
    assert updates[-1]["resolution"] == "640x480"
    # the same settings again: nothing changes, no restart
    again = e.result("set_stream_settings", {"device": "camera0", "encoder": "copy"})
    assert again["changed"] is False


def test_size_change_picks_an_offered_rate_and_bitrate_gop_reach_the_command(senv):
    e = senv([usb_camera(0, serial="S1")])
    e.probed()
    out = e.result("set_stream_settings", {"device": "camera0", "format": "YUYV", "width": 640, "height": 480})
    assert out["active"]["fps"] == 30
    e.result("set_stream_settings", {"device": "camera0", "bitrate": 2000, "gop": 60, "encoder": "h264_v4l2m2m"})
    cmd = e.command()
    assert "-input_format yuyv422" in cmd and "h264_v4l2m2m" in cmd and "-g 60" in cmd
    assert "-b:v 2000k -maxrate 2000k -bufsize 4000k -f rtsp" in cmd
    # null returns a field to the default
    out = e.result("set_stream_settings", {"device": "camera0", "encoder": None, "bitrate": None})
    assert out["active"]["encoder"] == "libx264" and "-b:v" not in e.command()


@pytest.mark.parametrize(
    "params, param, needle",
    [
        ({"format": "H264"}, "format", "does not offer format 'H264' (offers MJPG, YUYV)"),
        ({"width": 1280, "height": 720}, "size", "does not offer 1280x720 in MJPG (offers 1920x1080, 640x480)"),
        ({"fps": 60}, "fps", "does not offer 60 fps at 1920x1080 MJPG"),
        ({"format": "YUYV", "width": 640, "height": 480, "encoder": "copy"}, "encoder", "copy passes H.264 or MJPEG"),
        ({"encoder": "copy", "bitrate": 1000}, "bitrate", "bitrate applies to an encoder"),
        ({"encoder": "nvenc"}, None, "must be one of"),
        ({}, "format", "Give at least one of"),
    ],
)
def test_what_the_camera_does_not_offer_is_32602(senv, params, param, needle):
    e = senv([usb_camera(0, serial="S1")])
    e.probed()
    err = e.error("set_stream_settings", {"device": "camera0", **params})
    assert err["code"] == -32602 and needle in err["message"], err
    if param is not None:
        assert err["data"]["param"] == param
    assert e.result("get_stream_settings", {"device": "camera0"})["stored"] == {}


def test_hardware_encoder_only_when_ffmpeg_has_it(senv):
    e = senv([usb_camera(0, serial="S1")])
    e.app.encoders = Encoders(("libx264", "copy"))
    e.probed()
    err = e.error("set_stream_settings", {"device": "camera0", "encoder": "h264_v4l2m2m"})
    assert err["code"] == -32602 and err["data"]["allowed"] == ["libx264", "copy"]


def test_refused_while_recording(senv):
    e = senv([usb_camera(0, serial="S1")])
    e.probed()

    class Recordings:
        def is_recording(self, camera_id):
            return True

    e.app.recordings = Recordings()
    err = e.error("set_stream_settings", {"device": "camera0", "fps": 15})
    assert err["code"] == -32005 and err["data"]["reason"] == "recording"


def test_settings_persist_for_the_next_start(senv):
    cam = usb_camera(0, serial="S1")
    e = senv([cam])
    e.probed()
    e.result("set_stream_settings", {"device": "camera0", "width": 640, "height": 480})
    e.reactor.advance(1)
    again = senv([cam])
    again.probed()
    assert again.result("get_stream_settings", {"device": "camera0"})["active"]["width"] == 640
    assert "-video_size 640x480" in again.command()


def test_encoder_probe_reads_ffmpeg_encoders_once():
    reactor = FakeProcessReactor()
    probe = EncoderProbe(reactor)
    got = []
    probe.available().addCallback(got.append)
    probe.available().addCallback(got.append)
    assert len(reactor.spawned) == 1
    proc = reactor.last
    assert proc.argv[1:] == ["-hide_banner", "-encoders"]
    proc.out(
        b" V....D libx264              libx264 H.264\n V..... h264_v4l2m2m         V4L2 mem2mem H.264 encoder wrapper\n"
    )
    proc.exit(0)
    assert got == [("libx264", "copy", "h264_v4l2m2m")] * 2
    probe.available().addCallback(got.append)
    assert len(reactor.spawned) == 1 and got[-1] == ("libx264", "copy", "h264_v4l2m2m")


def test_encoder_probe_without_ffmpeg_offers_software_only():
    reactor = FakeProcessReactor()
    probe = EncoderProbe(reactor)
    got = []
    probe.available().addCallback(got.append)
    reactor.last.exit(1)
    assert got == [("libx264", "copy")]
