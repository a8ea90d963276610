"""The MediaMTX stand-in as a separate process (test support).

:class:`StandInProcess` runs ``python -m tests.support.mediamtx`` (a real
process on its own ports, as MediaMTX would be next to a camsvc under twistd),
waits for its ``READY <port>`` line, and can be killed and started again on
the same port (a MediaMTX restart: API-made paths forgotten, new ``started``).
Its log is kept; :meth:`StandInProcess.spec_violations` lists the requests it
reported as not allowed by MediaMTX's OpenAPI document.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.server import ROOT, free_port


class StandInProcess:
    """``url`` is the control API base; ``port``/``rtsp_port`` stay the same across restarts."""

    def __init__(self, tmp: Path, *extra_args: str) -> None:
        self.tmp = Path(tmp)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.rtsp_port = free_port()
        self.extra_args = extra_args
        self.log_path = self.tmp / "mediamtx-standin.log"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def camsvc_mediamtx(self) -> dict:
        """camsvc's ``mediamtx`` section for this stand-in, with the quick intervals the process tests use."""
        return {
            "enabled": True,
            "api_url": self.url,
            "rtsp_port": self.rtsp_port,
            "health_interval": 0.2,
            "reconcile_interval": 2,
            "request_timeout": 2,
        }

    def start(self, timeout: float = 20.0) -> "StandInProcess":
        """Start and block until it is listening."""
        self.spawn()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.poll_ready():
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.005)
        self.stop()
        raise RuntimeError(f"stand-in did not start:\n{self.log()}")

    def spawn(self) -> None:
        """Start without waiting; :meth:`poll_ready` says when it listens (for reactor code)."""
        env = dict(os.environ)
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-u",
                "-m",
                "tests.support.mediamtx",
                "--port",
                str(self.port),
                "--rtsp-port",
                str(self.rtsp_port),
                "--record-root",
                str(self.tmp),
                *self.extra_args,
            ],
            cwd=str(ROOT),
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
        )
        log.close()
        os.set_blocking(self.proc.stdout.fileno(), False)
        self._out = b""

    def poll_ready(self) -> bool:
        """True once the process printed its READY line (never blocks)."""
        if self.proc is None:
            return False
        try:
            chunk = os.read(self.proc.stdout.fileno(), 4096)
        except BlockingIOError:
            chunk = b""
        self._out += chunk
        if b"READY" in self._out:
            if not getattr(self, "_counted", False):
                self._counted = True
                self.starts += 1
            return True
        return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.proc = None
        self._counted = False

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def spec_violations(self) -> list[str]:
        return [line for line in self.log().splitlines() if "request not allowed by the MediaMTX spec" in line]
