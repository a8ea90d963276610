"""Property-based fuzzing (hypothesis) of the JSON-RPC layer and of every method's params.

Engine level (thousands of examples, synchronous): a fully wired camsvc
(``camsvc.tap.build`` on a MemoryReactorClock, auth on, a camera registered,
processes faked) gets arbitrary bytes, arbitrary JSON, request-shaped JSON
and, for every registered method, params built from its own parameter names
with arbitrary values, from an unauthenticated and an admin session.  The
engine must always answer valid JSON-RPC 2.0 (or nothing, for
notifications), never the engine's catch-all -32603 (an exception a handler
did not mean to raise; nothing may be logged as a failure), and a Deferred it returns must settle once the clock has run past
every timeout; every answer must encode as UTF-8 (strings are drawn from the whole
Unicode range, lone surrogates included).  Afterwards a fresh client is served normally.

Over the socket (fewer examples): a real twistd camsvc gets arbitrary text and
bytes frames on one connection while another connection keeps being served;
every answer is valid JSON-RPC or the connection is closed with a defined code.

``FUZZ_EXAMPLES`` (environment) scales the engine-level example counts.
"""

from __future__ import annotations

import json
import os
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred
from twisted.logger import globalLogPublisher

from camsvc.cameras.registry import Camera
from camsvc.common.errors import ALL_ERRORS
from camsvc.server.rpc import Role
from camsvc.tap import full_registry
from tests.support.processes import FakeProcessReactor
from tests.support.security import build_app, make_key, new_session
from tests.support.server import ServiceProcess

SCALE = float(os.environ.get("FUZZ_EXAMPLES", "1"))
CODES = {e.code for e in ALL_ERRORS}
GENERIC_INTERNAL = "Internal error: the server could not complete the request"
REGISTRY = full_registry()
METHODS = [m.name for m in REGISTRY]
COUNTS = {"bytes": 0, "json": 0, "requests": 0, "params": 0, "socket": 0}


def any_text(**kwargs):
    """Text over the whole Unicode range, lone surrogates included (hypothesis leaves them out by default)."""
    try:
        alphabet = st.characters(exclude_categories=())
    except TypeError:  # hypothesis < 6.85 (Debian 12's 6.36, Ubuntu 22.04's) names it blacklist_categories
        alphabet = st.characters(blacklist_categories=())
    return st.text(alphabet=alphabet, **kwargs)


def examples(n: int) -> int:
    return max(10, int(n * SCALE))


FUZZ = settings(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


def json_strategy(floats, leaves=10):
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**70), max_value=2**70)
        | floats
        | any_text(max_size=40)
        | st.sampled_from(
            [
                "",
                "..",
                "../../etc/passwd",
                "camera0",
                "/dev/video0",
                "\x00",
                "a" * 300,
                "ключ",
                "2.0",
                "\ud800",
                "a\udfffb",
                "\udc80",
            ]
        )
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=5) | st.dictionaries(any_text(max_size=10), inner, max_size=5),
        max_leaves=leaves,
    )


#: Anything Python's json writes, NaN and Infinity included (not JSON: a parse error).
any_json = json_strategy(st.floats(allow_nan=True, allow_infinity=True))
#: Real JSON values.
json_values = json_strategy(st.floats(allow_nan=False, allow_infinity=False))
#: Smaller values for params (most params are scalars; this keeps generation cheap).
param_values = json_strategy(st.floats(allow_nan=False, allow_infinity=False), leaves=4)
ids = (
    st.none()
    | st.integers()
    | any_text(max_size=10)
    | st.sampled_from(["\ud800", "x\udbff"])
    | st.floats(allow_nan=False)
    | json_values
)


#: Request-shaped objects: any method name (registered ones often), any params and ids.
request_objects = st.fixed_dictionaries(
    {
        "method": st.sampled_from(METHODS)
        | st.sampled_from(METHODS)
        | any_text(max_size=20)
        | st.sampled_from(["\udfff", "ping\ud800"])
        | json_values
    },
    optional={
        "jsonrpc": st.sampled_from(["2.0", "2.0", "2.0", "1.0", 2.0, None]),
        "params": st.dictionaries(any_text(max_size=12), param_values, max_size=4) | param_values,
        "id": ids,
    },
)


#: Strings that mean something to the API (devices, file names) or to a file system.
MEANINGFUL = st.sampled_from(
    [
        "camera0",
        "/dev/video0",
        "camera9",
        "/dev/v4l/by-id/x",
        "camera0_2024-01-01_00-00-00-000000.mp4",
        "camera0_2024-01-01_00-00-00-000000.jpg",
        "a.jpg",
        "../jwt_secret",
        "../../etc/passwd",
        "/etc/passwd",
        "..",
        ".",
        "a/b",
        "a\\b",
        "a\x00b",
        "~",
        " ",
        "x" * 255,
    ]
)


def from_schema(schema):
    """Values that pass a param's schema (often), to get past validation into the handler."""
    kind = schema.get("type")
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if kind == "string":
        return MEANINGFUL | any_text(min_size=schema.get("minLength", 0), max_size=min(schema.get("maxLength", 50), 50))
    if kind == "integer":
        return st.integers(schema.get("minimum"), schema.get("maximum"))
    if kind == "number":
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        return st.floats(low, schema.get("maximum"), allow_nan=False, allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    return param_values


def _calls_for(method):
    names = sorted(method.params) or ["x"]
    valid = st.fixed_dictionaries(
        {n: from_schema(s) for n, s in method.params.items() if n in method.required},
        optional={n: from_schema(s) for n, s in method.params.items() if n not in method.required},
    )
    params = valid | valid | st.dictionaries(st.sampled_from(names), param_values, max_size=len(names))
    return st.fixed_dictionaries(
        {
            "jsonrpc": st.just("2.0"),
            "method": st.just(method.name),
            "params": params | st.builds(lambda p, k, v: {**p, k: v}, params, any_text(max_size=8), param_values),
            "id": st.integers(0, 10**6),
        }
    )


#: A request for one registered method with params named after its own (sometimes a stray one).
method_calls = st.one_of([_calls_for(m) for m in REGISTRY])


# -- the invariant -----------------------------------------------------------------


def check_response(obj, batch_ok=True):
    if isinstance(obj, list):
        assert batch_ok and obj, obj
        for item in obj:
            check_response(item, batch_ok=False)
        return
    assert isinstance(obj, dict) and obj.get("jsonrpc") == "2.0", obj
    assert "id" in obj, obj
    assert ("result" in obj) != ("error" in obj), obj
    if "error" in obj:
        error = obj["error"]
        assert isinstance(error, dict) and isinstance(error.get("message"), str) and error["message"], obj
        assert error.get("code") in CODES, obj
        # The engine's catch-all (an exception no handler meant to raise); a deliberate
        # -32603 with its own message (e.g. a snapshot that timed out) is fine.
        assert error["message"] != GENERIC_INTERNAL, f"unhandled exception in a handler: {obj}"
        assert "Traceback" not in error["message"], obj


def settle(app, out):
    """The engine's answer as text (None for nothing), running the clock past every timeout."""
    if isinstance(out, Deferred):
        results: list = []
        out.addBoth(results.append)
        for _ in range(20):
            if results:
                break
            app.clock.advance(30)
        assert results, "the engine's Deferred never fired"
        out = results[0]
        assert not hasattr(out, "getTraceback"), out  # never a Failure
    assert out is None or isinstance(out, str), out
    return out


def run(app, session, payload):
    out = settle(app, app.engine.handle(session, payload))
    if out is not None:
        # Encoded as the transport does: a lone surrogate echoed raw would raise here.
        check_response(json.loads(out.encode("utf-8")))
    return out


# -- engine level ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    application = build_app(tmp_path_factory.mktemp("fuzz"), auth={"max_failed_attempts": 1000})
    application.media.store.ensure_dirs()
    application.media.processes.reactor = FakeProcessReactor()
    application.cameras.put(
        Camera(
            camera_id="camera0",
            device="/dev/video0",
            default={"format": "MJPG", "width": 640, "height": 480, "fps": 30},
        )
    )
    return application


@pytest.fixture(scope="module")
def failures():
    """Every log event carrying a failure during the module (an unhandled error somewhere)."""
    events: list = []

    def observe(event):
        if event.get("log_failure") is not None:
            events.append(event)

    globalLogPublisher.addObserver(observe)
    yield events
    globalLogPublisher.removeObserver(observe)


_peers = iter(range(10**9))


def sessions(app):
    """An unauthenticated and an admin session, on fresh connections (fresh rate buckets)."""
    n = next(_peers)
    anonymous = new_session(app, peer=f"tcp4:10.{n % 200}.{n // 200 % 250}.1:1")
    admin = new_session(app, peer="tcp4:127.0.0.2:1")
    token = app.auth.mint_token(Role.ADMIN, "fuzz", 3600)
    assert json.loads(
        app.engine.handle(
            admin, json.dumps({"jsonrpc": "2.0", "method": "authenticate", "params": {"auth_token": token}, "id": 0})
        )
    )["result"]
    return anonymous, admin


@given(payload=st.binary(max_size=300))
@settings(FUZZ, max_examples=examples(500))
def test_arbitrary_bytes(app, failures, payload):
    COUNTS["bytes"] += 1
    for session in sessions(app):
        run(app, session, payload)


@given(value=any_json)
@settings(FUZZ, max_examples=examples(500))
def test_arbitrary_json(app, failures, value):
    COUNTS["json"] += 1
    for session in sessions(app):
        run(app, session, json.dumps(value))


@given(batch=st.lists(request_objects, min_size=1, max_size=4) | request_objects)
@settings(FUZZ, max_examples=examples(1000))
def test_request_shaped_json(app, failures, batch):
    COUNTS["requests"] += 1
    for session in sessions(app):
        run(app, session, json.dumps(batch))


@given(call=method_calls)
@settings(FUZZ, max_examples=examples(2000))
def test_every_method_with_arbitrary_params(app, failures, call):
    COUNTS["params"] += 1
    anonymous, admin = sessions(app)
    out = json.loads(run(app, anonymous, json.dumps(call)))
    if REGISTRY.get(call["method"]).role is not Role.NONE:
        assert out["error"]["code"] == -32001
    run(app, admin, json.dumps(call))


def test_after_fuzzing_the_service_still_serves_and_logged_no_failure(app, failures):
    anonymous, admin = sessions(app)
    assert json.loads(run(app, admin, '{"jsonrpc":"2.0","method":"get_status","id":1}'))["result"]["status"]
    assert json.loads(run(app, anonymous, '{"jsonrpc":"2.0","method":"ping","id":2}'))["result"] == "pong"
    assert not failures, [e.get("log_format") for e in failures][:5]
    total = sum(COUNTS.values())
    print(f"\nengine-level fuzz examples: {COUNTS} (total {total}, each on two sessions)")


# -- over the socket ----------------------------------------------------------------


CLOSE_CODES = {1000, 1002, 1003, 1007, 1009}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = ServiceProcess(
        tmp_path_factory.mktemp("fuzzsock"),
        {"auth": {"required": True, "max_failed_attempts": 1000}, "server": {"max_message_size": 65536}},
    )
    proc.start()
    yield proc
    proc.stop_cleanly()


class Frames:
    """One fuzzing connection (reopened after the server closes it) and a bystander."""

    def __init__(self, server):
        from websockets.sync.client import connect

        self.server = server
        self.connect = connect
        self.key = make_key(server.tmp / "state" / "api_keys.json", Role.ADMIN, "fuzz")
        self.ws = None
        # Authenticated in the handshake: an unauthenticated socket has a small budget.
        self.bystander = connect(server.url, additional_headers={"X-API-Key": self.key})
        self.closes: dict[int, int] = {}
        self.lock = threading.Lock()

    def fresh(self):
        if self.ws is None:
            self.ws = self.connect(self.server.url, max_size=None)
            self.ws.send(
                json.dumps({"jsonrpc": "2.0", "method": "authenticate", "params": {"auth_token": self.key}, "id": 0})
            )
            assert json.loads(self.ws.recv(timeout=10))["result"]["role"] == "admin"
        return self.ws

    def send(self, payload, expect_answer):
        from websockets.exceptions import ConnectionClosed

        ws = self.fresh()
        try:
            if isinstance(payload, bytes) and expect_answer is None:
                ws.send(payload, text=True)  # arbitrary bytes in a *text* frame (often invalid UTF-8)
            else:
                ws.send(payload)
            # A request we expect an answer to is followed by a ping, so "no answer" is observable.
            ws.send('{"jsonrpc":"2.0","method":"ping","id":"sentinel"}')
            while True:
                reply = json.loads(ws.recv(timeout=10))
                if isinstance(reply, dict) and reply.get("id") == "sentinel":
                    break
                check_response(reply)
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else None
            assert code in CLOSE_CODES, f"closed with {code}: {exc}"
            self.closes[code] = self.closes.get(code, 0) + 1
            self.ws = None

    def bystander_ok(self):
        self.bystander.send('{"jsonrpc":"2.0","method":"ping","id":1}')
        assert json.loads(self.bystander.recv(timeout=10))["result"] == "pong"


@pytest.fixture(scope="module")
def frames(server):
    f = Frames(server)
    yield f
    if f.ws is not None:
        f.ws.close()
    f.bystander.close()


@given(
    payload=st.one_of(
        st.builds(json.dumps, request_objects),
        st.builds(json.dumps, method_calls),
        st.builds(json.dumps, json_values),
        st.text(max_size=200),  # a raw text frame is UTF-8: no lone surrogates there
        st.binary(max_size=200),
    )
)
@settings(FUZZ, max_examples=examples(500))
def test_socket_fuzz(frames, payload):
    COUNTS["socket"] += 1
    frames.send(payload, None)
    if COUNTS["socket"] % 25 == 0:
        frames.bystander_ok()


def test_socket_fuzz_left_the_server_healthy(server, frames):
    frames.bystander_ok()
    log = server.log()
    assert "Unhandled error" not in log and "Traceback" not in log, log[-3000:]
    print(f"\nsocket fuzz examples: {COUNTS['socket']}, closes by code: {frames.closes}")
