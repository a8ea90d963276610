"""The JSON-RPC 2.0 engine, synchronously: the specification's examples
(https://www.jsonrpc.org/specification#examples) translated to our methods,
params validation, error mapping, async handlers and authorisation."""

from __future__ import annotations

import json

import pytest
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from camsvc.common.errors import CameraNotFound, InvalidState
from camsvc.config import parse_config_dict
from camsvc.server.rpc import Engine, Registry, Role, check_schema
from camsvc.server.session import Session, authorize


class FakeReactor(Clock):
    pass


@pytest.fixture
def app():
    from camsvc.api import register_all
    from camsvc.app import App

    application = App(parse_config_dict({"server": {"host": "127.0.0.1"}, "auth": {"required": False}}), FakeReactor())
    register_all(application)
    return application


def handle(engine, text, session=None):
    session = session or Session("c1", auth_required=False)
    out = engine.handle(session, text)
    if isinstance(out, Deferred):
        results = []
        out.addBoth(results.append)
        assert results, "engine returned a Deferred that did not fire"
        out = results[0]
    return None if out is None else json.loads(out)


# -- the specification's examples -----------------------------------------------


def test_call_with_named_params(app):
    assert handle(app.engine, '{"jsonrpc": "2.0", "method": "get_status", "params": {}, "id": 3}')["id"] == 3


def test_call_without_params_and_with_empty_positional_params(app):
    assert handle(app.engine, '{"jsonrpc": "2.0", "method": "ping", "id": 1}') == {
        "jsonrpc": "2.0",
        "result": "pong",
        "id": 1,
    }
    assert handle(app.engine, '{"jsonrpc": "2.0", "method": "ping", "params": [], "id": 2}')["result"] == "pong"


def test_positional_params_are_refused_clearly():
    reg = Registry()
    reg.add("take", lambda s, p: p, role=Role.NONE, params={"device": {"type": "string"}})
    reply = handle(Engine(reg), '{"jsonrpc": "2.0", "method": "take", "params": ["camera0"], "id": 4}')
    assert reply["error"]["code"] == -32602
    assert "by name" in reply["error"]["message"]
    assert reply["id"] == 4


def test_notification_gets_no_response(app):
    assert handle(app.engine, '{"jsonrpc": "2.0", "method": "ping"}') is None
    assert handle(app.engine, '{"jsonrpc": "2.0", "method": "foobar"}') is None


def test_method_not_found(app):
    assert handle(app.engine, '{"jsonrpc": "2.0", "method": "foobar", "id": "1"}') == {
        "jsonrpc": "2.0",
        "error": {"code": -32601, "message": "Method not found: foobar"},
        "id": "1",
    }


def test_invalid_json(app):
    reply = handle(app.engine, '{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]')
    assert reply["error"]["code"] == -32700
    assert reply["id"] is None


def test_invalid_request_object(app):
    reply = handle(app.engine, '{"jsonrpc": "2.0", "method": 1, "params": "bar"}')
    assert reply["error"]["code"] == -32600
    assert reply["id"] is None


def test_batch_invalid_json(app):
    reply = handle(
        app.engine,
        '[{"jsonrpc": "2.0", "method": "ping", "params": [], "id": "1"}, {"jsonrpc": "2.0", "method"]',
    )
    assert reply["error"]["code"] == -32700 and reply["id"] is None


def test_empty_batch_is_one_invalid_request(app):
    reply = handle(app.engine, "[]")
    assert isinstance(reply, dict)
    assert reply["error"]["code"] == -32600 and reply["id"] is None


def test_invalid_batch_of_one(app):
    assert handle(app.engine, "[1]") == [
        {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request: expected a JSON object"}, "id": None}
    ]


def test_invalid_batch_of_three(app):
    reply = handle(app.engine, "[1,2,3]")
    assert [r["error"]["code"] for r in reply] == [-32600] * 3


def test_mixed_batch(app):
    reply = handle(
        app.engine,
        json.dumps(
            [
                {"jsonrpc": "2.0", "method": "ping", "params": [], "id": "1"},
                {"jsonrpc": "2.0", "method": "ping", "params": []},
                {"jsonrpc": "2.0", "method": "get_status", "params": {}, "id": "2"},
                {"foo": "boo"},
                {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
                {"jsonrpc": "2.0", "method": "get_server_info", "id": "9"},
            ]
        ),
    )
    assert [r["id"] for r in reply] == ["1", "2", None, "5", "9"]
    assert reply[0]["result"] == "pong"
    assert reply[1]["result"]["status"] in ("healthy", "starting")
    assert reply[2]["error"]["code"] == -32600
    assert reply[3]["error"]["code"] == -32601
    assert "ping" in reply[4]["result"]["methods"]


def test_batch_of_notifications_only(app):
    assert (
        handle(app.engine, '[{"jsonrpc": "2.0", "method": "ping"}, {"jsonrpc": "2.0", "method": "get_status"}]') is None
    )


def test_batch_size_limit():
    reg = Registry()
    reg.add("ping", lambda s, p: "pong", role=Role.NONE)
    engine = Engine(reg, max_batch_size=3)
    reply = handle(engine, json.dumps([{"jsonrpc": "2.0", "method": "ping", "id": i} for i in range(4)]))
    assert reply["error"]["code"] == -32600 and "limit of 3" in reply["error"]["message"]
    assert len(handle(engine, json.dumps([{"jsonrpc": "2.0", "method": "ping", "id": i} for i in range(3)]))) == 3


# -- ids and request validity --------------------------------------------------


@pytest.mark.parametrize("req_id", ["abc", "", 0, -7, 12345678901234567890, 1.5, None, "ü∂"])
def test_ids_are_echoed_with_their_exact_type(app, req_id):
    text = json.dumps({"jsonrpc": "2.0", "method": "ping", "id": req_id})
    raw = app.engine.handle(Session("c", auth_required=False), text)
    reply = json.loads(raw)
    assert reply["id"] == req_id and type(reply["id"]) is type(req_id)


@pytest.mark.parametrize(
    "request_obj",
    [
        {"jsonrpc": "2.0", "method": "ping", "id": True},
        {"jsonrpc": "2.0", "method": "ping", "id": [1]},
        {"jsonrpc": "2.0", "method": "ping", "id": {}},
        {"jsonrpc": "1.0", "method": "ping", "id": 1},
        {"method": "ping", "id": 1},
        {"jsonrpc": "2.0", "id": 1},
        {"jsonrpc": "2.0", "method": "ping", "params": "x", "id": 1},
        {"jsonrpc": "2.0", "method": "ping", "params": 3, "id": 1},
        "just a string",
        None,
    ],
)
def test_invalid_requests(app, request_obj):
    reply = handle(app.engine, json.dumps(request_obj))
    assert reply["error"]["code"] == -32600
    assert reply["jsonrpc"] == "2.0"


def test_binary_garbage_is_a_parse_error(app):
    reply = handle(app.engine, b"\xff\xfe\x00garbage")
    assert reply["error"]["code"] == -32700


# -- params validation -------------------------------------------------------------


@pytest.fixture
def typed():
    reg = Registry()
    reg.add(
        "snap",
        lambda s, p: p,
        role=Role.NONE,
        params={
            "device": {"type": "string", "minLength": 1},
            "quality": {"type": "integer", "minimum": 1, "maximum": 100},
            "format": {"type": "string", "enum": ["jpg", "png"]},
            "duration": {"type": "number", "exclusiveMinimum": 0},
        },
        required=("device",),
    )
    return Engine(reg)


@pytest.mark.parametrize(
    "params, words",
    [
        ({}, "missing required parameter 'device'"),
        ({"device": 5}, "'device' must be a string, got 5"),
        ({"device": ""}, "'device' must not be empty"),
        ({"device": "c", "quality": 0}, "'quality' must be between 1 and 100, got 0"),
        ({"device": "c", "quality": 50.5}, "'quality' must be an integer"),
        ({"device": "c", "quality": True}, "'quality' must be an integer, got true"),
        ({"device": "c", "format": "gif"}, '\'format\' must be one of "jpg", "png"'),
        ({"device": "c", "duration": 0}, "'duration' must be greater than 0"),
        ({"device": "c", "colour": "red"}, "unknown parameter 'colour'"),
    ],
)
def test_invalid_params_name_the_param(typed, params, words):
    reply = handle(typed, json.dumps({"jsonrpc": "2.0", "method": "snap", "params": params, "id": 1}))
    assert reply["error"]["code"] == -32602
    assert words in reply["error"]["message"]


def test_valid_params_reach_the_handler(typed):
    params = {"device": "camera0", "quality": 100, "format": "png", "duration": 0.5}
    reply = handle(typed, json.dumps({"jsonrpc": "2.0", "method": "snap", "params": params, "id": 1}))
    assert reply["result"] == params


def test_check_schema_type_lists():
    assert check_schema({"type": ["string", "null"]}, None) is None
    assert "must be a string or null" in check_schema({"type": ["string", "null"]}, 3)


# -- handlers: errors, async ---------------------------------------------------------


def test_handler_exceptions_map_to_codes_without_leaking():
    reg = Registry()

    def boom(session, params):
        raise KeyError("secret internal detail")

    def missing(session, params):
        raise CameraNotFound("Camera not found: camera9", data={"device": "camera9"})

    reg.add("boom", boom, role=Role.NONE)
    reg.add("missing", missing, role=Role.NONE)
    engine = Engine(reg)
    reply = handle(engine, '{"jsonrpc": "2.0", "method": "boom", "id": 1}')
    assert reply["error"]["code"] == -32603
    assert "secret" not in json.dumps(reply) and "Traceback" not in json.dumps(reply)
    reply = handle(engine, '{"jsonrpc": "2.0", "method": "missing", "id": 2}')
    assert reply["error"] == {"code": -32004, "message": "Camera not found: camera9", "data": {"device": "camera9"}}


def test_unencodable_result_is_an_internal_error():
    reg = Registry()
    reg.add("bad", lambda s, p: {"x": object()}, role=Role.NONE)
    reply = handle(Engine(reg), '{"jsonrpc": "2.0", "method": "bad", "id": 1}')
    assert reply["error"]["code"] == -32603


def test_deferred_and_coroutine_handlers():
    reg = Registry()
    pending: Deferred = Deferred()

    async def coro(session, params):
        value = await succeed(41)
        return value + 1

    async def failing(session, params):
        raise InvalidState("Camera camera0 is already recording")

    reg.add("later", lambda s, p: pending, role=Role.NONE)
    reg.add("coro", coro, role=Role.NONE)
    reg.add("failing", failing, role=Role.NONE)
    engine = Engine(reg)
    out = engine.handle(
        Session("c", auth_required=False),
        '[{"jsonrpc":"2.0","method":"later","id":1},{"jsonrpc":"2.0","method":"coro","id":2},{"jsonrpc":"2.0","method":"failing","id":3}]',
    )
    assert isinstance(out, Deferred)
    results = []
    out.addCallback(results.append)
    assert not results
    pending.callback("done")
    reply = json.loads(results[0])
    assert reply[0]["result"] == "done"
    assert reply[1]["result"] == 42
    assert reply[2]["error"] == {"code": -32005, "message": "Camera camera0 is already recording"}


def test_registry_refuses_duplicates_and_unschema_required():
    reg = Registry()
    reg.add("a", lambda s, p: 1, role=Role.NONE)
    with pytest.raises(ValueError):
        reg.add("a", lambda s, p: 1, role=Role.NONE)
    with pytest.raises(ValueError):
        reg.add("b", lambda s, p: 1, role=Role.NONE, required=("x",))


# -- authorisation guard -----------------------------------------------------------------


def test_roles_are_enforced():
    clock = Clock()
    reg = Registry()
    reg.add("open", lambda s, p: 1, role=Role.NONE)
    reg.add("view", lambda s, p: 2, role=Role.VIEWER)
    reg.add("admin", lambda s, p: 3, role=Role.ADMIN)
    engine = Engine(reg, guards=[authorize])
    session = Session("c", clock=clock, auth_required=True)
    call = lambda m: handle(engine, json.dumps({"jsonrpc": "2.0", "method": m, "id": 1}), session)  # noqa: E731
    assert call("open")["result"] == 1
    assert call("view")["error"]["code"] == -32001
    session.grant(Role.VIEWER, subject="u", expires_at=100.0, method="jwt", session_id="s")
    assert call("view")["result"] == 2
    denied = call("admin")["error"]
    assert denied["code"] == -32003 and denied["data"] == {"required_role": "admin", "role": "viewer"}
    clock.advance(100)
    expired = call("view")["error"]
    assert expired["code"] == -32001 and "expired" in expired["message"]
    assert session.role is None


def test_role_parse():
    assert Role.parse("Operator") is Role.OPERATOR
    with pytest.raises(ValueError):
        Role.parse("root")
    with pytest.raises(ValueError):
        Role.parse("none")


@pytest.mark.parametrize(
    "text",
    [
        '{"jsonrpc": "2.0", "method": "ping", "id": Infinity}',
        '{"jsonrpc": "2.0", "method": "ping", "id": -Infinity}',
        '{"jsonrpc": "2.0", "method": "ping", "id": NaN}',
        '[{"jsonrpc": "2.0", "method": "ping", "id": NaN}]',
        '{"jsonrpc": "2.0", "method": "get_status", "params": {"x": NaN}, "id": 1}',
    ],
)
def test_nan_and_infinity_are_not_json(app, text):
    """Found by fuzzing: Python's json accepted them, and an id of Infinity made the answer unencodable."""
    reply = handle(app.engine, text)
    assert reply == {
        "jsonrpc": "2.0",
        "error": {"code": -32700, "message": "Parse error: the message is not valid JSON"},
        "id": None,
    }


def test_an_id_that_overflows_to_infinity_is_invalid(app):
    reply = handle(app.engine, '{"jsonrpc": "2.0", "method": "ping", "id": 1e999}')
    assert reply["error"]["code"] == -32600 and reply["id"] is None


def test_large_finite_float_ids_are_echoed(app):
    assert handle(app.engine, '{"jsonrpc": "2.0", "method": "ping", "id": 1e308}')["id"] == 1e308


# -- lone surrogates (issue 15) ------------------------------------------------


@pytest.mark.parametrize(
    "request_text",
    [
        '{"jsonrpc":"2.0","method":"ping","id":"\\ud800"}',
        '{"jsonrpc":"2.0","method":"\\udfff","id":"a\\udc80b"}',
        '[{"jsonrpc":"2.0","method":"ping","id":"\\ud83d"},{"jsonrpc":"2.0","method":"x\\ud800","id":2}]',
        '{"jsonrpc":"2.0","method":"ping","params":{"\\ud800":1},"id":"\\udbff\\udbff"}',
    ],
)
def test_lone_surrogates_are_echoed_as_escapes_in_valid_utf8(app, request_text):
    """A lone surrogate in an id or method used to make the answer unencodable
    (the transport's ``.encode("utf-8")`` raised and the connection dropped)."""
    raw = app.engine.handle(Session("c", auth_required=False), request_text)
    wire = raw.encode("utf-8")  # what the transport sends: must not raise
    reply = json.loads(wire)
    sent = json.loads(request_text)
    if isinstance(sent, list):
        assert [r["id"] for r in reply] == [s["id"] for s in sent]
    else:
        assert reply["id"] == sent["id"]


def test_notification_with_a_surrogate_is_valid_utf8():
    from camsvc.server.rpc import notification

    text = notification("camera_status_update", {"name": "bad \udcff name"})
    assert json.loads(text.encode("utf-8"))["params"]["name"] == "bad \udcff name"
