"""camsvc.ops.metrics, synchronously: the component API, engine/hub hooks, scrape-time
figures, the text exposition and get_metrics' JSON."""

from __future__ import annotations

import json

import pytest
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.task import Clock
from twisted.web.test.requesthelper import DummyRequest

from camsvc.cameras.registry import DISCONNECTED, ERROR, Camera
from camsvc.config import parse_config_dict
from camsvc.ops.metrics import MAX_LABEL_VALUES, OUTCOMES, MetricsResource, mediamtx_endpoint
from camsvc.server.session import Session


@pytest.fixture
def app(tmp_path):
    from camsvc.api import register_all
    from camsvc.app import App

    config = parse_config_dict(
        {
            "server": {"host": "127.0.0.1"},
            "auth": {"required": False},
            "storage": {
                "recordings_dir": str(tmp_path),
                "snapshots_dir": str(tmp_path / "missing"),
                "state_dir": str(tmp_path),
            },
        }
    )
    application = App(config, Clock())
    register_all(application)
    return application


def value(app, name, **labels):
    return app.metrics.registry.get_sample_value(name, labels)


def call(app, text, session=None):
    return app.engine.handle(session or Session("c1", auth_required=False), text)


def test_rpc_requests_are_counted_by_method_and_outcome_with_latency(app):
    call(app, '{"jsonrpc": "2.0", "method": "ping", "id": 1}')
    call(app, '{"jsonrpc": "2.0", "method": "ping"}')
    call(app, '{"jsonrpc": "2.0", "method": "no_such_thing", "id": 2}')
    call(app, '{"jsonrpc": "2.0", "method": "get_status", "params": {"x": 1}, "id": 3}')
    call(app, '{"jsonrpc": "2.0", "method": "get_metrics", "id": 4}', Session("c2"))
    assert value(app, "camsvc_rpc_requests_total", method="ping", outcome="ok") == 2
    assert value(app, "camsvc_rpc_requests_total", method="unknown", outcome="method_not_found") == 1
    assert value(app, "camsvc_rpc_requests_total", method="get_status", outcome="invalid_params") == 1
    assert value(app, "camsvc_rpc_requests_total", method="get_metrics", outcome="authentication_required") == 1
    assert value(app, "camsvc_rpc_request_duration_seconds_count", method="ping") == 2
    # The Clock does not move while handling: every call lands in the first bucket.
    assert value(app, "camsvc_rpc_request_duration_seconds_bucket", method="ping", le="0.0005") == 2


def test_every_error_code_has_a_readable_outcome():
    assert OUTCOMES["-32004"] == "camera_not_found"
    assert OUTCOMES["-32006"] == "mediamtx_unavailable"
    assert OUTCOMES["-32700"] == "parse_error"
    assert all(v.replace("_", "").isalpha() for v in OUTCOMES.values())


def test_unexpected_outcome_is_error(app):
    app.metrics.observe_rpc("ping", "-1", 0.002)
    assert value(app, "camsvc_rpc_requests_total", method="ping", outcome="error") == 1
    assert value(app, "camsvc_rpc_request_duration_seconds_bucket", method="ping", le="0.0025") == 1


def test_notifications_sent_and_dropped(app):
    app.metrics.notifications("camera_status_update", 3, 1)
    app.metrics.notifications("camera_status_update", 0, 0)
    assert value(app, "camsvc_notifications_sent_total", method="camera_status_update") == 3
    assert value(app, "camsvc_notifications_dropped_total", method="camera_status_update") == 1


def test_hub_reports_publishes(app):
    class Conn:
        def __init__(self, ok):
            self.session = Session("c", auth_required=False)
            self.ok = ok

        def send_notification(self, text, shared):
            return self.ok

    app.hub.add(Conn(True))
    app.hub.add(Conn(False))
    app.hub.publish("system_status_update", {"component": "x"})
    assert value(app, "camsvc_notifications_sent_total", method="system_status_update") == 1
    assert value(app, "camsvc_notifications_dropped_total", method="system_status_update") == 1
    assert value(app, "camsvc_connections") == 2
    assert value(app, "camsvc_connections_accepted_total") == 2


def test_component_api(app):
    m = app.metrics
    m.udev_event("add")
    m.udev_event("add")
    m.udev_event("weird")
    m.udev_event(None)
    m.reenumeration("overflow")
    m.mediamtx_call("/v3/config/paths/patch/camera0", 200, 0.003)
    m.mediamtx_call("/v3/config/paths/patch/camera1", 200, 0.004)
    m.mediamtx_call("/v3/paths/list", "timeout", 5.0)
    m.mediamtx_reachable(True)
    m.reconcile(0.02, True)
    m.reconcile(0.5, False)
    m.recordings_active.set(2)
    m.recording_event("started")
    m.snapshot(0.3, "stream")
    m.snapshot(1.2, "device", ok=False)
    m.retention_deleted(3, 4096)
    m.auth_attempt("jwt", False)
    m.connection_rejected("max_connections")
    m.connection_dropped("slow_client")
    m.config_reload("invalid")
    assert value(app, "camsvc_udev_events_total", action="add") == 2
    assert value(app, "camsvc_udev_events_total", action="other") == 2
    assert value(app, "camsvc_udev_reenumerations_total", reason="overflow") == 1
    assert value(app, "camsvc_mediamtx_requests_total", endpoint="/v3/config/paths/patch/{name}", status="200") == 2
    assert value(app, "camsvc_mediamtx_requests_total", endpoint="/v3/paths/list", status="timeout") == 1
    assert value(app, "camsvc_mediamtx_request_duration_seconds_sum", endpoint="/v3/paths/list") == 5.0
    assert value(app, "camsvc_mediamtx_up") == 1
    assert value(app, "camsvc_reconcile_runs_total", result="ok") == 1
    assert value(app, "camsvc_reconcile_runs_total", result="error") == 1
    assert value(app, "camsvc_reconcile_duration_seconds_count") == 2
    assert value(app, "camsvc_recordings_active") == 2
    assert value(app, "camsvc_recordings_total", event="started") == 1
    assert value(app, "camsvc_snapshots_total", source="stream", result="ok") == 1
    assert value(app, "camsvc_snapshots_total", source="device", result="error") == 1
    assert value(app, "camsvc_snapshot_duration_seconds_count", source="stream") == 1
    assert value(app, "camsvc_retention_deleted_bytes_total") == 4096
    assert value(app, "camsvc_auth_attempts_total", method="jwt", result="failed") == 1
    assert value(app, "camsvc_connections_rejected_total", reason="max_connections") == 1
    assert value(app, "camsvc_connections_dropped_total", reason="slow_client") == 1
    assert value(app, "camsvc_config_reloads_total", result="invalid") == 1


@pytest.mark.parametrize(
    "path, label",
    [
        ("/v3/config/paths/add/camera0", "/v3/config/paths/add/{name}"),
        ("/v3/config/paths/get/some/nested/name", "/v3/config/paths/get/{name}"),
        ("/v3/config/global/get", "/v3/config/global/get"),
        ("/v3/paths/list?page=0&itemsPerPage=100", "/v3/paths/list"),
        ("http://127.0.0.1:9997/v3/info", "/v3/info"),
        ("/v3/recordings/deletesegment?path=camera0&start=x", "/v3/recordings/deletesegment"),
    ],
)
def test_mediamtx_endpoint_labels_carry_no_names(path, label):
    assert mediamtx_endpoint(path) == label


def test_label_values_are_bounded_and_tidy(app):
    for i in range(MAX_LABEL_VALUES + 10):
        app.metrics.connection_rejected(f"reason {i}")
    family = app.metrics.registry.get_sample_value
    assert family("camsvc_connections_rejected_total", {"reason": "reason_0"}) == 1
    assert family("camsvc_connections_rejected_total", {"reason": "other"}) == 10


def test_scrape_time_state(app, tmp_path):
    app.cameras.put(Camera("camera0", "/dev/video0"))
    app.cameras.put(Camera("camera1", "/dev/video2"))
    app.cameras.put(Camera("camera2", "/dev/video4", status=ERROR))
    app.cameras.mark_disconnected("camera1")
    app.health.require("discovery")
    app.health.require("mediamtx")
    app.health.set("discovery", True)
    assert value(app, "camsvc_cameras", state="connected") == 1
    assert value(app, "camsvc_cameras", state="disconnected") == 1
    assert value(app, "camsvc_cameras", state="error") == 1
    assert value(app, "camsvc_ready") == 0
    assert value(app, "camsvc_health_check", check="discovery") == 1
    assert value(app, "camsvc_health_check", check="mediamtx") == 0
    assert value(app, "camsvc_storage_free_bytes", volume="recordings") > 0
    assert value(app, "camsvc_storage_size_bytes", volume="recordings") >= value(
        app, "camsvc_storage_free_bytes", volume="recordings"
    )
    # A directory that does not exist yet is simply not reported.
    assert value(app, "camsvc_storage_free_bytes", volume="snapshots") is None
    app.clock.advance(12.5)
    assert value(app, "camsvc_uptime_seconds") == 12.5
    assert value(app, "camsvc_info", version=__import__("camsvc").__version__) == 1
    assert value(app, "process_resident_memory_bytes") > 0
    assert DISCONNECTED  # the registry keeps disconnected cameras


def test_metrics_resource_serves_the_text_format(app):
    app.metrics.udev_event("remove")
    request = DummyRequest([b""])
    body = MetricsResource(app.metrics).render_GET(request)
    assert request.responseHeaders.getRawHeaders(b"content-type")[0].startswith(b"text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    assert families["camsvc_udev_events"].type == "counter"
    assert [s.value for s in families["camsvc_udev_events"].samples if s.name == "camsvc_udev_events_total"] == [1]
    assert "process_resident_memory_bytes" in families
    for name in families:
        assert name.startswith(("camsvc_", "process_", "python_")), name


def test_broken_scrape_is_a_500_not_a_crash(app):
    def broken():
        raise RuntimeError("boom")

    app.metrics.exposition = broken
    request = DummyRequest([b""])
    body = MetricsResource(app.metrics).render_GET(request)
    assert request.responseCode == 500
    assert b"unavailable" in body


def test_get_metrics_returns_the_same_figures_as_json(app):
    call(app, '{"jsonrpc": "2.0", "method": "ping", "id": 1}')
    call(app, '{"jsonrpc": "2.0", "method": "nope", "id": 2}')
    app.metrics.recordings_active.set(1)
    reply = json.loads(call(app, '{"jsonrpc": "2.0", "method": "get_metrics", "id": 3}'))
    result = reply["result"]
    summary = result["summary"]
    assert summary["requests_total"] == 2
    assert summary["errors_total"] == 1
    assert summary["error_rate"] == 0.5
    assert summary["recordings_active"] == 1
    assert summary["resident_memory_bytes"] > 0
    samples = result["metrics"]["camsvc_rpc_requests_total"]["samples"]
    assert {"name": "camsvc_rpc_requests_total", "labels": {"method": "ping", "outcome": "ok"}, "value": 1} in samples
    assert result["metrics"]["camsvc_rpc_request_duration_seconds"]["type"] == "histogram"
    # Everything in the text format is in the JSON (bar the _created timestamps).
    text_names = {
        s.name
        for f in text_string_to_metric_families(app.metrics.exposition().decode())
        for s in f.samples
        if not s.name.endswith("_created")
    }
    json_names = {s["name"] for fam in result["metrics"].values() for s in fam["samples"]}
    assert text_names == json_names


def test_failing_metric_never_breaks_the_caller(app):
    app.metrics.mediamtx_call(None, object(), "not a number")  # type: ignore[arg-type]
    # Nothing raised; the bad call was logged and the good ones still work.
    app.metrics.reconcile(0.1, True)
    assert value(app, "camsvc_reconcile_runs_total", result="ok") == 1


def test_the_client_library_is_loaded_only_when_scraped():
    """Recording needs no prometheus_client: an unscraped service does not pay its memory."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from twisted.internet.task import Clock\n"
        "from camsvc.config import parse_config_dict\n"
        "from camsvc.tap import build\n"
        "app = build(parse_config_dict({}), Clock())\n"
        "app.metrics.observe_rpc('ping', 'ok', 0.001)\n"
        "app.metrics.reconcile(0.1, True)\n"
        "assert 'prometheus_client' not in sys.modules, 'imported too early'\n"
        "assert b'camsvc_reconcile_runs_total{result=\"ok\"} 1.0' in app.metrics.exposition()\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def test_unlabelled_histograms_and_counters_start_at_zero(app):
    assert value(app, "camsvc_reconcile_duration_seconds_count") == 0
    assert value(app, "camsvc_reconcile_duration_seconds_bucket", le="+Inf") == 0
    assert value(app, "camsvc_retention_deleted_files_total") == 0
    assert value(app, "camsvc_recordings_active") == 0


def test_discovery_reports_udev_events_and_reenumerations(app, tmp_path):
    from twisted.internet.testing import MemoryReactorClock

    from camsvc.cameras.discovery import DiscoveryService
    from camsvc.cameras.identity import FILENAME, IdentityStore
    from camsvc.testing import FakeProber, FakeUdev, usb_camera

    reactor = MemoryReactorClock()
    udev = FakeUdev([usb_camera(0, serial="A")])
    svc = DiscoveryService(
        app.cameras,
        parse_config_dict({}).discovery,
        IdentityStore(str(tmp_path / FILENAME)),
        reactor,
        udev_factory=udev,
        prober=FakeProber(),
        metrics=app.metrics,
    )
    svc.startService()
    b = usb_camera(2, serial="B", port="2")
    udev.add(b)
    udev.event(b, "change")
    udev.overflow()
    for reader in list(reactor.readers):
        reader.doRead()
    svc.stopService()
    assert value(app, "camsvc_udev_events_total", action="add") == 1
    assert value(app, "camsvc_udev_events_total", action="change") == 1
    assert value(app, "camsvc_udev_reenumerations_total", reason="start") == 1
    assert value(app, "camsvc_udev_reenumerations_total", reason="overflow") == 1


def test_mediamtx_reachability_follows_its_readiness_check(app):
    app.health.require("mediamtx")
    assert value(app, "camsvc_mediamtx_up") == 0
    app.health.set("mediamtx", True)
    assert value(app, "camsvc_mediamtx_up") == 1
    app.health.set("mediamtx", False, "connection refused")
    assert value(app, "camsvc_mediamtx_up") == 0
