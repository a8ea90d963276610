"""Tests of the MediaMTX stand-in and the OpenAPI validator (test support code).

Real sockets on 127.0.0.1, real treq; every reply is also checked against
MediaMTX's openapi.yaml by the stand-in itself (the fixtures fail the test on
any off-spec reply or request).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import pytest_twisted
import treq
from twisted.internet import defer, reactor, task
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.protocol import ClientCreator, Protocol

from tests.support import fixtures as _fixtures

# pytest finds fixtures by module attribute (the lead may instead list
# "tests.support.fixtures" in tests/conftest.py's pytest_plugins).
mediamtx_clip = _fixtures.mediamtx_clip
mediamtx_standin = _fixtures.mediamtx_standin
mediamtx_standin_factory = _fixtures.mediamtx_standin_factory
from tests.support.mediamtx import split_fmp4
from tests.support.openapi import OpenAPISpec
from tests.support.waiting import eventually

SPEC = OpenAPISpec()
REPO = Path(__file__).resolve().parent.parent


def sleep(seconds):
    return task.deferLater(reactor, seconds, lambda: None)


async def call(standin, method, path, body=None, *, raw=None, auth=None, redirects=False):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    headers = {"Content-Type": ["application/json"]} if data is not None else {}
    pool_kwargs = {"persistent": False}
    resp = await treq.request(
        method,
        standin.url + path,
        data=data,
        headers=headers,
        auth=auth,
        allow_redirects=redirects,
        **pool_kwargs,
    )
    content = await resp.content()
    return resp, content


async def call_json(standin, method, path, body=None, **kw):
    resp, content = await call(standin, method, path, body, **kw)
    return resp.code, (json.loads(content) if content else None)


# ---------------------------------------------------------------------------
# validator
# ---------------------------------------------------------------------------


def test_validator_accepts_valid_requests():
    assert SPEC.request_errors("GET", "/v3/info") == []
    assert SPEC.request_errors("GET", "/v3/config/paths/list?itemsPerPage=10&page=0") == []
    assert (
        SPEC.request_errors(
            "POST",
            "/v3/config/paths/add/cam/sub",
            b'{"record": true}',
            {"Content-Type": "application/json"},
        )
        == []
    )
    assert SPEC.request_errors("DELETE", "/v3/recordings/deletesegment?path=a&start=2024-01-01T00:00:00Z") == []


@pytest.mark.parametrize(
    "method,target,body,needle",
    [
        ("GET", "/v3/config/paths/add/cam0", None, "method not allowed"),
        ("POST", "/v3/config/paths/patch/cam0", b"{}", "method not allowed"),
        ("GET", "/v3/nothing", None, "no such route"),
        (
            "POST",
            "/v3/config/paths/add/cam0",
            b'{"record": "yes"}',
            "'yes' is not of type 'boolean'",
        ),
        (
            "POST",
            "/v3/config/paths/add/cam0",
            b'{"recrd": true}',
            "'recrd' was unexpected",
        ),
        (
            "POST",
            "/v3/config/paths/add/cam0",
            b'{"recordFormat": "avi"}',
            "is not one of",
        ),
        (
            "POST",
            "/v3/config/paths/add/cam0",
            b'{"rpiCameraWidth": -1}',
            "less than the minimum",
        ),
        ("POST", "/v3/config/paths/add/cam0", None, "requires a JSON request body"),
        ("POST", "/v3/config/paths/add/cam0", b"{nope", "not JSON"),
        ("GET", "/v3/info", b'{"a": 1}', "takes no request body"),
        ("GET", "/v3/paths/list?page=x", None, "not an integer"),
        ("GET", "/v3/paths/list?limit=3", None, "unknown query parameter"),
        ("DELETE", "/v3/recordings/deletesegment?path=a", None, "'start' is missing"),
    ],
)
def test_validator_rejects_bad_requests(method, target, body, needle):
    errors = SPEC.request_errors(method, target, body)
    assert errors and any(needle in e for e in errors), errors


def test_validator_checks_content_type_and_deprecated():
    assert any(
        "Content-Type" in e
        for e in SPEC.request_errors("PATCH", "/v3/config/paths/patch/x", b"{}", {"Content-Type": "text/plain"})
    )
    strict = OpenAPISpec(forbid_deprecated=True)
    assert any("deprecated" in e for e in strict.request_errors("POST", "/v3/config/paths/add/x", b'{"readUser": "u"}'))
    assert SPEC.request_errors("POST", "/v3/config/paths/add/x", b'{"readUser": "u"}') == []


def test_validator_checks_responses():
    assert SPEC.response_errors("GET", "/v3/info", 200, b'{"version":"v1","started":"x"}') == []
    assert SPEC.response_errors("GET", "/v3/info", 404, b"{}")
    assert SPEC.response_errors("POST", "/v3/config/paths/add/x", 200, b'{"status":"fine"}')


# ---------------------------------------------------------------------------
# basic API behaviour
# ---------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_info_and_static_config(mediamtx_standin):
    s = mediamtx_standin
    code, info = await call_json(s, "GET", "/v3/info")
    assert code == 200 and info["version"] == "v1.20.1" and info["started"]
    code, listing = await call_json(s, "GET", "/v3/config/paths/list")
    # the default mediamtx.yml has exactly one static path
    assert code == 200 and listing["itemCount"] == 1 and listing["pageCount"] == 1
    assert listing["items"][0]["name"] == "all_others"
    code, defaults = await call_json(s, "GET", "/v3/config/pathdefaults/get")
    assert code == 200
    assert defaults["recordPath"] == "./recordings/%path/%Y-%m-%d_%H-%M-%S-%f"
    assert defaults["recordSegmentDuration"] == "1h0m0s" and defaults["recordDeleteAfter"] == "1d"
    assert defaults["runOnDemandCloseAfter"] == "10s" and defaults["source"] == "publisher"
    code, glob = await call_json(s, "GET", "/v3/config/global/get")
    assert code == 200 and glob["api"] is True and glob["apiAddress"] == f":{s.api_port}"


@pytest_twisted.ensureDeferred
async def test_path_crud_status_codes_and_bodies(mediamtx_standin):
    s = mediamtx_standin
    body = {
        "source": "publisher",
        "runOnDemand": "ffmpeg -i x -f rtsp rtsp://localhost:$RTSP_PORT/$MTX_PATH",
        "runOnDemandRestart": True,
        "recordDeleteAfter": "0s",
    }
    assert await call_json(s, "POST", "/v3/config/paths/add/camera0", body) == (
        200,
        {"status": "ok"},
    )
    assert await call_json(s, "POST", "/v3/config/paths/add/camera0", body) == (
        400,
        {"status": "error", "error": "path already exists"},
    )

    code, conf = await call_json(s, "GET", "/v3/config/paths/get/camera0")
    assert code == 200
    assert set(conf) == {
        k
        for k, v in SPEC.document["components"]["schemas"]["PathConf"]["properties"].items()
        if not v.get("deprecated")
    }
    assert conf["name"] == "camera0" and conf["runOnDemandRestart"] is True
    assert conf["record"] is False and conf["runOnDemandCloseAfter"] == "10s"
    assert conf["recordDeleteAfter"] == ""  # conf.Duration marshals 0 as ""

    assert await call_json(s, "PATCH", "/v3/config/paths/patch/camera0", {"record": True}) == (200, {"status": "ok"})
    code, conf = await call_json(s, "GET", "/v3/config/paths/get/camera0")
    assert conf["record"] is True and conf["runOnDemandRestart"] is True  # patch merges

    assert await call_json(s, "POST", "/v3/config/paths/replace/camera0", {"source": "publisher"}) == (
        200,
        {"status": "ok"},
    )
    code, conf = await call_json(s, "GET", "/v3/config/paths/get/camera0")
    assert conf["record"] is False and conf["runOnDemand"] == ""  # replace resets to defaults
    # replace upserts
    assert await call_json(s, "POST", "/v3/config/paths/replace/camera9", {}) == (
        200,
        {"status": "ok"},
    )
    assert "camera9" in s.config_paths

    assert await call_json(s, "DELETE", "/v3/config/paths/delete/camera0") == (
        200,
        {"status": "ok"},
    )
    assert await call_json(s, "DELETE", "/v3/config/paths/delete/camera0") == (
        404,
        {"status": "error", "error": "path not found"},
    )
    assert await call_json(s, "PATCH", "/v3/config/paths/patch/camera0", {"record": True}) == (
        404,
        {"status": "error", "error": "path not found"},
    )
    assert await call_json(s, "GET", "/v3/config/paths/get/camera0") == (
        404,
        {"status": "error", "error": "path configuration not found"},
    )
    assert await call_json(s, "GET", "/v3/paths/get/camera0") == (
        404,
        {"status": "error", "error": "path not found"},
    )
    assert [r.method for r in s.requests_to(prefix="/v3/config/paths/delete")] == [
        "DELETE",
        "DELETE",
    ]
    assert s.requests_to("POST", "/v3/config/paths/add")[0].json == body


@pytest_twisted.ensureDeferred
async def test_strict_decoding_and_validation_errors(mediamtx_standin):
    s = mediamtx_standin
    cases = [
        ({"recrd": True}, 'json: unknown field "recrd"'),
        (
            {"record": "yes"},
            "json: cannot unmarshal string into Go struct field .record of type bool",
        ),
        (
            {"maxReaders": 1.5},
            "json: cannot unmarshal number 1.5 into Go struct field .maxReaders of type int",
        ),
        ({"recordSegmentDuration": "soon"}, 'time: invalid duration "soon"'),
        ({"recordFormat": "avi"}, "invalid record format 'avi'"),
        ({"source": "nope"}, "invalid source: 'nope'"),
        (
            {"source": "rtsp://cam/x", "runOnDemand": "x"},
            "'runOnDemand' and 'runOnUnDemand' can be used only when source is 'publisher'",
        ),
    ]
    for body, message in cases:
        assert await call_json(s, "POST", "/v3/config/paths/add/p", body) == (
            400,
            {"status": "error", "error": message},
        ), body
    assert await call_json(s, "POST", "/v3/config/paths/add/p", raw=b"{") == (
        400,
        {"status": "error", "error": "unexpected end of JSON input"},
    )
    # path name rules (conf.isValidPathName), checked after decoding
    assert await call_json(s, "POST", "/v3/config/paths/add/bad name", {}) == (
        400,
        {
            "status": "error",
            "error": "invalid path name 'bad name': can contain only alphanumeric "
            "characters, underscore, dot, tilde, minus or slash",
        },
    )
    assert await call_json(s, "POST", "/v3/config/paths/add/cam/", {}) == (
        400,
        {
            "status": "error",
            "error": "invalid path name 'cam/': can't end with a slash",
        },
    )
    assert await call_json(s, "POST", "/v3/config/paths/add/", {}) == (
        400,
        {"status": "error", "error": "invalid name"},
    )
    assert await call_json(s, "POST", "/v3/config/paths/add/a/b.c-d_e~f", {}) == (
        200,
        {"status": "ok"},
    )
    assert "p" not in s.config_paths
    # the off-spec bodies above were recorded as violations; consume them
    violations = s.take_violations()
    assert any("recrd" in v for v in violations) and any("'yes'" in v for v in violations)
    assert not any("a/b.c-d_e~f" in v for v in violations)


@pytest_twisted.ensureDeferred
async def test_unknown_routes_wrong_methods_and_redirects(mediamtx_standin):
    s = mediamtx_standin
    for method, path in [
        ("GET", "/v3/nothing"),
        ("GET", "/v3/config/paths/add/x"),
        ("POST", "/v3/info"),
        ("PUT", "/v3/config/paths/replace/x"),
        ("GET", "/"),
    ]:
        resp, content = await call(s, method, path)
        assert resp.code == 404 and content == b"404 page not found", (method, path)
        assert resp.headers.getRawHeaders("content-type") == ["text/plain"]
    resp, _ = await call(s, "GET", "/v3/info/")
    assert resp.code == 301 and resp.headers.getRawHeaders("location") == ["/v3/info"]
    resp, _ = await call(s, "POST", "/v3/config/paths/add")
    assert resp.code == 307 and resp.headers.getRawHeaders("location") == ["/v3/config/paths/add/"]
    assert len(s.take_violations()) == 7


@pytest_twisted.ensureDeferred
async def test_pagination(mediamtx_standin_factory):
    s = await mediamtx_standin_factory(static_paths={})
    for i in range(5):
        assert (await call_json(s, "POST", f"/v3/config/paths/add/cam{i}", {}))[0] == 200
    _, page = await call_json(s, "GET", "/v3/config/paths/list?itemsPerPage=2&page=0")
    assert (
        page["itemCount"],
        page["pageCount"],
        [i["name"] for i in page["items"]],
    ) == (5, 3, ["cam0", "cam1"])
    _, page = await call_json(s, "GET", "/v3/paths/list?itemsPerPage=2&page=2")
    assert (
        page["itemCount"],
        page["pageCount"],
        [i["name"] for i in page["items"]],
    ) == (5, 3, ["cam4"])
    code, page = await call_json(s, "GET", "/v3/paths/list?itemsPerPage=2&page=7")
    assert code == 200 and page["items"] == [] and page["pageCount"] == 3
    assert await call_json(s, "GET", "/v3/paths/list?itemsPerPage=0") == (
        400,
        {"status": "error", "error": "invalid items per page"},
    )
    assert await call_json(s, "GET", "/v3/paths/list?page=-1") == (
        400,
        {"status": "error", "error": 'strconv.ParseUint: parsing "-1": invalid syntax'},
    )
    code, empty = await call_json(s, "GET", "/v3/recordings/list")
    assert empty == {"itemCount": 0, "pageCount": 0, "items": []}


@pytest_twisted.ensureDeferred
async def test_legacy_replies(mediamtx_standin_factory):
    s = await mediamtx_standin_factory(legacy_replies=True, validate_responses=False)
    resp, content = await call(s, "POST", "/v3/config/paths/add/x", {})
    assert resp.code == 200 and content == b""
    assert await call_json(s, "POST", "/v3/config/paths/add/x", {}) == (
        400,
        {"error": "path already exists"},
    )


# ---------------------------------------------------------------------------
# auth, delay, stop/start/restart
# ---------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_basic_auth(mediamtx_standin_factory):
    s = await mediamtx_standin_factory(user="api", password="s3cret", auth_pause=0.2)
    resp, content = await call(s, "GET", "/v3/info")
    assert resp.code == 401 and json.loads(content) == {
        "status": "error",
        "error": "authentication error",
    }
    assert resp.headers.getRawHeaders("www-authenticate") == ['Basic realm="mediamtx"']
    before = reactor.seconds()
    resp, content = await call(s, "GET", "/v3/info", auth=("api", "wrong"))
    assert resp.code == 401 and reactor.seconds() - before >= 0.2
    assert resp.headers.getRawHeaders("www-authenticate") is None  # only asked when none were given
    resp, content = await call(s, "GET", "/v3/info", auth=("api", "s3cret"))
    assert resp.code == 200
    resp, content = await call(s, "GET", "/v3/nothing")
    assert resp.code == 401  # auth middleware runs before gin's 404
    resp, content = await call(s, "GET", "/v3/nothing", auth=("api", "s3cret"))
    assert resp.code == 404
    assert s.requests[0].headers.get("authorization") is None
    assert s.requests[2].headers["authorization"].startswith("Basic ")
    s.take_violations()


@pytest_twisted.ensureDeferred
async def test_delay(mediamtx_standin):
    s = mediamtx_standin
    s.set_delay(0.3)
    before = reactor.seconds()
    code, _ = await call_json(s, "GET", "/v3/info")
    assert code == 200 and reactor.seconds() - before >= 0.3
    s.set_delay(0)


@pytest_twisted.ensureDeferred
async def test_stop_start_restart(mediamtx_standin):
    s = mediamtx_standin
    _, info1 = await call_json(s, "GET", "/v3/info")
    assert (await call_json(s, "POST", "/v3/config/paths/add/camera0", {}))[0] == 200
    port = s.api_port
    await s.stop()
    with pytest.raises(ConnectionRefusedError):
        await treq.get(s.url + "/v3/info", persistent=False)
    await s.start()
    assert s.api_port == port
    await sleep(0.01)
    await s.restart()
    _, info2 = await call_json(s, "GET", "/v3/info")
    assert info2["started"] != info1["started"]
    _, listing = await call_json(s, "GET", "/v3/config/paths/list")
    assert [i["name"] for i in listing["items"]] == ["all_others"]  # API-made paths forgotten
    assert (await call_json(s, "GET", "/v3/paths/get/camera0"))[0] == 404


# ---------------------------------------------------------------------------
# readers, on-demand publisher, recording
# ---------------------------------------------------------------------------

ON_DEMAND = {
    "source": "publisher",
    "runOnDemand": "ffmpeg -f v4l2 -i /dev/video0 -f rtsp rtsp://localhost:$RTSP_PORT/$MTX_PATH",
    "runOnDemandCloseAfter": "300ms",
}


class _RTSPClient(Protocol):
    def __init__(self):
        self.data = b""
        self.got = defer.Deferred()

    def dataReceived(self, data):
        self.data += data
        if b"\r\n\r\n" in self.data and not self.got.called:
            self.got.callback(self.data)


@pytest_twisted.ensureDeferred
async def test_on_demand_publisher_with_rtsp_reader(mediamtx_standin):
    s = mediamtx_standin
    assert (await call_json(s, "POST", "/v3/config/paths/add/camera0", ON_DEMAND))[0] == 200
    code, path = await call_json(s, "GET", "/v3/paths/get/camera0")
    assert code == 200 and path["ready"] is False and path["source"] is None and path["readers"] == []
    assert path["confName"] == "camera0" and path["tracks"] == [] and path["readyTime"] is None

    client = await ClientCreator(reactor, _RTSPClient).connectTCP("127.0.0.1", s.rtsp_port)
    client.transport.write(f"DESCRIBE rtsp://127.0.0.1:{s.rtsp_port}/camera0 RTSP/1.0\r\nCSeq: 2\r\n\r\n".encode())
    reply = await client.got
    assert reply.startswith(b"RTSP/1.0 200 OK\r\nCSeq: 2\r\n")
    code, path = await call_json(s, "GET", "/v3/paths/get/camera0")
    assert path["ready"] is True and path["tracks"] == ["H264"] and path["readyTime"]
    assert path["source"]["type"] == "rtspSession" and len(path["readers"]) == 1
    first = path["bytesReceived"]
    await sleep(0.1)
    _, path = await call_json(s, "GET", "/v3/paths/get/camera0")
    assert path["bytesReceived"] > first and path["bytesSent"] > 0

    client.transport.loseConnection()
    # The last reader left: the publisher stops once runOnDemandCloseAfter has passed (that
    # it stays up until then is checked, without a race, in test_recording_writes_fmp4_segments).
    await eventually(lambda: s.path_state("camera0")["ready"] is False, what="the on-demand publisher stopped")
    _, path = await call_json(s, "GET", "/v3/paths/get/camera0")
    assert path["ready"] is False and path["source"] is None and path["readers"] == []


@pytest_twisted.ensureDeferred
async def test_rtsp_reader_refused_for_unknown_or_unpublished_path(mediamtx_standin):
    s = mediamtx_standin
    assert (await call_json(s, "POST", "/v3/config/paths/add/plain", {}))[0] == 200
    for name in ("nothing", "plain"):
        client = await ClientCreator(reactor, _RTSPClient).connectTCP("127.0.0.1", s.rtsp_port)
        client.transport.write(f"DESCRIBE rtsp://127.0.0.1/{name} RTSP/1.0\r\nCSeq: 1\r\n\r\n".encode())
        assert (await client.got).startswith(b"RTSP/1.0 404 Not Found")
        client.transport.loseConnection()
    _, path = await call_json(s, "GET", "/v3/paths/get/plain")
    assert path["ready"] is False


@pytest_twisted.ensureDeferred
async def test_python_reader_api_and_path_delete_kicks_readers(mediamtx_standin):
    s = mediamtx_standin
    assert (await call_json(s, "POST", "/v3/config/paths/add/camera1", ON_DEMAND))[0] == 200
    reader = s.attach_reader("camera1")
    await reader.when_ready()
    assert s.path_state("camera1")["ready"] is True
    assert (await call_json(s, "DELETE", "/v3/config/paths/delete/camera1"))[0] == 200
    assert s.path_state("camera1") is None and reader.active is False


@pytest_twisted.ensureDeferred
async def test_standin_reader_helper_process(mediamtx_standin):
    s = mediamtx_standin
    assert (await call_json(s, "POST", "/v3/config/paths/add/camera2", ON_DEMAND))[0] == 200
    from twisted.internet import protocol as tip

    class PP(tip.ProcessProtocol):
        def __init__(self):
            self.ended = defer.Deferred()

        def processEnded(self, reason):
            self.ended.callback(reason.value.exitCode)

    pp = PP()
    proc = reactor.spawnProcess(
        pp,
        sys.executable,
        [
            sys.executable,
            "-m",
            "tests.support.standin_reader",
            f"127.0.0.1:{s.rtsp_port}",
            "camera2",
        ],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        path=str(REPO),
    )
    try:
        for _ in range(100):
            state = s.path_state("camera2")
            if state["ready"] and state["readers"]:
                break
            await sleep(0.05)
        assert state["ready"] is True and len(state["readers"]) == 1
    finally:
        proc.signalProcess("TERM")
        await pp.ended
    # the reader's connection closed: after runOnDemandCloseAfter the publisher stops
    await eventually(lambda: s.path_state("camera2")["ready"] is False, what="the on-demand publisher stopped")


@pytest_twisted.ensureDeferred
async def test_recording_writes_fmp4_segments(mediamtx_standin, tmp_path):
    s = mediamtx_standin
    rec_dir = tmp_path / "recs"
    body = dict(
        ON_DEMAND,
        record=True,
        recordPath=str(rec_dir / "%path_%Y-%m-%d_%H-%M-%S-%f"),
        recordFormat="fmp4",
        recordSegmentDuration="1s",
        recordPartDuration="200ms",
        recordDeleteAfter="0s",
    )
    assert (await call_json(s, "POST", "/v3/config/paths/add/camera0", body))[0] == 200
    reader = s.attach_reader("camera0")
    await reader.when_ready()
    await sleep(1.5)
    s.detach_reader(reader)
    # no reactor turn since the reader left: runOnDemandCloseAfter cannot have elapsed yet
    assert s.path_state("camera0")["ready"] is True and s.path_state("camera0")["readers"] == []
    # then the publisher stops and so does the recording
    await eventually(lambda: s.path_state("camera0")["ready"] is False, what="the on-demand publisher stopped")

    files = sorted(rec_dir.iterdir())
    assert len(files) >= 2  # a new segment every recordSegmentDuration
    assert files == sorted(s.recorded_segments("camera0"))
    for f in files:
        assert f.name.startswith("camera0_") and f.suffix == ".mp4"
        assert len(f.stem) == len("camera0_2024-01-01_00-00-00-000000")
        init, frags = split_fmp4(f.read_bytes())
        assert init[4:8] == b"ftyp" and frags
    probe = subprocess.run(  # noqa: ASYNC221 - one short ffprobe
        [
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
            str(files[0]),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.strip() == "h264"

    code, rec = await call_json(s, "GET", "/v3/recordings/get/camera0")
    assert code == 200 and rec["name"] == "camera0" and len(rec["segments"]) == len(files)
    code, listing = await call_json(s, "GET", "/v3/recordings/list")
    assert [i["name"] for i in listing["items"]] == ["camera0"] and listing["itemCount"] == 1

    start = rec["segments"][0]["start"]
    resp, _ = await call(s, "DELETE", f"/v3/recordings/deletesegment?path=camera0&start={start}")
    assert resp.code == 200 and not files[0].exists()
    code, err = await call_json(s, "DELETE", f"/v3/recordings/deletesegment?path=camera0&start={start}")
    assert code == 400 and "no such file or directory" in err["error"]
    code, err = await call_json(s, "DELETE", "/v3/recordings/deletesegment?path=camera0&start=yesterday")
    assert code == 400 and err["error"].startswith("invalid 'start' parameter")
    # a configured-by-all_others path with nothing on disk: 200 and no segments
    assert await call_json(s, "GET", "/v3/recordings/get/other") == (
        200,
        {"name": "other", "segments": []},
    )


@pytest_twisted.ensureDeferred
async def test_recordings_get_unconfigured_path(mediamtx_standin_factory):
    s = await mediamtx_standin_factory(static_paths={})
    assert await call_json(s, "GET", "/v3/recordings/get/nothing") == (
        400,
        {"status": "error", "error": "path 'nothing' is not configured"},
    )


@pytest_twisted.ensureDeferred
async def test_record_toggle_on_running_path(mediamtx_standin, tmp_path):
    s = mediamtx_standin
    body = dict(ON_DEMAND, recordPath=str(tmp_path / "r" / "%path" / "%Y-%m-%d_%H-%M-%S-%f"))
    assert (await call_json(s, "POST", "/v3/config/paths/add/camera3", body))[0] == 200
    reader = s.attach_reader("camera3")
    await reader.when_ready()
    assert not (tmp_path / "r").exists()
    assert (await call_json(s, "PATCH", "/v3/config/paths/patch/camera3", {"record": True}))[0] == 200
    assert reader.active  # record is applied without closing the path
    assert len(list((tmp_path / "r" / "camera3").iterdir())) == 1
    assert (await call_json(s, "PATCH", "/v3/config/paths/patch/camera3", {"record": False}))[0] == 200
    assert s.path_state("camera3")["ready"] is True
    s.detach_reader(reader)


# ---------------------------------------------------------------------------
# standalone
# ---------------------------------------------------------------------------


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest_twisted.ensureDeferred
async def test_standalone_process_prints_ready(tmp_path):
    from twisted.internet import protocol as tip

    port = _free_port()

    class PP(tip.ProcessProtocol):
        def __init__(self):
            self.out = b""
            self.ready = defer.Deferred()
            self.ended = defer.Deferred()

        def outReceived(self, data):
            self.out += data
            if b"\n" in self.out and not self.ready.called:
                self.ready.callback(self.out.decode())

        def processEnded(self, reason):
            if not self.ready.called:
                self.ready.errback(reason)
            self.ended.callback(None)

    pp = PP()
    proc = reactor.spawnProcess(
        pp,
        sys.executable,
        [
            sys.executable,
            "-m",
            "tests.support.mediamtx",
            "--port",
            str(port),
            "--rtsp-port",
            "0",
            "--record-root",
            str(tmp_path),
            "--user",
            "u",
            "--password",
            "p",
        ],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        path=str(REPO),
    )
    try:
        line = await pp.ready
        assert line.startswith(f"READY {port} rtsp=")
        resp = await treq.get(f"http://127.0.0.1:{port}/v3/info", auth=("u", "p"), persistent=False)
        assert resp.code == 200 and (await resp.json())["version"] == "v1.20.1"
    finally:
        proc.signalProcess("TERM")
        await pp.ended
