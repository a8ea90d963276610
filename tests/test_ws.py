"""JSON-RPC over a real WebSocket: camsvc under twistd, a `websockets` client.

The client library is not the server's (Autobahn), so these tests also prove
interoperability.  The server is one subprocess shared by the module.
"""

from __future__ import annotations

import json
import threading

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.support.server import ServiceProcess
from tests.support.wsclient import RpcClient


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = ServiceProcess(tmp_path_factory.mktemp("ws"), {"server": {"max_message_size": 65536, "max_batch_size": 20}})
    proc.start()
    yield proc
    proc.stop_cleanly()


@pytest.fixture
def client(server):
    with RpcClient(server.url) as c:
        yield c


def test_ping(client):
    assert client.call("ping") == "pong"


def test_spec_examples_over_the_wire(client):
    client.send_raw('{"jsonrpc": "2.0", "method": "foobar", "id": "1"}')
    assert client.recv_json() == {
        "jsonrpc": "2.0",
        "error": {"code": -32601, "message": "Method not found: foobar"},
        "id": "1",
    }
    client.send_raw('{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]')
    assert client.recv_json()["error"]["code"] == -32700
    client.send_raw("[]")
    assert client.recv_json()["error"]["code"] == -32600
    client.send_raw("[1,2,3]")
    assert [r["error"]["code"] for r in client.recv_json()] == [-32600] * 3
    # A notification gets nothing back: the next answer is the ping's.
    client.send_raw('{"jsonrpc": "2.0", "method": "ping"}')
    client.send_raw('[{"jsonrpc": "2.0", "method": "ping"}, {"jsonrpc": "2.0", "method": "get_status"}]')
    client.send_raw('{"jsonrpc": "2.0", "method": "ping", "id": null}')
    assert client.recv_json() == {"jsonrpc": "2.0", "result": "pong", "id": None}
    client.send_raw(
        '[{"jsonrpc": "2.0", "method": "ping", "id": 1.5}, {"jsonrpc": "2.0", "method": "ping"}, {"foo": "boo"}]'
    )
    reply = client.recv_json()
    assert reply[0] == {"jsonrpc": "2.0", "result": "pong", "id": 1.5}
    assert reply[1]["error"]["code"] == -32600


def test_unicode_round_trip(client):
    client.send_raw(json.dumps({"jsonrpc": "2.0", "method": "nø-such-mèthod", "id": "ключ"}, ensure_ascii=False))
    reply = client.recv_json()
    assert reply["id"] == "ключ" and "nø-such-mèthod" in reply["error"]["message"]


def test_server_methods(client):
    info = client.call("get_server_info")
    assert info["name"] == "camsvc" and "ping" in info["methods"]
    status = client.call("get_status")
    assert status["status"] == "healthy" and status["connections"] >= 1
    doc = client.call("rpc.discover")
    assert doc["openrpc"].startswith("1.") and {m["name"] for m in doc["methods"]} >= {"ping", "rpc.discover"}


def test_batch_limit_over_the_wire(client):
    client.send_raw(json.dumps([{"jsonrpc": "2.0", "method": "ping", "id": i} for i in range(21)]))
    assert "limit of 20" in client.recv_json()["error"]["message"]


def test_oversized_message_closes_1009_and_others_keep_working(server):
    other = RpcClient(server.url)
    with connect(server.url, max_size=None) as ws:
        ws.send(json.dumps({"jsonrpc": "2.0", "method": "ping", "params": {"x": "a" * 70000}, "id": 1}))
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=5)
        assert info.value.rcvd.code == 1009
    assert other.call("ping") == "pong"
    other.close()


def test_binary_frames_are_refused_with_1003(server):
    with connect(server.url) as ws:
        ws.send(b'{"jsonrpc": "2.0", "method": "ping", "id": 1}')
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=5)
        assert info.value.rcvd.code == 1003


def test_foreign_origin_is_refused_own_origin_accepted(server):
    with pytest.raises(InvalidStatus) as info:
        connect(server.url, origin="http://evil.example")
    assert info.value.response.status_code == 403
    with connect(server.url, origin=f"http://127.0.0.1:{server.port}") as ws:
        ws.send('{"jsonrpc":"2.0","method":"ping","id":1}')
        assert json.loads(ws.recv(timeout=5))["result"] == "pong"


def test_hostile_clients_do_not_disturb_others(server):
    """Garbage, deep nesting and abrupt disconnects on some connections; a clean client keeps being served."""
    good = RpcClient(server.url)
    payloads = [
        "[" * 5000 + "]" * 5000,
        "\x00",
        "{" * 60000,
        '{"jsonrpc":"2.0","method":"ping","id":' + "9" * 5000 + "}",
    ]
    for payload in payloads:
        with connect(server.url, max_size=None) as bad:
            bad.send(payload)
            reply = json.loads(bad.recv(timeout=5))
            # 5000 nested arrays: a parse error where json's recursion limit is hit
            # (Python <= 3.12), else a batch whose one element is an invalid request (3.13).
            for answer in reply if isinstance(reply, list) else [reply]:
                assert answer["jsonrpc"] == "2.0" and answer["error"]["code"] in (-32700, -32600), answer
        assert good.call("ping") == "pong"
    raw = connect(server.url).__enter__()
    raw.send('{"jsonrpc":"2.0","method":"get_status","id":1}')
    raw.socket.close()  # vanish without a close handshake
    assert good.call("ping") == "pong"
    good.close()


def test_many_clients_in_parallel(server):
    errors = []

    def worker():
        try:
            with RpcClient(server.url) as c:
                for _ in range(50):
                    assert c.call("ping") == "pong"
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors


def test_health_and_openrpc_endpoints(server):
    status, body, headers = server.get("/health/live")
    assert status == 200 and json.loads(body) == {"status": "alive"}
    status, body, _ = server.get("/health/ready")
    assert status == 200 and json.loads(body)["status"] == "ready"
    status, body, headers = server.get("/openrpc.json")
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(body)["info"]["title"] == "camsvc JSON-RPC API"
    status, _, _ = server.get("/no/such/thing")
    assert status == 404
