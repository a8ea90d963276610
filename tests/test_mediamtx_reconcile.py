"""Monitor and reconciler decisions, synchronously: Clock + StubTreq over the stand-in's resource.

No sockets: the MediaMTX stand-in's HTTP resource is served through
``treq.testing.StubTreq`` and time is a ``MemoryReactorClock``, so every
request and every decision happens inside ``clock.advance``.  The stand-in
still checks every request against MediaMTX's OpenAPI document.
"""

from __future__ import annotations

import json

import pytest
from treq.testing import StubTreq
from twisted.internet.defer import fail
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock

from camsvc.cameras.registry import CONNECTED, DISCONNECTED, Camera, CameraRegistry
from camsvc.common.errors import InvalidState, MediaMTXUnavailable
from camsvc.config import parse_config_dict
from camsvc.mediamtx.client import MediaMTXClient
from camsvc.mediamtx.desired import desired_path, differences
from camsvc.mediamtx.monitor import Monitor
from camsvc.mediamtx.reconcile import LEDGER_NAME, OwnershipLedger, Reconciler
from camsvc.ops.health import Health
from tests.support.logcapture import captured_logs
from tests.support.mediamtx import MediaMTXStandIn, _APIResource
from tests.support.openapi import OpenAPISpec

_SPEC: list = []


def spec() -> OpenAPISpec:
    """One parsed OpenAPI document for every stand-in of this module (parsing it is slow)."""
    if not _SPEC:
        _SPEC.append(OpenAPISpec())
    return _SPEC[0]


CAPS = {"formats": [{"format": "MJPG", "sizes": [{"width": 640, "height": 480, "fps": [30]}]}]}


def cam(n: int, status: str = CONNECTED) -> Camera:
    return Camera(
        camera_id=f"camera{n}",
        device=f"/dev/video{2 * n}",
        status=status,
        links=(f"/dev/v4l/by-id/usb-Acme_{n}-video-index0",),
        capabilities=CAPS,
        default={"format": "MJPG", "width": 640, "height": 480, "fps": 30},
    )


class SwitchableHTTP:
    """A treq client that can be 'unplugged' (connection refused)."""

    def __init__(self, inner):
        self.inner = inner
        self.down = False
        self.before = None  # (method, url) -> None: someone else acts on MediaMTX just before us

    def request(self, *args, **kwargs):
        if self.down:
            return fail(ConnectionRefusedError("Connection refused"))
        if self.before is not None:
            self.before(args[0], args[1])
        return self.inner.request(*args, **kwargs)


class World:
    """A monitor + reconciler wired to a stand-in, all on one MemoryReactorClock."""

    def __init__(self, tmp_path, *, standin=None, started=True, **mediamtx):
        self.clock = MemoryReactorClock()
        self.clock.advance(1000)
        self.tmp_path = tmp_path
        self.standin = standin or MediaMTXStandIn(self.clock, rtsp_port=None, record_root=tmp_path, spec=spec())
        self.standin.start()
        self.http = SwitchableHTTP(StubTreq(_APIResource(self.standin)))
        self.config = parse_config_dict(
            {
                "mediamtx": {"reconcile_interval": 30, "health_interval": 5, **mediamtx},
                "storage": {
                    "state_dir": str(tmp_path),
                    "recordings_dir": str(tmp_path / "rec"),
                    "snapshots_dir": str(tmp_path / "snap"),
                },
            }
        )
        self.health = Health(self.clock)
        self.published: list = []
        self.cameras = CameraRegistry(self.clock)
        self.build()
        if started:
            self.start()

    def build(self):
        self.client = MediaMTXClient(self.http, "http://mediamtx.test", self.clock, timeout=5)
        self.monitor = Monitor(
            self.client,
            self.clock,
            self.health,
            lambda method, params: self.published.append((method, params)),
            self.config.mediamtx.health_interval,
            "http://mediamtx.test",
        )
        self.ledger = OwnershipLedger(str(self.tmp_path / LEDGER_NAME))
        self.reconciler = Reconciler(self.client, self.monitor, self.cameras, self.config, self.clock, self.ledger)

    def start(self):
        self.monitor.startService()
        self.reconciler.startService()
        self.settle()

    def stop(self):
        self.reconciler.stopService()
        self.monitor.stopService()

    def settle(self, seconds: float = 0.0):
        self.clock.advance(0)
        self.clock.advance(seconds)
        self.clock.advance(0)

    def requests(self, method=None, prefix="/v3/config/paths/"):
        return [(r.method, r.path) for r in self.standin.requests_to(method, prefix) if r.method != "GET"]

    def restart_standin(self):
        self.clock.advance(1)  # a different "started"
        self.standin.stop()
        self.standin.start()

    def check_contract(self):
        assert self.standin.violations == []
        assert self.standin.response_violations == []


@pytest.fixture
def world(tmp_path):
    w = World(tmp_path)
    yield w
    w.stop()
    w.check_contract()


def test_first_contact_marks_ready_and_configures_connected_cameras(world):
    assert world.health.is_ok("mediamtx")
    world.cameras.put(cam(0))
    world.cameras.put(cam(1, status=DISCONNECTED))
    world.settle()
    paths = world.standin.config_paths
    assert "camera0" in paths and "camera1" not in paths
    want = desired_path(cam(0), world.config)
    assert differences(want, paths["camera0"]) == set()
    assert world.reconciler.status()["paths"]["camera0"]["state"] == "configured"
    assert world.ledger.names == {"camera0"}
    assert json.loads((world.tmp_path / LEDGER_NAME).read_text())["paths"] == ["camera0"]


def test_passes_are_idempotent_despite_normalised_read_back(world):
    world.cameras.put(cam(0))
    world.settle()
    world.standin.clear_requests()
    for _ in range(3):
        world.settle(world.config.mediamtx.reconcile_interval)
    # MediaMTX reads durations back as "1h0m0s" and zero as "": no rewrite anyway.
    assert world.standin.config_paths["camera0"]["recordDeleteAfter"] == ""
    assert world.requests() == []
    assert len(world.standin.requests_to("GET", "/v3/config/paths/list")) == 3


def test_removed_camera_path_is_deleted_and_released(world):
    world.cameras.put(cam(0))
    world.settle()
    world.cameras.mark_disconnected("camera0")
    world.settle()
    assert "camera0" not in world.standin.config_paths
    assert world.requests("DELETE") == [("DELETE", "/v3/config/paths/delete/camera0")]
    assert world.ledger.names == set()


def test_changed_camera_mode_replaces_the_path(world):
    world.cameras.put(cam(0))
    world.settle()
    world.cameras.put(
        Camera(**{**cam(0).__dict__, "default": {"format": "MJPG", "width": 320, "height": 240, "fps": 15}})
    )
    world.settle()
    assert "-video_size 320x240" in world.standin.config_paths["camera0"]["runOnDemand"]
    assert ("POST", "/v3/config/paths/replace/camera0") in world.requests()


def test_drift_made_by_someone_else_is_repaired_by_the_periodic_pass(world):
    world.cameras.put(cam(0))
    world.settle()
    world.standin._optional_paths["camera0"]["runOnDemand"] = "something else"
    world.standin._optional_paths["camera0"]["record"] = True
    world.settle(30)
    have = world.standin.config_paths["camera0"]
    assert differences(desired_path(cam(0), world.config), have) == set()


def test_foreign_paths_are_never_touched(world):
    # An operator's path, and one that collides with a camera id camsvc will use.
    world.standin._optional_paths["studio"] = {"source": "publisher"}
    world.standin._optional_paths["camera3"] = {"source": "rtsp://10.0.0.9/live"}
    world.cameras.put(cam(3))
    world.settle(30)
    assert world.standin.config_paths["studio"]["source"] == "publisher"
    assert world.standin.config_paths["camera3"]["source"] == "rtsp://10.0.0.9/live"
    assert world.requests() == []
    status = world.reconciler.status()
    assert status["paths"]["camera3"]["state"] == "conflict"
    assert "camera3" in status["conflicts"] and "camera3" not in status["owned"]
    # Leaving the camera does not delete the foreign path either.
    world.cameras.mark_disconnected("camera3")
    world.settle(30)
    assert "camera3" in world.standin.config_paths and world.requests() == []


def test_identical_preexisting_path_is_adopted(world):
    world.standin._optional_paths["camera0"] = dict(desired_path(cam(0), world.config))
    world.cameras.put(cam(0))
    world.settle()
    assert world.ledger.owns("camera0") and world.requests() == []
    world.cameras.mark_disconnected("camera0")
    world.settle()
    assert "camera0" not in world.standin.config_paths


def test_ownership_survives_a_camsvc_restart_but_not_a_mediamtx_restart(world, tmp_path):
    world.cameras.put(cam(0))
    world.cameras.put(cam(1))
    world.settle()
    world.stop()
    # camsvc restarts: camera1 is gone meanwhile; its path is still ours and is deleted.
    world.cameras = CameraRegistry(world.clock)
    world.cameras.put(cam(0))
    world.build()
    world.start()
    assert set(world.standin.config_paths) == {"all_others", "camera0"}
    world.stop()
    # MediaMTX restarts while camsvc is down and someone else creates camera5:
    world.restart_standin()
    world.standin._optional_paths["camera5"] = {"source": "publisher"}
    ledger = json.loads((tmp_path / LEDGER_NAME).read_text())
    ledger["paths"].append("camera5")  # even a (stale) ledger entry...
    (tmp_path / LEDGER_NAME).write_text(json.dumps(ledger))
    world.build()
    world.start()
    # ...is dropped because MediaMTX's "started" changed: camera5 is not ours any more.
    assert "camera5" in world.standin.config_paths
    assert "camera0" in world.standin.config_paths
    assert world.ledger.names == {"camera0"}


def test_mediamtx_restart_is_detected_and_paths_and_recording_restored(world):
    world.cameras.put(cam(0))
    world.settle()
    world.reconciler.set_recording("camera0", True)
    world.settle()
    assert world.standin.config_paths["camera0"]["record"] is True
    world.restart_standin()
    assert "camera0" not in world.standin.config_paths
    world.settle(world.config.mediamtx.health_interval)
    assert world.monitor.restarts == 1
    assert world.standin.config_paths["camera0"]["record"] is True
    assert world.standin.config_paths["camera0"]["recordDeleteAfter"] == ""


def test_set_recording_patches_only_recording_fields(world):
    world.cameras.put(cam(0))
    world.settle()
    world.standin.clear_requests()
    result = []
    world.reconciler.set_recording("camera0", True).addBoth(result.append)
    world.settle()
    assert result == [None]
    (req,) = [r for r in world.standin.requests if r.method != "GET"]
    assert req.method == "PATCH" and req.path == "/v3/config/paths/patch/camera0"
    assert req.json["record"] is True and set(req.json) <= {
        "record",
        "recordPath",
        "recordFormat",
        "recordSegmentDuration",
        "recordDeleteAfter",
    }
    world.reconciler.set_recording("camera0", False).addBoth(result.append)
    world.settle()
    assert world.standin.config_paths["camera0"]["record"] is False


def test_set_recording_on_an_unknown_or_disconnected_camera(world):
    out = []
    world.reconciler.set_recording("camera9", True).addErrback(lambda f: out.append(f.value))
    world.settle()
    assert isinstance(out[0], InvalidState) and out[0].code == -32005
    ok = []
    world.reconciler.set_recording("camera9", False).addBoth(ok.append)
    assert ok == [None]


def test_set_recording_while_down_is_32006_and_enable_is_not_kept(world):
    world.cameras.put(cam(0))
    world.settle()
    world.http.down = True
    world.settle(5)
    assert not world.monitor.available
    out = []
    world.reconciler.set_recording("camera0", True).addErrback(lambda f: out.append(f.value))
    world.settle()
    assert isinstance(out[0], MediaMTXUnavailable) and out[0].code == -32006
    assert "Connection refused" in out[0].message
    assert world.reconciler.recording.get("camera0") is False


def test_down_then_back_health_notifications_and_backoff(world):
    world.cameras.put(cam(0))
    world.settle()
    world.http.down = True
    world.settle(5)
    assert not world.health.is_ok("mediamtx")
    reason = world.health.report()["checks"]["mediamtx"]["reason"]
    assert "unreachable" in reason and "Connection refused" in reason
    assert world.published[-1] == (
        "system_status_update",
        {"component": "mediamtx", "status": "down", "message": reason},
    )
    with pytest.raises(MediaMTXUnavailable, match="MediaMTX is unavailable: .*Connection refused"):
        world.monitor.check_available()
    # Further failed probes do not notify again.
    world.settle(20)
    assert [p[1]["status"] for p in world.published] == ["down"]
    world.http.down = False
    world.settle(5)
    assert world.health.is_ok("mediamtx")
    assert [p[1]["status"] for p in world.published] == ["down", "up"]
    assert world.monitor.restarts == 0  # same "started": a network blip, not a restart


def test_reconcile_retries_with_capped_exponential_backoff(world):
    world.cameras.put(cam(0))
    world.settle()
    # MediaMTX answers the health probe but fails every config listing with 500.
    original = world.standin._on_config_paths_list

    def broken(rec, _):
        raise RuntimeError("boom")

    world.standin._on_config_paths_list = broken
    world.reconciler.reconcile()
    world.settle()
    delays = []
    for _ in range(8):
        delays.append(round(world.reconciler.status()["retry_in"], 3))
        world.settle(delays[-1])
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert world.monitor.available  # a 500 on one route is not "down"
    world.standin._on_config_paths_list = original
    world.settle(30)
    assert world.reconciler.status()["consecutive_failures"] == 0
    assert world.reconciler.status()["retry_in"] is None


def test_refused_path_is_reported_and_logged_once(world):
    def refuse(rec, param):
        return world.standin._error(400, "invalid configuration for test")

    world.standin._on_config_paths_add = refuse
    with captured_logs() as logs:
        world.cameras.put(cam(0))
        world.settle()
        world.settle(30)
    state = world.reconciler.status()["paths"]["camera0"]
    assert state["state"] == "error"
    assert "400 invalid configuration for test" in state["error"]
    lines = [e for e in logs if "refused to add path camera0" in e]
    assert len(lines) == 1 and lines[0].startswith("error ")
    assert world.reconciler.status()["consecutive_failures"] == 0  # not a transient failure


def test_info_missing_falls_back_to_global_config(tmp_path):
    w = World(tmp_path, started=False)
    w.standin._on_info = lambda rec, _: w.standin._not_found_text()
    w.cameras.put(cam(0))
    w.start()
    try:
        assert w.health.is_ok("mediamtx") and not w.monitor.has_info
        assert w.standin.requests_to("GET", "/v3/config/global/get")
        assert "camera0" in w.standin.config_paths
    finally:
        w.stop()
    w.check_contract()


def test_legacy_empty_bodies_work(tmp_path):
    clock = MemoryReactorClock()
    standin = MediaMTXStandIn(clock, rtsp_port=None, record_root=tmp_path, legacy_replies=True, spec=spec())
    w = World(tmp_path, standin=standin)
    try:
        w.cameras.put(cam(0))
        w.settle()
        out = []
        w.reconciler.set_recording("camera0", True).addBoth(out.append)
        w.settle()
        assert out == [None] and w.standin.config_paths["camera0"]["record"] is True
        assert w.requests() == [
            ("POST", "/v3/config/paths/add/camera0"),
            ("PATCH", "/v3/config/paths/patch/camera0"),
        ]
    finally:
        w.stop()


def test_stats_cache_and_status(world):
    world.cameras.put(cam(0))
    world.settle()
    world.standin.start_publisher("camera0")
    world.settle(5)
    stats = world.monitor.stats["camera0"]
    assert stats["ready"] is True and stats["tracks"] == ["H264"] and stats["source"] == "rtspSession"
    status = world.monitor.status()
    assert status["available"] and status["version"] == "v1.20.1" and status["started"]


def test_probes_quickly_while_down_then_at_the_interval(world):
    world.http.down = True
    world.settle(5)  # the regular probe notices
    assert world.monitor.state == "down"
    delays = []
    for _ in range(44):
        delays.append(world.monitor.next_delay())
        world.settle(delays[-1])
    # Every 0.25 s for the first 10 s of the outage, then every health_interval.
    assert delays[:40] == [0.25] * 40 and delays[40:] == [5.0] * 4
    assert [p[1]["status"] for p in world.published] == ["down"]
    world.http.down = False
    world.settle(world.monitor.next_delay())
    assert world.monitor.available and world.monitor.next_delay() == 5.0


def test_a_poke_probes_at_once_and_finds_the_restart(world):
    world.cameras.put(cam(0))
    world.settle()
    world.restart_standin()
    world.monitor.poke()  # what the pool does when MediaMTX closes our idle connection
    world.settle(0.05)
    assert world.monitor.restarts == 1
    assert "camera0" in world.standin.config_paths


def test_set_recording_on_a_path_deleted_behind_our_back_recreates_it(world):
    world.cameras.put(cam(0))
    world.settle()
    del world.standin._optional_paths["camera0"]  # someone deleted it through the API
    world.standin._sync_runtimes()
    world.standin.clear_requests()
    out = []
    with captured_logs() as logs:
        world.reconciler.set_recording("camera0", True).addBoth(out.append)
        world.settle()
    assert out == [None]
    assert world.requests() == [
        ("PATCH", "/v3/config/paths/patch/camera0"),  # -> 404 path not found
        ("POST", "/v3/config/paths/add/camera0"),
    ]
    assert world.standin.requests[0].status == 404
    assert world.standin.config_paths["camera0"]["record"] is True
    assert any("MediaMTX path camera0: add done" in line for line in logs)


def test_server_errors_are_logged_and_retried(world):
    world.cameras.put(cam(0))
    world.settle()
    original = world.standin._on_config_paths_replace

    def broken(rec, _):
        raise RuntimeError("boom")

    world.standin._on_config_paths_replace = broken
    changed = Camera(**{**cam(0).__dict__, "default": {"format": "MJPG", "width": 320, "height": 240, "fps": 15}})
    with captured_logs() as logs:
        world.cameras.put(changed)
        world.settle()
    state = world.reconciler.status()["paths"]["camera0"]
    assert state["state"] == "error" and "500: internal stand-in error" in state["error"]
    (line,) = [x for x in logs if "MediaMTX reconcile failed" in x]
    assert line.startswith("warn ") and "(attempt 1)" in line and "-> 500: internal stand-in error" in line
    assert world.reconciler.status()["retry_in"] == 0.5
    world.standin._on_config_paths_replace = original
    world.settle(0.5)
    assert "-video_size 320x240" in world.standin.config_paths["camera0"]["runOnDemand"]
    assert world.reconciler.status()["paths"]["camera0"]["state"] == "configured"


def test_disabled_integration(tmp_path):
    from camsvc.tap import build

    reactor = MemoryReactorClock()
    config = parse_config_dict(
        {
            "server": {"host": "127.0.0.1", "endpoint": "tcp:0:interface=127.0.0.1"},
            "auth": {"required": False},
            "mediamtx": {"enabled": False},
            "discovery": {"enabled": False},
            "storage": {
                "state_dir": str(tmp_path),
                "recordings_dir": str(tmp_path / "r"),
                "snapshots_dir": str(tmp_path / "s"),
            },
        }
    )
    app = build(config, reactor)
    assert "mediamtx" not in app.health.report()["checks"]
    assert app.status_providers["mediamtx"]()["enabled"] is False
    session = app.make_session("c1", peer="127.0.0.1:1", host="127.0.0.1:8002")
    out = []
    reply = app.engine.handle(session, json.dumps({"jsonrpc": "2.0", "id": 1, "method": "get_streams"}))
    if hasattr(reply, "addCallback"):
        reply.addCallback(out.append)
    else:
        out.append(reply)
    error = json.loads(out[0])["error"]
    assert error["code"] == -32006 and "mediamtx.enabled: false" in error["message"]
    failed = []
    app.mediamtx.set_recording("camera0", True).addErrback(lambda f: failed.append(f.value))
    assert isinstance(failed[0], MediaMTXUnavailable)


# -- races with someone else on MediaMTX, and a ledger that cannot be read or written --------


def _once_before(world, method, suffix, action):
    def before(m, url):
        if m.upper() == method and url.endswith(suffix):
            world.http.before = None
            action()

    world.http.before = before


def _without(paths: dict, name: str) -> dict:
    return {k: dict(v) for k, v in paths.items() if k != name}


def test_a_path_deleted_just_before_our_patch_is_added_back(world):
    world.cameras.put(cam(0))
    world.settle()
    world.standin._optional_paths["camera0"]["record"] = True  # drift: repaired with a patch...
    _once_before(
        world,
        "PATCH",
        "/patch/camera0",
        lambda: world.standin._commit(_without(world.standin._optional_paths, "camera0")),  # ...that finds it gone
    )
    world.standin.clear_requests()
    world.settle(30)
    assert world.requests() == [("PATCH", "/v3/config/paths/patch/camera0"), ("POST", "/v3/config/paths/add/camera0")]
    assert differences(desired_path(cam(0), world.config), world.standin.config_paths["camera0"]) == set()
    assert world.reconciler.status()["paths"]["camera0"]["state"] == "configured" and world.ledger.owns("camera0")


def test_a_path_someone_else_creates_just_before_our_add_is_theirs(world):
    def theirs():
        paths = {k: dict(v) for k, v in world.standin._optional_paths.items()}
        paths["camera0"] = {"source": "rtsp://10.0.0.9/live"}
        world.standin._commit(paths)

    _once_before(world, "POST", "/add/camera0", theirs)
    world.cameras.put(cam(0))
    world.settle()
    world.settle(30)
    assert world.standin.config_paths["camera0"]["source"] == "rtsp://10.0.0.9/live"  # never overwritten
    assert not world.ledger.owns("camera0")
    assert world.reconciler.status()["paths"]["camera0"]["state"] == "conflict"


def test_a_corrupt_ledger_starts_empty_and_bad_entries_are_ignored(tmp_path):
    path = tmp_path / LEDGER_NAME
    path.write_text("{not json")
    with captured_logs() as logs:
        assert OwnershipLedger(str(path)).names == set()
    assert any("Cannot read the MediaMTX path ledger" in line for line in logs), logs
    path.write_text(json.dumps({"version": 1, "paths": ["camera0", 7, None], "mediamtx_started": 5}))
    ledger = OwnershipLedger(str(path))
    assert ledger.names == {"camera0"} and ledger.started is None
    path.write_text("[]")  # valid JSON, not a ledger
    assert OwnershipLedger(str(path)).names == set()


def test_an_unwritable_ledger_is_logged_and_memory_stays_authoritative(tmp_path):
    (tmp_path / "state").write_text("a file where the directory should be")
    with captured_logs() as logs:
        ledger = OwnershipLedger(str(tmp_path / "state" / LEDGER_NAME))
        ledger.claim("camera1")
    assert ledger.owns("camera1")
    assert any("Cannot write the MediaMTX path ledger" in line for line in logs), logs
