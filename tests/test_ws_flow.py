"""Notification fan-out and flow control over real sockets, in-process.

camsvc's App is wired by ``camsvc.tap.build`` on the real reactor (listening
on a loopback port chosen by the kernel); clients are raw TCP protocols that
speak the WebSocket handshake, so one can stop reading entirely.
"""

from __future__ import annotations

import json

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater

from camsvc.common.roles import Role
from camsvc.config import parse_config_dict
from camsvc.tap import build
from tests.support.logcapture import captured_logs
from tests.support.waiting import eventually


def client_frame(text: str) -> bytes:
    """One masked text frame, as a client must send it."""
    data, mask = text.encode(), b"\x01\x02\x03\x04"
    n = len(data)
    length = bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big")
    return b"\x81" + length + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def server_texts(data: bytes) -> list[str]:
    """The text messages in the server's (unmasked, unfragmented) frames."""
    texts = []
    while len(data) >= 2:
        n, pos = data[1] & 0x7F, 2
        if n == 126:
            n, pos = int.from_bytes(data[2:4], "big"), 4
        elif n == 127:
            n, pos = int.from_bytes(data[2:10], "big"), 10
        if data[0] & 0x0F == 0x1:
            texts.append(data[pos : pos + n].decode())
        data = data[pos + n :]
    return texts


class RawWSClient(Protocol):
    """Sends the opening handshake, then counts bytes (or stops reading)."""

    def __init__(self, read: bool = True, keep: bool = False) -> None:
        self.read = read
        self.keep = keep
        self.data = b""  # what came after the handshake, when ``keep``
        self.received = 0
        self.upgraded: Deferred = Deferred()
        self.lost: Deferred = Deferred()
        self._buffer = b""

    def connectionMade(self) -> None:
        host = self.transport.getPeer()
        self.transport.write(
            (
                f"GET /ws HTTP/1.1\r\nHost: {host.host}:{host.port}\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )

    def dataReceived(self, data: bytes) -> None:
        if not self.upgraded.called:
            self._buffer += data
            if b"\r\n\r\n" in self._buffer:
                head, _, rest = self._buffer.partition(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 101"), head
                self.received += len(rest)
                if self.keep:
                    self.data += rest
                self.upgraded.callback(None)
                if not self.read:
                    self.transport.pauseProducing()
            return
        self.received += len(data)
        if self.keep:
            self.data += data

    def connectionLost(self, reason) -> None:
        self.reason = reason
        if not self.lost.called:
            self.lost.callback(None)


@pytest_twisted.async_yield_fixture
async def app(tmp_path):
    config = parse_config_dict(
        {
            "server": {"host": "127.0.0.1", "endpoint": "tcp:0:interface=127.0.0.1", "outgoing_buffer_size": 262144},
            "auth": {"required": False},
            "storage": {
                "state_dir": str(tmp_path),
                "recordings_dir": str(tmp_path / "r"),
                "snapshots_dir": str(tmp_path / "s"),
            },
            "discovery": {"enabled": False},
            "mediamtx": {"enabled": False},
        }
    )
    application = build(config, reactor)
    application.service.startService()
    yield application
    await application.service.stopService()


async def connect(app, read=True, keep=False) -> RawWSClient:
    port = app.listener.port.getHost().port
    proto = RawWSClient(read=read, keep=keep)
    await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), proto)
    await proto.upgraded
    while len(app.hub) < 1:
        await deferLater(reactor, 0.01, lambda: None)
    return proto


@pytest_twisted.ensureDeferred
async def test_slow_client_is_dropped_and_others_get_everything(app):
    good = await connect(app)
    slow = await connect(app, read=False)
    while len(app.hub) < 2:
        await deferLater(reactor, 0.01, lambda: None)
    payload = {"blob": "x" * 65536}
    count = 300
    for _ in range(count):
        app.hub.publish("test_event", payload)
        # Paced so a reading client keeps up: only the one that stopped reading falls behind.
        await deferLater(reactor, 0.002, lambda: None)
    # The slow client's queue overflows: the server drops it...
    for _ in range(500):
        if len(app.hub) == 1:
            break
        await deferLater(reactor, 0.01, lambda: None)
    assert len(app.hub) == 1
    # ...(a client that does not read cannot notice until it reads again)...
    slow.transport.resumeProducing()
    await slow.lost
    # ...while the reading client receives every notification in full.
    expected = count * (65536 + 60)
    for _ in range(500):
        if good.received >= expected:
            break
        await deferLater(reactor, 0.01, lambda: None)
    assert good.received >= expected
    good.transport.loseConnection()
    await good.lost


@pytest_twisted.ensureDeferred
async def test_publish_reaches_all_connections_and_skips_closed_ones(app):
    clients = [await connect(app) for _ in range(5)]
    while len(app.hub) < 5:
        await deferLater(reactor, 0.01, lambda: None)
    clients[0].transport.loseConnection()
    await clients[0].lost
    while len(app.hub) > 4:
        await deferLater(reactor, 0.01, lambda: None)
    delivered = app.hub.publish("camera_status_update", {"camera_id": "camera0", "status": "CONNECTED"})
    assert delivered == 4
    for c in clients[1:]:
        for _ in range(200):
            if c.received > 0:
                break
            await deferLater(reactor, 0.01, lambda: None)
        assert c.received > len(b'"camera_status_update"')
        c.transport.loseConnection()
        await c.lost


@pytest_twisted.ensureDeferred
async def test_an_answer_for_a_peer_that_left_is_dropped_quietly(app):
    """The peer goes away while its request is being answered: the late answer and later
    notifications are not sent to it, and nothing fails."""
    pending: list[Deferred] = []

    def slow_method(session, params):
        pending.append(Deferred())
        return pending[-1]

    app.registry.add("test_slow", slow_method, role=Role.VIEWER)
    with captured_logs() as logs:
        client = await connect(app)
        (conn,) = app.hub.connections
        client.transport.write(client_frame('{"jsonrpc": "2.0", "method": "test_slow", "id": 1}'))
        await eventually(lambda: pending, what="the request reached the method")
        client.transport.abortConnection()  # lost: no closing handshake
        await client.lost
        await eventually(lambda: len(app.hub) == 0, what="the server noticed the lost peer")
        pending[0].callback("too late")
        assert conn.send_text('{"jsonrpc": "2.0", "result": 1, "id": 2}') is False
        assert conn.send_notification("{}", {}) is False
        assert app.hub.publish("camera_status_update", {"camera_id": "camera0"}) == 0
    assert not [line for line in logs if line.startswith(("error", "critical"))], logs


@pytest_twisted.ensureDeferred
async def test_a_client_that_stops_reading_gets_queued_messages_in_order(app):
    """While the socket pushes back, notifications and answers wait in the connection's
    queue; once the client reads again they arrive complete and in the order sent."""
    client = await connect(app, read=False, keep=True)
    (conn,) = app.hub.connections
    blob = "x" * 32768
    sent = 0
    while not conn._paused:  # fill the kernel's buffers until the transport pushes back
        assert sent < 2000, "the transport never paused"
        app.hub.publish("test_event", {"n": sent, "blob": blob})
        sent += 1
        await deferLater(reactor, 0.001, lambda: None)
    for _ in range(3):  # queued (prepared frames), under outgoing_buffer_size
        assert app.hub.publish("test_event", {"n": sent, "blob": blob}) == 1
        sent += 1
    client.transport.write(client_frame('{"jsonrpc": "2.0", "method": "ping", "id": 7}'))
    await eventually(lambda: any(kind == "raw" for kind, _ in conn._queue), what="the answer queued")
    assert conn._queued_bytes > 3 * len(blob)
    client.transport.resumeProducing()
    await eventually(lambda: len(server_texts(client.data)) == sent + 1, timeout=30, what="everything delivered")
    texts = server_texts(client.data)
    assert [json.loads(t)["params"]["n"] for t in texts[:-1]] == list(range(sent))
    assert json.loads(texts[-1]) == {"jsonrpc": "2.0", "result": "pong", "id": 7}  # answered after them
    assert not conn._queue and conn._queued_bytes == 0 and len(app.hub) == 1
    client.transport.loseConnection()
    await client.lost
