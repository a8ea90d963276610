"""A whole camsvc for client tests: umockdev cameras, the MediaMTX stand-in, camsvc under twistd.

:class:`LiveStack` owns three processes and their clean-up:

* a umockdev test bed (:class:`tests.support.umockdev.Testbed`) with USB
  cameras that can be plugged and unplugged while camsvc runs;
* the MediaMTX stand-in (``python -m tests.support.mediamtx``) on free ports,
  its recordings under the stack's directory;
* camsvc (:class:`tests.support.server.ServiceProcess`) started with the
  umockdev preload (``Testbed.env()``), discovery on, pointed at the stand-in.

Features land on main one by one; :meth:`LiveStack.missing` names the API
methods a test needs that this camsvc does not offer yet (from
``get_server_info``), so a test can skip with a precise reason and turn on
by itself once they land.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from camsvc.testing import webcam_controls
from tests.support.server import PROBE_TIMEOUT, ROOT, ServiceProcess, merge
from tests.support.umockdev import Testbed, umockdev_available
from tests.support.wsclient import RpcClient

#: Cameras that look like real webcams in lists and screenshots (the C920 has V4L2
#: controls: camsvc.testing.webcam_controls(), answered by the test bed).
CAMERAS = (
    {
        "name": "c920",
        "card": "HD Pro Webcam C920",
        "vendor": "046d",
        "product": "082d",
        "serial": "8A1B2C3D",
        "controls": webcam_controls(),
    },
    {"name": "lifecam", "card": "Microsoft LifeCam HD-3000", "vendor": "045e", "product": "0810", "serial": "LC3000X7"},
    {"name": "brio", "card": "Logitech BRIO", "vendor": "046d", "product": "085e", "serial": "B4F9E2A0"},
)


#: ffmpeg input for snapshots "from the device": umockdev emulates a camera's ioctls but
#: delivers no frames, so the picture is ffmpeg's test pattern at the camera's default
#: size; everything after the input (ffmpeg on the reactor, the file, its download) is real.
SNAPSHOT_INPUT = "-f lavfi -i testsrc2=size={width}x{height}:rate=30"


def snapshot_config() -> dict:
    """The snapshots section for the stack (empty before camsvc has ``snapshots.device_input``)."""
    import dataclasses

    from camsvc.config import SnapshotsConfig

    names = {f.name for f in dataclasses.fields(SnapshotsConfig)}
    return {"snapshots": {"device_input": SNAPSHOT_INPUT}} if "device_input" in names else {}


def admin(config_path: Path, *args: str) -> str:
    """Run ``camsvc-admin --config CONFIG ARGS``; return the first line it prints (a key or a JWT)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run(
        [sys.executable, "-m", "camsvc.tools.admin", "--config", str(config_path), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    if out.returncode != 0:
        raise RuntimeError(f"camsvc-admin {' '.join(args)} failed: {out.stderr}")
    return out.stdout.splitlines()[0].strip()


def stack_available() -> tuple[bool, str]:
    return umockdev_available()


class MediaMTXProcess:
    """The stand-in as a subprocess: ``api_url``, ``rtsp_port``; ``stop()``."""

    def __init__(self, record_root: Path, log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "ab")
        env = dict(os.environ)
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.mediamtx",
                "--port",
                "0",
                "--rtsp-port",
                "0",
                "--record-root",
                str(record_root),
            ],
            cwd=str(ROOT),
            env=env,
            stdout=subprocess.PIPE,
            stderr=self._log,
        )
        line = self._ready_line(30.0)
        fields = dict(part.split("=", 1) for part in line.split()[2:] if "=" in part)
        self.api_port = int(line.split()[1])
        self.rtsp_port = int(fields["rtsp"])
        self.api_url = f"http://127.0.0.1:{self.api_port}"

    def _ready_line(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        buf = b""
        fd = self.proc.stdout.fileno()
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"MediaMTX stand-in did not start:\n{self.log()}")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    continue
                buf += chunk
        line = buf.split(b"\n", 1)[0].decode()
        if not line.startswith("READY "):
            self.stop()
            raise RuntimeError(f"MediaMTX stand-in said {line!r}:\n{self.log()}")
        return line

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self._log.close()


class LiveStack:
    """umockdev cameras + MediaMTX stand-in + camsvc; ``url``/``http`` as ServiceProcess."""

    def __init__(self, tmp: Path, *, cameras: int = 2, config: dict | None = None) -> None:
        self.tmp = Path(tmp)
        self.initial = CAMERAS[:cameras]
        self.extra_config = config or {}
        self.bed: Testbed | None = None
        self.mediamtx: MediaMTXProcess | None = None
        self.camsvc: ServiceProcess | None = None
        self._methods: set[str] | None = None
        self._admin_key: str | None = None

    def start(self) -> LiveStack:
        try:
            self.bed = Testbed()
            for spec in self.initial:
                self.bed.add_camera(**spec)
            (self.tmp / "mediamtx").mkdir(parents=True, exist_ok=True)
            self.mediamtx = MediaMTXProcess(self.tmp / "mediamtx", self.tmp / "mediamtx.log")
            config = merge(
                {
                    **snapshot_config(),
                    "discovery": {"enabled": True, "probe_timeout": PROBE_TIMEOUT},
                    "mediamtx": {
                        "enabled": True,
                        "api_url": self.mediamtx.api_url,
                        "rtsp_port": self.mediamtx.rtsp_port,
                    },
                },
                self.extra_config,
            )
            self.camsvc = ServiceProcess(self.tmp / "camsvc", config, env=self.bed.env()).start()
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def url(self) -> str:
        return self.camsvc.url

    @property
    def http(self) -> str:
        return self.camsvc.http

    def methods(self) -> set[str]:
        if self._methods is None:
            with RpcClient(self.url) as client:
                if self.auth_required:
                    client.call("authenticate", {"auth_token": self.admin_key})
                self._methods = set(client.call("get_server_info")["methods"])
        return self._methods

    @property
    def auth_required(self) -> bool:
        return bool(self.camsvc.config["auth"]["required"])

    @property
    def admin_key(self) -> str:
        """An admin API key for the test's own calls (made on first use)."""
        if self._admin_key is None:
            self._admin_key = self.token("admin")
        return self._admin_key

    def missing(self, *methods: str) -> str | None:
        """A skip reason naming the methods camsvc does not offer (-32601), or None."""
        absent = [m for m in methods if m not in self.methods()]
        if not absent:
            return None
        return f"not on this camsvc yet (-32601 Method not found): {', '.join(absent)}"

    def token(self, role: str, kind: str = "key") -> str:
        """A new API key (``kind="key"``) or JWT (``"jwt"``) for ``role``, made with camsvc-admin."""
        if kind == "key":
            return admin(self.camsvc.config_path, "key", "create", "--role", role, "--name", f"test {role}")
        return admin(self.camsvc.config_path, "token", "--role", role, "--subject", f"test-{role}")

    def plug(self, index: int = 2, *, wait: bool = True) -> dict:
        """Plug in camera ``CAMERAS[index]``; returns umockdev's reply (devnode, ...).

        With ``wait``, returns once camsvc lists it as CONNECTED: a plug or unplug
        right after the opposite one would otherwise fall inside discovery's
        debounce window and cancel out.
        """
        reply = self.bed.add_camera(**CAMERAS[index])
        if wait and not self.missing("get_camera_list"):
            card = CAMERAS[index]["card"]
            self.wait_cameras(lambda cams: any(c["name"] == card and c["status"] == "CONNECTED" for c in cams))
        return reply

    def unplug(self, name: str, *, wait: bool = True) -> Any:
        """Unplug the umockdev camera ``name``; with ``wait``, until camsvc shows it disconnected."""
        reply = self.bed.remove(name)
        if wait and not self.missing("get_camera_list"):
            card = next(c["card"] for c in CAMERAS if c["name"] == name)
            self.wait_cameras(lambda cams: not any(c["name"] == card and c["status"] == "CONNECTED" for c in cams))
        return reply

    def wait_cameras(self, predicate, timeout: float = 15.0) -> list[dict]:
        """Poll get_camera_list until ``predicate(cameras)`` holds; return the cameras."""
        deadline = time.monotonic() + timeout
        with RpcClient(self.url) as client:
            if self.auth_required:
                client.call("authenticate", {"auth_token": self.admin_key})
            while True:
                cameras = client.call("get_camera_list")["cameras"]
                if predicate(cameras):
                    return cameras
                if time.monotonic() > deadline:
                    raise AssertionError(f"camera list never matched: {cameras}")
                time.sleep(0.1)

    def wait_streams(self, timeout: float = 15.0) -> None:
        """Wait until every connected camera has its MediaMTX path (recording needs it)."""
        deadline = time.monotonic() + timeout
        with RpcClient(self.url) as client:
            if self.auth_required:
                client.call("authenticate", {"auth_token": self.admin_key})
            while True:
                cameras = {
                    c["camera_id"] for c in client.call("get_camera_list")["cameras"] if c["status"] == "CONNECTED"
                }
                paths = {s.get("camera_id") for s in client.call("get_streams")["streams"]}
                if cameras and cameras <= paths:
                    return
                if time.monotonic() > deadline:
                    raise AssertionError(f"MediaMTX paths {paths} never covered the cameras {cameras}")
                time.sleep(0.1)

    def logs(self) -> str:
        parts = []
        if self.camsvc is not None:
            parts.append("--- camsvc ---\n" + self.camsvc.log()[-8000:])
        if self.mediamtx is not None:
            parts.append("--- mediamtx stand-in ---\n" + self.mediamtx.log()[-4000:])
        return "\n".join(parts)

    def stop(self) -> None:
        try:
            if self.camsvc is not None:
                self.camsvc.stop()
        finally:
            try:
                if self.mediamtx is not None:
                    self.mediamtx.stop()
            finally:
                if self.bed is not None:
                    self.bed.close()

    def __enter__(self) -> LiveStack:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
