"""Run camsvc as a real ``twistd -n camsvc`` subprocess for tests.

:class:`ServiceProcess` writes a temporary YAML config (merged over a test
base: loopback, a free port, no auth, state in a temp dir), starts twistd
with the venv's interpreter, waits for ``/health/live``, and stops it with
SIGTERM, returning the exit status.  Extra environment (e.g. the umockdev
preload) can be passed in.
"""

from __future__ import annotations

import copy
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]

# discovery.probe_timeout for services under test that probe cameras: the probe is a Python
# child process, about 0.1 s on an idle machine but seconds each under CPU load (3.7 s seen
# under stress-ng --cpu 2, probes one after another), so the default 5 s put cameras in ERROR.
PROBE_TIMEOUT = 60.0


TWISTD = "from twisted.scripts.twistd import run; run()"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def base_config(tmp: Path, port: int) -> dict:
    return {
        "server": {"host": "127.0.0.1", "port": port},
        "auth": {
            "required": False,
            "jwt_secret_file": str(tmp / "state" / "jwt_secret"),
            "api_keys_file": str(tmp / "state" / "api_keys.json"),
        },
        "storage": {
            "recordings_dir": str(tmp / "recordings"),
            "snapshots_dir": str(tmp / "snapshots"),
            "state_dir": str(tmp / "state"),
        },
        "discovery": {"enabled": False},
        "mediamtx": {"enabled": False},
        "logging": {"level": "debug"},
    }


class ServiceProcess:
    """A camsvc under twistd.  ``url`` is its ws:// address, ``http`` its http:// base.

    With ``server.tls`` configured they are wss:// and https://, and ``ssl_context``
    (an ``ssl.SSLContext`` trusting the test certificate) is used for HTTP requests.
    """

    def __init__(
        self,
        tmp: Path,
        config: dict | None = None,
        env: dict | None = None,
        *,
        wait_ready: bool = False,
        ssl_context: Any = None,
        nofile: int | None = None,
        new_session: bool = False,
        launcher: list[str] | None = None,
    ):
        #: What runs twistd (default: this interpreter with twistd's ``run()``); a test may
        #: give a module that wraps it (faults/twistd_with_cameras.py).
        self.launcher = launcher or [sys.executable, "-c", TWISTD]
        #: Start twistd in a session (and process group) of its own, as systemd starts a unit:
        #: :meth:`kill_group` then kills camsvc and its children at once (KillMode=control-group).
        self.new_session = new_session
        self.ssl_context = ssl_context
        #: RLIMIT_NOFILE for the process (both soft and hard), as systemd's LimitNOFILE would set it.
        self.nofile = nofile
        self.tmp = Path(tmp)
        self.port = free_port()
        for sub in ("state", "recordings", "snapshots"):
            (self.tmp / sub).mkdir(parents=True, exist_ok=True)
        self.config = merge(base_config(self.tmp, self.port), config or {})
        self.port = self.config["server"]["port"]
        self.config_path = self.tmp / "camsvc.yaml"
        self.config_path.write_text(yaml.safe_dump(self.config))
        self.log_path = self.tmp / "camsvc.log"
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.env["PYTHONPATH"] = str(ROOT) + os.pathsep + self.env.get("PYTHONPATH", "")
        self.proc: subprocess.Popen | None = None
        self.wait_ready = wait_ready

    @property
    def url(self) -> str:
        return f"{'wss' if self.tls else 'ws'}://127.0.0.1:{self.port}/ws"

    @property
    def tls(self) -> bool:
        return bool(self.config["server"].get("tls", {}).get("cert"))

    @property
    def http(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def _limits(self) -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))

    def start(self, timeout: float = 20.0) -> "ServiceProcess":
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [*self.launcher, "-n", "--pidfile=", "camsvc", "--config", str(self.config_path)],
            cwd=str(self.tmp),
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=self._limits if self.nofile else None,
            start_new_session=self.new_session,
        )
        path = "/health/ready" if self.wait_ready else "/health/live"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"camsvc exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.http + path, timeout=1, context=self.ssl_context) as resp:
                    if resp.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(
            f"camsvc did not become {'ready' if self.wait_ready else 'live'} in {timeout}s:\n{self.log()}"
        )

    def kill_group(self, sig: int = signal.SIGKILL) -> int | None:
        """Signal camsvc's whole process group (``new_session``), as systemd kills a unit's cgroup."""
        assert self.new_session and self.proc is not None
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass
        code = self.proc.wait(20)
        self._log.close()
        return code

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def get(self, path: str, headers: dict | None = None) -> tuple[int, bytes, Any]:
        req = urllib.request.Request(self.http + path, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10, context=self.ssl_context) as resp:
                return resp.status, resp.read(), resp.headers
        except urllib.error.HTTPError as err:
            return err.code, err.read(), err.headers

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.new_session:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # children left behind, as systemd would
            except (ProcessLookupError, PermissionError):
                pass
        self._log.close()
        return self.proc.returncode

    def stop_cleanly(self) -> None:
        """Stop with SIGTERM and assert a clean shutdown (exit status 0, see camsvc.ops.lifecycle)."""
        code = self.stop()
        text = self.log()
        assert code == 0, f"exit status {code}:\n{text}"
        assert "Server Shut Down." in text, text
        assert "Unhandled error" not in text and "Traceback" not in text, text

    def __enter__(self) -> "ServiceProcess":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
