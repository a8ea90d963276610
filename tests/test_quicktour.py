"""The README's quick tour, step by step: what `make run` runs, then the tour's commands
exactly as written (only the port is this test's), against that supervisor with the
MediaMTX stand-in playing MediaMTX."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.support.devrun import alive, children, hermetic_path, standin_mediamtx, wait_for
from tests.support.server import ROOT, free_port

README = ROOT / "README.md"


def section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def sh_blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", text, re.S)


def test_make_run_runs_the_supervisor_on_the_dev_config():
    (block,) = sh_blocks(section("The two commands"))
    assert block.startswith("make run ")
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    out = subprocess.run(
        ["make", "-n", "--no-print-directory", "run"], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().splitlines()[-1] == ".venv/bin/python tools/devrun.py --config conf/dev.yaml"


def test_quick_tour(tmp_path):
    (tour,) = sh_blocks(section("Quick tour"))
    port, api_port = free_port(), free_port()
    commands = tour.replace("8002", str(port))
    # The venv the tour names is the one running this test (.venv, or .venv-deb12 in that stage).
    commands = commands.replace(".venv/bin/", f"{Path(sys.executable).parent}/")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMSVC_")}
    env.update(
        {
            "PATH": hermetic_path(tmp_path) + os.pathsep + "/usr/bin:/bin",
            "PYTHONPATH": str(ROOT),
            "MEDIAMTX": str(standin_mediamtx(tmp_path)),
            # conf/dev.yaml as `make run` uses it, on this test's ports and with its state in tmp.
            "CAMSVC_SERVER__PORT": str(port),
            "CAMSVC_MEDIAMTX__API_URL": f"http://127.0.0.1:{api_port}",
            "CAMSVC_STORAGE__RECORDINGS_DIR": str(tmp_path / "recordings"),
            "CAMSVC_STORAGE__SNAPSHOTS_DIR": str(tmp_path / "snapshots"),
            "CAMSVC_STORAGE__STATE_DIR": str(tmp_path / "state"),
            "CAMSVC_AUTH__JWT_SECRET_FILE": str(tmp_path / "state" / "jwt_secret"),
            "CAMSVC_AUTH__API_KEYS_FILE": str(tmp_path / "state" / "api_keys.json"),
            "CAMSVC_URL": f"ws://127.0.0.1:{port}/ws",  # camsvc-cli's default is 8002
        }
    )
    log = open(tmp_path / "run.log", "w+")
    run = subprocess.Popen(
        [sys.executable, "tools/devrun.py", "--config", "conf/dev.yaml", "--cache", str(tmp_path / "cache")],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        def ready():
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=2) as r:
                return r.status == 200

        wait_for(ready, what="make run's camsvc ready with MediaMTX")
        tour_run = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", commands],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        kids = children(run.pid)
    finally:
        run.send_signal(signal.SIGINT)  # Ctrl-C
        rc = run.wait(30)
    log.seek(0)
    assert tour_run.returncode == 0, f"{tour_run.stdout}\n{tour_run.stderr}\n{log.read()[-3000:]}"
    out = tour_run.stdout
    assert out.startswith('{"status":"ready"'), out
    assert '"mediamtx":{"ok":true' in out.replace(" ", "")
    assert '{"jsonrpc":"2.0","result":"pong","id":1}' in out
    assert '"id":2' in out and '"result"' in out.split('"id":1}', 1)[1]
    assert rc == 0 and len(kids) == 2 and not any(alive(k) for k in kids)
