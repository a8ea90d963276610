"""camsvc.ops.dispatch: the epoll reactor's direct I/O dispatch behaves like Twisted's.

A fresh (not installed) EPollReactor runs real TCP connections on loopback: data flows both
ways, a protocol that raises in dataReceived is disconnected with the error logged (as Twisted
does), a peer closing is seen as connectionLost, and other reactors are left alone.
"""

from __future__ import annotations

import pytest
from twisted.internet import protocol
from twisted.internet.epollreactor import EPollReactor
from twisted.internet.selectreactor import SelectReactor
from twisted.logger import globalLogPublisher

from camsvc.ops import dispatch


class Echo(protocol.Protocol):
    def dataReceived(self, data):
        if data == b"boom":
            raise ValueError("boom")
        self.transport.write(data.upper())


class Client(protocol.Protocol):
    def __init__(self, sends, done):
        self.sends, self.done, self.got, self.lost = sends, done, b"", None

    def connectionMade(self):
        self.transport.write(self.sends)

    def dataReceived(self, data):
        self.got += data
        if self.got == b"HELLO":
            self.transport.loseConnection()

    def connectionLost(self, reason):
        self.lost = reason
        self.done(self)


def run(reactor, sends):
    server_side = protocol.Factory.forProtocol(Echo)
    port = reactor.listenTCP(0, server_side, interface="127.0.0.1")
    result = []

    def done(client):
        result.append(client)
        reactor.stop()

    factory = protocol.ClientFactory()
    factory.buildProtocol = lambda addr: Client(sends, done)
    reactor.connectTCP("127.0.0.1", port.getHost().port, factory)
    reactor.callLater(10, reactor.stop)
    reactor.run(installSignalHandlers=False)
    port.stopListening()
    return result


def test_install_on_epoll_and_traffic_flows():
    reactor = EPollReactor()
    assert dispatch.install(reactor)
    assert reactor.doIteration == reactor.doPoll and reactor.doPoll.__func__ is dispatch._do_poll
    [client] = run(reactor, b"hello")
    assert client.got == b"HELLO"


def test_an_exception_in_a_protocol_disconnects_it_and_is_logged():
    reactor = EPollReactor()
    dispatch.install(reactor)
    events = []
    globalLogPublisher.addObserver(events.append)
    try:
        [client] = run(reactor, b"boom")
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert client.got == b"" and client.lost is not None
    assert any(e.get("isError") and "boom" in str(e.get("failure") or e.get("log_failure")) for e in events), events


@pytest.mark.parametrize("reactor_type", [SelectReactor])
def test_other_reactors_are_left_alone(reactor_type):
    reactor = reactor_type()
    assert not dispatch.install(reactor)
    assert "doPoll" not in vars(reactor)
