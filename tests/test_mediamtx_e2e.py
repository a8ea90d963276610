"""End to end: ``twistd -n camsvc`` next to the MediaMTX stand-in run as its own process.

Everything real: two processes, HTTP between them, the WebSocket API seen by
an independent client.  MediaMTX is killed and started again while a client
watches: readiness, -32006, notifications and recovery.
"""

from __future__ import annotations

import json
import signal

import pytest

from tests.support.mediamtx_process import StandInProcess
from tests.support.server import ServiceProcess
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
                "request_timeout": 2,
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
