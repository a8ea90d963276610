"""twistd finds and runs the plugin: editable install, wheel, and a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.support.server import ROOT, TWISTD, ServiceProcess
from tests.support.wsclient import RpcClient


def test_twistd_runs_answers_ping_and_stops_cleanly_on_sigterm(tmp_path):
    proc = ServiceProcess(tmp_path).start()
    with RpcClient(proc.url) as client:
        assert client.call("ping") == "pong"
    proc.stop_cleanly()


def _twistd_help(python: str, cwd: Path, env: dict | None = None) -> str:
    out = subprocess.run(
        [python, "-c", TWISTD, "--help"], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_twistd_lists_camsvc_from_the_editable_install(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    site = subprocess.run(
        [sys.executable, "-c", "import camsvc, os; print(os.path.dirname(os.path.dirname(camsvc.__file__)))"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    if site.returncode != 0:
        pytest.skip("camsvc is not installed in this interpreter (run through `make test`)")
    assert "camsvc" in _twistd_help(sys.executable, tmp_path, env)


@pytest.mark.slow
def test_twistd_lists_camsvc_from_a_wheel(tmp_path):
    """Build a wheel, install it (no deps) into a fresh venv that borrows our dependencies, run twistd outside the checkout."""
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = wheels.glob("camsvc-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "twisted/plugins/camsvc_plugin.py" in names
    assert not any(n.startswith("twisted/plugins/__init__") for n in names)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    vpy = str(venv / "bin" / "python")
    site = subprocess.run(
        [vpy, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    deps = subprocess.run(
        [sys.executable, "-c", "import twisted, os; print(os.path.dirname(os.path.dirname(twisted.__file__)))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # Our dependencies, but not our editable checkout (a .pth line adds a path; .pth files in it are not processed).
    Path(site, "deps.pth").write_text(deps + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", vpy, "install", "--no-deps", "-q", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run(
        [vpy, "-c", "import camsvc; print(camsvc.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(site), where
    assert "camsvc" in _twistd_help(vpy, tmp_path, env)
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({"server": {"host": "127.0.0.1", "port": 1}, "auth": {"required": False}}))
    check = subprocess.run(
        [
            vpy,
            "-c",
            "from camsvc.tap import Options; o = Options(); o.parseOptions(['--config', %r]); print(o.config.server.port)"
            % str(config),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.stdout.strip() == "1", check.stderr
