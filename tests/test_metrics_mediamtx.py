"""/metrics over HTTP while camsvc works with the MediaMTX stand-in: camera add/remove,
MediaMTX going down and coming back (in-process camsvc on the test reactor)."""

from __future__ import annotations

import pytest_twisted
import treq
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import reactor

from camsvc.config import parse_config_dict
from camsvc.tap import build
from tests.support.cameras import acme_camera as camera
from tests.support.waiting import eventually as _eventually


async def eventually(predicate, timeout: float = 10.0, what: str = "condition"):
    return await _eventually(predicate, timeout, what, interval=0.05)


async def scrape(app) -> dict:
    port = app.listener.port.getHost().port
    response = await treq.get(f"http://127.0.0.1:{port}/metrics", persistent=False)
    assert response.code == 200
    text = (await response.content()).decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def get(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest_twisted.ensureDeferred
async def test_metrics_follow_cameras_and_mediamtx_down_and_up(tmp_path, mediamtx_standin):
    config = parse_config_dict(
        {
            "server": {"host": "127.0.0.1", "endpoint": "tcp:0:interface=127.0.0.1"},
            "auth": {"required": False},
            "mediamtx": {
                "api_url": mediamtx_standin.url,
                "health_interval": 0.2,
                "reconcile_interval": 1.0,
                "request_timeout": 1.0,
            },
            "storage": {
                "state_dir": str(tmp_path / "state"),
                "recordings_dir": str(tmp_path),
                "snapshots_dir": str(tmp_path),
            },
            "discovery": {"enabled": False},
        }
    )
    app = build(config, reactor)
    app.service.startService()
    try:

        async def up_and_configured():
            s = await scrape(app)
            added = get(s, "camsvc_mediamtx_requests_total", endpoint="/v3/config/paths/add/{name}", status="200")
            return s if get(s, "camsvc_mediamtx_up") == 1 and added >= 1 else None

        app.cameras.put(camera(0))
        s = await eventually(up_and_configured, what="camera0 configured")
        assert get(s, "camsvc_cameras", state="connected") == 1
        assert get(s, "camsvc_reconcile_runs_total", result="ok") >= 1
        assert get(s, "camsvc_reconcile_duration_seconds_count") >= 1
        assert get(s, "camsvc_mediamtx_request_duration_seconds_count", endpoint="/v3/info") >= 1
        assert get(s, "camsvc_health_check", check="mediamtx") == 1
        # No camera id ever becomes a label value.
        assert not any("camera0" in value for (_, labels) in s for _, value in labels)

        await mediamtx_standin.stop()

        async def down():
            s = await scrape(app)
            return s if get(s, "camsvc_mediamtx_up") == 0 else None

        s = await eventually(down, what="MediaMTX down")
        assert get(s, "camsvc_mediamtx_requests_total", endpoint="/v3/info", status="error") >= 1
        assert get(s, "camsvc_ready") == 0

        await mediamtx_standin.start()

        async def back():
            # Back, and camera0's path restored (the restart forgot it): only then
            # does unplugging the camera need a delete.
            s = await scrape(app)
            added = get(s, "camsvc_mediamtx_requests_total", endpoint="/v3/config/paths/add/{name}", status="200")
            return s if get(s, "camsvc_mediamtx_up") == 1 and get(s, "camsvc_ready") == 1 and added >= 2 else None

        await eventually(back, what="MediaMTX back")
        app.cameras.mark_disconnected("camera0")

        async def deleted():
            s = await scrape(app)
            done = get(s, "camsvc_mediamtx_requests_total", endpoint="/v3/config/paths/delete/{name}", status="200")
            return s if done >= 1 else None

        s = await eventually(deleted, what="camera0 path deleted")
        assert get(s, "camsvc_cameras", state="disconnected") == 1
        assert get(s, "camsvc_cameras", state="connected") == 0
    finally:
        await app.service.stopService()
