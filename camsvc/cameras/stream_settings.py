"""Per-camera stream settings: what a camera offers, checking a request, the active mode.

This module owns the rules of ``get_stream_settings`` / ``set_stream_settings`` (no I/O
except :class:`EncoderProbe`, one ``ffmpeg -encoders`` child run on first use):

* :data:`ENCODERS` — ``libx264`` (re-encode; camsvc's default), ``copy`` (pass-through of
  a camera's own H.264 or MJPEG), ``h264_v4l2m2m`` (the V4L2 memory-to-memory hardware
  encoder, e.g. a Raspberry Pi's; offered when ffmpeg has it);
* :func:`choices` — the formats, sizes, rates and encoders one camera offers;
* :func:`validate` — a request checked against the probed capabilities (-32602 naming
  what the camera does not offer) and merged with the stored settings;
* :func:`active_mode` — the mode the publisher uses: the camera's default mode
  overridden by its stored settings.

The MediaMTX side (:mod:`camsvc.mediamtx.desired`) turns the active mode into the
publisher command.  Collaborator of :class:`EncoderProbe`: a reactor (``spawnProcess``).
"""

from __future__ import annotations

import shutil
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from camsvc.common.errors import InvalidParams

log = Logger()

#: Encoder name -> what it is.
ENCODERS = {
    "libx264": "re-encode to H.264 in software (libx264)",
    "copy": "pass the camera's H.264 or MJPEG through unchanged",
    "h264_v4l2m2m": "re-encode to H.264 with the V4L2 memory-to-memory hardware encoder",
}
#: Encoders every camsvc can use; the hardware ones need ffmpeg to list them.
SOFTWARE = ("libx264", "copy")
HARDWARE = ("h264_v4l2m2m",)
#: Formats ``copy`` can send (MJPEG plays over RTSP only; H.264 everywhere).
COPY_FORMATS = ("H264", "MJPG")
FIELDS = ("format", "width", "height", "fps", "encoder", "bitrate", "gop")
#: Bounds of the encoder parameters: bitrate in kbit/s, GOP in frames.
BITRATE_RANGE = (64, 100_000)
GOP_RANGE = (1, 600)


class EncoderProbe:
    """Which hardware encoders ffmpeg has: ``ffmpeg -hide_banner -encoders``, run once.

    ``available()`` fires with the tuple of usable encoder names; a missing or failing
    ffmpeg leaves the software ones (logged).
    """

    def __init__(self, reactor: Any, ffmpeg: str = "ffmpeg") -> None:
        self.reactor = reactor
        self.ffmpeg = ffmpeg
        self._result: tuple[str, ...] | None = None
        self._waiting: list[Deferred] = []
        self._running = False

    def available(self) -> Deferred:
        if self._result is not None:
            return succeed(self._result)
        d: Deferred = Deferred()
        self._waiting.append(d)
        if not self._running:
            self._running = True
            try:
                executable = shutil.which(self.ffmpeg) or self.ffmpeg
                from twisted.internet.utils import getProcessOutputAndValue  # at the first probe

                run = getProcessOutputAndValue(executable, ("-hide_banner", "-encoders"), reactor=self.reactor)
            except Exception:  # no process support (a test reactor), fork failure: software only
                self._failed(Failure())
            else:
                run.addCallbacks(self._done, self._failed)
        return d

    def _done(self, result: tuple) -> None:
        out, _err, code = result
        text = out.decode("utf-8", "replace")
        found = tuple(name for name in HARDWARE if f" {name} " in text)
        if code != 0:
            log.warn("ffmpeg -encoders exited {code}: hardware encoders not offered", code=code)
            found = ()
        self._finish(SOFTWARE + found)

    def _failed(self, failure: Any) -> None:
        log.warn("ffmpeg -encoders failed ({error}): hardware encoders not offered", error=failure.getErrorMessage())
        self._finish(SOFTWARE)

    def _finish(self, names: tuple[str, ...]) -> None:
        self._result = names
        self._running = False
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(names)


def _formats(camera: Any) -> list[dict]:
    return list((camera.capabilities or {}).get("formats") or ())


def camera_encoders(camera: Any, available: tuple[str, ...]) -> list[str]:
    """The encoders this camera can use: ``copy`` only when it offers H.264 or MJPEG."""
    offered = {f.get("format") for f in _formats(camera)}
    return [e for e in available if e != "copy" or offered & set(COPY_FORMATS)]


def choices(camera: Any, available: tuple[str, ...]) -> dict:
    """``{formats: [{format, sizes: [{width, height, fps}]}], encoders: [{name, description, formats}]}``."""
    formats = [
        {
            "format": f.get("format"),
            "sizes": [
                {
                    "width": s["width"],
                    "height": s["height"],
                    "fps": list(s.get("fps") or []),
                    **({"fps_range": s["fps_range"]} if s.get("fps_range") else {}),
                }
                for s in f.get("sizes") or ()
            ],
        }
        for f in _formats(camera)
    ]
    encoders = []
    for name in camera_encoders(camera, available):
        usable = [f["format"] for f in formats if name != "copy" or f["format"] in COPY_FORMATS]
        encoders.append({"name": name, "description": ENCODERS[name], "formats": usable})
    return {"formats": formats, "encoders": encoders}


def active_mode(camera: Any, stored: dict | None) -> dict | None:
    """``{format, width, height, fps, encoder, bitrate, gop, custom}`` the publisher uses, or None.

    ``encoder`` None means "camsvc's configuration decides" (libx264, or pass-through
    when ``mediamtx.passthrough`` is on); ``custom`` is True when stored settings apply.
    """
    default = camera.default
    if not default or not default.get("format"):
        return None
    mode = {
        "format": default["format"],
        "width": int(default["width"]),
        "height": int(default["height"]),
        "fps": default.get("fps"),
        "encoder": None,
        "bitrate": None,
        "gop": None,
        "custom": bool(stored),
    }
    for key in FIELDS:
        if stored and stored.get(key) is not None:
            mode[key] = stored[key]
    return mode


def _bad(what: str, message: str, **data: Any) -> InvalidParams:
    return InvalidParams(message, data={"param": what, **data})


def _find_format(camera: Any, name: str) -> dict | None:
    for f in _formats(camera):
        if f.get("format") == name:
            return f
    return None


def _size(fmt: dict, width: int, height: int) -> dict | None:
    for s in fmt.get("sizes") or ():
        if s.get("width") == width and s.get("height") == height:
            return s
    return None


def _rate_ok(size: dict, fps: float) -> bool:
    rng = size.get("fps_range")
    if rng:
        return rng["min"] <= fps <= rng["max"]
    return any(abs(float(r) - fps) < 1e-3 for r in size.get("fps") or ())


def validate(camera: Any, requested: dict, stored: dict, available: tuple[str, ...]) -> dict:
    """The new stored settings for ``requested`` (merged with ``stored``), or InvalidParams.

    A field given as ``null`` goes back to camsvc's default for it.  Format, size and rate
    must be offered together by the probed capabilities; ``copy`` needs an H.264 or
    MJPEG format.
    """
    if camera.capabilities is None or not camera.default:
        raise _bad("device", f"The capabilities of {camera.camera_id} are not known yet", camera_id=camera.camera_id)
    merged = {k: v for k, v in stored.items() if k in FIELDS and v is not None}
    for key in FIELDS:
        if key in requested:
            if requested[key] is None:
                merged.pop(key, None)
            else:
                merged[key] = requested[key]
    if isinstance(merged.get("fps"), float) and merged["fps"].is_integer():
        merged["fps"] = int(merged["fps"])  # 30.0 from a client is the 30 the camera lists
    mode = active_mode(camera, merged)
    assert mode is not None
    fmt = _find_format(camera, mode["format"])
    offered = [f.get("format") for f in _formats(camera)]
    if fmt is None:
        raise _bad(
            "format",
            f"{camera.camera_id} does not offer format {mode['format']!r} (offers {', '.join(offered)})",
            allowed=offered,
        )
    size = _size(fmt, int(mode["width"]), int(mode["height"]))
    sizes = [f"{s['width']}x{s['height']}" for s in fmt.get("sizes") or ()]
    if size is None:
        raise _bad(
            "size",
            f"{camera.camera_id} does not offer {mode['width']}x{mode['height']} in {mode['format']} (offers {', '.join(sizes)})",
            allowed=sizes,
        )
    if mode["fps"] is not None and not _rate_ok(size, float(mode["fps"])):
        rng = size.get("fps_range")
        rates = list(size.get("fps") or [])
        if "fps" in merged:
            raise _bad(
                "fps",
                f"{camera.camera_id} does not offer {mode['fps']} fps at {mode['width']}x{mode['height']}"
                f" {mode['format']} (offers {rng or rates})",
                allowed=rng or rates,
            )
        # the default rate does not exist in the chosen mode: take the mode's highest
        merged["fps"] = rng["max"] if rng else max(rates) if rates else None
        if merged["fps"] is None:
            merged.pop("fps")
    encoders = camera_encoders(camera, available)
    encoder = merged.get("encoder")
    if encoder is not None:
        if encoder not in encoders:
            raise _bad(
                "encoder",
                f"Encoder {encoder!r} is not available for {camera.camera_id} (available: {', '.join(encoders)})",
                allowed=encoders,
            )
        if encoder == "copy" and mode["format"] not in COPY_FORMATS:
            raise _bad(
                "encoder",
                f"copy passes H.264 or MJPEG through; {camera.camera_id} would stream {mode['format']} (choose format H264 or MJPG)",
                allowed=[f for f in offered if f in COPY_FORMATS],
            )
    if "bitrate" in merged and merged.get("encoder") == "copy":
        raise _bad("bitrate", "bitrate applies to an encoder, not to copy")
    return merged
