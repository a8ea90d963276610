"""Venv-side driver of the real RTSP test source (tests/support/rtsp_source.py).

:class:`RTSPSource` starts the GStreamer helper under Debian's ``/usr/bin/python3``,
waits for its ``READY <port>`` line and stops it (stdin closed, then SIGTERM, then
SIGKILL).  :func:`rtsp_source_available` says whether the Debian packages are there
(``(ok, reason)`` for ``pytest.skip``).  Blocking on purpose: use it from fixtures.
"""

from __future__ import annotations

import os
import select
import subprocess
import time

HELPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rtsp_source.py")
SYSTEM_PYTHON = "/usr/bin/python3"

_CHECK = (
    "import gi; gi.require_version('Gst','1.0'); gi.require_version('GstRtspServer','1.0');"
    "from gi.repository import Gst, GstRtspServer; Gst.init(None);"
    "missing=[e for e in ('videotestsrc','x264enc','rtph264pay','videoconvert') if not Gst.ElementFactory.find(e)];"
    "print(','.join(missing))"
)


def rtsp_source_available() -> tuple[bool, str]:
    if not os.path.exists(SYSTEM_PYTHON):
        return False, f"{SYSTEM_PYTHON} not found"
    try:
        out = subprocess.run([SYSTEM_PYTHON, "-I", "-c", _CHECK], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"cannot check GStreamer: {exc}"
    if out.returncode != 0:
        return False, "gst-rtsp-server is not installed (apt-get install gir1.2-gst-rtsp-server-1.0 python3-gi)"
    if out.stdout.strip():
        return False, f"GStreamer elements missing: {out.stdout.strip()} (gstreamer1.0-plugins-ugly/-good/-base)"
    return True, ""


class RTSPSource:
    """A running gst-rtsp-server serving ``paths`` at ``rtsp://127.0.0.1:<port>/<path>``."""

    def __init__(self, paths: tuple[str, ...] = ("camera0",), size: str = "320x240", fps: int = 15) -> None:
        self.paths = paths
        self.size = size
        self.fps = fps
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None

    def url(self, path: str) -> str:
        return f"rtsp://127.0.0.1:{self.port}/{path}"

    def start(self, timeout: float = 20.0) -> RTSPSource:
        argv = [SYSTEM_PYTHON, "-I", HELPER, "--port", "0", "--size", self.size, "--fps", str(self.fps)]
        for path in self.paths:
            argv += ["--path", path]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        line = b""
        while time.monotonic() < deadline and not line.endswith(b"\n"):
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 256)
                if not chunk:
                    break
                line += chunk
        if not line.startswith(b"READY "):
            err = self.stop()
            raise RuntimeError(f"rtsp_source did not start: {line!r} {err}")
        self.port = int(line.split()[1])
        return self

    def stop(self) -> str:
        if self.proc is None:
            return ""
        proc, self.proc = self.proc, None
        try:
            proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        err = proc.stderr.read().decode("utf-8", "replace") if proc.stderr else ""
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()
        return err

    def __enter__(self) -> RTSPSource:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
