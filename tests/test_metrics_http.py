"""/metrics and get_metrics on a real camsvc under twistd, after a scripted scenario."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.support.server import ServiceProcess
from tests.support.wsclient import RpcClient


def scrape(proc: ServiceProcess) -> dict:
    status, body, headers = proc.get("/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def sample(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def test_metrics_after_a_scripted_scenario(tmp_path):
    proc = ServiceProcess(tmp_path).start()
    try:
        before = scrape(proc)
        assert sample(before, "camsvc_connections") == 0
        with RpcClient(proc.url) as one, RpcClient(proc.url) as two:
            for _ in range(3):
                assert one.call("ping") == "pong"
            assert one.request("no_such_method")["error"]["code"] == -32601
            assert two.request("get_status", {"bogus": 1})["error"]["code"] == -32602
            two.send_raw("[]")  # an invalid request (empty batch): not a method call
            two.recv_json()
            with pytest.raises(InvalidStatus):
                connect(proc.url, origin="http://evil.example")
            with RpcClient(proc.url) as three:
                three.ws.send(b"\x00binary")  # closed by the server with 1003
                with pytest.raises(Exception):
                    three.recv_raw(timeout=5)
            _until(proc, lambda s: sample(s, "camsvc_connections") == 2)  # the third one is gone
            summary = one.call("get_metrics")["summary"]
        after = _until(proc, lambda s: sample(s, "camsvc_connections") == 0)  # both closed
    finally:
        proc.stop_cleanly()

    assert sample(after, "camsvc_rpc_requests_total", method="ping", outcome="ok") == 3
    assert sample(after, "camsvc_rpc_requests_total", method="unknown", outcome="method_not_found") == 1
    assert sample(after, "camsvc_rpc_requests_total", method="get_status", outcome="invalid_params") == 1
    assert sample(after, "camsvc_rpc_request_duration_seconds_count", method="ping") == 3
    assert sample(after, "camsvc_rpc_request_duration_seconds_bucket", method="ping", le="+Inf") == 3
    assert sample(after, "camsvc_connections_rejected_total", reason="origin") == 1
    assert sample(after, "camsvc_connections_accepted_total") == 3
    assert sample(after, "camsvc_connections_dropped_total", reason="binary_message") == 1
    assert sample(after, "camsvc_cameras", state="connected") == 0
    assert sample(after, "camsvc_ready") == 1
    assert sample(after, "camsvc_storage_free_bytes", volume="recordings") > 0
    assert 5_000_000 < sample(after, "process_resident_memory_bytes") < 1_000_000_000
    assert sample(after, "process_open_fds") > 0
    # get_metrics saw the same counters (itself not yet counted when it ran).
    assert summary["requests_total"] == 5
    assert summary["errors_total"] == 2
    assert summary["connections"] == 2
    assert summary["resident_memory_bytes"] > 0


def test_camera_add_and_remove_on_umockdev_are_counted(tmp_path):
    from tests.support.umockdev import Testbed, umockdev_available

    ok, reason = umockdev_available()
    if not ok:
        pytest.skip(reason)
    with Testbed() as bed:
        proc = ServiceProcess(
            tmp_path, {"discovery": {"enabled": True, "debounce": 0.05}}, env=bed.env(), wait_ready=True
        ).start()
        try:
            bed.wait_for_listeners(1)
            bed.add_camera("usbcam", card="HD Webcam C270", serial="ABC123", port="1.2")
            s = _until(proc, lambda s: sample(s, "camsvc_cameras", state="connected") == 1)
            assert sample(s, "camsvc_udev_events_total", action="add") >= 1
            assert sample(s, "camsvc_udev_reenumerations_total", reason="start") == 1
            bed.remove("usbcam")
            s = _until(proc, lambda s: sample(s, "camsvc_cameras", state="disconnected") == 1)
            assert sample(s, "camsvc_cameras", state="connected") == 0
            assert sample(s, "camsvc_udev_events_total", action="remove") >= 1
        finally:
            proc.stop_cleanly()


def _until(proc: ServiceProcess, predicate, timeout: float = 15.0) -> dict:
    import time

    deadline = time.monotonic() + timeout
    while True:
        s = scrape(proc)
        if predicate(s):
            return s
        assert time.monotonic() < deadline, f"metrics never matched:\n{proc.log()}"
        time.sleep(0.1)
