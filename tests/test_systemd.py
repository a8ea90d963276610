"""systemd notify protocol: the Notifier on real datagram sockets, SystemdService
with a Clock, and a real camsvc under twistd talking to a test notify socket."""

from __future__ import annotations

import os
import socket
import time
import uuid

import pytest
from twisted.internet.task import Clock

from camsvc.cameras.registry import Camera
from camsvc.config import parse_config_dict
from camsvc.ops.systemd import Notifier, SystemdService, setup_systemd, summary, watchdog_interval
from tests.support.server import ServiceProcess
from tests.support.wsclient import RpcClient


class NotifySocket:
    """A unix datagram socket standing in for systemd's notify socket."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address if not address.startswith("@") else "\0" + address[1:])
        self.address = address
        self.messages: list[list[str]] = []

    def receive(self, timeout: float = 5.0) -> list[str]:
        self.sock.settimeout(timeout)
        data = self.sock.recv(65536)
        message = data.decode().split("\n")
        self.messages.append(message)
        return message

    def drain(self) -> list[list[str]]:
        out = []
        self.sock.setblocking(False)
        try:
            while True:
                out.append(self.sock.recv(65536).decode().split("\n"))
        except BlockingIOError:
            pass
        self.messages.extend(out)
        return out

    def wait_for(self, line_start: str, timeout: float = 10.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {line_start!r} in {self.messages}")
            message = self.receive(left)
            if any(line.startswith(line_start) for line in message):
                return message

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path):
    sock = NotifySocket(str(tmp_path / "notify"))
    yield sock
    sock.close()


def test_notifier_sends_one_datagram_per_call(notify_socket):
    notifier = Notifier(notify_socket.address)
    assert notifier.enabled
    assert notifier.send("READY=1", "STATUS=fine\nreally")
    assert notify_socket.receive() == ["READY=1", "STATUS=fine really"]
    notifier.close()


def test_notifier_abstract_namespace():
    name = f"@camsvc-test-{uuid.uuid4().hex}"
    sock = NotifySocket(name)
    try:
        notifier = Notifier(name)
        assert notifier.send("WATCHDOG=1")
        assert sock.receive() == ["WATCHDOG=1"]
        notifier.close()
    finally:
        sock.close()


def test_notifier_is_a_no_op_outside_systemd():
    notifier = Notifier.from_environ({})
    assert not notifier.enabled
    assert notifier.send("READY=1") is False
    assert not Notifier("relative/path").enabled


def test_a_missing_socket_is_logged_not_raised(tmp_path):
    notifier = Notifier(str(tmp_path / "nobody-listens"))
    assert notifier.send("READY=1") is False


def test_watchdog_interval_is_half_of_watchdog_usec():
    assert watchdog_interval({"WATCHDOG_USEC": "20000000"}) == 10.0
    assert watchdog_interval({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": str(os.getpid())}) == 10.0
    assert watchdog_interval({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "1"}, pid=2) is None
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}) is None


def test_setup_removes_the_variables_so_children_do_not_inherit_them(notify_socket):
    environ = {"NOTIFY_SOCKET": notify_socket.address, "WATCHDOG_USEC": "4000000", "PATH": "/bin"}
    service = setup_systemd(_app(), Clock(), environ)
    assert environ == {"PATH": "/bin"}
    assert service.notifier.enabled and service.watchdog == 2.0


def _app():
    from camsvc.app import App

    return App(parse_config_dict({"server": {"host": "127.0.0.1"}, "auth": {"required": False}}), Clock())


def test_service_ready_status_watchdog_and_stopping(notify_socket):
    app = _app()
    clock = app.clock
    app.health.require("listening")
    app.health.require("discovery")
    app.health.require("mediamtx")
    service = SystemdService(Notifier(notify_socket.address), app, clock, watchdog=2.0)
    service.startService()
    first = notify_socket.drain()
    assert not any("READY=1" in m for m in first)
    assert any(line.startswith("STATUS=Starting") for m in first for line in m)
    assert ["WATCHDOG=1"] in first

    app.health.set("listening", True)
    assert not any("READY=1" in m for m in notify_socket.drain())
    app.health.set("discovery", True)  # MediaMTX still down: ready anyway, degraded
    (ready,) = [m for m in notify_socket.drain() if "READY=1" in m]
    assert ready[1] == (
        "STATUS=Degraded (mediamtx: starting): 0 cameras connected, 0 clients, MediaMTX not contacted yet"
    )
    app.health.set("mediamtx", False, "connection refused")
    assert notify_socket.drain()[-1][-1].endswith("0 clients, MediaMTX down")

    app.cameras.put(Camera("camera0", "/dev/video0"))
    app.health.set("mediamtx", True)
    statuses = [line for m in notify_socket.drain() for line in m if line.startswith("STATUS=")]
    assert statuses[-1] == "STATUS=Ready: 1 camera connected, 0 clients, MediaMTX up"

    clock.advance(2.0)
    assert notify_socket.drain() == [["WATCHDOG=1"]]  # unchanged status is not repeated
    clock.advance(2.0)
    assert notify_socket.drain() == [["WATCHDOG=1"]]

    service.reloading()
    service.reloaded()
    reload_msgs = notify_socket.drain()
    assert reload_msgs[0][0] == "RELOADING=1" and reload_msgs[0][1].startswith("MONOTONIC_USEC=")
    assert reload_msgs[1] == ["READY=1"]

    service.stopService()
    assert notify_socket.drain() == [["STOPPING=1", "STATUS=Shutting down"]]
    assert not clock.getDelayedCalls()
    service.notifier.close()


def test_service_without_systemd_does_nothing():
    app = _app()
    service = SystemdService(Notifier(None), app, app.clock, watchdog=None)
    service.startService()
    assert not app.clock.getDelayedCalls()
    service.stopService()


def test_summary_lines():
    app = _app()
    app.health.require("listening")
    assert summary(app) == "Starting (listening: starting): 0 cameras connected, 0 clients"
    app.health.set("listening", True)
    assert summary(app) == "Ready: 0 cameras connected, 0 clients"


def test_real_service_notifies_readiness_watchdog_and_stopping(tmp_path, notify_socket):
    proc = ServiceProcess(
        tmp_path / "svc",
        env={"NOTIFY_SOCKET": notify_socket.address, "WATCHDOG_USEC": "600000"},
    )
    proc.start()
    try:
        ready = notify_socket.wait_for("READY=1")
        assert any(line.startswith("STATUS=Ready: 0 cameras connected") for line in ready), ready
        before = notify_socket.messages[: notify_socket.messages.index(ready)]
        assert not any(line.startswith("STATUS=Ready") for m in before for line in m), before
        # Keep-alives every 0.3 s from the reactor (generous timeouts: no timing assertion).
        notify_socket.wait_for("WATCHDOG=1", timeout=10)
        notify_socket.wait_for("WATCHDOG=1", timeout=10)
        with RpcClient(proc.url) as client:
            assert client.call("ping") == "pong"
    finally:
        proc.stop_cleanly()
    notify_socket.sock.settimeout(2)
    stopping = notify_socket.wait_for("STOPPING=1", timeout=5)
    assert "STATUS=Shutting down" in stopping
