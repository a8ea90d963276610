"""Snapshots: one still image of a camera, taken by ffmpeg, stored under snapshots_dir.

This module owns ``take_snapshot``'s work.  The frame comes

* from the live stream (``rtsp://127.0.0.1:<rtsp_port>/<camera_id>``) when the
  camera's MediaMTX path is ready: the camera is already streaming, so opening the
  device again would fail (or steal it);
* otherwise straight from the device (the stable ``/dev/v4l/by-id`` link, the camera's
  default input format and size), which needs no MediaMTX and no encoder start-up;
* and from the stream after all when the device turns out to be busy (ffmpeg's v4l2
  input reports EBUSY while an on-demand publisher holds it).

ffmpeg runs through the injected reactor (:class:`~camsvc.media.process.ProcessGroup`)
with ``snapshots.timeout`` for the whole attempt; the image arrives on its stdout and
is written by camsvc with O_EXCL, so a clash never overwrites a file and no partial
file is ever visible.  Snapshots of one camera are taken one at a time.

JPEG quality: ffmpeg's ``mjpeg`` encoder takes ``-q:v`` from 2 (best) to 31 (worst),
a linear quantiser scale.  API quality 1..100 (higher is better) maps linearly and
monotonically onto it: ``q = round(31 - (quality - 1) * 29 / 99)``, so 100 -> 2,
85 -> 6, 50 -> 17, 1 -> 31.  PNG is lossless: quality does not apply.
"""

from __future__ import annotations

import errno
import shlex
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import DeferredLock
from twisted.logger import Logger

from camsvc.cameras.registry import CONNECTED, Camera
from camsvc.common.errors import (
    CameraNotFound,
    InsufficientStorage,
    InternalError,
    InvalidState,
    MediaMTXUnavailable,
    RateLimitExceeded,
)
from camsvc.media.files import FORMAT_EXTENSIONS, SNAPSHOTS, FileStore, sanitise_name, stamp
from camsvc.media.process import NotInstalled, OutputTooLarge, ProcessError, ProcessGroup, ProcessTimeout

log = Logger()

#: V4L2 fourcc -> ffmpeg's name for the v4l2 ``-input_format`` option.
V4L2_INPUT_FORMATS = {
    "MJPG": "mjpeg",
    "JPEG": "mjpeg",
    "H264": "h264",
    "YUYV": "yuyv422",
    "UYVY": "uyvy422",
    "YVYU": "yvyu422",
    "NV12": "nv12",
    "NV21": "nv21",
    "YU12": "yuv420p",
    "YV12": "yuv420p",
    "RGB3": "rgb24",
    "BGR3": "bgr24",
    "GREY": "gray",
    "Y16 ": "gray16le",
}

MAGIC = {"jpg": b"\xff\xd8\xff", "png": b"\x89PNG\r\n\x1a\n"}
_BUSY_MARKERS = ("Device or resource busy",)
_GONE_MARKERS = ("No such file or directory", "No such device")
_REFUSED_MARKERS = ("Connection refused",)


def jpeg_qscale(quality: int) -> int:
    """API quality 1..100 (higher is better) -> ffmpeg ``-q:v`` 31..2 (lower is better)."""
    quality = min(100, max(1, int(quality)))
    return round(31 - (quality - 1) * 29 / 99)


def input_format(fourcc: str) -> str:
    return V4L2_INPUT_FORMATS.get(fourcc, fourcc.strip().lower())


class SnapshotFailed(InternalError):
    """The snapshot could not be taken; the message says why (sent to the client)."""


class Snapshotter:
    """Takes snapshots.

    Collaborators: ``processes`` (:class:`ProcessGroup`), ``store`` (:class:`FileStore`),
    ``clock``, ``cameras`` (the registry, re-read after a failure), ``config`` (the
    whole :class:`~camsvc.config.Config`: ``snapshots`` and ``mediamtx.rtsp_port``),
    ``path_ready(camera_id) -> bool`` (is the camera's MediaMTX path ready?),
    ``require_space(kind)`` (raises -32007 when storage is critical), ``observe(seconds,
    source, ok)`` (metrics).
    """

    def __init__(
        self,
        *,
        processes: ProcessGroup,
        store: FileStore,
        clock: Any,
        cameras: Any,
        config: Any,
        path_ready: Callable[[str], bool],
        require_space: Callable[[str], None],
        observe: Callable[[float, str, bool], None] | None = None,
    ) -> None:
        self.processes = processes
        self.store = store
        self.clock = clock
        self.cameras = cameras
        self.config = config
        self.path_ready = path_ready
        self.require_space = require_space
        self.observe = observe or (lambda seconds, source, ok: None)
        self._locks: dict[str, DeferredLock] = {}
        self.taken = 0

    # -- commands ------------------------------------------------------------------

    def stream_url(self, camera: Camera) -> str:
        return f"rtsp://127.0.0.1:{self.config.mediamtx.rtsp_port}/{camera.camera_id}"

    def output_args(self, fmt: str, quality: int) -> list[str]:
        args = ["-frames:v", "1"]
        if fmt == "jpg":
            args += ["-c:v", "mjpeg", "-q:v", str(jpeg_qscale(quality))]
        else:
            args += ["-c:v", "png"]
        return args + ["-f", "image2pipe", "-"]

    def command(self, source: str, camera: Camera, fmt: str, quality: int) -> list[str]:
        cfg = self.config.snapshots
        if source == "stream":
            template = cfg.stream_input
            values = {"rtsp_url": self.stream_url(camera)}
        else:
            default = camera.default or {}
            template = cfg.device_input
            values = {
                "device": camera.stable_device,
                "input_format": input_format(str(default.get("format", ""))),
                "width": default.get("width", ""),
                "height": default.get("height", ""),
                "fps": default.get("fps", ""),
            }
        args = [part.format(**values) for part in shlex.split(template)]
        argv = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", *args]
        if source == "device" and cfg.device_skip_frames > 0:
            argv += ["-vf", f"select=gte(n\\,{cfg.device_skip_frames})"]
        return argv + self.output_args(fmt, quality)

    # -- taking one ------------------------------------------------------------------

    async def take(self, camera: Camera, *, fmt: str | None, quality: int | None, filename: str | None) -> dict:
        """Take one snapshot; return ``{camera_id, filename, file_size, timestamp, source}``.

        Raises -32602 for a bad filename, -32004 when the camera is gone, -32005 when it
        cannot be read (ERROR), -32007 when storage is critical, -32006 when the stream
        is needed and MediaMTX is not there, SnapshotFailed (-32603, with the reason)
        for timeouts and ffmpeg errors.
        """
        stem = None
        if filename is not None:
            stem, fmt = sanitise_name(filename, fmt)
        fmt = fmt or self.config.snapshots.format
        quality = self.config.snapshots.quality if quality is None else quality
        self._check_camera(camera)
        self.require_space(SNAPSHOTS)
        lock = self._locks.setdefault(camera.camera_id, DeferredLock())
        max_queued = self.config.snapshots.max_queued
        if lock.locked and len(lock.waiting) >= max_queued:
            raise RateLimitExceeded(
                f"Camera {camera.camera_id} is busy: {len(lock.waiting)} snapshots are already waiting "
                f"(snapshots.max_queued {max_queued}); try again when one has finished",
                data={"reason": "busy", "queued": len(lock.waiting), "max_queued": max_queued},
            )
        await lock.acquire()
        attempt: dict = {"source": "device"}
        try:
            shot = await self._take(camera, fmt, quality, stem, attempt)
        except Exception:
            self.observe(self.clock.seconds() - attempt.get("started", self.clock.seconds()), attempt["source"], False)
            raise
        else:
            self.observe(shot["elapsed"], shot["source"], True)
            return shot
        finally:
            lock.release()
            if not lock.locked and not lock.waiting:
                self._locks.pop(camera.camera_id, None)

    def _check_camera(self, camera: Camera) -> None:
        current = self.cameras.get(camera.camera_id) or camera
        if current.status != CONNECTED:
            if current.status == "DISCONNECTED":
                raise CameraNotFound(
                    f"Camera {current.camera_id} is disconnected",
                    data={"device": current.camera_id, "status": current.status},
                )
            raise InvalidState(
                f"Camera {current.camera_id} cannot be read: {current.error or current.status}",
                data={"device": current.camera_id, "status": current.status},
            )

    async def _take(self, camera: Camera, fmt: str, quality: int, stem: str | None, attempt: dict) -> dict:
        started = attempt["started"] = self.clock.seconds()
        deadline = started + self.config.snapshots.timeout
        sources = ["stream"] if self.path_ready(camera.camera_id) else ["device", "stream"]
        if sources[0] == "device" and not camera.default:
            raise InvalidState(
                f"Camera {camera.camera_id} has no known video mode yet (its capabilities are still being read)",
                data={"device": camera.camera_id},
            )
        image = None
        used = None
        for i, source in enumerate(sources):
            remaining = deadline - self.clock.seconds()
            if remaining <= 0:
                raise SnapshotFailed(
                    f"Snapshot of {camera.camera_id} timed out after {self.config.snapshots.timeout:g} s",
                    data={"reason": "timeout", "source": source},
                )
            attempt["source"] = source
            argv = self.command(source, camera, fmt, quality)
            log.debug(
                "Snapshot of {camera_id} from {source}: {argv}", camera_id=camera.camera_id, source=source, argv=argv
            )
            try:
                result = await self.processes.run(argv, timeout=remaining)
            except ProcessTimeout:
                raise SnapshotFailed(
                    f"Snapshot of {camera.camera_id} timed out after {self.config.snapshots.timeout:g} s:"
                    f" no frame from the {source}",
                    data={"reason": "timeout", "source": source},
                ) from None
            except NotInstalled as exc:
                raise SnapshotFailed(f"Snapshot failed: {exc}", data={"reason": "ffmpeg-missing"}) from None
            except OutputTooLarge as exc:
                raise SnapshotFailed(f"Snapshot failed: {exc}", data={"reason": "too-large"}) from None
            except ProcessError as exc:
                raise SnapshotFailed(f"Snapshot failed: {exc}", data={"reason": "process"}) from None
            if result.ok and result.stdout.startswith(MAGIC[fmt]):
                image, used = result.stdout, source
                break
            detail = result.last_error_line()
            stderr = result.stderr_text()
            if source == "device" and any(m in stderr for m in _BUSY_MARKERS) and i + 1 < len(sources):
                log.info(
                    "Camera {camera_id} is busy (streaming): taking the snapshot from the stream",
                    camera_id=camera.camera_id,
                )
                continue
            if source == "device" and any(m in stderr for m in _GONE_MARKERS):
                raise CameraNotFound(
                    f"Camera {camera.camera_id} vanished while taking the snapshot ({detail})",
                    data={"device": camera.camera_id, "reason": "vanished"},
                )
            if source == "stream" and any(m in stderr for m in _REFUSED_MARKERS):
                raise MediaMTXUnavailable(
                    f"Snapshot of {camera.camera_id} needs its stream, but MediaMTX does not answer on"
                    f" RTSP port {self.config.mediamtx.rtsp_port}",
                    data={"source": source},
                )
            log.warn(
                "Snapshot of {camera_id} from the {source} failed (exit {code}): {stderr}",
                camera_id=camera.camera_id,
                source=source,
                code=result.exit_code,
                stderr=stderr[-2000:],
            )
            reason = detail or (f"ffmpeg exited with status {result.exit_code}" if not result.ok else "no image")
            raise SnapshotFailed(
                f"Snapshot of {camera.camera_id} from the {source} failed: {reason}",
                data={"reason": "ffmpeg", "source": source, "exit_code": result.exit_code},
            )
        assert image is not None and used is not None
        taken_at = self.clock.seconds()
        ext = FORMAT_EXTENSIONS[fmt]
        try:
            name = self.store.create(SNAPSHOTS, stem or f"{camera.camera_id}_{stamp(taken_at)}", ext, image)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise InsufficientStorage("Snapshot not saved: the snapshots directory is full") from None
            log.failure("Cannot save snapshot of {camera_id}", camera_id=camera.camera_id)
            raise SnapshotFailed(f"Snapshot not saved: {exc.strerror}", data={"reason": "write"}) from None
        self.taken += 1
        log.info(
            "Snapshot {filename} of {camera_id} from the {source} ({size} bytes, {elapsed:.3f} s)",
            filename=name,
            camera_id=camera.camera_id,
            source=used,
            size=len(image),
            elapsed=taken_at - started,
        )
        return {
            "camera_id": camera.camera_id,
            "filename": name,
            "file_size": len(image),
            "timestamp": taken_at,
            "source": used,
            "format": fmt,
            "elapsed": taken_at - started,
        }
