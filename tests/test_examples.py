"""Every example in examples/ runs against a live camsvc, so none can rot.

One :class:`~tests.support.livestack.LiveStack` (umockdev cameras, MediaMTX
stand-in) serves the module; its ``server.allowed_origins`` admits the page
of the browser example, which a plain ``python3 -m http.server`` serves.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.support.browser import browser_available, console_errors, start_browser
from tests.support.livestack import CAMERAS, LiveStack, stack_available
from tests.support.server import ROOT, free_port

EXAMPLES = ROOT / "examples"
DEBIAN_PYTHON = "/usr/bin/python3"


@pytest.fixture(scope="module")
def page_port():
    return free_port()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, page_port):
    ok, reason = stack_available()
    if not ok:
        pytest.skip(reason)
    live = LiveStack(
        tmp_path_factory.mktemp("examples"),
        config={"server": {"allowed_origins": [f"http://127.0.0.1:{page_port}"]}},
    ).start()
    yield live
    live.stop()


def run(argv: list, timeout: float = 60, env: dict | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CAMSVC_")}
    environ.update(env or {})
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout, env=environ)


def pythons() -> list[str]:
    found = [sys.executable]
    if os.access(DEBIAN_PYTHON, os.X_OK):
        probe = subprocess.run([DEBIAN_PYTHON, "-c", "import websockets"], capture_output=True)
        if probe.returncode == 0:
            found.append(DEBIAN_PYTHON)  # python3-websockets 10.4, as on Debian 12
    return found


@pytest.mark.parametrize("python", pythons())
def test_python_example_lists_and_watches(stack, python):
    script = EXAMPLES / "python_client.py"
    if stack.missing("get_camera_list"):
        out = run([python, script, "--url", stack.url])
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines() == ["camsvc 0.1.0, API 1.0", "this camsvc does not list cameras"]
        return
    stack.wait_cameras(lambda cams: sum(c["status"] == "CONNECTED" for c in cams) >= 2)
    proc = subprocess.Popen(
        [python, str(script), "--url", stack.url, "--watch", "15"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = []
        while not lines or not lines[-1].startswith("watching"):
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            lines.append(line.rstrip("\n"))
        assert lines[0] == "camsvc 0.1.0, API 1.0"
        assert any(CAMERAS[0]["card"] in line and "CONNECTED" in line for line in lines)
        stack.plug(2)
        # The first event after the plug may be another camera's (its probe ending late on a
        # loaded machine): every line is an event until the plugged camera's.
        while True:
            event = proc.stdout.readline()
            assert event, proc.stderr.read()  # --watch ended without it
            assert event.startswith("camera_status_update: "), event
            if CAMERAS[2]["card"] in event:
                break
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
        if not stack.missing("get_camera_list"):
            try:
                stack.unplug(CAMERAS[2]["name"])
            except Exception:
                pass


def test_twisted_example(stack):
    env = {"PYTHONPATH": str(ROOT)}
    script = EXAMPLES / "twisted_client.py"
    if stack.missing("get_camera_list"):
        out = run([sys.executable, script, "--url", stack.url, "--events", "0"], env=env)
        assert out.returncode == 0, out.stderr
        assert "no camera list: Method not found: get_camera_list (-32601)" in out.stdout
        return
    # Quiet first: with --events 1 the example ends at the first camera change, which must
    # be the plug's, not a listed camera's late probe result.
    stack.wait_cameras(
        lambda cams: (
            sum(c["status"] == "CONNECTED" for c in cams) >= 2
            and all(c.get("mode") for c in cams if c["status"] == "CONNECTED")  # probed: no change to come
        ),
        timeout=60,
    )
    proc = subprocess.Popen(
        [sys.executable, str(script), "--url", stack.url, "--events", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, **env),
    )
    try:
        while True:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            if line.startswith("waiting for"):
                break
        stack.plug(2)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert f"is now CONNECTED ({CAMERAS[2]['card']})" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        stack.unplug(CAMERAS[2]["name"])


@pytest.mark.skipif(not browser_available()[0], reason=browser_available()[1])
def test_browser_example(stack, page_port):
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(page_port), "--bind", "127.0.0.1", "--directory", str(EXAMPLES)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    browser = start_browser(1000, 800)
    driver = browser.driver
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                driver.get(f"http://127.0.0.1:{page_port}/browser_client.html?url={stack.url}")
                if driver.find_elements("id", "state"):
                    break
            except Exception:
                pass
            assert time.monotonic() < deadline, "the example page was not served"
            time.sleep(0.2)

        def state() -> str:
            return driver.find_element("id", "state").text

        deadline = time.monotonic() + 15
        while not state().startswith("Connected to camsvc 0.1.0"):
            assert time.monotonic() < deadline, f"page says {state()!r}; console {console_errors(driver)}"
            time.sleep(0.1)
        while "ping -> pong" not in driver.find_element("id", "log").text:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        if not stack.missing("get_camera_list"):
            rows = driver.find_elements("css selector", "#cameras tr")
            assert any(CAMERAS[0]["card"] in row.text for row in rows)
        assert console_errors(driver) == []
    finally:
        browser.quit()
        server.terminate()
        server.wait()


def test_health_script(stack):
    script = EXAMPLES / "health.sh"
    deadline = time.monotonic() + 20
    while True:
        out = run([script, stack.http])
        if out.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "live:     alive"
    assert lines[1] == "ready:    ready (HTTP 200)"
    assert "  listening: ok" in lines
    assert any(line.startswith("api:      ") and "methods" in line for line in lines)
    assert any(line.startswith("metrics:  ") for line in lines)
    unreachable = run([script, f"http://127.0.0.1:{free_port()}"])
    assert unreachable.returncode == 2
    assert unreachable.stderr.startswith("camsvc at http://127.0.0.1:") and "unreachable" in unreachable.stderr


def test_health_script_reports_not_ready(stack):
    """Last in the module: it stops the MediaMTX stand-in."""
    if stack.missing("get_streams"):
        pytest.skip(stack.missing("get_streams") + " (MediaMTX readiness)")
    stack.mediamtx.stop()
    deadline = time.monotonic() + 30
    while True:
        out = run([EXAMPLES / "health.sh", stack.http])
        if out.returncode == 1 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert out.returncode == 1, out.stdout
    assert "ready:    not ready (HTTP 503)" in out.stdout
    assert "FAILING" in out.stdout


def test_examples_are_all_tested():
    tested = {"python_client.py", "twisted_client.py", "browser_client.html", "health.sh"}
    present = {p.name for p in EXAMPLES.iterdir() if p.is_file() and p.name != "README.md"}
    assert present <= tested, f"untested examples: {present - tested}"


def test_the_plain_examples_are_independent_of_camsvc():
    for name in ("python_client.py", "browser_client.html", "health.sh"):
        text = (EXAMPLES / name).read_text()
        assert "from camsvc" not in text and "import camsvc" not in text, name
    for name in ("python_client.py", "twisted_client.py", "health.sh"):
        assert (EXAMPLES / name).stat().st_mode & 0o111, f"{name} is not executable"
