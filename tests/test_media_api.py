"""The media methods through the JSON-RPC engine of a fully built App (fakes, no sockets)."""

from __future__ import annotations

import json
import os

import pytest
from twisted.internet.testing import MemoryReactorClock

from camsvc.cameras.registry import Camera
from camsvc.config import parse_config_dict
from camsvc.media.files import stamp
from camsvc.server.rpc import Role
from camsvc.tap import build
from tests.support.processes import FakeProcessReactor

NOW = 1_700_000_000.0


@pytest.fixture
def app(tmp_path):
    config = parse_config_dict(
        {
            "server": {"host": "127.0.0.1"},
            "auth": {
                "required": True,
                "jwt_secret_file": str(tmp_path / "state" / "jwt_secret"),
                "api_keys_file": str(tmp_path / "state" / "api_keys.json"),
            },
            "storage": {
                "recordings_dir": str(tmp_path / "rec"),
                "snapshots_dir": str(tmp_path / "snap"),
                "state_dir": str(tmp_path / "state"),
            },
        }
    )
    reactor = MemoryReactorClock()
    reactor.advance(NOW)
    app = build(config, reactor)
    app.media.store.ensure_dirs()
    app.media.processes.reactor = FakeProcessReactor()
    app.cameras.put(
        Camera(
            camera_id="camera0",
            device="/dev/video0",
            links=("/dev/v4l/by-id/usb-Acme-video-index0",),
            path="/dev/v4l/by-id/usb-Acme-video-index0",  # discovery's unique path
            default={"format": "MJPG", "width": 640, "height": 480, "fps": 30},
        )
    )
    app.cameras.put(Camera(camera_id="camera1", device="/dev/video2"))
    return app


def session(app, role=Role.ADMIN, host="cams.example:8080"):
    s = app.make_session("c1", peer="127.0.0.1", host="cams.example")
    s.grant(role, subject="t", expires_at=None, method="test", session_id="s")
    s.extra["http_host"] = host
    return s


def call(app, method, params=None, role=Role.ADMIN, sess=None):
    request = {"jsonrpc": "2.0", "method": method, "id": 1}
    if params is not None:
        request["params"] = params
    out = app.engine.handle(sess or session(app, role), json.dumps(request))
    if not isinstance(out, str):
        box = []
        out.addBoth(box.append)
        out = box[0]
    return json.loads(out)


def result(app, method, params=None, role=Role.ADMIN, sess=None):
    reply = call(app, method, params, role, sess)
    assert "result" in reply, reply
    return reply["result"]


def code(app, method, params=None, role=Role.ADMIN):
    reply = call(app, method, params, role)
    assert "error" in reply, reply
    return reply["error"]["code"]


def put(app, kind, name, data=b"x", mtime=NOW):
    path = os.path.join(app.media.store.dirs[kind], name)
    with open(path, "wb") as fh:
        fh.write(data)
    os.utime(path, (mtime, mtime))
    return path


def recordings(app, count, camera="camera0"):
    names = []
    for i in range(count):
        name = f"{camera}_{stamp(NOW - 3600 * (i + 1))}.mp4"
        put(app, "recordings", name, b"r" * (i + 1), NOW - 3600 * i)
        names.append(name)
    return names  # newest first


def test_listing_pages_newest_first(app):
    names = recordings(app, 5)
    page = result(app, "list_recordings", {"limit": 2, "offset": 1})
    assert page["total"] == 5 and page["limit"] == 2 and page["offset"] == 1
    assert [f["filename"] for f in page["files"]] == names[1:3]
    entry = page["files"][0]
    assert entry["file_size"] == 2 and entry["modified_time"] == "2023-11-14T21:13:20.000Z"
    assert signed(app, entry["download_url"], "recordings", names[1]) == (
        f"http://cams.example:8080/files/recordings/{names[1]}"
    )
    assert entry["duration"] is None  # not an MP4 inside
    default = result(app, "list_recordings")
    assert default["limit"] == 100 and default["offset"] == 0 and len(default["files"]) == 5
    assert result(app, "list_recordings", {"offset": 10})["files"] == []


def test_listing_limits_are_checked(app):
    assert code(app, "list_recordings", {"limit": 1001}) == -32602
    assert code(app, "list_snapshots", {"limit": 0}) == -32602
    assert code(app, "list_snapshots", {"offset": -1}) == -32602


def test_device_filter(app):
    mine = recordings(app, 2)
    recordings(app, 3, camera="camera1")
    recordings(app, 1, camera="camera12")
    for device in ("camera0", "/dev/video0", "/dev/v4l/by-id/usb-Acme-video-index0"):
        page = result(app, "list_recordings", {"device": device})
        assert [f["filename"] for f in page["files"]] == mine and page["total"] == 2
    assert result(app, "list_recordings", {"device": "camera12"})["total"] == 1  # files outlive cameras
    assert code(app, "list_recordings", {"device": "/dev/video9"}) == -32004
    assert code(app, "list_recordings", {"device": "nonsense"}) == -32004


def test_info_with_duration_of_a_real_segment(app, mediamtx_clip):
    name = f"camera0_{stamp(NOW - 60)}.mp4"
    put(app, "recordings", name, mediamtx_clip.read_bytes(), NOW)
    info = result(app, "get_recording_info", {"filename": name})
    assert info["duration"] == pytest.approx(6.0, abs=0.1)
    assert info["camera_id"] == "camera0" and info["format"] == "mp4" and info["content_type"] == "video/mp4"
    assert info["created_time"] == "2023-11-14T22:12:20.000Z" and info["file_size"] == mediamtx_clip.stat().st_size
    put(app, "snapshots", "door.png", b"\x89PNG")
    snap = result(app, "get_snapshot_info", {"filename": "door.png"})
    assert snap["content_type"] == "image/png" and "duration" not in snap and snap["camera_id"] is None


HOSTILE = [
    "../secret.mp4",
    "../../etc/passwd",
    "/etc/passwd",
    "..",
    ".",
    "a/../../b.mp4",
    "..\\x.mp4",
    "x.mp4\x00.jpg",
    "\x00",
    "x" * 300,
    "é" * 200 + ".mp4",
    ".hidden.mp4",
]


@pytest.mark.parametrize("method", ["get_recording_info", "delete_recording", "get_snapshot_info", "delete_snapshot"])
def test_hostile_names_are_invalid_params(app, tmp_path, method):
    (tmp_path / "secret.mp4").write_bytes(b"secret")
    for name in HOSTILE:
        assert code(app, method, {"filename": name}) == -32602, name
    os.symlink(tmp_path / "secret.mp4", os.path.join(app.media.store.dirs["recordings"], "link.mp4"))
    os.symlink(tmp_path / "secret.mp4", os.path.join(app.media.store.dirs["snapshots"], "link.jpg"))
    link = "link.mp4" if "recording" in method else "link.jpg"
    assert code(app, method, {"filename": link}) == -32602
    assert (tmp_path / "secret.mp4").read_bytes() == b"secret"


def test_delete(app):
    (name,) = recordings(app, 1)
    put(app, "snapshots", "a.jpg", b"1234")
    assert code(app, "delete_recording", {"filename": name}, role=Role.VIEWER) == -32003
    assert result(app, "delete_recording", {"filename": name}, role=Role.OPERATOR) == {
        "filename": name,
        "deleted": True,
        "file_size": 1,
    }
    assert code(app, "delete_recording", {"filename": name}) == -32009
    assert code(app, "get_recording_info", {"filename": name}) == -32009
    assert code(app, "delete_recording", {"filename": "a.jpg"}) == -32602  # a snapshot is not a recording
    assert result(app, "delete_snapshot", {"filename": "a.jpg"})["file_size"] == 4


def test_a_file_being_recorded_cannot_be_deleted(app):
    (name,) = recordings(app, 1)
    app.media.protected = lambda: {("recordings", name)}
    assert code(app, "delete_recording", {"filename": name}) == -32005
    assert os.path.exists(os.path.join(app.media.store.dirs["recordings"], name))


def test_roles(app):
    assert "result" in call(app, "list_snapshots", role=Role.VIEWER)
    assert "result" in call(app, "get_storage_info", role=Role.VIEWER)
    assert code(app, "take_snapshot", {"device": "camera0"}, role=Role.VIEWER) == -32003
    assert code(app, "set_retention_policy", {"enabled": True}, role=Role.OPERATOR) == -32003
    assert code(app, "cleanup_old_files", role=Role.OPERATOR) == -32003
    anonymous = app.make_session("c2", peer="x", host="x")
    reply = json.loads(app.engine.handle(anonymous, '{"jsonrpc":"2.0","method":"list_recordings","id":1}'))
    assert reply["error"]["code"] == -32001


def test_take_snapshot(app):
    fake = app.media.processes.reactor
    reply = []
    out = app.engine.handle(
        session(app, Role.OPERATOR),
        json.dumps(
            {"jsonrpc": "2.0", "method": "take_snapshot", "params": {"device": "/dev/video0", "quality": 100}, "id": 7}
        ),
    )
    out.addCallback(reply.append)
    proc = fake.last
    assert "/dev/v4l/by-id/usb-Acme-video-index0" in proc.argv and "mjpeg" in proc.argv
    proc.out(b"\xff\xd8\xff\xe0jpegdata\xff\xd9")
    proc.exit(0)
    shot = json.loads(reply[0])["result"]
    name = shot["filename"]
    assert shot == {
        "device": "/dev/video0",
        "camera_id": "camera0",
        "filename": name,
        "status": "completed",
        "timestamp": "2023-11-14T22:13:20.000Z",
        "file_size": 14,
        "format": "jpg",
        "source": "device",
        "download_url": shot["download_url"],
    }
    assert signed(app, shot["download_url"], "snapshots", name) == f"http://cams.example:8080/files/snapshots/{name}"
    assert result(app, "get_snapshot_info", {"filename": name})["file_size"] == 14
    assert code(app, "take_snapshot", {"device": "camera9"}) == -32004
    assert code(app, "take_snapshot", {"device": "camera0", "quality": 0}) == -32602
    assert code(app, "take_snapshot", {"device": "camera0", "format": "gif"}) == -32602
    assert code(app, "take_snapshot", {"device": "camera0", "filename": "../x"}) == -32602
    assert code(app, "take_snapshot", {"device": "camera0", "filename": "a\x00b"}) == -32602


def signed(app, url, kind, name):
    """The URL without its token, after checking the token opens exactly that file (auth is on)."""
    from urllib.parse import unquote

    base, _, token = url.partition("?token=")
    assert app.auth.verify_download(unquote(token), kind, name), url
    assert not app.auth.verify_download(unquote(token), kind, name + "x")
    return base


def test_download_url_variants(app):
    media = app.media
    s = session(app, host="")
    url = media.download_url(s, "snapshots", "a b.jpg")
    assert signed(app, url, "snapshots", "a b.jpg") == "http://cams.example:8002/files/snapshots/a%20b.jpg"
    s.extra["http_host"] = "evil.example/x?y"
    assert media.download_url(s, "snapshots", "a.jpg").startswith("http://cams.example:8002/")
    s.extra["http_host"] = "[::1]:9000"
    assert media.download_url(s, "snapshots", "a.jpg").startswith("http://[::1]:9000/files/snapshots/a.jpg?token=")
    media.sign_download = lambda kind, name: f"tok/{kind}/{name}"
    assert media.download_url(s, "recordings", "a.mp4").endswith("/files/recordings/a.mp4?token=tok/recordings/a.mp4")


def test_storage_info_and_retention(app):
    names = recordings(app, 2)
    info = result(app, "get_storage_info", role=Role.VIEWER)
    assert info["recordings"]["files"] == 2 and info["status"] in ("ok", "low", "critical")
    assert info["retention"]["source"] == "config" and info["retention"]["enabled"] is False
    assert code(app, "set_retention_policy", {"max_age_days": 1}) == -32602  # enabled is required
    assert code(app, "set_retention_policy", {"enabled": True, "max_age_days": -1}) == -32602
    policy = result(app, "set_retention_policy", {"enabled": False, "max_age_days": 0.03})
    assert policy == {"enabled": False, "max_age_days": 0.03, "max_size_gb": 0.0, "source": "state"}
    old = f"camera0_{stamp(NOW - 10 * 86400)}.mp4"
    put(app, "recordings", old, b"old", NOW - 10 * 86400)
    cleaned = result(app, "cleanup_old_files")
    assert cleaned["deleted_count"] == 2 and cleaned["freed_bytes"] == 5
    assert {d["filename"] for d in cleaned["deleted"]} == {old, names[1]}
    assert cleaned["deleted"][0]["reason"] == "age" and cleaned["deleted"][0]["modified_time"].endswith("Z")
    assert [f["filename"] for f in result(app, "list_recordings")["files"]] == [names[0]]


def test_snapshot_source_follows_mediamtx_path_state_and_is_measured(app):
    fake = app.media.processes.reactor
    monitor = app.mediamtx.monitor
    stats = {"ready": True, "readers": 1, "bytes_received": 0, "bytes_sent": 0, "tracks": ["H264"]}
    monitor.stats["camera0"] = stats
    assert not app.media.path_ready("camera0")  # MediaMTX not contacted yet: its stats are not trusted
    monitor.state = "up"
    assert app.media.path_ready("camera0") and not app.media.path_ready("camera1")

    def snap():
        out = app.engine.handle(
            session(app, Role.OPERATOR),
            json.dumps({"jsonrpc": "2.0", "method": "take_snapshot", "params": {"device": "camera0"}, "id": 1}),
        )
        box = []
        out.addCallback(lambda text: box.append(json.loads(text)))
        return box

    got = snap()
    assert f"rtsp://127.0.0.1:{app.config.mediamtx.rtsp_port}/camera0" in fake.last.argv
    fake.last.out(b"\xff\xd8\xff\xe0x")
    fake.last.exit(0)
    assert got[0]["result"]["source"] == "stream"
    stats["ready"] = False
    got = snap()
    fake.last.err(b"boom\n")
    fake.last.exit(1)
    assert got[0]["error"]["code"] == -32603 and "boom" in got[0]["error"]["message"]
    sample = app.metrics.registry.get_sample_value
    assert sample("camsvc_snapshots_total", {"source": "stream", "result": "ok"}) == 1
    assert sample("camsvc_snapshots_total", {"source": "device", "result": "error"}) == 1


def test_retention_deletions_are_measured(app):
    put(app, "snapshots", "old.jpg", b"12345", NOW - 400 * 86400)
    result(app, "set_retention_policy", {"enabled": False, "max_age_days": 365})
    assert result(app, "cleanup_old_files")["freed_bytes"] == 5
    assert app.metrics.registry.get_sample_value("camsvc_retention_deleted_bytes_total") == 5


def test_recording_params_are_checked_before_anything_runs(app):
    assert code(app, "start_recording", {"device": "camera9"}) == -32004
    assert code(app, "start_recording", {"device": "camera0", "duration": 0}) == -32602
    assert code(app, "start_recording", {"device": "camera0", "format": "avi"}) == -32602
    assert code(app, "start_recording", {"device": "camera0"}, role=Role.VIEWER) == -32003
    assert code(app, "stop_recording", {"device": "camera0"}) == -32005
    assert app.media.processes.reactor.spawned == []
