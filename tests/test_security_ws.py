"""Authentication and limits over real sockets: camsvc under twistd (auth on), `websockets` clients."""

from __future__ import annotations

import json
import socket
import time

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from camsvc.config import parse_config_dict
from camsvc.server.hub import Hub
from camsvc.server.rpc import Role
from camsvc.server.ws import RpcServerFactory
from tests.support.security import make_key, mint
from tests.support.server import ServiceProcess
from tests.support.wsclient import RpcClient


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("secws")
    proc = ServiceProcess(
        tmp,
        {
            "auth": {"required": True, "max_failed_attempts": 3, "failed_attempts_window": 30},
            "server": {
                "rate_limit_per_minute": 30,
                "max_message_size": 65536,
                "allowed_origins": ["https://dashboard.example"],
                "trusted_proxies": ["127.0.0.1"],
            },
        },
    )
    proc.start()
    yield proc
    proc.stop_cleanly()


def secret_file(server):
    return server.tmp / "state" / "jwt_secret"


def test_unauthenticated_calls_are_refused_and_open_methods_work(server):
    with RpcClient(server.url) as client:
        assert client.call("ping") == "pong"
        assert client.call("rpc.discover")["openrpc"]
        reply = client.request("get_status")
        assert reply["error"]["code"] == -32001 and "authenticate" in reply["error"]["message"]


def test_jwt_and_api_key_roles_over_the_wire(server):
    key = make_key(server.tmp / "state" / "api_keys.json", Role.VIEWER, "wire")
    with RpcClient(server.url) as viewer, RpcClient(server.url) as admin:
        assert viewer.call("authenticate", {"auth_token": key})["role"] == "viewer"
        token = mint(secret_file(server), Role.ADMIN, "root")
        assert admin.call("authenticate", {"auth_token": token})["role"] == "admin"
        assert viewer.call("get_status")["connections"] >= 2
        assert admin.call("get_server_info")["auth_required"] is True


def test_rate_limit_per_connection(server):
    with RpcClient(server.url) as busy, RpcClient(server.url) as calm:
        # Authenticated: an unauthenticated connection has a smaller budget of its own.
        assert busy.call("authenticate", {"auth_token": mint(secret_file(server), Role.VIEWER)})["role"] == "viewer"
        codes = [busy.request("ping").get("error", {}).get("code") for _ in range(31)]
        assert codes[:29] == [None] * 29 and codes[29:] == [-32002, -32002]
        error = busy.request("ping")["error"]
        assert 0 < error["data"]["retry_after"] <= 2.0 and "30 requests per minute" in error["message"]
        assert calm.call("ping") == "pong"
    assert "exceeds 30 requests per minute" in server.log()


def test_failed_attempts_are_limited_per_address_and_use_forwarded_for(server):
    # The server trusts 127.0.0.1 as a proxy: X-Forwarded-For names the client.
    def attempt(xff, token="camsvc_0123456789abcdef_wrong"):
        with RpcClient(server.url, additional_headers={"X-Forwarded-For": xff}) as c:
            return c.request("authenticate", {"auth_token": token})

    for _ in range(3):
        assert attempt("203.0.113.5")["error"]["code"] == -32001
    limited = attempt("203.0.113.5")
    assert limited["error"]["code"] == -32002 and limited["error"]["data"]["retry_after"] > 0
    # Valid credentials from the locked address still work (NAT, proxies).
    assert attempt("203.0.113.5", mint(secret_file(server), Role.VIEWER))["result"]["role"] == "viewer"
    # Another client address behind the same proxy is not affected.
    assert attempt("203.0.113.6", mint(secret_file(server), Role.VIEWER))["result"]["role"] == "viewer"
    assert "camsvc_0123456789abcdef_wrong" not in server.log()


def test_oversized_message_closes_1009(server):
    with RpcClient(server.url) as other:
        with connect(server.url, max_size=None) as ws:
            ws.send(json.dumps({"jsonrpc": "2.0", "method": "authenticate", "params": {"auth_token": "a" * 70000}}))
            with pytest.raises(ConnectionClosed) as info:
                ws.recv(timeout=5)
            assert info.value.rcvd.code == 1009
        assert other.call("ping") == "pong"


def test_origin_allow_list(server):
    with pytest.raises(InvalidStatus) as info:
        connect(server.url, origin="http://evil.example")
    assert info.value.response.status_code == 403
    with pytest.raises(InvalidStatus):
        connect(server.url, origin="null")
    with pytest.raises(InvalidStatus):  # same name, other port: another origin
        connect(server.url, origin=f"http://127.0.0.1:{server.port + 1}")
    for origin in ("https://dashboard.example", f"http://127.0.0.1:{server.port}", "http://127.0.0.1"):
        with connect(server.url, origin=origin) as ws:
            ws.send('{"jsonrpc":"2.0","method":"ping","id":1}')
            assert json.loads(ws.recv(timeout=5))["result"] == "pong"
    assert "origin http://evil.example is not allowed" in server.log()


def test_connection_limit_answers_503_and_frees_slots(tmp_path):
    with ServiceProcess(tmp_path, {"auth": {"required": True}, "server": {"max_connections": 3}}) as proc:
        token = mint(proc.tmp / "state" / "jwt_secret", Role.VIEWER)
        bearer = {"Authorization": f"Bearer {token}"}
        clients = [RpcClient(proc.url, additional_headers=bearer) for _ in range(3)]
        with pytest.raises(InvalidStatus) as info:
            connect(proc.url, additional_headers=bearer)
        assert info.value.response.status_code == 503
        assert "too many connections" in info.value.response.reason_phrase
        clients.pop().close()
        deadline = time.monotonic() + 5
        while True:  # the server sees the close a moment later
            try:
                with RpcClient(proc.url, additional_headers=bearer) as again:
                    assert again.call("get_status")["status"]
                break
            except InvalidStatus:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert all(c.call("ping") == "pong" for c in clients)
        for c in clients:
            c.close()
        assert "too many connections (limit 3)" in proc.log()


def test_unauthenticated_sockets_have_their_own_pool(tmp_path):
    """Strangers used to hold max_connections slots: an authenticated client was refused."""
    config = {
        "auth": {"required": True},
        "server": {"max_connections": 3, "max_unauthenticated": 4, "max_unauthenticated_per_address": 2},
    }

    def stranger(source="127.0.0.1"):
        return connect(proc.url, source_address=(source, 0))

    with ServiceProcess(tmp_path, config) as proc:
        token = mint(proc.tmp / "state" / "jwt_secret", Role.VIEWER)
        bearer = {"Authorization": f"Bearer {token}"}
        # Two strangers from 127.0.0.1 fill that address's share of the pool ...
        strangers = [stranger() for _ in range(2)]
        with pytest.raises(InvalidStatus) as info:
            stranger()
        assert info.value.response.status_code == 503 and "unauthenticated" in info.value.response.reason_phrase
        # ... authenticating in-band moves one out of it, which frees its place ...
        strangers[0].send(
            json.dumps({"jsonrpc": "2.0", "method": "authenticate", "params": {"auth_token": token}, "id": 1})
        )
        assert json.loads(strangers[0].recv(timeout=5))["result"]["role"] == "viewer"
        strangers.append(stranger())
        # ... other addresses fill the rest of the pool (127.0.0.0/8 is all loopback) ...
        strangers += [stranger("127.0.0.2") for _ in range(2)]
        with pytest.raises(InvalidStatus):
            stranger("127.0.0.3")
        # ... and authenticated clients still get their slots (one is the in-band one).
        authed = [RpcClient(proc.url, additional_headers=bearer) for _ in range(2)]
        assert all(c.call("get_status")["status"] for c in authed)
        with pytest.raises(InvalidStatus) as info:
            connect(proc.url, additional_headers=bearer)
        assert info.value.response.status_code == 503
        with pytest.raises(InvalidStatus) as info:
            connect(proc.url, additional_headers={"Authorization": "Bearer wrong"})
        assert info.value.response.status_code in (401, 503)
        for ws in strangers:
            ws.close()
        for c in authed:
            c.close()
        assert "too many unauthenticated connections from 127.0.0.1 (limit 2)" in proc.log()


def raw_ws(port: int) -> socket.socket:
    """A WebSocket that completes the handshake and then never answers anything (not even pings)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(
        (
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Split unmasked server frames with short payloads (pings, close) into (opcode, payload)."""
    frames = []
    while len(data) >= 2:
        length = data[1] & 0x7F
        assert length < 126, data
        frames.append((data[0] & 0x0F, data[2 : 2 + length]))
        data = data[2 + length :]
    return frames


def test_idle_timeout_closes_silent_peers_not_live_clients(tmp_path):
    with ServiceProcess(tmp_path, {"auth": {"required": True}, "server": {"idle_timeout": 2.0}}) as proc:
        silent = raw_ws(proc.port)
        with RpcClient(proc.url) as live:
            assert live.call("ping") == "pong"
            time.sleep(3.5)  # silent at the JSON-RPC level, but its WebSocket stack answers the server's pings
            assert live.call("ping") == "pong"
        # The raw peer never answered a ping: closed with 1000 and a reason.
        silent.settimeout(30)  # only a failure deadline: the server closes it after ~2 s
        data, closed_by_server = b"", False
        try:
            while chunk := silent.recv(4096):
                data += chunk
            closed_by_server = True
        except ConnectionResetError:
            closed_by_server = True
        except TimeoutError:
            pass
        silent.close()
        assert closed_by_server, data
        frames = server_frames(data)
        assert frames and all(op == 0x9 for op, _ in frames[:-1]), frames  # pings, then the close
        opcode, payload = frames[-1]
        assert opcode == 0x8 and payload[:2] == (1000).to_bytes(2, "big") and b"idle timeout" in payload, frames
        assert "nothing received for 2 s" in proc.log()


def test_downloads_and_metrics_over_http(server):
    import urllib.parse

    name = "camera0_2024-01-02_03-04-05-000006.jpg"
    (server.tmp / "snapshots" / name).write_bytes(b"\xff\xd8\xff\xe0 a jpeg")
    key = make_key(server.tmp / "state" / "api_keys.json", Role.VIEWER, "dl")
    with RpcClient(server.url) as client:
        client.call("authenticate", {"auth_token": key})
        entry = next(f for f in client.call("list_snapshots")["files"] if f["filename"] == name)
    url = urllib.parse.urlsplit(entry["download_url"])
    assert url.query.startswith("token=")
    status, body, _ = server.get(f"{url.path}?{url.query}")
    assert status == 200 and body == b"\xff\xd8\xff\xe0 a jpeg"
    assert server.get(url.path)[0] == 401
    other = url.path.replace(name, "camera0_other.jpg")
    assert server.get(f"{other}?{url.query}")[0] == 401
    assert server.get(url.path, {"X-API-Key": key})[0] == 200
    assert server.get(url.path, {"Authorization": f"Bearer {key}"})[0] == 200
    assert server.get("/metrics", {"X-API-Key": key})[0] == 403
    admin = mint(secret_file(server), Role.ADMIN)
    status, body, _ = server.get("/metrics", {"Authorization": f"Bearer {admin}"})
    assert status == 200 and b"camsvc_auth_attempts_total" in body
    assert server.get("/health/ready")[0] in (200, 503) and server.get("/health/live")[0] == 200


def test_unauthenticated_connections_are_closed_after_the_login_timeout(tmp_path):
    with ServiceProcess(tmp_path, {"auth": {"required": True, "login_timeout": 1.0}}) as proc:
        key = make_key(proc.tmp / "state" / "api_keys.json", Role.VIEWER)
        with RpcClient(proc.url) as stranger, RpcClient(proc.url) as member:
            assert member.call("authenticate", {"auth_token": key})["role"] == "viewer"
            assert stranger.call("ping") == "pong"  # open methods work meanwhile
            with pytest.raises(ConnectionClosed) as info:
                stranger.ws.recv(timeout=5)
            assert info.value.rcvd.code == 1008 and "authentication timeout" in info.value.rcvd.reason
            assert member.call("get_status")["connections"] == 1
        assert "not authenticated within 1 s" in proc.log()


# -- the admission policy, on hostile Origin / Host pairs (no sockets) ----------------------


class _Request:
    def __init__(self, **headers: str) -> None:
        self.headers = {k.replace("_", "-"): v for k, v in headers.items()}


def _factory(auth_required: bool, allowed=()) -> RpcServerFactory:
    from twisted.internet.testing import MemoryReactor

    server = parse_config_dict({"server": {"allowed_origins": list(allowed)}}).server
    return RpcServerFactory(
        engine=None,
        hub=Hub(),
        make_session=None,
        server_config=server,
        reactor=MemoryReactor(),
        auth_required=auth_required,
    )


@pytest.mark.parametrize(
    "origin, host, auth_required, admitted",
    [
        # the page camsvc serves itself: same name and port
        ("http://127.0.0.1:8002", "127.0.0.1:8002", False, True),
        ("https://[::1]:8002", "[::1]:8002", False, True),
        ("http://localhost:8002", "localhost:8002", False, True),
        ("http://cam.localhost", "cam.localhost:8002", False, True),  # no port on one side: the name decides
        ("http://127.0.0.1:9999", "127.0.0.1:8002", False, False),  # another port is another origin
        ("http://[::1]:8002", "[::2]:8002", False, False),
        # DNS rebinding: a hostile page whose name now points here is "same origin" by name;
        # without authentication only IP literals and localhost are trusted
        ("http://evil.example:8002", "evil.example:8002", False, False),
        ("http://box.lan:8002", "box.lan:8002", True, True),  # with tokens the name is fine
        # origins that are never the same as anything
        ("null", "127.0.0.1:8002", False, False),
        ("file://", "127.0.0.1:8002", False, False),
        ("http://127.0.0.1:8002", "", False, False),
    ],
)
def test_origin_admission(origin, host, auth_required, admitted):
    refusal = _factory(auth_required).admit(_Request(origin=origin, host=host))
    assert (refusal is None) is admitted, refusal
    if not admitted:
        assert refusal == (403, f"origin {origin} is not allowed")


def test_allow_listed_origin_and_wildcard():
    listed = _factory(False, ["https://dash.example/"])
    assert listed.admit(_Request(origin="https://DASH.example", host="127.0.0.1:8002")) is None
    assert listed.admit(_Request(origin="https://other.example", host="127.0.0.1:8002")) is not None
    assert _factory(False, ["*"]).admit(_Request(origin="http://evil.example", host="evil.example")) is None
    assert _factory(False).admit(_Request(host="127.0.0.1:8002")) is None  # no Origin: not a browser


def test_close_all_survives_a_failing_connection():
    factory = _factory(True)
    closed = []

    class Conn:
        def __init__(self, name, fail=False):
            self.session, self.fail, self.name = type("S", (), {"id": name})(), fail, name

        def close_with(self, code, reason):
            if self.fail:
                raise RuntimeError("transport gone")
            closed.append((self.name, code, reason))

    for conn in (Conn("c1", fail=True), Conn("c2")):
        factory.hub.add(conn)
    factory.close_all()
    assert closed == [("c2", 1001, "server shutting down")]
