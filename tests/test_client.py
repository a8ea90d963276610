"""camsvc.tools.client: unit tests on a Clock, and round trips against a real camsvc.

The unit tests drive reconnection and notification dispatch without a
network (a failing endpoint, a ``Clock``).  The live tests run camsvc under
twistd (one process per module, plus one per restart test) and use the
client on the test's reactor.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import defer
from twisted.internet import error as neterror
from twisted.internet.task import Clock, deferLater

from camsvc.common.errors import CameraNotFound, FileNotFound, MethodNotFound, RpcError
from camsvc.tools.client import (
    Client,
    ConnectError,
    ConnectionLost,
    DownloadError,
    RequestTimeout,
    auth_headers,
    error_from_object,
    explain_failure,
    http_base,
)
from tests.support.server import ServiceProcess, free_port

STATIC = Path(__file__).resolve().parents[1] / "camsvc" / "server" / "static"

# -- unit --------------------------------------------------------------------------------


def test_the_old_import_path_is_the_same_client():
    import camsvc.client
    import camsvc.tools.client

    assert camsvc.client.Client is Client and camsvc.client.__all__ == camsvc.tools.client.__all__


def test_error_objects_become_the_matching_exception():
    exc = error_from_object({"code": -32004, "message": "Camera not found: camera9", "data": {"device": "camera9"}})
    assert isinstance(exc, CameraNotFound)
    assert (exc.code, exc.message, exc.data) == (-32004, "Camera not found: camera9", {"device": "camera9"})
    assert isinstance(error_from_object({"code": -32009, "message": "gone"}), FileNotFound)
    other = error_from_object({"code": -32050, "message": "custom"})
    assert type(other) is RpcError and other.code == -32050 and other.message == "custom"
    assert error_from_object("nonsense").code == -32603


def test_http_base_and_auth_headers():
    assert http_base("ws://box:8002/ws") == "http://box:8002/"
    assert http_base("wss://[::1]:8443/ws") == "https://[::1]:8443/"
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    assert auth_headers(jwt) == {"Authorization": f"Bearer {jwt}"}
    assert auth_headers("csk_0123456789abcdef") == {"X-API-Key": "csk_0123456789abcdef"}
    assert auth_headers(None) == {}


def test_url_must_be_a_websocket_url():
    with pytest.raises(ValueError, match=r"did you mean ws://box:8002/ws"):
        Client("http://box:8002/", reactor=Clock())
    with pytest.raises(ValueError, match="not a WebSocket URL"):
        Client("ws:///ws", reactor=Clock())
    with pytest.raises(ValueError, match="invalid port"):
        Client("ws://box:99999/ws", reactor=Clock())


def test_connection_failures_are_explained_in_one_line():
    url = "ws://box:8002/ws"
    cases = {
        neterror.ConnectionRefusedError(): "connection refused (is camsvc running",
        neterror.DNSLookupError("box"): "host name not found",
        neterror.TimeoutError(): "no answer (timed out",
        neterror.NoRouteError(): "no route to host",
    }
    for exc, text in cases.items():
        line = explain_failure(exc, url)
        assert line.startswith(f"cannot connect to {url}: ") and text in line and "\n" not in line


class RefusingEndpoint:
    """An IStreamClientEndpoint that is always refused, counting attempts."""

    def __init__(self):
        self.attempts = 0

    def connect(self, factory):
        self.attempts += 1
        return defer.fail(neterror.ConnectionRefusedError())


def test_without_reconnect_a_refused_connection_fails_at_once():
    endpoint = RefusingEndpoint()
    client = Client("ws://box:8002/ws", reactor=Clock(), endpoint=endpoint)
    failures = []
    client.connect().addErrback(failures.append)
    assert endpoint.attempts == 1
    assert failures[0].check(ConnectError)
    assert "connection refused" in str(failures[0].value)


def test_reconnect_retries_with_backoff_until_closed():
    clock = Clock()
    endpoint = RefusingEndpoint()
    delays = [0.5, 1.0, 2.0, 4.0]
    client = Client(
        "ws://box:8002/ws",
        reactor=clock,
        endpoint=endpoint,
        reconnect=True,
        backoff=lambda attempt: delays[min(attempt, len(delays) - 1)],
    )
    states = []
    client.on_state(lambda state, detail: states.append((state, detail)))
    outcome = []
    client.connect().addBoth(outcome.append)
    assert endpoint.attempts == 1 and states == [("retrying", "0.5")]
    clock.advance(0.4)
    assert endpoint.attempts == 1
    clock.advance(0.1)
    assert endpoint.attempts == 2
    clock.advance(1.0)
    clock.advance(2.0)
    clock.advance(4.0)
    assert endpoint.attempts == 5
    assert [d for s, d in states] == ["0.5", "1.0", "2.0", "4.0", "4.0"]
    assert outcome == []  # still trying
    assert "connection refused" in client.last_error
    client.close()
    assert outcome[0].check(ConnectionLost)
    clock.advance(60)
    assert endpoint.attempts == 5 and not clock.getDelayedCalls()


def test_calls_without_a_connection_fail_clearly():
    client = Client("ws://box:8002/ws", reactor=Clock(), endpoint=RefusingEndpoint())
    failures = []
    client.call("ping").addErrback(failures.append)
    assert failures[0].check(ConnectionLost)


def test_calls_while_reconnecting_wait_then_time_out():
    clock = Clock()
    client = Client(
        "ws://box:8002/ws", reactor=clock, endpoint=RefusingEndpoint(), reconnect=True, backoff=lambda n: 5.0
    )
    client.connect()
    failures = []
    client.call("ping", timeout=3).addErrback(failures.append)
    assert failures == []
    clock.advance(3)
    assert failures[0].check(RequestTimeout)
    client.close()


def test_notifications_reach_subscribers_and_queues():
    client = Client("ws://box:8002/ws", reactor=Clock())
    seen = []

    def broken(method, params):
        raise RuntimeError("subscriber bug")

    client.subscribe(broken)
    unsubscribe = client.subscribe(lambda m, p: seen.append((m, p)))
    queue = client.notification_queue(maxlen=2)
    for n in range(3):
        client._received(None, {"jsonrpc": "2.0", "method": "camera_status_update", "params": {"n": n}})
    assert [p["n"] for _, p in seen] == [0, 1, 2]
    got = []
    queue.get().addCallback(got.append)
    queue.get().addCallback(got.append)
    assert [p["n"] for _, p in got] == [1, 2]  # the oldest was dropped
    unsubscribe()
    client._received(None, [{"jsonrpc": "2.0", "method": "system_status_update", "params": {}}])
    assert len(seen) == 3
    queue.get().addCallback(got.append)
    assert got[-1] == ("system_status_update", {})


# -- live ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = ServiceProcess(tmp_path_factory.mktemp("client"))
    proc.start()
    yield proc
    proc.stop_cleanly()


def _reactor():
    from twisted.internet import reactor

    return reactor


@pytest_twisted.ensureDeferred
async def test_round_trip_errors_and_download(server):
    client = Client(server.url, reactor=_reactor(), timeout=5)
    await client.connect()
    try:
        assert client.connected
        assert await client.call("ping") == "pong"
        client.notify("ping")  # a JSON-RPC notification: no answer may come back for it
        assert await client.call("ping") == "pong" and not client._pending
        status = await client.call("get_status")
        assert status["status"] in ("healthy", "starting", "degraded")
        with pytest.raises(MethodNotFound) as info:
            await client.call("no_such_method")
        assert info.value.code == -32601 and "no_such_method" in info.value.message
        with pytest.raises(RpcError) as info:
            await client.call("get_server_info", [1, 2])
        assert info.value.code == -32602
        sink = io.BytesIO()
        size = await client.download("/static/app.js", sink)
        assert sink.getvalue() == (STATIC / "app.js").read_bytes() and size == len(sink.getvalue())
        with pytest.raises(DownloadError) as info:
            await client.download("/static/missing.js", io.BytesIO())
        assert info.value.code == 404
    finally:
        await client.close()
    assert not client.connected


@pytest_twisted.ensureDeferred
async def test_refused_handshake_is_explained(server):
    client = Client(server.url, reactor=_reactor(), origin="http://elsewhere.example", timeout=5)
    with pytest.raises(ConnectError) as info:
        await client.connect()
    assert "HTTP 403" in str(info.value) and "elsewhere.example" in str(info.value)
    client = Client(server.url.replace("/ws", "/nothing"), reactor=_reactor(), timeout=5)
    with pytest.raises(ConnectError, match="no WebSocket at this path"):
        await client.connect()


@pytest_twisted.ensureDeferred
async def test_garbage_from_the_server_is_ignored_and_a_lost_server_fails_pending_calls():
    """A server that sends binary frames, non-JSON text, stray answers and errors for no
    request, then drops the TCP connection with a call pending."""
    import json

    from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol

    reactor = _reactor()

    class Hostile(WebSocketServerProtocol):
        def onMessage(self, payload, isBinary):
            request = json.loads(payload)
            if request["method"] == "hang_up":
                self.dropConnection(abort=True)  # lost peer: no closing handshake
                return
            for junk in (
                b"\x00\x01",
                b"not json {",
                b"42",
                b'{"jsonrpc": "2.0", "result": "stray", "id": 999999}',
                b'{"jsonrpc": "2.0", "error": {"code": -32000, "message": "whose?"}, "id": null}',
            ):
                self.sendMessage(junk, isBinary=junk == b"\x00\x01")
            # a batch of a notification and the answer
            self.sendMessage(
                json.dumps(
                    [
                        {"jsonrpc": "2.0", "method": "hello", "params": [1]},
                        {"jsonrpc": "2.0", "result": "pong", "id": request["id"]},
                    ]
                ).encode()
            )

    factory = WebSocketServerFactory(reactor=reactor)
    factory.protocol = Hostile
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    client = Client(f"ws://127.0.0.1:{port.getHost().port}/ws", reactor=reactor, timeout=10)
    seen = []
    client.subscribe(lambda method, params: seen.append((method, params)))
    states = []
    client.on_state(lambda state, detail: states.append(state))
    try:
        await client.connect()
        assert await client.call("ping") == "pong"
        assert seen == [("hello", [1])]
        with pytest.raises(ConnectionLost, match="connection to camsvc closed"):
            await client.call("hang_up")
        assert not client.connected and not client._pending
        await deferLater(reactor, 0, lambda: None)  # subscribers hear of it after the pending calls
        assert states == ["connected", "disconnected"]
        with pytest.raises(ConnectionLost, match="not connected"):
            client.notify("ping")
    finally:
        await client.close()
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_request_timeout():
    """A WebSocket server that never answers: the call fails with RequestTimeout, the client stays usable."""
    from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol

    reactor = _reactor()

    class Silent(WebSocketServerProtocol):
        def onMessage(self, payload, isBinary):
            pass

    factory = WebSocketServerFactory(reactor=reactor)
    factory.protocol = Silent
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    client = Client(f"ws://127.0.0.1:{port.getHost().port}/ws", reactor=reactor, timeout=5)
    try:
        await client.connect()
        with pytest.raises(RequestTimeout, match="no response to ping within 0.3s"):
            await client.call("ping", timeout=0.3)
        assert client.connected and not client._pending
    finally:
        await client.close()
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_reconnects_and_resumes_after_a_restart(tmp_path):
    reactor = _reactor()
    port = free_port()
    first = ServiceProcess(tmp_path / "a", {"server": {"port": port}}).start()
    client = Client(first.url, reactor=reactor, timeout=5, reconnect=True, backoff=lambda n: 0.2)
    states = []
    client.on_state(lambda state, detail: states.append(state))
    second = None
    try:
        await client.connect()
        assert await client.call("ping") == "pong"
        first.stop_cleanly()
        for _ in range(100):
            if "retrying" in states:
                break
            await deferLater(reactor, 0.05, lambda: None)
        assert states[:2] == ["connected", "disconnected"]
        # A call made while disconnected waits for the connection to come back.
        pending = client.call("ping", timeout=20)
        second = ServiceProcess(tmp_path / "b", {"server": {"port": port}}).start()
        assert await pending == "pong"
        assert states.count("connected") == 2
    finally:
        await client.close()
        if second is not None:
            second.stop_cleanly()


@pytest_twisted.ensureDeferred
async def test_authentication_on_every_connection_and_a_refused_token(tmp_path):
    from tests.support.livestack import admin

    reactor = _reactor()
    proc = ServiceProcess(tmp_path, {"auth": {"required": True}}).start()
    try:
        key = admin(proc.config_path, "key", "create", "--role", "operator")
        client = Client(proc.url, token=key, reactor=reactor, timeout=5, reconnect=True)
        await client.connect()
        assert client.auth["role"] == "operator" and client.auth["authenticated"] is True
        assert (await client.call("get_server_info"))["auth_required"] is True
        await client.close()
        bad = Client(proc.url, token="camsvc_0000_not-a-key", reactor=reactor, timeout=5, reconnect=True)
        with pytest.raises(RpcError) as info:
            await bad.connect()
        assert info.value.code == -32001
        assert bad._retry_call is None and "authentication failed" in bad.last_error
        anonymous = Client(proc.url, reactor=reactor, timeout=5)
        await anonymous.connect()
        with pytest.raises(RpcError) as info:
            await anonymous.call("get_server_info")
        assert info.value.code == -32001
        await anonymous.close()
    finally:
        proc.stop_cleanly()


@pytest_twisted.ensureDeferred
async def test_wss_with_a_private_certificate(tmp_path):
    """wss:// verified against cafile (calls and downloads); without it, a one-line TLS explanation."""
    import ssl

    from tests.test_tls import make_certificate

    reactor = _reactor()
    cert, key = make_certificate(tmp_path)
    proc = ServiceProcess(
        tmp_path, {"server": {"tls": {"cert": cert, "key": key}}}, ssl_context=ssl.create_default_context(cafile=cert)
    ).start()
    try:
        assert proc.url.startswith("wss://")
        client = Client(proc.url, reactor=reactor, timeout=5, cafile=cert)
        await client.connect()
        assert await client.call("ping") == "pong"
        sink = io.BytesIO()
        await client.download("/static/style.css", sink)
        assert sink.getvalue() == (STATIC / "style.css").read_bytes()
        await client.close()
        untrusted = Client(proc.url, reactor=reactor, timeout=5)
        with pytest.raises(ConnectError) as info:
            await untrusted.connect()
        assert "TLS handshake failed: certificate verify failed" in str(info.value)
        with pytest.raises(ValueError, match="holds no PEM certificate"):
            Client(proc.url, reactor=reactor, cafile=key)
    finally:
        proc.stop_cleanly()
