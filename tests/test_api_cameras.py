"""Camera API methods and camera_status_update, on a fully built App (fake udev and prober)."""

from __future__ import annotations

import json

import pytest
from twisted.internet.defer import Deferred, succeed
from twisted.internet.testing import MemoryReactorClock

from camsvc.cameras.discovery import PROBE_START_DELAY
from camsvc.config import parse_config_dict
from camsvc.tap import build
from camsvc.testing import FakeProber, FakeUdev, platform_camera, probe_result, usb_camera


class Conn:
    """A hub connection that records what it is sent."""

    def __init__(self, session):
        self.session = session
        self.sent = []

    def send_notification(self, text, shared):
        self.sent.append(json.loads(text))
        return True


class Env:
    def __init__(self, tmp_path, devices=(), mediamtx=None):
        self.reactor = MemoryReactorClock()
        config = parse_config_dict(
            {
                "server": {"host": "127.0.0.1"},
                "auth": {"required": False},
                "storage": {"state_dir": str(tmp_path)},
                "mediamtx": mediamtx or {},
            }
        )
        self.app = build(config, self.reactor)
        self.udev = FakeUdev(devices)
        self.prober = FakeProber()
        self.app.discovery.udev_factory = self.udev
        self.app.discovery.prober = self.prober
        self.before_start()
        self.app.discovery.startService()
        self.session = self.session_for("box.example")

    def before_start(self):
        """Hook for subclasses: inject more fakes before discovery starts."""

    def session_for(self, host):
        return self.app.make_session(self.app.hub.next_id(), peer="10.0.0.9", host=host)

    def connect(self, host):
        conn = Conn(self.session_for(host))
        self.app.hub.add(conn)
        return conn

    def call(self, method, params=None, session=None):
        msg = {"jsonrpc": "2.0", "method": method, "id": 1}
        if params is not None:
            msg["params"] = params
        out = self.app.engine.handle(session or self.session, json.dumps(msg))
        if isinstance(out, Deferred):
            box = []
            out.addBoth(box.append)
            assert box, f"{method} did not answer"
            out = box[0]
        return json.loads(out)

    def result(self, method, params=None, session=None):
        reply = self.call(method, params, session)
        assert "result" in reply, reply
        return reply["result"]

    def deliver(self):
        for reader in list(self.reactor.readers):
            reader.doRead()

    def stop(self):
        self.app.discovery.stopService()


@pytest.fixture
def env(tmp_path):
    made = []

    def factory(*a, **kw):
        e = Env(tmp_path, *a, **kw)
        made.append(e)
        return e

    yield factory
    for e in made:
        e.stop()


def test_camera_list(env):
    e = env([usb_camera(0, serial="S1", card="HD Webcam"), platform_camera(2)])
    listing = e.result("get_camera_list")
    assert listing["total"] == 2 and listing["connected"] == 2
    first = listing["cameras"][0]
    assert first == {
        "device": "/dev/video0",
        "camera_id": "camera0",
        "status": "CONNECTED",
        "name": "HD Webcam",
        "resolution": "",
        "fps": 0,
        "streams": {
            "rtsp": "rtsp://box.example:8554/camera0",
            "webrtc": "http://box.example:8889/camera0/",
            "hls": "http://box.example:8888/camera0/index.m3u8",
        },
        "recording": False,
        "last_seen": None,
        "mode": None,
    }
    e.reactor.advance(PROBE_START_DELAY)
    e.prober.succeed("/dev/video0")
    e.prober.succeed("/dev/video2", probe_result("/dev/video2", card="vivid", fps=None))
    cams = e.result("get_camera_list")["cameras"]
    assert [(c["resolution"], c["fps"]) for c in cams] == [("1920x1080", 30), ("1920x1080", 0)]


def test_public_host_and_recording_flag(env):
    e = env([usb_camera(0, serial="S1")], mediamtx={"public_host": "cams.example.org", "rtsp_port": 9554})

    class Recordings:
        def is_recording(self, camera_id):
            return camera_id == "camera0"

    e.app.recordings = Recordings()
    cam = e.result("get_camera_list")["cameras"][0]
    assert cam["streams"]["rtsp"] == "rtsp://cams.example.org:9554/camera0"
    assert cam["recording"] is True


def test_camera_status_resolves_every_device_form(env):
    cam = usb_camera(0, serial="S1")
    e = env([cam])
    by_id = "/dev/v4l/by-id/usb-Vendor_USB_Camera_S1-video-index0"
    for device in ("camera0", "/dev/video0", by_id, "/dev/v4l/by-path/pci-0000:00:14.0-usb-0:1:1.0-video-index0"):
        status = e.result("get_camera_status", {"device": device})
        assert status["camera_id"] == "camera0", device
    assert status["capabilities"] is None and status["error"] is None
    assert by_id in status["links"]
    for device in ("camera9", "/dev/video7", "/dev/v4l/by-id/nope", "video0"):
        reply = e.call("get_camera_status", {"device": device})
        assert reply["error"]["code"] == -32004
        assert device in reply["error"]["message"]
    assert e.call("get_camera_status", {})["error"]["code"] == -32602
    assert e.call("get_camera_status", {"device": 3})["error"]["code"] == -32602


def test_camera_status_with_capabilities_and_metrics(env):
    e = env([usb_camera(0, serial="S1")])
    e.reactor.advance(PROBE_START_DELAY)
    e.prober.succeed("/dev/video0")
    calls = []

    def path_stats(camera):
        calls.append(camera.camera_id)
        return succeed({"readers": 2, "bytes_sent": 1000})

    def broken(camera):
        raise RuntimeError("stats unavailable")

    e.app.camera_metrics.extend([path_stats, broken, lambda cid: {"readers": 3}])
    status = e.result("get_camera_status", {"device": "/dev/video0"})
    assert calls == ["camera0"]
    # merged in order (the MediaMTX component contributes its "stream" entry too)
    assert status["metrics"]["readers"] == 3 and status["metrics"]["bytes_sent"] == 1000
    caps = status["capabilities"]
    assert caps["default"] == {"format": "MJPG", "width": 1920, "height": 1080, "fps": 30}
    assert caps["resolutions"] == ["1920x1080", "640x480"] and caps["fps_options"] == [30, 15]
    assert status["since"].endswith("Z")


def test_capabilities(env):
    e = env([usb_camera(0, serial="S1")])
    # the probe is still running: the answer waits for it
    out = e.app.engine.handle(
        e.session,
        json.dumps({"jsonrpc": "2.0", "method": "get_camera_capabilities", "params": {"device": "camera0"}, "id": 7}),
    )
    assert isinstance(out, Deferred) and not out.called
    e.reactor.advance(PROBE_START_DELAY)
    e.prober.succeed("/dev/video0")
    box = []
    out.addCallback(box.append)
    caps = json.loads(box[0])["result"]
    assert caps["camera_id"] == "camera0" and caps["status"] == "CONNECTED" and caps["device"] == "/dev/video0"
    assert caps["driver"] == "uvcvideo"
    assert [f["format"] for f in caps["formats"]] == ["MJPG", "YUYV"]
    assert caps["formats"][0]["sizes"][0] == {"width": 1920, "height": 1080, "fps": [30, 15]}
    assert caps["default"]["format"] == "MJPG"
    # an immediate answer now
    assert e.result("get_camera_capabilities", {"device": "/dev/video0"}) == caps


def test_capabilities_of_a_camera_in_error(env):
    e = env([usb_camera(0, serial="S1")])
    e.reactor.advance(PROBE_START_DELAY)
    e.prober.fail("/dev/video0", "error", "/dev/video0: cannot open: Permission denied")
    reply = e.call("get_camera_capabilities", {"device": "camera0"})
    assert reply["error"]["code"] == -32005
    assert "Permission denied" in reply["error"]["message"]
    status = e.result("get_camera_status", {"device": "camera0"})
    assert status["status"] == "ERROR" and "Permission denied" in status["error"]


def test_notifications_per_host_on_add_change_remove(env):
    e = env()
    local, remote = e.connect("127.0.0.1"), e.connect("cam-box.lan")
    anonymous = Conn(e.session_for("x"))
    anonymous.session.role = None
    e.app.hub.add(anonymous)
    cam = e.udev.add(usb_camera(0, serial="S1"))
    e.deliver()
    (note,) = local.sent
    assert note["method"] == "camera_status_update" and "id" not in note
    assert note["params"]["status"] == "CONNECTED" and note["params"]["camera_id"] == "camera0"
    assert note["params"]["streams"]["rtsp"] == "rtsp://127.0.0.1:8554/camera0"
    assert remote.sent[0]["params"]["streams"]["rtsp"] == "rtsp://cam-box.lan:8554/camera0"
    assert anonymous.sent == []  # only authenticated sessions get notifications
    e.reactor.advance(PROBE_START_DELAY)
    e.prober.succeed("/dev/video0")
    assert local.sent[-1]["params"]["resolution"] == "1920x1080" and len(local.sent) == 2
    e.reactor.advance(1)
    e.udev.change(cam)  # nothing visible changed: no notification
    e.deliver()
    assert len(local.sent) == 2
    e.udev.remove(cam)
    e.deliver()
    assert local.sent[-1]["params"]["status"] == "DISCONNECTED" and len(local.sent) == 3
    assert [n["params"]["status"] for n in remote.sent] == ["CONNECTED", "CONNECTED", "DISCONNECTED"]


def test_health_and_status_section(env):
    e = env([usb_camera(0, serial="S1")])
    assert e.app.health.is_ok("discovery")
    status = e.result("get_status")
    assert status["components"]["discovery"]["connected"] == 1
    assert status["checks"]["discovery"]["ok"] is True


def test_debounce_and_probe_timeout_reload_live(env, tmp_path):
    import yaml

    from camsvc.cameras.probing import ProcessProber
    from camsvc.config import load_config
    from camsvc.ops.reload import Reloader

    e = env()
    e.app.discovery.prober = ProcessProber(e.reactor, 5)
    path = tmp_path / "camsvc.yaml"
    base = {
        "server": {"host": "127.0.0.1"},
        "auth": {"required": False},
        "storage": {"state_dir": str(tmp_path)},
        "discovery": {"debounce": 1.5, "probe_timeout": 9, "receive_buffer_size": 1048576},
    }
    path.write_text(yaml.safe_dump(base))
    report = Reloader(e.app, str(path), load=lambda p: load_config(p, environ={})).reload()
    assert e.app.discovery.config.debounce == 1.5
    assert e.app.discovery.prober.timeout == 9
    assert "discovery.receive_buffer_size" in json.dumps(report)  # needs a restart


def test_forget_camera_and_last_seen(env):
    cam = usb_camera(0, serial="S1", card="HD Webcam")
    e = env([cam, platform_camera(2)])
    assert e.call("forget_camera", {"device": "camera0"})["error"]["code"] == -32005  # present
    e.reactor.advance(100)
    e.udev.remove(cam)
    e.deliver()
    gone = e.result("get_camera_list")["cameras"][0]
    assert gone["status"] == "DISCONNECTED" and gone["last_seen"].endswith("Z")
    assert (
        e.result("get_camera_status", {"device": "camera0"})["path"]
        == "/dev/v4l/by-id/usb-Vendor_HD_Webcam_S1-video-index0"
    )
    assert e.result("forget_camera", {"device": "camera0"}) == {"camera_id": "camera0", "forgotten": True}
    assert [c["camera_id"] for c in e.result("get_camera_list")["cameras"]] == ["camera1"]
    assert e.call("forget_camera", {"device": "camera0"})["error"]["code"] == -32004
    e.udev.add(cam)  # the id mapping was kept
    e.deliver()
    assert [c["camera_id"] for c in e.result("get_camera_list")["cameras"]] == ["camera0", "camera1"]
