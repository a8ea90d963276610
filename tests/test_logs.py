"""Logging: text and JSON-lines formats, journald priorities, and the context fields
(camera_id, conn_id) on every line about a camera or a client, checked on a real run."""

from __future__ import annotations

import io
import json
import os
import re
import socket
import time

import pytest
from twisted.logger import Logger, LogLevel, LogPublisher

from camsvc.ops.logs import JSONLinesObserver, LevelControl, make_observer, stdout_is_journal
from tests.support.server import ServiceProcess
from tests.support.wsclient import RpcClient


def emit(observer, level=LogLevel.info, fmt="hello {who}", **fields):
    publisher = LogPublisher(observer)
    Logger(namespace="camsvc.test", observer=publisher).emit(level, fmt, **fields)


def test_text_format_is_the_default():
    out = io.StringIO()
    emit(make_observer("text", LevelControl("info"), out), who="world", camera_id="camera0")
    line = out.getvalue()
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} \[camsvc\.test#info\] hello world\n$", line), line


def test_json_lines_carry_context_fields():
    out = io.StringIO()
    emit(make_observer("json", LevelControl("info"), out), LogLevel.warn, who="x", camera_id="camera3", conn_id="c7")
    record = json.loads(out.getvalue())
    assert record["level"] == "warn" and record["namespace"] == "camsvc.test"
    assert record["message"] == "hello x"
    assert record["camera_id"] == "camera3" and record["conn_id"] == "c7"
    assert record["time"].endswith("+00:00")


def test_json_failure_has_a_traceback():
    out = io.StringIO()
    publisher = LogPublisher(JSONLinesObserver(out))
    try:
        raise ValueError("broken")
    except ValueError:
        Logger(namespace="t", observer=publisher).failure("it broke for {conn_id}", conn_id="c1")
    record = json.loads(out.getvalue())
    assert "ValueError: broken" in record["traceback"] and record["conn_id"] == "c1"


def test_level_filter_and_live_change():
    out = io.StringIO()
    control = LevelControl("warn")
    observer = make_observer("text", control, out)
    emit(observer, LogLevel.info, who="hidden")
    assert out.getvalue() == ""
    control.set_level("debug")
    emit(observer, LogLevel.debug, who="shown")
    assert "hello shown" in out.getvalue()


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_journald_gets_syslog_priorities(fmt):
    out = io.StringIO()
    observer = make_observer(fmt, LevelControl("debug"), out, journal=True)
    for level in (LogLevel.debug, LogLevel.info, LogLevel.warn, LogLevel.error, LogLevel.critical):
        emit(observer, level, who=level.name)
    prefixes = [line[:3] for line in out.getvalue().splitlines()]
    assert prefixes == ["<7>", "<6>", "<4>", "<3>", "<2>"]
    if fmt == "json":
        assert all(json.loads(line[3:])["message"].startswith("hello") for line in out.getvalue().splitlines())


def test_stdout_is_journal_compares_device_and_inode(tmp_path):
    with open(tmp_path / "f", "w") as fh:
        st = os.fstat(fh.fileno())
        assert stdout_is_journal({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}, fh.fileno())
        assert not stdout_is_journal({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"}, fh.fileno())
    assert not stdout_is_journal({}, 1)
    assert not stdout_is_journal({"JOURNAL_STREAM": "garbage"}, 1)


# -- a real run in JSON ------------------------------------------------------------


CAMERA = re.compile(r"\bcamera\d+\b")
CONNECTION = re.compile(r"\b[Cc]onnection c\d+\b")


def check_context(records: list[dict]) -> None:
    """Every line naming a camera carries camera_id; every line naming a connection carries conn_id."""
    for record in records:
        text = record["message"]
        if CAMERA.search(text) and "ids start at camera0" not in text:
            assert record.get("camera_id") in CAMERA.findall(text), record
        if CONNECTION.search(text):
            assert record.get("conn_id") and record["conn_id"] in text, record


def read_json_log(proc: ServiceProcess) -> list[dict]:
    records = []
    for line in proc.log().splitlines():
        if not line.strip():
            continue
        records.append(json.loads(line))  # every line is one JSON object
    return records


def test_json_run_with_clients_and_cameras(tmp_path):
    from tests.support.umockdev import Testbed, umockdev_available

    ok, reason = umockdev_available()
    if not ok:
        pytest.skip(reason)
    with Testbed() as bed:
        proc = ServiceProcess(
            tmp_path,
            {"logging": {"format": "json", "level": "debug"}, "discovery": {"enabled": True, "debounce": 0.05}},
            env=bed.env(),
            wait_ready=True,
        ).start()
        try:
            bed.wait_for_listeners(1)
            bed.add_camera("usbcam", card="HD Webcam C270", serial="ABC123", port="1.2")
            with RpcClient(proc.url) as client:
                deadline = time.monotonic() + 15
                while client.call("get_camera_list")["connected"] != 1:
                    assert time.monotonic() < deadline, proc.log()
                    time.sleep(0.1)
                assert client.request("no_such_method")["error"]["code"] == -32601
            # a client that vanishes without a closing handshake
            raw = socket.create_connection(("127.0.0.1", proc.port))
            raw.sendall(
                b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            raw.recv(1024)
            raw.close()
            bed.remove("usbcam")
            deadline = time.monotonic() + 15
            while "gone from" not in proc.log():
                assert time.monotonic() < deadline, proc.log()
                time.sleep(0.1)
        finally:
            proc.stop_cleanly()
    records = read_json_log(proc)
    messages = [r["message"] for r in records]
    assert any("Camera camera0 present" in m for m in messages), messages
    assert any(re.search(r"Connection c1 open", m) for m in messages), messages
    check_context(records)
    assert {r["level"] for r in records} <= {"debug", "info", "warn", "error", "critical"}
