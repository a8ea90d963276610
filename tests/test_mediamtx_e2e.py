"""End to end: ``twistd -n camsvc`` next to the MediaMTX stand-in run as its own process.

Everything real: two processes, HTTP between them, the WebSocket API seen by
an independent client.  MediaMTX is killed and started again while a client
watches: readiness, -32006, notifications and recovery.
"""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request

import pytest

from tests.support.mediamtx_process import StandInProcess
from tests.support.server import PROBE_TIMEOUT, ServiceProcess
from tests.support.umockdev import Testbed, umockdev_available
from tests.support.wsclient import RpcClient


@pytest.fixture
def standin(tmp_path):
    proc = StandInProcess(tmp_path / "mediamtx").start()
    yield proc
    proc.stop()
    assert proc.spec_violations() == []


def camsvc_process(tmp_path, standin) -> ServiceProcess:
    return ServiceProcess(
        tmp_path / "camsvc",
        {
            "mediamtx": {
                "enabled": True,
                "api_url": standin.url,
                "health_interval": 0.2,
                "reconcile_interval": 2,
                "request_timeout": 10,
            }
        },
        wait_ready=True,
    )


def test_mediamtx_killed_and_back_as_a_client_sees_it(tmp_path, standin):
    camsvc = camsvc_process(tmp_path, standin).start()  # ready = MediaMTX answered
    try:
        with RpcClient(camsvc.url) as client:
            status = client.call("get_status")
            assert status["status"] == "healthy"
            assert status["components"]["mediamtx"]["available"] is True
            assert status["components"]["mediamtx"]["version"] == "v1.20.1"
            assert client.call("get_streams") == {"streams": [], "total": 0}

            standin.stop(signal.SIGKILL)
            note = client.wait_notification(
                "system_status_update", lambda p: p["component"] == "mediamtx" and p["status"] == "down"
            )
            assert "unreachable" in note["params"]["message"]
            code, body, _ = camsvc.get("/health/ready")
            assert code == 503
            assert json.loads(body)["checks"]["mediamtx"]["reason"] == note["params"]["message"]
            response = client.request("get_streams")
            assert response["error"]["code"] == -32006
            assert response["error"]["message"].startswith("MediaMTX is unavailable: ")
            assert client.call("ping") == "pong"

            standin.start()
            client.wait_notification(
                "system_status_update", lambda p: p["component"] == "mediamtx" and p["status"] == "up"
            )
            code, _, _ = camsvc.get("/health/ready")
            assert code == 200
            assert client.call("get_streams")["total"] == 0
    finally:
        camsvc.stop_cleanly()
    log = camsvc.log()
    assert "MediaMTX is unavailable" in log and "MediaMTX is available again" in log
    assert "Unhandled error in Deferred" not in log and "Traceback" not in log


_bed_ok, _bed_reason = umockdev_available()


@pytest.mark.skipif(not _bed_ok, reason=f"umockdev unavailable: {_bed_reason}")
def test_a_plugged_camera_gets_its_mediamtx_path_and_loses_it_when_unplugged(tmp_path, standin):
    """udev (umockdev) -> discovery -> registry -> reconciler -> MediaMTX, across processes."""
    with Testbed() as bed:
        camsvc = ServiceProcess(
            tmp_path / "camsvc",
            {
                "discovery": {"enabled": True},
                "mediamtx": {
                    "enabled": True,
                    "api_url": standin.url,
                    "health_interval": 0.2,
                    "reconcile_interval": 2,
                },
            },
            env=bed.env(),
            wait_ready=True,
        ).start()
        try:
            bed.wait_for_listeners(1)
            added = bed.add_camera("cam", serial="E2E001")
            conf = wait_for(lambda: standin_path(standin, "camera0"), "camera0 path in MediaMTX")
            assert conf["source"] == "publisher" and conf["runOnDemandRestart"] is True
            assert conf["record"] is False and conf["recordDeleteAfter"] == ""
            by_id = next(link for link in added["props"]["DEVLINKS"].split() if "/by-id/" in link)
            assert f"-i {by_id} " in conf["runOnDemand"]
            assert "-pix_fmt yuv420p" in conf["runOnDemand"]
            with RpcClient(camsvc.url) as client:
                status = client.call("get_camera_status", {"device": "camera0"})
                assert status["metrics"]["stream"]["path_state"] == "configured"
                mtx = client.call("get_status")["components"]["mediamtx"]
                assert mtx["paths"]["camera0"]["state"] == "configured" and mtx["owned"] == ["camera0"]
            bed.remove("cam")
            wait_for(lambda: standin_path(standin, "camera0") is None, "camera0 path deleted")
        finally:
            camsvc.stop_cleanly()
    assert "Traceback" not in camsvc.log()


def standin_path(standin: StandInProcess, name: str) -> dict | None:
    try:
        with urllib.request.urlopen(f"{standin.url}/v3/config/paths/get/{name}", timeout=5) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as err:
        if err.code == 404:
            return None
        raise


def wait_for(predicate, what: str, timeout: float = PROBE_TIMEOUT):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
