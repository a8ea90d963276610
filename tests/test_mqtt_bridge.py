"""camsvc.mqtt.bridge in a fully wired App (tap.build on a MemoryReactorClock), broker faked.

The connection is replaced by :class:`FakeConnection`, which records what the
bridge hands it and can be "down"; everything else (registry, hub, engine,
roles, metrics) is the real thing.  The real broker is in test_mqtt_broker.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import deque
from dataclasses import replace

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock

from camsvc.cameras.registry import DISCONNECTED, Camera
from camsvc.config import parse_config_dict
from camsvc.tap import build
from tests.support.server import ROOT


class FakeConnection:
    def __init__(self):
        self.connected = True
        self.full = False
        self.sent: list[tuple[str, bytes, bool]] = []
        self.subscribed: list[str] = []

    def publish(self, topic, payload, *, qos=None, retain=False, properties=None):
        if not self.connected:
            return "disconnected"
        if self.full:
            return "full"
        self.sent.append((topic, payload, retain))
        return "sent"

    def subscribe(self, topics, qos=None):
        self.subscribed += topics

    def status(self):
        return {"connected": self.connected}

    def on(self, topic):
        return [p for t, p, _ in self.sent if t == topic]


def make(tmp_path, **mqtt):
    config = parse_config_dict(
        {
            "server": {"host": "127.0.0.1"},
            "auth": {"required": False},
            "discovery": {"enabled": False},
            "mediamtx": {"enabled": False},
            "storage": {
                "recordings_dir": str(tmp_path / "rec"),
                "snapshots_dir": str(tmp_path / "snap"),
                "state_dir": str(tmp_path / "state"),
            },
            "mqtt": {"enabled": True, "host_id": "box", "queue_size": 3, **mqtt},
        }
    )
    for sub in ("rec", "snap", "state"):
        (tmp_path / sub).mkdir(exist_ok=True)
    app = build(config, MemoryReactorClock())
    bridge = app.mqtt
    bridge.connection = FakeConnection()
    bridge.startService()
    return app, bridge, bridge.connection


CAM = Camera("camera0", "/dev/video0", name="Cam", default={"format": "MJPG", "width": 640, "height": 480, "fps": 30})


def metric(app, name, **labels):
    return app.metrics.registry.get_sample_value(name, labels) or 0


def test_disabled_by_default_and_paho_not_even_imported(tmp_path):
    storage = {k: str(tmp_path / k) for k in ("state_dir", "recordings_dir", "snapshots_dir")}
    config = parse_config_dict({"storage": storage})
    assert build(config, MemoryReactorClock()).mqtt is None
    probe = (
        "import sys\n"
        "from twisted.internet.testing import MemoryReactorClock\n"
        "from camsvc.config import parse_config_dict\n"
        "from camsvc.tap import build\n"
        f"build(parse_config_dict({{'storage': {storage!r}}}), MemoryReactorClock())\n"
        "print(sorted(m for m in sys.modules if m.startswith(('paho', 'camsvc.mqtt'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_state_discovery_and_events(tmp_path):
    app, bridge, conn = make(tmp_path)
    app.cameras.put(CAM)
    state = json.loads(conn.on("camsvc/box/cameras/camera0/state")[-1])
    assert (state["camera_id"], state["status"], state["resolution"]) == ("camera0", "CONNECTED", "640x480")
    assert conn.on("camsvc/box/cameras/camera0/recording") == [b"OFF"]
    assert (
        json.loads(conn.on("homeassistant/camera/box/camera0/config")[0])["topic"] == "camsvc/box/cameras/camera0/image"
    )
    assert json.loads(conn.on("camsvc/box/events")[0])["event"] == "camera_plugged"
    retained = {t for t, _, r in conn.sent if r}
    assert "camsvc/box/events" not in retained and "camsvc/box/cameras/camera0/state" in retained
    # unchanged state is not sent twice
    count = len(conn.sent)
    app.cameras.put(replace(CAM, since=5.0))
    assert len(conn.sent) == count
    # unplugged: state kept (DISCONNECTED), an event
    app.cameras.mark_disconnected("camera0")
    assert json.loads(conn.on("camsvc/box/cameras/camera0/state")[-1])["status"] == DISCONNECTED
    assert json.loads(conn.on("camsvc/box/events")[-1])["event"] == "camera_unplugged"


def test_forgotten_camera_is_cleared(tmp_path):
    app, bridge, conn = make(tmp_path)
    app.cameras.put(CAM)
    app.cameras.discard("camera0")
    cleared = {t for t, p, r in conn.sent if r and p == b""}
    assert "camsvc/box/cameras/camera0/state" in cleared
    assert "homeassistant/camera/box/camera0/config" in cleared
    assert not any("camera0" in t for t in bridge.retained)
    # forgotten while the broker is away: cleared when it is back (a persistent broker kept them)
    app.cameras.put(replace(CAM, camera_id="camera1", device="/dev/video2"))
    conn.connected = False
    app.cameras.discard("camera1")
    conn.connected = True
    conn.sent.clear()
    bridge.connected()
    cleared = {t for t, p, r in conn.sent if r and p == b""}
    assert {"camsvc/box/cameras/camera1/state", "homeassistant/camera/box/camera1/config"} <= cleared
    assert bridge.clears == set()


def test_outage_state_republished_events_bounded_and_counted(tmp_path):
    app, bridge, conn = make(tmp_path)
    conn.connected = False
    conn.sent.clear()  # what startService published (storage, MediaMTX state)
    app.cameras.put(CAM)
    for n in range(1, 5):
        app.cameras.put(Camera(f"camera{n}", f"/dev/video{2 * n}", name="Cam"))
    assert conn.sent == []
    assert len(bridge.events) == 3  # queue_size
    assert metric(app, "camsvc_mqtt_dropped_total", kind="event") == 2
    conn.connected = True
    bridge.connected()
    topics = [t for t, _, _ in conn.sent]
    assert "camsvc/box/availability" in topics and "homeassistant/sensor/box/storage_free/config" in topics
    assert all(f"camsvc/box/cameras/camera{n}/state" in topics for n in range(5))
    events = [json.loads(p)["camera_id"] for p in conn.on("camsvc/box/events")]
    assert events == ["camera2", "camera3", "camera4"]  # the oldest were dropped
    assert bridge.status()["dropped"] == 2
    # a flush cut short keeps the rest queued, in order
    conn.connected = False
    app.cameras.mark_disconnected("camera0")
    app.cameras.mark_disconnected("camera1")
    conn.full = True
    conn.connected = True
    bridge.connected()
    assert len(bridge.events) == 2
    conn.full = False
    bridge.connected()
    assert [json.loads(p)["camera_id"] for p in conn.on("camsvc/box/events")][-2:] == ["camera0", "camera1"]
    assert bridge.events == deque()


def answer(out):
    if isinstance(out, Deferred):
        box = []
        out.addBoth(box.append)
        out = box[0]
    return json.loads(out)


def command(bridge, conn, request, topic="camsvc/box/command"):
    before = len(conn.on("camsvc/box/response"))
    bridge.message(topic, json.dumps(request).encode() if isinstance(request, dict) else request)
    return [json.loads(p) for p in conn.on("camsvc/box/response")[before:]]


def test_commands_answer_like_json_rpc_and_duplicates_are_harmless(tmp_path):
    app, bridge, conn = make(tmp_path, commands=True)
    bridge.connected()
    assert "camsvc/box/cameras/+/recording/set" in conn.subscribed
    app.cameras.put(CAM)
    request = {"jsonrpc": "2.0", "id": 7, "method": "stop_recording", "params": {"device": "camera0"}}
    (reply,) = command(bridge, conn, request)
    ws = answer(app.engine.handle(app.make_session("c1", "p", "h"), json.dumps(request)))
    assert reply == ws and reply["error"]["code"] == -32005
    calls = metric(app, "camsvc_rpc_requests_total", method="stop_recording", outcome="invalid_state")
    (again,) = command(bridge, conn, request)  # a QoS 1 redelivery
    assert again == reply
    assert metric(app, "camsvc_rpc_requests_total", method="stop_recording", outcome="invalid_state") == calls
    assert metric(app, "camsvc_mqtt_commands_total", result="duplicate") == 1
    # only the three commands; garbage is answered, not run
    (refused,) = command(bridge, conn, {"jsonrpc": "2.0", "id": 8, "method": "set_retention_policy", "params": {}})
    assert refused["error"]["code"] == -32601 and refused["id"] == 8
    (garbage,) = command(bridge, conn, b"{not json")
    assert garbage["error"]["code"] == -32700
    # Home Assistant's switch: OFF -> stop_recording on that camera
    (ha,) = command(bridge, conn, b"OFF", topic="camsvc/box/cameras/camera0/recording/set")
    assert ha["error"]["code"] == -32005
    assert command(bridge, conn, b"MAYBE", topic="camsvc/box/cameras/camera0/recording/set") == []
    # a retained command would run at every reconnect: ignored
    bridge.message("camsvc/box/command", json.dumps({**request, "id": 99}).encode(), None, True)
    assert not [r for r in map(json.loads, conn.on("camsvc/box/response")) if r["id"] == 99]
    assert metric(app, "camsvc_mqtt_commands_total", result="rejected") == 4


@pytest.mark.parametrize(("role", "code"), [("viewer", -32003), ("operator", -32004)])
def test_commands_run_as_the_configured_role(tmp_path, role, code):
    app, bridge, conn = make(tmp_path, commands=True, command_role=role)
    (reply,) = command(
        bridge, conn, {"jsonrpc": "2.0", "id": 1, "method": "take_snapshot", "params": {"device": "camera9"}}
    )
    assert reply["error"]["code"] == code


def test_commands_off_ignores_command_topics(tmp_path):
    app, bridge, conn = make(tmp_path)
    bridge.connected()
    assert conn.subscribed == []
    assert (
        command(bridge, conn, {"jsonrpc": "2.0", "id": 1, "method": "stop_recording", "params": {"device": "camera0"}})
        == []
    )


def test_recording_notifications_become_events(tmp_path):
    app, bridge, conn = make(tmp_path)
    app.hub.publish(
        "recording_status_update",
        {
            "camera_id": "camera0",
            "status": "STOPPED",
            "filename": "f.mp4",
            "duration": 3.0,
            "session_id": "s",
            "reason": "duration",
        },
    )
    body = json.loads(conn.on("camsvc/box/events")[-1])
    assert (body["event"], body["reason"], body["filename"]) == ("recording_finished", "duration", "f.mp4")
    assert "free_percent" in json.loads(conn.on("camsvc/box/storage")[-1])


def test_snapshot_results_go_to_the_image_topic(tmp_path):
    app, bridge, conn = make(tmp_path, commands=True, snapshot_interval=30)
    (tmp_path / "snap" / "camera0_1.jpg").write_bytes(b"\xff\xd8jpeg")
    calls = []

    def handle(text):
        request = json.loads(text)
        calls.append(request)
        result = {"camera_id": request["params"]["device"], "filename": "camera0_1.jpg"}
        return json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": result})

    bridge.handle = handle
    app.cameras.put(CAM)
    # Home Assistant's button
    bridge.message("camsvc/box/cameras/camera0/snapshot/take", b"PRESS")
    assert calls[-1]["method"] == "take_snapshot" and calls[-1]["params"] == {"device": "camera0"}
    assert conn.on("camsvc/box/cameras/camera0/image") == [b"\xff\xd8jpeg"]
    # every snapshot_interval seconds, for connected cameras only
    app.cameras.put(Camera("camera1", "/dev/video2", status=DISCONNECTED))
    app.clock.advance(30)
    assert [c["params"]["device"] for c in calls[1:]] == ["camera0"]
    assert len(conn.on("camsvc/box/cameras/camera0/image")) == 2
    assert not any(t == "camsvc/box/cameras/camera0/image" and r for t, _, r in conn.sent)  # not retained


def test_reconnect_backoff_doubles_up_to_the_ceiling():
    from twisted.internet.task import Clock

    from camsvc.mqtt.client import MQTTConnection
    from camsvc.mqtt.settings import resolve

    settings = resolve(parse_config_dict({"mqtt": {"reconnect_min": 1, "reconnect_max": 8}}).mqtt, "h")
    clock = Clock()
    connection = MQTTConnection(settings, MemoryReactorClock(), clock)
    connection._attempt = lambda: None  # what the retries would call
    delays = []
    for _ in range(6):
        connection._failed("refused")
        (call,) = clock.getDelayedCalls()
        delays.append(call.getTime() - clock.seconds())
        clock.advance(delays[-1])
    assert delays == [1, 2, 4, 8, 8, 8]
    connection._paho_connect(None, None, {}, 0)  # a connection resets it
    assert connection.connected and connection._delay == 1
