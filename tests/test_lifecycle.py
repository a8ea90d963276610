"""Process life cycle: signal handling and bounded, ordered shutdown.

Unit tests drive SignalService and stop_in_order with fakes and a Clock; the
process tests run camsvc under twistd and send it real signals."""

from __future__ import annotations

import base64
import os
import signal
import socket
import time

import pytest
from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher

from camsvc.ops.lifecycle import EXIT_FORCED, SignalService, child_pids, stop_in_order
from tests.support.server import ServiceProcess
from tests.support.wsclient import RpcClient


class FakeSignals:
    SIGTERM, SIGINT, SIGHUP, SIGALRM = signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGALRM
    ITIMER_REAL = signal.ITIMER_REAL

    def __init__(self) -> None:
        self.handlers: dict = {}
        self.timers: list = []

    def signal(self, sig, handler):
        self.handlers[sig] = handler

    def setitimer(self, which, seconds):
        self.timers.append((which, seconds))


class FakeReactor(Clock):
    def __init__(self) -> None:
        super().__init__()
        self.stops = 0
        self.triggers: list = []
        self.from_thread: list = []

    def callWhenRunning(self, fn, *args):
        fn(*args)

    def callFromThread(self, fn, *args):
        self.from_thread.append((fn, args))

    def run_pending(self):
        calls, self.from_thread = self.from_thread, []
        for fn, args in calls:
            fn(*args)

    def stop(self):
        self.stops += 1

    def addSystemEventTrigger(self, phase, event, fn, *args):
        self.triggers.append((phase, event, fn))


@pytest.fixture
def logged():
    events: list = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


def make_service(reload=None):
    reactor, signals = FakeReactor(), FakeSignals()
    exits, kills, lines = [], [], []
    svc = SignalService(
        reactor,
        on_reload=reload,
        deadline=25.0,
        signals=signals,
        exit=exits.append,
        kill=lambda sig: kills.append(sig) or [4242],
        write=lines.append,
    )
    svc.startService()
    return svc, reactor, signals, exits, kills, lines


def test_sighup_is_ignored_until_the_reactor_runs():
    reactor, signals = FakeReactor(), FakeSignals()
    reactor.callWhenRunning = lambda fn, *a: None  # not running yet
    SignalService(reactor, on_reload=lambda: None, deadline=1, signals=signals).startService()
    assert signals.handlers == {signal.SIGHUP: signal.SIG_IGN}


def test_handlers_are_installed_once_running():
    svc, reactor, signals, *_ = make_service(reload=lambda: None)
    assert set(signals.handlers) == {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
    assert ("before", "shutdown", svc.shutdown_begins) in reactor.triggers


def test_first_sigterm_stops_the_reactor_second_forces_exit(logged):
    svc, reactor, signals, exits, kills, lines = make_service()
    signals.handlers[signal.SIGTERM](signal.SIGTERM, None)
    assert reactor.stops == 0  # the handler only schedules
    reactor.run_pending()
    assert reactor.stops == 1 and exits == []
    assert any(
        "Received SIGTERM" in (e.get("log_format") or "").replace("{signal}", e.get("signal", "")) for e in logged
    )
    signals.handlers[signal.SIGINT](signal.SIGINT, None)
    assert exits == [EXIT_FORCED]
    assert kills == [signal.SIGKILL]
    assert lines == ["camsvc: SIGINT received during shutdown: forcing exit (killed child processes [4242])\n"]


def test_a_signal_after_shutdown_began_otherwise_forces_exit():
    svc, reactor, signals, exits, *_ = make_service()
    svc.shutdown_begins()  # e.g. the listener failed and stopped the reactor
    signals.handlers[signal.SIGTERM](signal.SIGTERM, None)
    assert exits == [EXIT_FORCED] and reactor.stops == 0


def test_shutdown_deadline_forces_exit():
    svc, reactor, signals, exits, kills, lines = make_service()
    svc.shutdown_begins()
    assert signals.timers == [(signal.ITIMER_REAL, 25.0)]
    signals.handlers[signal.SIGALRM](signal.SIGALRM, None)
    assert exits == [EXIT_FORCED]
    assert "did not finish within 25s" in lines[0]


def test_sighup_reloads_on_the_reactor_and_not_while_stopping(logged):
    calls = []
    svc, reactor, signals, *_ = make_service(reload=lambda: calls.append(1))
    signals.handlers[signal.SIGHUP](signal.SIGHUP, None)
    assert calls == []
    reactor.run_pending()
    assert calls == [1]
    svc.shutdown_begins()
    signals.handlers[signal.SIGHUP](signal.SIGHUP, None)
    reactor.run_pending()
    assert calls == [1]


def test_a_failing_reload_is_logged_not_raised(logged):
    def boom():
        raise RuntimeError("bad")

    svc, reactor, signals, *_ = make_service(reload=boom)
    signals.handlers[signal.SIGHUP](signal.SIGHUP, None)
    reactor.run_pending()
    assert any(e.get("log_failure") is not None and "reload" in e.get("log_format", "") for e in logged)


class Recorder(Service):
    def __init__(self, name, log, result=None):
        self.name = name
        self.log = log
        self.result = result

    def stopService(self):
        self.log.append(self.name)
        return self.result


def test_stop_in_order_waits_for_each_service():
    clock, order = Clock(), []
    first: Deferred = Deferred()
    services = [Recorder("listener", order, first), Recorder("media", order), Recorder("mediamtx", order)]
    done = stop_in_order(services, clock, 20)
    assert order == ["listener"] and not done.called
    first.callback(None)
    assert order == ["listener", "media", "mediamtx"] and done.called
    assert not clock.getDelayedCalls()


def test_stop_in_order_is_bounded_and_names_the_straggler(logged):
    clock, order = Clock(), []
    services = [Recorder("stuck", order, Deferred()), Recorder("next", order)]
    done = stop_in_order(services, clock, 20)
    clock.advance(19.9)
    assert not done.called and order == ["stuck"]
    clock.advance(0.2)
    assert done.called and order == ["stuck", "next"]
    warning = [e for e in logged if "still stopping" in e.get("log_format", "")]
    assert warning and warning[0]["names"] == "stuck"


def test_stop_in_order_goes_on_after_a_failure(logged):
    clock, order = Clock(), []
    services = [Recorder("broken", order, fail(RuntimeError("x"))), Recorder("fine", order)]
    done = stop_in_order(services, clock, 20)
    assert done.called and order == ["broken", "fine"]
    assert any(e.get("log_failure") is not None for e in logged)


def test_child_pids_lists_our_children():
    import subprocess

    child = subprocess.Popen(["sleep", "30"])
    try:
        assert child.pid in child_pids()
    finally:
        child.kill()
        child.wait()


# -- a real camsvc -------------------------------------------------------------------


def silent_websocket(port: int) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads or answers."""
    sock = socket.create_connection(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    sock.settimeout(10)
    assert sock.recv(4096).startswith(b"HTTP/1.1 101")
    return sock


def wait_log(proc: ServiceProcess, text: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in proc.log():
        assert time.monotonic() < deadline, f"{text!r} not logged:\n{proc.log()}"
        time.sleep(0.05)


def test_sigterm_closes_clients_with_1001_and_exits_0(tmp_path):
    proc = ServiceProcess(tmp_path).start()
    client = RpcClient(proc.url)
    assert client.call("ping") == "pong"
    proc.proc.send_signal(signal.SIGTERM)
    with pytest.raises(Exception):
        client.recv_raw(timeout=10)
    assert client.ws.close_code == 1001
    assert proc.proc.wait(30) == 0
    proc.stop_cleanly()  # already exited: checks the log
    assert "Received SIGTERM: shutting down" in proc.log()


def test_sigterm_is_bounded_with_a_client_that_never_closes(tmp_path):
    proc = ServiceProcess(tmp_path, {"server": {"shutdown_timeout": 1}}).start()
    sock = silent_websocket(proc.port)
    try:
        code = proc.stop(timeout=30)  # killed with SIGKILL (status -9) if it hung
    finally:
        sock.close()
    assert code == 0, proc.log()
    assert "Server Shut Down." in proc.log()


def test_sigint_shuts_down_gracefully_too(tmp_path):
    proc = ServiceProcess(tmp_path).start()
    assert proc.stop(signal.SIGINT) == 0
    assert "Received SIGINT: shutting down" in proc.log()


def test_second_sigterm_forces_exit(tmp_path):
    proc = ServiceProcess(tmp_path, {"server": {"shutdown_timeout": 60}}).start()
    sock = silent_websocket(proc.port)  # keeps the listener waiting
    try:
        proc.proc.send_signal(signal.SIGTERM)
        wait_log(proc, "Received SIGTERM")
        code = proc.stop(signal.SIGTERM, timeout=10)
    finally:
        sock.close()
    assert code == EXIT_FORCED, proc.log()
    assert "SIGTERM received during shutdown: forcing exit" in proc.log()


def test_stopping_while_a_mediamtx_connection_is_pending_logs_no_error(logged):
    """Cancelling a request still connecting raises ConnectingCancelledError: treated as unreachable, and quiet on stop."""
    from twisted.internet.error import ConnectingCancelledError

    from camsvc.mediamtx.client import MediaMTXClient
    from camsvc.mediamtx.monitor import Monitor
    from camsvc.ops.health import Health

    class HangingHTTP:
        def request(self, method, url, **kw):
            def cancel(d):
                d.errback(ConnectingCancelledError(("127.0.0.1", 9997)))

            return Deferred(cancel)

    clock = Clock()
    client = MediaMTXClient(HangingHTTP(), "http://127.0.0.1:9997", clock, timeout=5)
    health = Health(clock)
    monitor = Monitor(client, clock, health, lambda *a, **k: None, 5.0, "http://127.0.0.1:9997")
    monitor.startService()
    clock.advance(0)  # the first probe starts: its connection hangs
    monitor.stopService()
    assert not [e for e in logged if e.get("log_failure") is not None or e["log_level"].name in ("warn", "error")]
    assert not clock.getDelayedCalls()
    # A timeout while connecting is "unreachable", not an unexpected failure.
    monitor.startService()
    clock.advance(0)
    clock.advance(5.0)
    assert monitor.state == "down" and "no answer within 5s" in monitor.reason
    assert not [e for e in logged if e.get("log_failure") is not None]
    monitor.stopService()


def test_a_port_in_use_stops_startup_with_one_line_and_exit_1(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = ServiceProcess(tmp_path, {"server": {"port": port}})
        with pytest.raises(RuntimeError, match="camsvc exited with 1") as info:
            proc.start()
        proc.stop()
    text = str(info.value)
    assert (
        f"camsvc: cannot listen on tcp:port={port}:interface=127.0.0.1: " in text and "Address already in use" in text
    )
    assert "Traceback" not in text
