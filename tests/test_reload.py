"""Configuration reload: the Reloader with a Clock-driven App, and SIGHUP on a real camsvc."""

from __future__ import annotations

import json
import signal
import time

import pytest
import yaml
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher

from camsvc.config import load_config
from camsvc.ops.reload import Reloader, changed_keys, with_values
from tests.support.server import ServiceProcess
from tests.support.wsclient import RpcClient

BASE = {"server": {"host": "127.0.0.1", "port": 8123}, "auth": {"required": False}, "logging": {"level": "info"}}


@pytest.fixture
def logged():
    events: list = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


@pytest.fixture
def setup(tmp_path):
    from camsvc.app import App

    path = tmp_path / "camsvc.yaml"
    path.write_text(yaml.safe_dump(BASE))

    def load(p):
        return load_config(p, environ={})

    app = App(load(str(path)), Clock())
    reloader = Reloader(app, str(path), load=load)
    return app, path, reloader


def write(path, **sections):
    data = yaml.safe_load(yaml.safe_dump(BASE))
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    path.write_text(yaml.safe_dump(data))


def test_live_keys_are_applied_and_listeners_called(setup, logged):
    app, path, reloader = setup
    seen = []
    app.on_reload(lambda old, new: seen.append((old.logging.level, new.logging.level)), ("logging.level",))
    app.on_reload(lambda old, new: seen.append(("retention", new.retention.max_age_days)), ("retention.",))
    app.on_reload(lambda old, new: seen.append("never"), ("snapshots.quality",))
    before = app.config
    write(path, logging={"level": "debug"}, retention={"max_age_days": 7})
    report = reloader.reload()
    assert report == {
        "result": "ok",
        "applied": ["logging.level", "retention.max_age_days"],
        "restart_needed": [],
        "error": None,
    }
    assert app.config.logging.level == "debug" and app.config.retention.max_age_days == 7
    assert before.logging.level == "info"  # the old object is untouched (frozen)
    assert seen == [("info", "debug"), ("retention", 7)]
    assert app.metrics.registry.get_sample_value("camsvc_config_reloads_total", {"result": "ok"}) == 1
    assert any("applied logging.level, retention.max_age_days" in _text(e) for e in logged)


def test_restart_only_keys_are_reported_and_kept(setup, logged):
    app, path, reloader = setup
    app.on_reload(lambda old, new: None, ("logging.level",))
    write(path, server={"port": 9000, "max_connections": 5}, logging={"level": "warn"})
    report = reloader.reload()
    assert report["applied"] == ["logging.level"]
    assert report["restart_needed"] == ["server.max_connections", "server.port"]
    assert app.config.server.port == 8123 and app.config.server.max_connections == 200
    assert app.config.logging.level == "warn"
    warning = [e for e in logged if "need a restart" in e.get("log_format", "")]
    assert warning and warning[0]["keys"] == "server.max_connections, server.port"


def test_invalid_file_is_rejected_and_the_running_config_kept(setup, logged):
    app, path, reloader = setup
    before = app.config
    write(path, logging={"level": "loud"})
    report = reloader.reload()
    assert report["result"] == "invalid"
    assert report["error"].startswith("logging.level: must be one of")
    assert app.config is before
    errors = [e for e in logged if "reload rejected" in e.get("log_format", "")]
    assert errors and errors[0]["config_key"] == "logging.level"
    path.write_text("server: [unclosed")
    assert reloader.reload()["result"] == "invalid"
    path.unlink()
    assert "cannot read config file" in reloader.reload()["error"]
    assert app.config is before
    assert app.metrics.registry.get_sample_value("camsvc_config_reloads_total", {"result": "invalid"}) == 3


def test_unchanged_file_changes_nothing(setup):
    app, path, reloader = setup
    before = app.config
    assert reloader.reload()["applied"] == []
    assert app.config is before


def test_a_failing_listener_is_logged_and_others_still_run(setup, logged):
    app, path, reloader = setup
    seen = []

    def broken(old, new):
        raise RuntimeError("cannot apply")

    app.on_reload(broken, ("logging.level",))
    app.on_reload(lambda old, new: seen.append(new.logging.level), ("logging.",))
    write(path, logging={"level": "error"})
    assert reloader.reload()["result"] == "error"
    assert seen == ["error"]
    assert any(e.get("log_failure") is not None for e in logged)


def test_secrets_are_never_logged(setup, logged):
    app, path, reloader = setup
    write(path, mediamtx={"api_pass": "s3cret-reload-pass"})
    report = reloader.reload()
    assert report["restart_needed"] == ["mediamtx.api_pass"]
    text = "\n".join(_text(e) for e in logged)
    assert "mediamtx.api_pass" in text and "s3cret-reload-pass" not in text


def test_helpers():
    a = load_config(None, environ={})
    b = with_values(a, {"server.tls.cert": "/c", "logging.level": "debug"})
    assert changed_keys(a, b) == ["logging.level", "server.tls.cert"]
    assert b.server.tls.cert == "/c" and a.server.tls.cert == ""


def test_on_reload_needs_keys(setup):
    app, _, _ = setup
    with pytest.raises(ValueError):
        app.on_reload(lambda o, n: None, ())


def _text(event):
    from twisted.logger import formatEvent

    return formatEvent(event)


# -- SIGHUP on a real camsvc ---------------------------------------------------------


def wait_log(proc, text, timeout=10.0):
    deadline = time.monotonic() + timeout
    while text not in proc.log():
        assert time.monotonic() < deadline, f"{text!r} not logged:\n{proc.log()}"
        time.sleep(0.05)


def rewrite(proc, **sections):
    data = yaml.safe_load(proc.config_path.read_text())
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    proc.config_path.write_text(yaml.safe_dump(data))


def test_sighup_valid_invalid_and_restart_only(tmp_path):
    proc = ServiceProcess(tmp_path, {"logging": {"level": "info"}}).start()
    try:
        with RpcClient(proc.url) as client:
            assert client.call("ping") == "pong"
        assert "Connection c1 open" not in proc.log()  # a debug line: not shown at info

        # 1. a valid live change: the log level
        rewrite(proc, logging={"level": "debug"})
        proc.proc.send_signal(signal.SIGHUP)
        wait_log(proc, "Configuration reloaded: applied logging.level")
        with RpcClient(proc.url) as client:
            assert client.call("ping") == "pong"
        wait_log(proc, "Connection c2 open")

        # 2. an invalid file: rejected, everything keeps running at debug
        proc.config_path.write_text("server: {port: many}\n")
        proc.proc.send_signal(signal.SIGHUP)
        wait_log(proc, "Configuration reload rejected, keeping the running configuration: server.port: must be")
        with RpcClient(proc.url) as client:
            assert client.call("ping") == "pong"
        wait_log(proc, "Connection c3 open")

        # 3. a restart-only change: reported, not applied (still on the old port)
        data = dict(proc.config)
        data["server"] = dict(data["server"], port=proc.port + 1, max_connections=3)
        data["logging"] = {"level": "debug"}
        proc.config_path.write_text(yaml.safe_dump(data))
        proc.proc.send_signal(signal.SIGHUP)
        wait_log(proc, "these changes need a restart to take effect: server.max_connections, server.port")
        with RpcClient(proc.url) as a, RpcClient(proc.url) as b, RpcClient(proc.url) as c, RpcClient(proc.url) as d:
            assert [x.call("ping") for x in (a, b, c, d)] == ["pong"] * 4  # max_connections 3 not applied
            info = a.call("get_metrics")
        reloads = info["metrics"]["camsvc_config_reloads_total"]["samples"]
        assert {s["labels"]["result"]: s["value"] for s in reloads} == {"ok": 2, "invalid": 1}
    finally:
        proc.stop_cleanly()


def test_publish_template_and_public_host_apply_live(tmp_path):
    """The wired service: the reconciler builds paths from the reloaded template, stream URLs use the new host."""
    from twisted.internet.testing import MemoryReactorClock

    from camsvc.api.cameras import camera_object
    from camsvc.cameras.registry import Camera
    from camsvc.tap import build

    path = tmp_path / "camsvc.yaml"
    state = {"state_dir": str(tmp_path), "recordings_dir": str(tmp_path / "r"), "snapshots_dir": str(tmp_path / "s")}
    data = dict(BASE, storage=state, discovery={"enabled": False})
    path.write_text(yaml.safe_dump(data))

    def load(p):
        return load_config(p, environ={})

    app = build(load(str(path)), MemoryReactorClock())
    camera = Camera(
        "camera0",
        "/dev/video0",
        default={"format": "YUYV", "width": 640, "height": 480, "fps": 30},
        capabilities={"formats": [{"fourcc": "YUYV", "sizes": [{"width": 640, "height": 480, "fps": [30]}]}]},
    )
    app.cameras.put(camera)
    data["mediamtx"] = {"publish_command": "my-publisher {device} {width}x{height}", "public_host": "cams.example"}
    path.write_text(yaml.safe_dump(data))
    report = Reloader(app, str(path), load=load).reload()
    assert report["applied"] == ["mediamtx.public_host", "mediamtx.publish_command"], report
    desired = app.mediamtx.reconciler.desired("camera0")
    assert desired is not None and desired["runOnDemand"].startswith("my-publisher /dev/video0 640x480")
    assert camera_object(app, app.cameras.get("camera0"), "10.0.0.5")["streams"]["rtsp"].startswith(
        "rtsp://cams.example:"
    )


def test_rate_limit_and_retention_apply_live(tmp_path):
    from twisted.internet.testing import MemoryReactorClock

    from camsvc.server.session import Session
    from camsvc.tap import build

    path = tmp_path / "camsvc.yaml"
    state = {"state_dir": str(tmp_path), "recordings_dir": str(tmp_path / "r"), "snapshots_dir": str(tmp_path / "s")}
    data = dict(BASE, storage=state, discovery={"enabled": False}, mediamtx={"enabled": False})
    data["server"] = dict(BASE["server"], rate_limit_per_minute=2)
    path.write_text(yaml.safe_dump(data))

    def load(p):
        return load_config(p, environ={})

    app = build(load(str(path)), MemoryReactorClock())
    session = Session("c1", auth_required=False, clock=app.clock)

    def ping():
        return json.loads(app.engine.handle(session, '{"jsonrpc": "2.0", "method": "ping", "id": 1}'))

    assert [("error" in ping()) for _ in range(3)] == [False, False, True]
    data["server"]["rate_limit_per_minute"] = 600
    data["retention"] = {"enabled": True, "max_age_days": 3}
    path.write_text(yaml.safe_dump(data))
    report = Reloader(app, str(path), load=load).reload()
    assert report["applied"] == ["retention.enabled", "retention.max_age_days", "server.rate_limit_per_minute"]
    app.clock.advance(1)  # a 600/min bucket refills 10 per second
    assert "result" in ping()
    retention = app.status_providers["retention"]()
    assert retention["enabled"] is True and retention["max_age_days"] == 3 and retention["source"] == "config"
