"""camsvc against the MediaMTX stand-in over real HTTP (real treq, real sockets).

camsvc runs in-process (``camsvc.tap.build`` on the global reactor, listening
on a free port); cameras are put into its registry directly.  The stand-in
checks every request camsvc sends against MediaMTX v1.20.1's OpenAPI document
and fails the test at teardown on any it does not allow.
"""

from __future__ import annotations

import json

import pytest
import pytest_twisted
import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater

from camsvc.config import parse_config_dict
from camsvc.mediamtx.client import (
    MediaMTXBadRequest,
    MediaMTXClient,
    MediaMTXNotFound,
    MediaMTXServerError,
    MediaMTXUnauthorized,
    MediaMTXUnreachable,
    make_http_client,
)
from camsvc.mediamtx.desired import desired_path, differences
from camsvc.tap import build
from tests.support.cameras import acme_camera as cam
from tests.support.logcapture import captured_logs
from tests.support.server import free_port
from tests.support.waiting import eventually as _eventually


async def eventually(predicate, timeout: float = 30.0, what: str = "condition"):
    return await _eventually(predicate, timeout, what)


def make_config(tmp_path, standin, **mediamtx):
    return parse_config_dict(
        {
            "server": {"host": "127.0.0.1", "endpoint": "tcp:0:interface=127.0.0.1"},
            "auth": {"required": False},
            "mediamtx": {
                "api_url": standin.url,
                "health_interval": 0.2,
                "reconcile_interval": 1.0,
                "request_timeout": 10.0,  # a starved machine answers late; no test here waits for a timeout
                **mediamtx,
            },
            "storage": {
                "state_dir": str(tmp_path / "state"),
                "recordings_dir": str(tmp_path / "recordings"),
                "snapshots_dir": str(tmp_path / "snapshots"),
            },
            "discovery": {"enabled": False},
        }
    )


class Running:
    def __init__(self, app):
        self.app = app
        self.notes: list = []
        app.hub.subscribe(lambda method, params: self.notes.append((method, params)))
        self.session = app.make_session("t1", peer="127.0.0.1:1", host="127.0.0.1:8002")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.app.listener.port.getHost().port}"

    async def call(self, method: str, params=None) -> dict:
        text = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}})
        out = self.app.engine.handle(self.session, text)
        if isinstance(out, Deferred):
            out = await out
        return json.loads(out)

    async def ready(self) -> tuple[int, dict]:
        resp = await treq.get(self.base + "/health/ready", persistent=False)
        return resp.code, json.loads(await resp.content())


@pytest_twisted.async_yield_fixture
async def camsvc(tmp_path, mediamtx_standin):
    app = build(make_config(tmp_path, mediamtx_standin), reactor)
    app.service.startService()
    running = Running(app)
    await eventually(lambda: app.mediamtx.available, what="MediaMTX contact")
    yield running
    await app.service.stopService()


@pytest_twisted.ensureDeferred
async def test_camera_added_gets_its_path_and_removed_loses_it(camsvc, mediamtx_standin):
    app = camsvc.app
    app.cameras.put(cam(0))
    conf = await eventually(lambda: mediamtx_standin.config_paths.get("camera0"), what="camera0 path")
    assert differences(desired_path(cam(0), app.config), conf) == set()
    assert conf["source"] == "publisher" and conf["runOnDemandRestart"] is True
    assert "-i /dev/v4l/by-id/usb-Acme_0-video-index0" in conf["runOnDemand"]
    assert conf["recordPath"].endswith("/recordings/%path_%Y-%m-%d_%H-%M-%S-%f")
    app.cameras.mark_disconnected("camera0")
    await eventually(lambda: "camera0" not in mediamtx_standin.config_paths, what="camera0 deleted")
    # The stand-in's static all_others path was never touched.
    assert "all_others" in mediamtx_standin.config_paths
    assert not [r for r in mediamtx_standin.requests if "all_others" in r.path]


@pytest_twisted.ensureDeferred
async def test_restart_restores_paths_and_recording(camsvc, mediamtx_standin):
    """After a MediaMTX restart the paths and the recording flag come back (how fast is
    bench/mediamtx_reconcile.py's business, not this test's)."""
    app = camsvc.app
    app.cameras.put(cam(0))
    app.cameras.put(cam(1))
    await eventually(lambda: {"camera0", "camera1"} <= set(mediamtx_standin.config_paths))
    await app.mediamtx.set_recording("camera1", True)
    assert mediamtx_standin.config_paths["camera1"]["record"] is True
    await mediamtx_standin.restart()
    assert "camera0" not in mediamtx_standin.config_paths
    await eventually(
        lambda: {"camera0", "camera1"} <= set(mediamtx_standin.config_paths), timeout=30, what="paths restored"
    )
    assert mediamtx_standin.config_paths["camera1"]["record"] is True
    assert mediamtx_standin.config_paths["camera0"]["record"] is False
    assert app.mediamtx.monitor.restarts == 1


@pytest_twisted.ensureDeferred
async def test_a_configuration_reload_is_detected_within_the_health_interval(tmp_path, mediamtx_standin):
    """MediaMTX re-reading its configuration file drops API-made paths without changing
    ``started``: streams answered 404 until the next periodic pass (30 s by default)."""
    app = build(make_config(tmp_path, mediamtx_standin, reconcile_interval=60.0), reactor)
    app.service.startService()
    try:
        await eventually(lambda: app.mediamtx.available, what="MediaMTX contact")
        await _reload_cycles(app, mediamtx_standin)
    finally:
        await app.service.stopService()


async def _reload_cycles(app, mediamtx_standin):
    # The periodic pass (60 s) cannot be what fixes it within the checks below.
    app.cameras.put(cam(0))
    await eventually(lambda: "camera0" in mediamtx_standin.config_paths, what="path made")
    await app.mediamtx.set_recording("camera0", True)
    started = app.mediamtx.monitor.started
    for _ in range(3):
        mediamtx_standin.reload_config()
        assert "camera0" not in mediamtx_standin.config_paths
        await eventually(
            lambda: "camera0" in mediamtx_standin.config_paths,
            timeout=20,  # health probe every 0.2 s; the periodic pass (60 s) would be far later
            what="path re-applied after the reload",
        )
        assert mediamtx_standin.config_paths["camera0"]["record"] is True
    assert app.mediamtx.monitor.started == started and app.mediamtx.monitor.restarts == 0
    assert app.mediamtx.monitor.reloads_detected == 3


@pytest_twisted.ensureDeferred
async def test_stopped_mediamtx_degrades_then_recovers(camsvc, mediamtx_standin):
    app = camsvc.app
    app.cameras.put(cam(0))
    await eventually(lambda: "camera0" in mediamtx_standin.config_paths)
    code, body = await camsvc.ready()
    assert code == 200
    ok = await camsvc.call("get_streams")
    assert [s["name"] for s in ok["result"]["streams"]] == ["all_others", "camera0"] or "camera0" in [
        s["name"] for s in ok["result"]["streams"]
    ]

    with captured_logs() as logs:
        await mediamtx_standin.stop()
        await eventually(lambda: not app.mediamtx.available, what="down detected")
    code, body = await camsvc.ready()
    assert code == 503
    reason = body["checks"]["mediamtx"]["reason"]
    assert "unreachable" in reason and mediamtx_standin.url in reason
    assert any(r.startswith("mediamtx: ") for r in body["reasons"])
    assert any("MediaMTX is unavailable" in line for line in logs)
    # The API keeps answering; methods that need MediaMTX say why they cannot.
    assert (await camsvc.call("ping"))["result"] == "pong"
    err = (await camsvc.call("get_streams"))["error"]
    assert err["code"] == -32006 and "MediaMTX is unavailable" in err["message"]
    # The reason is the latest failed request's (the health probe's, or a pass's on a loaded
    # machine), so it may name another route than the first one; it always says why.
    assert "unreachable" in err["data"]["reason"] and mediamtx_standin.url in err["data"]["reason"]
    status = (await camsvc.call("get_status"))["result"]
    assert status["status"] == "degraded"
    assert status["components"]["mediamtx"]["available"] is False
    downs = [p for m, p in camsvc.notes if m == "system_status_update"]
    assert [(p["component"], p["status"]) for p in downs] == [("mediamtx", "down")]  # one, however many failed
    assert "unreachable" in downs[0]["message"] and mediamtx_standin.url in downs[0]["message"]

    await mediamtx_standin.start()
    await eventually(lambda: app.mediamtx.available, what="recovery")
    await eventually(lambda: "camera0" in mediamtx_standin.config_paths, what="path restored")
    code, _ = await camsvc.ready()
    assert code == 200
    ups = [p["status"] for m, p in camsvc.notes if m == "system_status_update"]
    assert ups == ["down", "up"]


@pytest_twisted.ensureDeferred
async def test_get_streams_reports_ready_readers_and_bytes(camsvc, mediamtx_standin):
    app = camsvc.app
    app.cameras.put(cam(0))
    await eventually(lambda: "camera0" in mediamtx_standin.config_paths)
    reader = mediamtx_standin.attach_reader("camera0")
    await reader.when_ready()
    await deferLater(reactor, 0.1, lambda: None)
    result = (await camsvc.call("get_streams"))["result"]
    (stream,) = [s for s in result["streams"] if s["name"] == "camera0"]
    assert stream["camera_id"] == "camera0" and stream["ready"] is True
    assert stream["readers"] == 1 and stream["source"] == "rtspSession" and stream["tracks"] == ["H264"]
    assert stream["bytes_received"] > 0 and result["total"] == len(result["streams"])
    # Metrics come from the monitor's cache, without a request.
    await eventually(lambda: app.mediamtx.monitor.stats.get("camera0", {}).get("readers") == 1)
    mediamtx_standin.clear_requests()
    (metrics,) = [fn(app.cameras.get("camera0")) for fn in app.camera_metrics]
    assert metrics["stream"]["ready"] is True and metrics["stream"]["readers"] == 1
    assert metrics["stream"]["path_state"] == "configured"
    assert mediamtx_standin.requests == []
    mediamtx_standin.detach_reader(reader)


@pytest_twisted.ensureDeferred
async def test_many_paths_are_listed_across_pages(camsvc, mediamtx_standin):
    app = camsvc.app
    for n in range(105):
        mediamtx_standin._optional_paths[f"other{n:03d}"] = {"source": "publisher"}
    mediamtx_standin._sync_runtimes()
    app.cameras.put(cam(0))
    await eventually(lambda: "camera0" in mediamtx_standin.config_paths)
    result = (await camsvc.call("get_streams"))["result"]
    assert result["total"] == 106  # 105 + camera0 (all_others is a pattern, not a path): two pages

    def pages(route):
        return {r.query.get("page", ["0"])[0] for r in mediamtx_standin.requests_to("GET", route)}

    assert {"0", "1"} <= pages("/v3/paths/list")
    # The reconciler reads every page of the configuration too (its next pass at the latest).
    await eventually(lambda: {"0", "1"} <= pages("/v3/config/paths/list"))
    # None of those foreign paths was touched.
    assert not [r for r in mediamtx_standin.requests if r.method != "GET" and "other" in r.path]


@pytest_twisted.ensureDeferred
async def test_wrong_credentials_are_reported_and_right_ones_work(tmp_path, mediamtx_standin_factory):
    standin = await mediamtx_standin_factory(user="camsvc", password="s3cret", auth_pause=0.1)
    with captured_logs() as logs:
        app = build(make_config(tmp_path, standin, api_user="camsvc", api_pass="wrong"), reactor)
        app.service.startService()
        try:
            await eventually(lambda: app.mediamtx.monitor.state == "down", what="401 noticed")
            reason = app.health.report()["checks"]["mediamtx"]["reason"]
            assert "refused camsvc's credentials (401 authentication error)" in reason
            assert "mediamtx.api_user/api_pass" in reason
        finally:
            await app.service.stopService()
    assert any(line.startswith("error ") and "refused camsvc's credentials" in line for line in logs)
    app = build(make_config(tmp_path, standin, api_user="camsvc", api_pass="s3cret"), reactor)
    app.service.startService()
    try:
        app.cameras.put(cam(0))
        await eventually(lambda: "camera0" in standin.config_paths)
        assert all(r.headers.get("authorization", "").startswith("Basic ") for r in standin.requests[-3:])
    finally:
        await app.service.stopService()


@pytest_twisted.async_yield_fixture
async def client():
    http, pool = make_http_client(reactor)
    holder = {}

    def make(url, **kw):
        holder["c"] = MediaMTXClient(http, url, reactor, **kw)
        return holder["c"]

    yield make
    await pool.closeCachedConnections()


@pytest_twisted.ensureDeferred
async def test_client_maps_every_reply_to_a_typed_error(client, mediamtx_standin):
    c = client(mediamtx_standin.url)
    assert (await c.info())["version"] == "v1.20.1"
    await c.add_path("cam", {"source": "publisher"})
    with pytest.raises(MediaMTXBadRequest) as bad:
        await c.add_path("cam", {"source": "publisher"})
    assert bad.value.status == 400 and bad.value.error == "path already exists"
    with pytest.raises(MediaMTXNotFound) as missing:
        await c.patch_path("nope", {"record": True})
    assert missing.value.error == "path not found" and not missing.value.route_missing
    with pytest.raises(MediaMTXNotFound):
        await c.delete_path("nope")

    def boom(rec, _):
        raise RuntimeError("boom")

    mediamtx_standin._on_paths_list = boom
    with pytest.raises(MediaMTXServerError) as err:
        await c.list_paths()
    assert err.value.status == 500 and err.value.error == "internal stand-in error"
    mediamtx_standin.set_delay(2.0)
    slow = client(mediamtx_standin.url, timeout=0.3)
    with pytest.raises(MediaMTXUnreachable, match=r"no answer within 0.3s"):
        await slow.info()
    mediamtx_standin.set_delay(0)
    await c.delete_path("cam")


@pytest_twisted.ensureDeferred
async def test_client_unreachable_and_unauthorized(client, mediamtx_standin_factory):
    port = free_port()
    c = client(f"http://127.0.0.1:{port}")
    with pytest.raises(MediaMTXUnreachable, match="unreachable.*refused"):
        await c.info()
    standin = await mediamtx_standin_factory(user="u", password="p", auth_pause=0.05)
    with pytest.raises(MediaMTXUnauthorized) as denied:
        await client(standin.url).info()
    assert denied.value.status == 401 and denied.value.error == "authentication error"
    with pytest.raises(MediaMTXUnauthorized):
        await client(standin.url, user="u", password="bad").info()
    assert (await client(standin.url, user="u", password="p").info())["version"]


@pytest_twisted.ensureDeferred
async def test_legacy_empty_replies_over_http(client, mediamtx_standin_factory):
    standin = await mediamtx_standin_factory(legacy_replies=True)
    c = client(standin.url)
    assert await c.add_path("cam", {"source": "publisher"}) is None
    with pytest.raises(MediaMTXBadRequest) as bad:
        await c.add_path("cam", {"source": "publisher"})
    assert bad.value.error == "path already exists"
    await c.patch_path("cam", {"record": False})
    await c.delete_path("cam")


@pytest_twisted.ensureDeferred
async def test_restart_is_noticed_from_the_closed_connection_not_the_next_probe(tmp_path, mediamtx_standin):
    # Probes and passes every 60 s: only the idle kept-alive connection MediaMTX
    # closes when it exits can make camsvc notice the restart quickly.
    app = build(make_config(tmp_path, mediamtx_standin, health_interval=60, reconcile_interval=60), reactor)
    app.service.startService()
    try:
        await eventually(lambda: app.mediamtx.available, what="MediaMTX contact")
        app.cameras.put(cam(0))
        await eventually(lambda: "camera0" in mediamtx_standin.config_paths)
        await deferLater(reactor, 0.1, lambda: None)
        await mediamtx_standin.restart()
        await eventually(
            lambda: "camera0" in mediamtx_standin.config_paths, timeout=30, what="restored"
        )  # passes every 60 s
        assert app.mediamtx.monitor.restarts == 1
    finally:
        await app.service.stopService()


@pytest_twisted.ensureDeferred
async def test_client_recordings_routes(client, mediamtx_standin, tmp_path):
    c = client(mediamtx_standin.url)
    await c.add_path(
        "camera0",
        {
            "source": "publisher",
            "runOnDemand": "ffmpeg -f lavfi -i testsrc -f rtsp rtsp://localhost:$RTSP_PORT/$MTX_PATH",
            "record": True,
            "recordPath": str(tmp_path / "rec" / "%path_%Y-%m-%d_%H-%M-%S-%f"),
            "recordFormat": "fmp4",
            "recordSegmentDuration": "1s",
            "recordDeleteAfter": "0s",
        },
    )
    reader = mediamtx_standin.attach_reader("camera0")
    await reader.when_ready()
    await eventually(lambda: len(mediamtx_standin.recorded_segments("camera0")) >= 2, what="two segments")
    mediamtx_standin.detach_reader(reader)
    (entry,) = [r for r in await c.list_recordings() if r["name"] == "camera0"]
    assert len(entry["segments"]) >= 2
    assert (await c.get_recording("camera0"))["segments"] == entry["segments"]
    first = entry["segments"][0]["start"]
    await c.delete_segment("camera0", first)
    after = (await c.get_recording("camera0"))["segments"]
    assert first not in [s["start"] for s in after]
    with pytest.raises(MediaMTXBadRequest, match="invalid 'start' parameter"):
        await c.delete_segment("camera0", "yesterday")
    await c.delete_path("camera0")
