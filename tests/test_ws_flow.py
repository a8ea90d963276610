"""Notification fan-out and flow control over real sockets, in-process.

camsvc's App is wired by ``camsvc.tap.build`` on the real reactor (listening
on a loopback port chosen by the kernel); clients are raw TCP protocols that
speak the WebSocket handshake, so one can stop reading entirely.
"""

from __future__ import annotations

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater

from camsvc.config import parse_config_dict
from camsvc.tap import build


class RawWSClient(Protocol):
    """Sends the opening handshake, then counts bytes (or stops reading)."""

    def __init__(self, read: bool = True) -> None:
        self.read = read
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
                self.upgraded.callback(None)
                if not self.read:
                    self.transport.pauseProducing()
            return
        self.received += len(data)

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


async def connect(app, read=True) -> RawWSClient:
    port = app.listener.port.getHost().port
    proto = RawWSClient(read=read)
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
