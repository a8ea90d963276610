"""camsvc-cli as a user runs it: a subprocess against a live camsvc.

Two servers: a plain camsvc (no cameras) for the commands that need none and
for connection errors, and a :class:`~tests.support.livestack.LiveStack`
(umockdev cameras, MediaMTX stand-in) for the camera and file commands.  A
command whose API method is not on this camsvc yet skips, naming the method.
The CLI also runs once under Debian 12's own python3 and libraries (Twisted
22.4, Autobahn 22.7, treq 22.2), as the Debian package would run it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from camsvc.tools import cli
from tests.support.livestack import LiveStack, stack_available
from tests.support.server import ROOT, ServiceProcess, free_port

DEBIAN_PYTHON = "/usr/bin/python3"
CAMERA_BRIO = "brio"  # umockdev name of CAMERAS[2], the one plugged in by tests


def run_cli(
    *args: str, url: str | None = None, python: str = sys.executable, cwd: Path | None = None, env=None, timeout=60
):
    argv = [python, "-m", "camsvc.tools.cli"]
    if url:
        argv += ["--url", url]
    argv += list(args)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CAMSVC_")}
    environ["PYTHONPATH"] = str(ROOT)
    environ.update(env or {})
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=environ)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = ServiceProcess(tmp_path_factory.mktemp("cli"))
    proc.start()
    yield proc
    proc.stop_cleanly()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    ok, reason = stack_available()
    if not ok:
        pytest.skip(reason)
    live = LiveStack(tmp_path_factory.mktemp("cli-stack")).start()
    yield live
    live.stop()


def need(stack: LiveStack, *methods: str) -> None:
    reason = stack.missing(*methods)
    if reason:
        pytest.skip(reason)


# -- without cameras --------------------------------------------------------------------------


def test_ping_text_and_json(server):
    out = run_cli("ping", url=server.url)
    assert out.returncode == 0, out.stderr
    assert re.fullmatch(r"pong from ws://127\.0\.0\.1:\d+/ws in [\d.]+ ms\n", out.stdout)
    out = run_cli("--json", "ping", url=server.url)
    assert out.returncode == 0
    data = json.loads(out.stdout)
    assert data["result"] == "pong" and data["round_trip_ms"] >= 0


def test_info_and_environment_url(server):
    out = run_cli("info", env={"CAMSVC_URL": server.url})
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("camsvc 0.1.0 (API 1.0)\n")
    assert "authentication: not required" in out.stdout and "CHECK" in out.stdout
    data = json.loads(run_cli("--json", "info", url=server.url).stdout)
    assert data["server"]["name"] == "camsvc" and "status" in data["status"]


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def test_connection_errors_are_one_line_with_exit_3(server):
    port = free_port()
    out = run_cli("ping", url=f"ws://127.0.0.1:{port}/ws")
    assert out.returncode == cli.EXIT_CONNECTION
    assert one_line(out.stderr) == (
        f"camsvc-cli: cannot connect to ws://127.0.0.1:{port}/ws: connection refused"
        " (is camsvc running and listening there?)"
    )
    assert out.stdout == ""
    out = run_cli("ping", url=server.url.replace("/ws", "/nope"))
    assert out.returncode == cli.EXIT_CONNECTION
    assert "no WebSocket at this path" in one_line(out.stderr)
    out = run_cli("ping", url="ws://camsvc-host.invalid:8002/ws")
    assert out.returncode == cli.EXIT_CONNECTION
    assert one_line(out.stderr).endswith("host name not found")


def test_usage_errors_exit_2(server):
    out = run_cli("ping", url=server.http)
    assert out.returncode == cli.EXIT_USAGE
    assert "did you mean ws://127.0.0.1:" in one_line(out.stderr)
    out = run_cli("status", url=server.url)
    assert out.returncode == cli.EXIT_USAGE and "CAM" in out.stderr
    out = run_cli("snapshot", "camera0", "--quality", "101", url=server.url)
    assert out.returncode == cli.EXIT_USAGE and "between 1 and 100" in out.stderr


@pytest.fixture
def bare_server():
    """A JSON-RPC server that knows only ping (an older or different server): -32601 for the rest."""
    import threading

    from websockets.sync.server import serve

    def handler(ws):
        for text in ws:
            request = json.loads(text)
            if request.get("method") == "ping":
                reply = {"jsonrpc": "2.0", "result": "pong", "id": request["id"]}
            else:
                error = {"code": -32601, "message": f"Method not found: {request.get('method')}"}
                reply = {"jsonrpc": "2.0", "error": error, "id": request["id"]}
            ws.send(json.dumps(reply))

    with serve(handler, "127.0.0.1", 0) as ws_server:
        thread = threading.Thread(target=ws_server.serve_forever, daemon=True)
        thread.start()
        yield f"ws://127.0.0.1:{ws_server.socket.getsockname()[1]}/ws"
        ws_server.shutdown()
        thread.join(5)


def test_a_method_the_server_lacks_exits_7(bare_server):
    out = run_cli("list", url=bare_server)
    assert out.returncode == cli.EXIT_UNAVAILABLE
    assert one_line(out.stderr) == (
        "camsvc-cli: this camsvc does not offer that operation (Method not found: get_camera_list; -32601)"
    )
    # A token for a server without authentication is not an error.
    out = run_cli("--token", "abc", "ping", url=bare_server)
    assert out.returncode == 0, out.stderr


def test_exit_codes_for_server_errors():
    from camsvc.tools.client import ConnectionLost, RequestTimeout, error_from_object

    def code(n):
        return cli.exit_code_for(error_from_object({"code": n, "message": "m"}))

    assert [code(n) for n in (-32603, -32002, -32602, -32001, -32003, -32004, -32009, -32005)] == [
        1,
        1,
        2,
        4,
        4,
        5,
        5,
        6,
    ]
    assert [code(n) for n in (-32006, -32007, -32008, -32601)] == [7, 7, 7, 7]
    assert cli.exit_code_for(ConnectionLost("x")) == cli.exit_code_for(RequestTimeout("x")) == 3


class _FailingDownload:
    """A client whose download writes part of the file, then fails as a lost server would."""

    def __init__(self, exc=None):
        self.exc = exc

    async def download(self, url, fh, timeout):
        fh.write(b"partial")
        if self.exc is not None:
            raise self.exc
        fh.write(b" and the rest")
        return 20


def _save(client, target):
    from twisted.internet.defer import Deferred

    outcome = []
    Deferred.fromCoroutine(cli.save_download(client, "http://x/files/a.jpg", str(target), None, 5)).addBoth(
        outcome.append
    )
    return outcome[0]  # the fake never waits: settled at once


def test_a_failed_download_leaves_neither_the_file_nor_a_part(tmp_path):
    from camsvc.tools.client import ConnectionLost, DownloadError

    target = tmp_path / "a.jpg"
    for exc, code in (
        (ConnectionLost("connection to camsvc closed"), 3),
        (DownloadError(404, "File not found", "u"), 5),
    ):
        failure = _save(_FailingDownload(exc), target)
        assert failure.value is exc and cli.exit_code_for(failure.value) == code
        assert list(tmp_path.iterdir()) == []
    assert cli.exit_code_for(DownloadError(401, "no", "u")) == 4
    assert cli.exit_code_for(DownloadError(500, "boom", "u")) == 1
    # an unwritable target: one line, exit 1, nothing created
    failure = _save(_FailingDownload(), tmp_path / "missing-dir" / "a.jpg")
    assert isinstance(failure.value, cli.CliError) and cli.exit_code_for(failure.value) == 1
    assert cli.describe(failure.value).startswith(f"cannot write {tmp_path / 'missing-dir' / 'a.jpg'}: ")
    # and when it works, the file appears whole, under its name only
    assert _save(_FailingDownload(), target) == 20
    assert target.read_bytes() == b"partial and the rest" and [p.name for p in tmp_path.iterdir()] == ["a.jpg"]


def test_server_names_and_values_are_shown_safely():
    assert cli.local_name("../../etc/passwd") == "passwd"
    assert cli.local_name("..") == cli.local_name("") == cli.local_name("a/") == "download"
    assert cli.local_name("c:\\x\\y.mp4") == "y.mp4"
    assert [cli.human_size(v) for v in (None, "12", 12, 2048, 5 * 1024**5)] == ["-", "-", "12 B", "2.0 KB", "5120.0 TB"]
    assert [cli.human_duration(v) for v in (None, 5, 75, 3725)] == ["-", "5.0 s", "1:15", "1:02:05"]
    assert cli.human_time("not a time") == "not a time" and cli.human_time(None) == "-"
    assert cli.describe(RuntimeError()) == "RuntimeError"
    assert cli.exit_code_for(ValueError("x")) == 1
    # capabilities with missing or odd fields still make rows
    rows = cli.format_summary(
        {
            "formats": [
                {"format": "MJPG", "sizes": []},
                {"sizes": [{"width": 640, "height": 480, "fps": ["x", 30], "fps_range": {"min": 1, "max": 30}}]},
            ]
        }
    )
    assert rows == [["MJPG", "", "-", "-"], ["?", "", "640x480", "x, 30 (1-30)"]]
    assert cli.format_summary(None) == cli.format_summary({"formats": None}) == []


def test_exit_codes_are_documented():
    """docs/clients.md, the module docstring and --help list the same codes as the code uses."""
    text = (ROOT / "docs" / "clients.md").read_text()
    section = text.split("### Exit status", 1)[1].split("\n## ", 1)[0]
    documented = {int(m) for m in re.findall(r"^\| (\d+) \|", section, re.M)}
    used = {v for k, v in vars(cli).items() if k.startswith("EXIT_")}
    assert documented == used
    for code in used:
        assert re.search(rf"^\s+{code}\s", cli.__doc__, re.M), code
        assert re.search(rf"(^|\s){code} ", cli.EPILOG), code


def test_interrupting_watch_exits_130_quietly(server):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "camsvc.tools.cli", "--url", server.url, "watch"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stderr.readline().startswith("camsvc-cli: watching ws://")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == cli.EXIT_INTERRUPTED
    assert "Traceback" not in err and out == ""


@pytest.mark.skipif(not os.access(DEBIAN_PYTHON, os.X_OK), reason=f"{DEBIAN_PYTHON} not found")
def test_runs_on_debian_12_libraries(server):
    probe = subprocess.run(
        [DEBIAN_PYTHON, "-c", "import twisted, autobahn, treq; print(twisted.__version__)"],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        pytest.skip("Debian's python3-twisted, python3-autobahn and python3-treq are not installed")
    out = run_cli("ping", url=server.url, python=DEBIAN_PYTHON)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("pong from")
    out = run_cli("--json", "info", url=server.url, python=DEBIAN_PYTHON)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["server"]["name"] == "camsvc"


# -- with cameras ------------------------------------------------------------------------------


def test_list_status_and_caps(stack):
    need(stack, "get_camera_list", "get_camera_status", "get_camera_capabilities")
    stack.wait_cameras(lambda cams: sum(c["status"] == "CONNECTED" for c in cams) >= 2)
    out = run_cli("list", url=stack.url)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["CAMERA", "STATUS", "DEVICE", "NAME", "RESOLUTION", "FPS", "RECORDING"]
    assert any("HD Pro Webcam C920" in line and "CONNECTED" in line for line in lines)
    data = json.loads(run_cli("--json", "list", url=stack.url).stdout)
    camera = next(c for c in data["cameras"] if c["name"] == "HD Pro Webcam C920")
    cam_id = camera["camera_id"]
    out = run_cli("status", cam_id, url=stack.url)
    assert out.returncode == 0, out.stderr
    assert re.search(rf"^camera:\s+{cam_id}$", out.stdout, re.M)
    assert re.search(r"^rtsp stream:\s+rtsp://127\.0\.0\.1:\d+/" + cam_id, out.stdout, re.M)
    out = run_cli("caps", camera["device"], url=stack.url)
    assert out.returncode == 0, out.stderr
    assert "FORMAT" in out.stdout and re.search(r"\d+x\d+", out.stdout)
    out = run_cli("status", "camera99", url=stack.url)
    assert out.returncode == cli.EXIT_NOT_FOUND
    assert "camera99" in one_line(out.stderr) and "(-32004)" in out.stderr


def test_watch_prints_hotplug_notifications(stack):
    need(stack, "get_camera_list")
    stack.wait_cameras(lambda cams: len(cams) >= 2)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    argv = [
        sys.executable,
        "-m",
        "camsvc.tools.cli",
        "--url",
        stack.url,
        "--json",
        "watch",
        "--method",
        "camera_status_update",
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    def next_event(predicate) -> dict:
        while True:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            event = json.loads(line)
            assert event["method"] == "camera_status_update"
            if predicate(event["params"]):
                return event["params"]

    try:
        assert proc.stderr.readline().startswith("camsvc-cli: watching")
        stack.plug(2)
        plugged = next_event(lambda p: p["name"] == "Logitech BRIO" and p["status"] == "CONNECTED")
        stack.unplug(CAMERA_BRIO)
        gone = next_event(lambda p: p["camera_id"] == plugged["camera_id"])
        assert gone["status"] == "DISCONNECTED"
        proc.send_signal(signal.SIGINT)
        proc.wait(10)
        assert proc.returncode == cli.EXIT_INTERRUPTED
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    # The readable form, and --count.
    proc = subprocess.Popen(
        [sys.executable, "-m", "camsvc.tools.cli", "--url", stack.url, "watch", "--count", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stderr.readline().startswith("camsvc-cli: watching")
        stack.plug(2)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        stack.unplug(CAMERA_BRIO)
    assert proc.returncode == 0, err
    assert re.fullmatch(
        rf"\d\d:\d\d:\d\d  camera_status_update     {plugged['camera_id']} CONNECTED /dev/video\d+"
        r' "Logitech BRIO"( \d+x\d+@\d+)?\n',
        out,
    ), out


def test_snapshot_download_and_delete(stack, tmp_path):
    need(stack, "get_camera_list", "take_snapshot", "list_snapshots", "get_snapshot_info", "delete_snapshot")
    cam_id = stack.wait_cameras(lambda cams: any(c["status"] == "CONNECTED" for c in cams))[0]["camera_id"]
    out = run_cli("--json", "snapshot", cam_id, "-o", str(tmp_path / "shot.jpg"), url=stack.url, timeout=90)
    assert out.returncode == 0, out.stderr + stack.logs()
    result = json.loads(out.stdout)
    assert result["status"] == "completed" and result["saved_to"] == str(tmp_path / "shot.jpg")
    data = (tmp_path / "shot.jpg").read_bytes()
    assert data[:3] == b"\xff\xd8\xff" and len(data) == result["file_size"]
    name = result["filename"]
    out = run_cli("files", "snapshots", url=stack.url)
    assert out.returncode == 0 and name in out.stdout
    out = run_cli("download", name, url=stack.url, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / name).read_bytes() == data
    # -o - writes the picture to stdout; --no-download leaves it on the server.
    piped = subprocess.run(
        [sys.executable, "-m", "camsvc.tools.cli", "--url", stack.url, "snapshot", cam_id, "-o", "-"],
        capture_output=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        timeout=90,
    )
    assert piped.returncode == 0 and piped.stdout[:3] == b"\xff\xd8\xff", piped.stderr
    out = run_cli(
        "--json", "snapshot", cam_id, "--no-download", "--format", "png", url=stack.url, cwd=tmp_path, timeout=90
    )
    assert out.returncode == 0, out.stderr
    png = json.loads(out.stdout)
    assert png["filename"].endswith(".png") and "saved_to" not in png
    assert not (tmp_path / png["filename"]).exists()
    listing = json.loads(run_cli("--json", "files", "snapshots", "--camera", cam_id, url=stack.url).stdout)
    assert {name, png["filename"]} <= {f["filename"] for f in listing["files"]}
    out = run_cli("delete", name, url=stack.url)
    assert out.returncode == 0, out.stderr
    out = run_cli("download", name, url=stack.url, cwd=tmp_path)
    assert out.returncode == cli.EXIT_NOT_FOUND, out.stderr


def test_record_and_stop(stack, tmp_path):
    need(stack, "get_camera_list", "start_recording", "stop_recording", "list_recordings", "get_recording_info")
    cam_id = stack.wait_cameras(lambda cams: any(c["status"] == "CONNECTED" for c in cams))[0]["camera_id"]
    stack.wait_streams()
    out = run_cli("record", cam_id, url=stack.url, timeout=90)
    assert out.returncode == 0, out.stderr + stack.logs()
    assert out.stdout.startswith(f"Recording {cam_id} to ")
    again = run_cli("record", cam_id, url=stack.url)
    assert again.returncode == cli.EXIT_STATE, again.stderr
    time.sleep(2.0)
    out = run_cli("--json", "stop", cam_id, url=stack.url, timeout=90)
    assert out.returncode == 0, out.stderr + stack.logs()
    stopped = json.loads(out.stdout)
    assert stopped["status"] == "STOPPED"
    out = run_cli("stop", cam_id, url=stack.url)
    assert out.returncode == cli.EXIT_STATE
    listing = json.loads(run_cli("--json", "files", "recordings", url=stack.url).stdout)
    assert stopped["filename"] in [f["filename"] for f in listing["files"]]
    out = run_cli("download", stopped["filename"], "-o", str(tmp_path / "rec.mp4"), url=stack.url)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "rec.mp4").stat().st_size == stopped["file_size"]
    # --duration with --wait: the server stops it, the CLI reports it.
    out = run_cli("record", cam_id, "--duration", "1.5", "--wait", url=stack.url, timeout=90)
    assert out.returncode == 0, out.stderr + stack.logs()
    lines = out.stdout.splitlines()
    assert lines[0].startswith(f"Recording {cam_id} to ") and lines[0].endswith("stops after 1.5 s")
    assert re.fullmatch(rf"Recording {cam_id}_\S+\.mp4 stopped \([\d.]+ s\)", lines[1]), lines


# -- with authentication -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def auth_stack(tmp_path_factory):
    ok, reason = stack_available()
    if not ok:
        pytest.skip(reason)
    live = LiveStack(tmp_path_factory.mktemp("cli-auth"), config={"auth": {"required": True}}).start()
    yield live
    live.stop()


def test_tokens_roles_and_auth_exit_codes(auth_stack, tmp_path):
    need(auth_stack, "authenticate", "get_camera_list", "take_snapshot")
    url = auth_stack.url
    auth_stack.wait_cameras(lambda cams: any(c["status"] == "CONNECTED" for c in cams))
    out = run_cli("list", url=url)
    assert out.returncode == cli.EXIT_AUTH
    assert one_line(out.stderr) == (
        "camsvc-cli: Authentication required: call 'authenticate' before 'get_camera_list' (-32001)"
    )
    out = run_cli("--token", "not-a-token", "ping", url=url)
    assert out.returncode == cli.EXIT_AUTH
    assert one_line(out.stderr).startswith("camsvc-cli: Authentication failed") and "(-32001)" in out.stderr
    viewer = auth_stack.token("viewer")
    out = run_cli("list", url=url, env={"CAMSVC_TOKEN": viewer})
    assert out.returncode == 0, out.stderr
    cam_id = json.loads(run_cli("--json", "list", url=url, env={"CAMSVC_TOKEN": viewer}).stdout)["cameras"][0][
        "camera_id"
    ]
    out = run_cli("snapshot", cam_id, url=url, env={"CAMSVC_TOKEN": viewer}, cwd=tmp_path)
    assert out.returncode == cli.EXIT_AUTH
    assert "operator" in one_line(out.stderr) and "(-32003)" in out.stderr
    operator = auth_stack.token("operator", kind="jwt")
    out = run_cli("--json", "snapshot", cam_id, "-o", str(tmp_path / "a.jpg"), "--token", operator, url=url, timeout=90)
    assert out.returncode == 0, out.stderr + auth_stack.logs()
    name = json.loads(out.stdout)["filename"]
    assert (tmp_path / "a.jpg").read_bytes()[:3] == b"\xff\xd8\xff"
    # A viewer may download (the CLI authorises the file request with its token).
    out = run_cli("download", name, "-o", str(tmp_path / "b.jpg"), url=url, env={"CAMSVC_TOKEN": viewer})
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "b.jpg").read_bytes() == (tmp_path / "a.jpg").read_bytes()


def test_wss_with_cafile(tmp_path):
    import ssl

    from tests.test_tls import make_certificate

    cert, key = make_certificate(tmp_path)
    proc = ServiceProcess(
        tmp_path, {"server": {"tls": {"cert": cert, "key": key}}}, ssl_context=ssl.create_default_context(cafile=cert)
    ).start()
    try:
        out = run_cli("ping", url=proc.url)
        assert out.returncode == cli.EXIT_CONNECTION
        assert "TLS handshake failed: certificate verify failed" in one_line(out.stderr)
        out = run_cli("ping", "--cafile", cert, url=proc.url)
        assert out.returncode == 0, out.stderr
        out = run_cli("info", url=proc.url, env={"CAMSVC_CAFILE": cert})
        assert out.returncode == 0, out.stderr
        out = run_cli("ping", "--cafile", str(tmp_path / "missing.pem"), url=proc.url)
        assert out.returncode == cli.EXIT_USAGE and "cannot read" in one_line(out.stderr)
    finally:
        proc.stop_cleanly()


def test_controls_set_reset_and_stream(stack):
    need(stack, "get_camera_controls", "set_camera_controls", "get_stream_settings", "set_stream_settings")
    cams = stack.wait_cameras(
        lambda cams: any(c["name"] == "HD Pro Webcam C920" and c["status"] == "CONNECTED" for c in cams)
    )
    cam = next(c for c in cams if c["name"] == "HD Pro Webcam C920")
    cam_id = cam["camera_id"]
    out = run_cli("controls", cam_id, url=stack.url)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["NAME", "TYPE", "VALUE", "RANGE", "DEFAULT", "FLAGS", "STORED"]
    assert re.search(r"^power_line_frequency\s+menu\s+2 \(60 Hz\)\s+0=Disabled, 1=50 Hz, 2=60 Hz", out.stdout, re.M)
    assert re.search(r"^exposure_time_absolute\s+integer\s+250\s+3\.\.2047\s+250\s+inactive", out.stdout, re.M)
    assert "string" not in [line.split()[0] for line in lines[1:]]  # unsupported: only with --all
    out = run_cli("set", cam_id, "brightness=140", "auto_exposure=manual", "exposure_time_absolute=900", url=stack.url)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["brightness=140", "auto_exposure=1", "exposure_time_absolute=900"]
    out = run_cli("set", cam_id, "brightness=999", url=stack.url)
    assert out.returncode != 0 and "brightness: 999 is out of range 0..255" in out.stderr
    out = run_cli("--json", "controls", cam_id, url=stack.url)
    assert json.loads(out.stdout)["stored"] == {"auto_exposure": 1, "brightness": 140, "exposure_time_absolute": 900}
    out = run_cli("reset", cam_id, "brightness", url=stack.url)
    assert out.returncode == 0 and out.stdout.strip() == "brightness=128"
    out = run_cli("stream", cam_id, "--size", "640x480", "--fps", "30", "--encoder", "copy", url=stack.url)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[:2] == [
        f"{cam_id}: MJPG 640x480@30 encoder copy (stored settings)",
        "publisher restarted with the new settings",
    ]
    out = run_cli("stream", cam_id, "--size", "800x600", url=stack.url)
    assert out.returncode == cli.EXIT_USAGE
    assert "does not offer 800x600" in out.stderr
    out = run_cli("stream", cam_id, "--default", url=stack.url)
    assert out.returncode == 0 and "(default)" in out.stdout
