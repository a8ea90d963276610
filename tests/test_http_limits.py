"""HTTP limits under twistd (issue 15): body size (413), slowloris, the connection cap.

Reproduces the findings first: any path buffered a body of any size to a
temporary file, the idle timeout restarted on every byte (slowloris), HTTP
connections were not capped.
"""

from __future__ import annotations

import os
import socket
import time

import pytest

from tests.support.server import ServiceProcess
from tests.support.wsclient import RpcClient


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = ServiceProcess(
        tmp_path_factory.mktemp("httplimits"),
        {
            "server": {
                "max_request_body": 1000,
                "http_header_timeout": 1,
                "http_request_timeout": 3,
                "http_idle_timeout": 30,
                "max_http_connections": 6,
            }
        },
    )
    proc.start()
    yield proc
    proc.stop_cleanly()


def raw(server):
    s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    return s


def read_all(s):
    chunks = []
    while True:
        try:
            data = s.recv(65536)
        except (TimeoutError, ConnectionResetError):
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def test_an_oversized_body_is_refused_before_it_is_sent(server):
    with raw(server) as s:
        s.sendall(b"POST /health/live HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n")
        # Not one byte of the body has been sent: the answer comes anyway.
        reply = read_all(s)
    assert reply.startswith(b"HTTP/1.1 413 "), reply[:100]


def test_an_oversized_chunked_body_is_refused(server):
    with raw(server) as s:
        s.sendall(b"POST /openrpc.json HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(5):
            try:
                s.sendall(b"200\r\n" + b"x" * 512 + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
        reply = read_all(s)
    assert reply.startswith(b"HTTP/1.1 413 "), reply[:100]


def test_a_small_body_is_still_served(server):
    with raw(server) as s:
        s.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nConnection: close\r\n\r\n0123456789")
        reply = read_all(s)
    assert reply.startswith(b"HTTP/1.1 200 "), reply[:100]


def test_slowloris_is_cut_off_by_the_header_deadline(server):
    """One header byte every 0.2 s used to keep the connection forever (the idle timer restarted)."""
    with raw(server) as s:
        s.sendall(b"GET /health/live HTTP/1.1\r\n")
        closed_after = None
        for i in range(50):  # 10 s of dripping, ten times the header deadline
            try:
                s.sendall(b"X")
            except (BrokenPipeError, ConnectionResetError):
                closed_after = i
                break
            s.settimeout(0.2)
            try:
                data = s.recv(4096)
            except TimeoutError:
                continue
            assert data.startswith(b"HTTP/1.1 408 ") or data == b"", data
            closed_after = i
            break
        assert closed_after is not None, "the dripping client was never cut off"
    assert "request headers not complete within 1 s" in server.log()


def test_a_silent_connection_is_closed_too(server):
    with raw(server) as s:
        s.settimeout(15)
        assert read_all(s).startswith(b"HTTP/1.1 408 ")


def test_http_connections_are_capped_and_websockets_leave_the_count(server):
    with RpcClient(server.url) as ws_before:
        idle = [raw(server) for _ in range(6)]
        time.sleep(0.3)
        extra = raw(server)
        extra.settimeout(5)
        assert read_all(extra) == b""  # closed as accepted
        extra.close()
        for s in idle:
            s.close()
        assert ws_before.call("ping") == "pong"  # the WebSocket did not count
    deadline = time.monotonic() + 5
    while True:
        try:
            with RpcClient(server.url) as again:
                assert again.call("ping") == "pong"
            break
        except Exception:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert "Refusing HTTP connections: 6 open (server.max_http_connections 6)" in server.log()


# -- file descriptors: EMFILE ------------------------------------------------------------


def test_fd_guard_pauses_and_resumes_accepting():
    from twisted.internet.task import Clock

    from camsvc.server.listener import FdGuard

    class Port:
        reading = True

        def stopReading(self):
            self.reading = False

        def startReading(self):
            self.reading = True

    clock, port, used = Clock(), Port(), [100]
    guard = FdGuard(port, clock, reserve=20, count=lambda: used[0], limit=lambda: 1024)
    assert guard() and port.reading
    used[0] = 1010
    clock.advance(1)
    assert not guard() and not port.reading and guard.paused
    assert not guard()  # refused while paused
    clock.advance(1)
    assert not port.reading  # still too few free
    used[0] = 900
    clock.advance(1)
    assert port.reading and not guard.paused and guard()


def test_running_out_of_file_descriptors_pauses_accepting_and_recovers(tmp_path):
    """Without a guard, EMFILE on accept made Twisted accept-and-close (or spin):
    with it, accepting pauses with one log line and resumes when descriptors free up."""
    proc = ServiceProcess(tmp_path, {"server": {"max_http_connections": 1000, "http_header_timeout": 60}}, nofile=64)
    proc.start()
    try:
        assert len(os.listdir(f"/proc/{proc.proc.pid}/fd")) < 40
        held = []
        for _ in range(80):
            s = socket.create_connection(("127.0.0.1", proc.port), timeout=5)
            held.append(s)
        deadline = time.monotonic() + 10
        while "Accepting paused" not in proc.log():
            assert time.monotonic() < deadline, proc.log()[-2000:]
            time.sleep(0.1)
        for s in held:
            s.close()
        deadline = time.monotonic() + 15
        while "Accepting resumed" not in proc.log():
            assert time.monotonic() < deadline, proc.log()[-2000:]
            time.sleep(0.1)
        with RpcClient(proc.url) as client:
            assert client.call("ping") == "pong"
        assert "Traceback" not in proc.log()
    finally:
        proc.stop_cleanly()
