"""The unauthenticated budget (issue 15): what a stranger's connection may cost.

Reproduces the findings first: ``rpc.discover`` was rebuilt (about 0.7 ms, 24 KB)
on every call and batches of 100 from an unauthenticated socket were all
answered; ``/openrpc.json`` likewise, with no rate limit.  Now: the document is
built once (ETag), a connection that has not authenticated may call only
``ping``, ``authenticate`` and ``rpc.discover`` at a small rate.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from twisted.web.test.requesthelper import DummyRequest

from camsvc.server import openrpc
from camsvc.server.rpc import Role
from tests.support.security import build_app, call, new_session


@pytest.fixture
def app(tmp_path):
    return build_app(tmp_path, server={"unauthenticated_rate_per_minute": 60, "unauthenticated_burst": 10})


def batch(app, session, method, n):
    text = json.dumps([{"jsonrpc": "2.0", "method": method, "id": i} for i in range(n)])
    return json.loads(app.engine.handle(session, text))


def test_a_batch_of_discover_from_a_stranger_costs_a_few_answers(app, monkeypatch):
    built = []
    real = openrpc.build_document
    monkeypatch.setattr(openrpc, "build_document", lambda reg, **kw: built.append(1) or real(reg, **kw))
    stranger = new_session(app)
    replies = batch(app, stranger, "rpc.discover", 100)
    answered = [r for r in replies if "result" in r]
    refused = [r for r in replies if "error" in r]
    assert len(answered) == 10 and len(refused) == 90
    assert {r["error"]["code"] for r in refused} == {-32002}
    assert all(r["result"]["openrpc"] == openrpc.OPENRPC_VERSION for r in answered)
    assert len(built) <= 1  # the document is built once, not per call
    app.clock.advance(1)
    assert "result" in call(app, stranger, "rpc.discover")  # the bucket refills at 1/s


def test_before_authentication_only_three_methods(app):
    stranger = new_session(app)
    for method in ("get_status", "get_camera_list", "list_recordings", "get_server_info"):
        reply = call(app, stranger, method)
        assert reply["error"]["code"] == -32001, (method, reply)
    assert call(app, stranger, "ping")["result"] == "pong"


def test_an_authenticated_session_has_the_normal_budget(app):
    session = new_session(app)
    token = app.auth.mint_token(Role.VIEWER, "v", 600)
    assert call(app, session, "authenticate", {"auth_token": token})["result"]["role"] == "viewer"
    replies = batch(app, session, "rpc.discover", 100)
    assert all("result" in r for r in replies)


def test_discover_answer_is_the_cached_document_and_valid_json(app):
    session = new_session(app)
    first = call(app, session, "rpc.discover", req_id="a\ud800")
    assert first["id"] == "a\ud800"
    assert first["result"] == openrpc.build_document(app.registry)
    assert app.openrpc.text is app.openrpc.text  # one object, not rebuilt


def _get(resource, headers=None, host="192.0.2.1"):
    from twisted.internet.address import IPv4Address

    request = DummyRequest([b""])
    request.method = b"GET"
    request.client = IPv4Address("TCP", host, 1234)
    for name, value in (headers or {}).items():
        request.requestHeaders.setRawHeaders(name, [value])
    body = resource.render(request)
    return request.responseCode or 200, body, request


def test_openrpc_json_has_an_etag_and_a_rate_limit(app):
    from camsvc.server.limits import AddressBuckets
    from camsvc.server.web import OpenRPC

    resource = OpenRPC(app.openrpc, AddressBuckets(60, 5, app.clock))
    status, body, request = _get(resource)
    assert status == 200 and json.loads(body) == openrpc.build_document(app.registry)
    etag = request.responseHeaders.getRawHeaders(b"etag")[0]
    status, body, _ = _get(resource, {b"if-none-match": etag})
    assert status == 304 and body == b""
    statuses = [_get(resource)[0] for _ in range(5)]
    assert statuses[-1] == 429 and statuses.count(200) == 3
    assert _get(resource, host="192.0.2.2")[0] == 200  # per address


def _ws_request(headers: dict, host: str = "127.0.0.9"):
    from twisted.internet.address import IPv4Address
    from twisted.internet.testing import StringTransport

    request = DummyRequest([b"ws"])
    for name, value in headers.items():
        request.requestHeaders.setRawHeaders(name, [value])
    transport = StringTransport(peerAddress=IPv4Address("TCP", host, 40000))
    request.transport = transport
    request.channel = SimpleNamespace(transport=transport, setTimeout=lambda timeout: None)
    return request


class Built(Exception):
    """Autobahn was asked for a protocol: the handshake went on past camsvc's early refusal."""


def test_a_stranger_the_full_pool_refuses_costs_no_websocket_protocol(tmp_path, monkeypatch):
    """Refused before Autobahn builds (and logs) a protocol for it: same 503, same reason, counted."""
    from camsvc.server.ws import RpcWebSocketResource

    app = build_app(tmp_path, server={"max_unauthenticated": 4, "max_unauthenticated_per_address": 1})
    factory = app.ws_factory
    built = []

    def build_protocol(addr):
        built.append(addr)
        raise Built

    monkeypatch.setattr(factory, "buildProtocol", build_protocol)
    resource = RpcWebSocketResource(factory)
    stranger = {"upgrade": "websocket", "connection": "Upgrade"}
    factory.pools.add_unauthenticated(object(), "127.0.0.9")  # that address's one place is taken

    request = _ws_request(stranger)
    body = resource.render(request)
    assert request.responseCode == 503 and b"unauthenticated" in request.responseMessage
    assert b"too many unauthenticated connections from 127.0.0.9 (limit 1)" in body
    assert request.responseHeaders.getRawHeaders("connection") == ["close"]
    assert built == []
    # With a credential the handshake goes on to Autobahn (which checks it and the other pool) ...
    for credential in ({"x-api-key": "k"}, {"authorization": "Bearer t"}):
        with pytest.raises(Built):
            resource.render(_ws_request({**stranger, **credential}))
    # ... and so does a stranger from an address with room.
    with pytest.raises(Built):
        resource.render(_ws_request(stranger, host="127.0.0.10"))
    assert len(built) == 3
