"""Desired MediaMTX path configuration per camera, and how to compare it.

Pure functions, no I/O.  :func:`desired_path` turns a :class:`~camsvc.cameras.registry.Camera`
plus the configuration and the camera's recording flag into the ``PathConf``
fields camsvc wants MediaMTX to have for the path named by the camera id.
:func:`differences` compares that with what MediaMTX reports *semantically*:
MediaMTX reads values back normalised (``"3600s"`` comes back as ``"1h0m0s"``,
``"0s"`` as ``""``), so a textual comparison would replace every path on every
pass.  :func:`plan_action` decides between nothing, patch and replace.
"""

from __future__ import annotations

import math
import re
import shlex
from typing import Any

from camsvc.cameras.registry import CONNECTED, Camera
from camsvc.cameras.stream_settings import active_mode

#: V4L2 fourcc -> the name ffmpeg's v4l2 demuxer takes for ``-input_format``.
FFMPEG_INPUT_FORMATS = {
    "MJPG": "mjpeg",
    "JPEG": "mjpeg",
    "H264": "h264",
    "HEVC": "hevc",
    "YUYV": "yuyv422",
    "UYVY": "uyvy422",
    "YVYU": "yvyu422",
    "NV12": "nv12",
    "NV21": "nv21",
    "NV16": "nv16",
    "YU12": "yuv420p",
    "422P": "yuv422p",
    "GREY": "gray",
    "Y16 ": "gray16le",
    "RGB3": "rgb24",
    "BGR3": "bgr24",
    "RGBP": "rgb565le",
}

#: Formats that can go to MediaMTX without re-encoding, in order of preference
#: (H.264 plays in browsers; MJPEG only over RTSP).
PASSTHROUGH_FORMATS = ("H264", "MJPG")

#: Fields MediaMTX applies to a running path without closing it (no reader is kicked).
HOT_FIELDS = frozenset({"record", "recordPath", "recordFormat", "recordSegmentDuration", "recordDeleteAfter"})

_DURATION_KEY = re.compile(r"(Timeout|CloseAfter|Duration|DeleteAfter|Period)$")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"([0-9]*\.?[0-9]+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(value: Any) -> float | None:
    """Seconds in a MediaMTX duration (``"1h0m0s"``, ``"1d"``, ``"0s"``, ``""``, a number).

    None when ``value`` is not a duration.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text in ("", "0"):
        return 0.0
    sign = -1.0 if text.startswith("-") else 1.0
    text = text.lstrip("+-")
    total = 0.0
    days = re.match(r"^([0-9]+)d", text)
    if days:
        total += int(days.group(1)) * 86400.0
        text = text[days.end() :]
    pos = 0
    for m in _DURATION_PART.finditer(text):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text):
        return None
    return sign * total


def format_duration(seconds: float) -> str:
    """``3600`` -> ``"3600s"`` (a form every MediaMTX version parses)."""
    if float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{seconds:g}s"


def _fps_text(fps: Any) -> str:
    value = float(fps)
    return str(int(value)) if value.is_integer() else f"{value:g}"


def _offers(camera: Camera, fourcc: str, width: int, height: int) -> list:
    """Rates the camera offers for ``fourcc`` at ``width``x``height`` (None: not offered)."""
    for fmt in (camera.capabilities or {}).get("formats") or ():
        if fmt.get("format") != fourcc:
            continue
        for size in fmt.get("sizes") or ():
            if size.get("width") == width and size.get("height") == height:
                return list(size.get("fps") or [])
    return None  # type: ignore[return-value]


def choose_mode(camera: Camera, passthrough: bool) -> tuple[dict, bool] | None:
    """``({format, width, height, fps}, copy)`` the publisher uses; None without a usable mode.

    The camera's chosen default mode, except that with ``passthrough`` a
    format in :data:`PASSTHROUGH_FORMATS` offered at the same size is sent as
    is (``copy`` True) instead of being re-encoded.
    """
    default = camera.default
    if not default or not default.get("format") or not default.get("width") or not default.get("height"):
        return None
    mode = {
        "format": default["format"],
        "width": int(default["width"]),
        "height": int(default["height"]),
        "fps": default.get("fps") or 30,
    }
    if not passthrough:
        return mode, False
    for fourcc in PASSTHROUGH_FORMATS:
        if fourcc == mode["format"]:
            return mode, True
        rates = _offers(camera, fourcc, mode["width"], mode["height"])
        if rates is None:
            continue
        fps = mode["fps"]
        if rates and fps not in rates:
            lower = [r for r in rates if r <= fps]
            fps = max(lower) if lower else min(rates)
        return {**mode, "format": fourcc, "fps": fps}, True
    return mode, False


def _with_bitrate(command: str, kbits: int) -> str:
    """``-b:v`` (with a matching VBV buffer) inserted before the command's RTSP output."""
    marker = " -f rtsp "
    if marker not in command:
        return command  # a custom template without an RTSP output: nothing to attach it to
    head, tail = command.split(marker, 1)
    return f"{head} -b:v {kbits}k -maxrate {kbits}k -bufsize {2 * kbits}k{marker}{tail}"


def _stream_choice(camera: Camera, mediamtx_config: Any, stream: dict) -> tuple[dict, str] | None:
    """The mode and template for a camera with stored stream settings."""
    mode = active_mode(camera, stream)
    if mode is None:
        return None
    encoder = mode["encoder"]
    if encoder is None:  # the configuration decides, as without settings
        copy = mediamtx_config.passthrough and mode["format"] in PASSTHROUGH_FORMATS
        encoder = "copy" if copy else "libx264"
    templates = {
        "copy": mediamtx_config.passthrough_command,
        "h264_v4l2m2m": mediamtx_config.hardware_command,
    }
    return mode, templates.get(encoder, mediamtx_config.publish_command)


def publish_command(camera: Camera, mediamtx_config: Any, stream: dict | None = None) -> str | None:
    """The ``runOnDemand`` command for ``camera`` (None when it has no usable mode).

    ``stream`` is the camera's stored stream settings
    (:mod:`camsvc.cameras.stream_settings`): format, size, rate, encoder (``libx264`` ->
    ``publish_command``, ``copy`` -> ``passthrough_command``, ``h264_v4l2m2m`` ->
    ``hardware_command``), GOP and bitrate (``-b:v`` before ``-f rtsp``).
    """
    if stream:
        chosen_stream = _stream_choice(camera, mediamtx_config, stream)
        if chosen_stream is None:
            return None
        mode, template = chosen_stream
    else:
        chosen = choose_mode(camera, mediamtx_config.passthrough)
        if chosen is None:
            return None
        mode, copy = chosen
        template = mediamtx_config.passthrough_command if copy else mediamtx_config.publish_command
    fps = mode["fps"] or 30
    gop = mode.get("gop") or max(1, int(math.ceil(float(fps))))
    values = {
        "device": shlex.quote(camera.stable_device),
        "input_format": FFMPEG_INPUT_FORMATS.get(mode["format"], mode["format"].strip().lower()),
        "width": mode["width"],
        "height": mode["height"],
        "fps": _fps_text(fps),
        "gop": gop,
        "camera_id": camera.camera_id,
    }
    command = template.format_map(values)
    if mode.get("bitrate") and template is not mediamtx_config.passthrough_command:
        command = _with_bitrate(command, int(mode["bitrate"]))
    return command


#: How the publish command treats each kind of input (what :func:`published_mode` reports).
_WHY = {
    "MJPG": "MJPEG from the camera, decoded and encoded to H.264 (libx264, yuv420p)",
    "JPEG": "JPEG frames from the camera, decoded and encoded to H.264 (libx264, yuv420p)",
    "H264": "H.264 from the camera, decoded and re-encoded (libx264: a browser-safe profile and "
    "a keyframe every second; mediamtx.passthrough: true sends it as is)",
    "GREY": "greyscale (an IR camera), converted to yuv420p and encoded to H.264",
    "Y16 ": "16-bit greyscale (an IR/depth camera), converted to yuv420p and encoded to H.264",
}


def published_mode(camera: Camera, mediamtx_config: Any) -> dict | None:
    """Which mode the publish command uses and why: ``{format, width, height, fps,
    input_format, copy, why}``; None while the camera has no usable mode."""
    chosen = choose_mode(camera, mediamtx_config.passthrough)
    if chosen is None:
        return None
    mode, copy = chosen
    fourcc = mode["format"]
    known = fourcc in FFMPEG_INPUT_FORMATS
    input_format = FFMPEG_INPUT_FORMATS.get(fourcc, fourcc.strip().lower())
    formats = [f.get("format") for f in (camera.capabilities or {}).get("formats") or ()]
    if copy:
        why = f"{fourcc} from the camera sent as is (mediamtx.passthrough)"
    elif known:
        why = _WHY.get(fourcc, f"{fourcc} (raw video), converted to yuv420p and encoded to H.264 (libx264)")
    else:
        why = f"{fourcc} is not in camsvc's V4L2-to-ffmpeg mapping: passed to ffmpeg as {input_format!r}, may not work"
    if len(formats) == 1:
        why = f"the only format offered; {why}"
    elif (camera.default or {}).get("format") == fourcc:
        why = f"the default mode (MJPG preferred, then YUYV, then H264); {why}"
    return {**mode, "input_format": input_format, "copy": copy, "why": why}


def record_path(recordings_dir: str) -> str:
    """MediaMTX ``recordPath`` giving flat ``<camera_id>_<%Y-%m-%d_%H-%M-%S-%f>`` names."""
    return recordings_dir.rstrip("/") + "/%path_%Y-%m-%d_%H-%M-%S-%f"


def desired_path(camera: Camera, config: Any, recording: bool = False, stream: dict | None = None) -> dict | None:
    """The ``PathConf`` fields for ``camera``'s path, or None when it should have none.

    Only CONNECTED cameras with a usable video mode get a path; ``stream`` is its
    stored stream settings.
    """
    if camera.status != CONNECTED:
        return None
    command = publish_command(camera, config.mediamtx, stream)
    if command is None:
        return None
    return {
        "source": "publisher",
        "runOnDemand": command,
        "runOnDemandRestart": True,
        "record": bool(recording),
        "recordPath": record_path(config.storage.recordings_dir),
        "recordFormat": config.recording.format,
        "recordSegmentDuration": format_duration(config.recording.segment_duration),
        "recordDeleteAfter": "0s",
    }


def _same(key: str, want: Any, have: Any) -> bool:
    if _DURATION_KEY.search(key):
        a, b = parse_duration(want), parse_duration(have)
        if a is not None and b is not None:
            return abs(a - b) < 1e-9
    if isinstance(want, bool):
        return isinstance(have, bool) and want == have
    return want == have


def differences(want: dict, have: dict) -> set[str]:
    """Keys of ``want`` whose value MediaMTX (``have``) does not hold, compared semantically."""
    return {key for key, value in want.items() if key not in have or not _same(key, value, have[key])}


NOTHING = "none"
ADD = "add"
PATCH = "patch"
REPLACE = "replace"
DELETE = "delete"


def plan_action(want: dict | None, have: dict | None) -> tuple[str, dict | None]:
    """What to send for one path camsvc owns: ``(action, body)``.

    ``want`` None means camsvc wants no such path; ``have`` None means
    MediaMTX has none.  Only hot (recording) fields differing -> patch just
    those, so viewers are not disconnected; anything else -> replace with the
    full desired configuration (which also resets fields someone else changed).
    """
    if want is None:
        return (DELETE, None) if have is not None else (NOTHING, None)
    if have is None:
        return ADD, dict(want)
    diff = differences(want, have)
    if not diff:
        return NOTHING, None
    if diff <= HOT_FIELDS:
        return PATCH, {key: want[key] for key in sorted(diff)}
    return REPLACE, dict(want)
