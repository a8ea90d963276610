"""V4L2 capability probing: a small ctypes/fcntl binding, no extra dependency.

This module owns everything camsvc knows about the V4L2 ioctl ABI:

* the C structures and request numbers of ``VIDIOC_QUERYCAP``, ``VIDIOC_ENUM_FMT``,
  ``VIDIOC_ENUM_FRAMESIZES`` and ``VIDIOC_ENUM_FRAMEINTERVALS`` (checked against
  ``linux/videodev2.h``: 104, 64, 44 and 52 bytes);
* pure decoding of those structures into frozen dataclasses (:class:`DeviceInfo`,
  :class:`Capabilities`) — no syscalls, so it is testable with a fake ``ioctl``;
* :func:`probe`, the blocking-but-fast syscall side: open the node
  ``O_RDWR | O_NONBLOCK``, query, enumerate with bounded loops, close;
* :func:`choose_default`, the rule that picks a camera's default format, size and rate;
* a CLI, ``python -m camsvc.cameras.v4l2 /dev/videoN``, printing the probe result as one JSON
  object.  The service may run it as a child process with a timeout
  (``reactor.spawnProcess``) and read it back with :meth:`Capabilities.from_dict`.

Collaborators: an ``ioctl(fd, request, buf) -> int`` callable (default
:func:`fcntl.ioctl` with a mutable buffer) and ``open``/``close`` callables, all
injectable so unit tests need no device.  Under umockdev the same code talks to an
emulated node (``tests/support/umockdev_bed.py`` answers the ioctls).

Vanished devices: ``ENODEV``, ``ENOENT``, ``ENXIO`` and ``EIO`` from ``open`` or any ioctl
raise :class:`ProbeError` with ``reason == "vanished"``; a node that is not a video
capture device raises ``reason == "not_capture"``; anything else ``reason == "error"``.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "DEFAULT_PREFERRED",
    "V4L2_CAP_DEVICE_CAPS",
    "V4L2_CAP_META_CAPTURE",
    "V4L2_CAP_VIDEO_CAPTURE",
    "V4L2_CAP_VIDEO_CAPTURE_MPLANE",
    "Capabilities",
    "Default",
    "DeviceInfo",
    "Format",
    "FrameSize",
    "ProbeError",
    "SizeRange",
    "choose_default",
    "enumerate_formats",
    "fourcc",
    "fourcc_code",
    "main",
    "probe",
    "query_device",
]

# --- ABI ------------------------------------------------------------------------------

_IOC_NRBITS, _IOC_TYPEBITS, _IOC_SIZEBITS = 8, 8, 14
_IOC_NRSHIFT = 0
_IOC_TYPESHIFT = _IOC_NRSHIFT + _IOC_NRBITS
_IOC_SIZESHIFT = _IOC_TYPESHIFT + _IOC_TYPEBITS
_IOC_DIRSHIFT = _IOC_SIZESHIFT + _IOC_SIZEBITS
_IOC_WRITE, _IOC_READ = 1, 2


def _ioc(direction: int, nr: int, size: int) -> int:
    return (direction << _IOC_DIRSHIFT) | (ord("V") << _IOC_TYPESHIFT) | (nr << _IOC_NRSHIFT) | (size << _IOC_SIZESHIFT)


class v4l2_capability(ctypes.Structure):
    _fields_ = [
        ("driver", ctypes.c_char * 16),
        ("card", ctypes.c_char * 32),
        ("bus_info", ctypes.c_char * 32),
        ("version", ctypes.c_uint32),
        ("capabilities", ctypes.c_uint32),
        ("device_caps", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32 * 3),
    ]


class v4l2_fmtdesc(ctypes.Structure):
    _fields_ = [
        ("index", ctypes.c_uint32),
        ("type", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("description", ctypes.c_char * 32),
        ("pixelformat", ctypes.c_uint32),
        ("mbus_code", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32 * 3),
    ]


class v4l2_frmsize_discrete(ctypes.Structure):
    _fields_ = [("width", ctypes.c_uint32), ("height", ctypes.c_uint32)]


class v4l2_frmsize_stepwise(ctypes.Structure):
    _fields_ = [
        ("min_width", ctypes.c_uint32),
        ("max_width", ctypes.c_uint32),
        ("step_width", ctypes.c_uint32),
        ("min_height", ctypes.c_uint32),
        ("max_height", ctypes.c_uint32),
        ("step_height", ctypes.c_uint32),
    ]


class _frmsize_union(ctypes.Union):
    _fields_ = [("discrete", v4l2_frmsize_discrete), ("stepwise", v4l2_frmsize_stepwise)]


class v4l2_frmsizeenum(ctypes.Structure):
    _anonymous_ = ("u",)
    _fields_ = [
        ("index", ctypes.c_uint32),
        ("pixel_format", ctypes.c_uint32),
        ("type", ctypes.c_uint32),
        ("u", _frmsize_union),
        ("reserved", ctypes.c_uint32 * 2),
    ]


class v4l2_fract(ctypes.Structure):
    _fields_ = [("numerator", ctypes.c_uint32), ("denominator", ctypes.c_uint32)]


class v4l2_frmival_stepwise(ctypes.Structure):
    _fields_ = [("min", v4l2_fract), ("max", v4l2_fract), ("step", v4l2_fract)]


class _frmival_union(ctypes.Union):
    _fields_ = [("discrete", v4l2_fract), ("stepwise", v4l2_frmival_stepwise)]


class v4l2_frmivalenum(ctypes.Structure):
    _anonymous_ = ("u",)
    _fields_ = [
        ("index", ctypes.c_uint32),
        ("pixel_format", ctypes.c_uint32),
        ("width", ctypes.c_uint32),
        ("height", ctypes.c_uint32),
        ("type", ctypes.c_uint32),
        ("u", _frmival_union),
        ("reserved", ctypes.c_uint32 * 2),
    ]


assert ctypes.sizeof(v4l2_capability) == 104
assert ctypes.sizeof(v4l2_fmtdesc) == 64
assert ctypes.sizeof(v4l2_frmsizeenum) == 44
assert ctypes.sizeof(v4l2_frmivalenum) == 52

VIDIOC_QUERYCAP = _ioc(_IOC_READ, 0, ctypes.sizeof(v4l2_capability))  # 0x80685600
VIDIOC_ENUM_FMT = _ioc(_IOC_READ | _IOC_WRITE, 2, ctypes.sizeof(v4l2_fmtdesc))  # 0xc0405602
VIDIOC_ENUM_FRAMESIZES = _ioc(_IOC_READ | _IOC_WRITE, 74, ctypes.sizeof(v4l2_frmsizeenum))
VIDIOC_ENUM_FRAMEINTERVALS = _ioc(_IOC_READ | _IOC_WRITE, 75, ctypes.sizeof(v4l2_frmivalenum))

V4L2_CAP_VIDEO_CAPTURE = 0x00000001
V4L2_CAP_VIDEO_OUTPUT = 0x00000002
V4L2_CAP_VIDEO_CAPTURE_MPLANE = 0x00001000
V4L2_CAP_VIDEO_M2M = 0x00008000
V4L2_CAP_VIDEO_M2M_MPLANE = 0x00004000
V4L2_CAP_META_CAPTURE = 0x00800000
V4L2_CAP_TOUCH = 0x10000000
V4L2_CAP_STREAMING = 0x04000000
V4L2_CAP_DEVICE_CAPS = 0x80000000

V4L2_BUF_TYPE_VIDEO_CAPTURE = 1
V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE = 9

V4L2_FMT_FLAG_COMPRESSED = 0x0001

V4L2_FRMSIZE_TYPE_DISCRETE = 1
V4L2_FRMSIZE_TYPE_CONTINUOUS = 2
V4L2_FRMSIZE_TYPE_STEPWISE = 3
V4L2_FRMIVAL_TYPE_DISCRETE = 1
V4L2_FRMIVAL_TYPE_CONTINUOUS = 2
V4L2_FRMIVAL_TYPE_STEPWISE = 3

# Upper bounds for every enumeration loop: a buggy driver that never answers EINVAL
# must not hang the probe.  Real UVC cameras stay far below these.
MAX_FORMATS = 256
MAX_SIZES = 128
MAX_INTERVALS = 64

# Sizes offered for a stepwise/continuous frame-size range (each kept only if it fits
# the range and its steps), in addition to the range's minimum and maximum.
COMMON_SIZES = (
    (320, 240),
    (640, 480),
    (800, 600),
    (1024, 768),
    (1280, 720),
    (1280, 960),
    (1600, 1200),
    (1920, 1080),
    (2560, 1440),
    (3840, 2160),
)

_VANISHED_ERRNOS = frozenset({errno.ENODEV, errno.ENOENT, errno.ENXIO, errno.EIO})

IoctlFunc = Callable[[int, int, bytearray], int]


def _default_ioctl(fd: int, request: int, buf: bytearray) -> int:
    return fcntl.ioctl(fd, request, buf, True)


# --- errors and value objects -----------------------------------------------------------


class ProbeError(Exception):
    """Probing a node failed.

    ``reason`` is ``"vanished"`` (the device went away: ENODEV/ENOENT/ENXIO/EIO),
    ``"not_capture"`` (the node answers but is not a video capture node, e.g. a UVC
    metadata node) or ``"error"`` (anything else: EACCES, EBUSY, ENOTTY on QUERYCAP...).
    ``errno`` is the OS error number when there is one.
    """

    def __init__(self, path: str, reason: str, message: str, errno_: int | None = None):
        super().__init__(f"{path}: {message}")
        self.path = path
        self.reason = reason
        self.errno = errno_

    @property
    def vanished(self) -> bool:
        return self.reason == "vanished"


def fourcc(code: int) -> str:
    """``0x47504a4d`` → ``"MJPG"`` (trailing spaces kept, e.g. ``"Y10 "``)."""
    return bytes((code >> (8 * i)) & 0xFF for i in range(4)).decode("latin-1")


def fourcc_code(name: str) -> int:
    """``"MJPG"`` → ``0x47504a4d``; the inverse of :func:`fourcc`."""
    raw = name.encode("latin-1").ljust(4, b" ")[:4]
    return raw[0] | raw[1] << 8 | raw[2] << 16 | raw[3] << 24


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace").strip()


def _fps(interval_num: int, interval_den: int) -> float | int | None:
    """Frame interval (seconds, as a fraction) → frames per second.

    Integral rates come back as ``int`` (``1/30`` → ``30``), others as a float rounded to
    3 decimals (``1001/30000`` → ``29.97``).  A zero numerator or denominator is invalid.
    """
    if interval_num == 0 or interval_den == 0:
        return None
    if interval_den % interval_num == 0:
        return interval_den // interval_num
    return round(interval_den / interval_num, 3)


@dataclass(frozen=True)
class DeviceInfo:
    """Decoded ``VIDIOC_QUERYCAP``."""

    driver: str
    card: str
    bus_info: str
    version: int
    capabilities: int
    device_caps: int

    @property
    def node_caps(self) -> int:
        """The capabilities of *this node*: ``device_caps`` when the driver sets
        ``V4L2_CAP_DEVICE_CAPS``, else the device-wide ``capabilities`` (old drivers)."""
        if self.capabilities & V4L2_CAP_DEVICE_CAPS:
            return self.device_caps
        return self.capabilities

    @property
    def is_capture(self) -> bool:
        """True for a video capture node (single- or multi-planar).  A UVC metadata
        node (META_CAPTURE only), output-only nodes, memory-to-memory devices
        (codecs, scalers: they capture what they were given) and touch sensors
        (which report VIDEO_CAPTURE with TOUCH) are not cameras."""
        caps = self.node_caps
        if caps & (V4L2_CAP_TOUCH | V4L2_CAP_VIDEO_M2M | V4L2_CAP_VIDEO_M2M_MPLANE):
            return False
        return bool(caps & (V4L2_CAP_VIDEO_CAPTURE | V4L2_CAP_VIDEO_CAPTURE_MPLANE))

    @property
    def buf_type(self) -> int:
        """The buffer type to enumerate formats with."""
        if self.node_caps & V4L2_CAP_VIDEO_CAPTURE:
            return V4L2_BUF_TYPE_VIDEO_CAPTURE
        return V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE

    @classmethod
    def decode(cls, buf: bytes | bytearray) -> DeviceInfo:
        cap = v4l2_capability.from_buffer_copy(bytes(buf))
        return cls(
            driver=_cstr(cap.driver),
            card=_cstr(cap.card),
            bus_info=_cstr(cap.bus_info),
            version=cap.version,
            capabilities=cap.capabilities,
            device_caps=cap.device_caps,
        )


@dataclass(frozen=True)
class SizeRange:
    """A stepwise (or continuous: step 1) frame-size range as the driver reported it."""

    min_width: int
    max_width: int
    step_width: int
    min_height: int
    max_height: int
    step_height: int

    def contains(self, width: int, height: int) -> bool:
        def fits(v: int, lo: int, hi: int, step: int) -> bool:
            return lo <= v <= hi and (step <= 1 or (v - lo) % step == 0)

        return fits(width, self.min_width, self.max_width, self.step_width) and fits(
            height, self.min_height, self.max_height, self.step_height
        )

    def candidates(self) -> list[tuple[int, int]]:
        """The sizes we list for this range: its minimum, the common sizes that fit,
        and its maximum — largest first, no duplicates."""
        out = {(self.min_width, self.min_height), (self.max_width, self.max_height)}
        out.update(s for s in COMMON_SIZES if self.contains(*s))
        return sorted(out, key=lambda s: (s[0] * s[1], s[0]), reverse=True)


@dataclass(frozen=True)
class FrameSize:
    """One frame size of a format and the rates it supports.

    ``fps`` lists the supported rates, highest first.  When the driver reports a
    stepwise/continuous interval range instead of discrete intervals, ``fps_range`` is
    ``(min_fps, max_fps)`` and ``fps`` holds just those two end points (any rate in
    between is valid, subject to the driver's step).  ``fps`` is empty when the driver
    does not implement ``VIDIOC_ENUM_FRAMEINTERVALS`` for this size.
    """

    width: int
    height: int
    fps: tuple[float | int, ...] = ()
    fps_range: tuple[float | int, float | int] | None = None

    @property
    def resolution(self) -> str:
        return f"{self.width}x{self.height}"

    def to_dict(self) -> dict:
        d: dict = {"width": self.width, "height": self.height, "fps": list(self.fps)}
        if self.fps_range is not None:
            d["fps_range"] = {"min": self.fps_range[0], "max": self.fps_range[1]}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> FrameSize:
        rng = d.get("fps_range")
        return cls(
            width=int(d["width"]),
            height=int(d["height"]),
            fps=tuple(d.get("fps", ())),
            fps_range=(rng["min"], rng["max"]) if rng else None,
        )


@dataclass(frozen=True)
class Format:
    """One pixel format: fourcc, driver description, compressed flag, its sizes.

    ``size_range`` is set when the driver reported a stepwise/continuous frame-size
    range; ``sizes`` then holds :meth:`SizeRange.candidates`.
    """

    format: str
    description: str
    compressed: bool
    sizes: tuple[FrameSize, ...] = ()
    size_range: SizeRange | None = None

    def to_dict(self) -> dict:
        d: dict = {
            "format": self.format,
            "description": self.description,
            "compressed": self.compressed,
            "sizes": [s.to_dict() for s in self.sizes],
        }
        if self.size_range is not None:
            d["size_range"] = {
                "min_width": self.size_range.min_width,
                "max_width": self.size_range.max_width,
                "step_width": self.size_range.step_width,
                "min_height": self.size_range.min_height,
                "max_height": self.size_range.max_height,
                "step_height": self.size_range.step_height,
            }
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Format:
        rng = d.get("size_range")
        return cls(
            format=d["format"],
            description=d.get("description", ""),
            compressed=bool(d.get("compressed", False)),
            sizes=tuple(FrameSize.from_dict(s) for s in d.get("sizes", ())),
            size_range=SizeRange(**rng) if rng else None,
        )


@dataclass(frozen=True)
class Capabilities:
    """What a capture node can do: identity from QUERYCAP plus formats/sizes/rates.

    ``to_dict()`` is the JSON shape used by the API and the CLI::

        {"driver", "card", "bus_info", "capabilities", "device_caps",
         "formats": [{"format": "MJPG", "description", "compressed",
                      "sizes": [{"width", "height", "fps": [30, 15]}]}]}
    """

    path: str
    driver: str
    card: str
    bus_info: str
    capabilities: int
    device_caps: int
    formats: tuple[Format, ...] = field(default=())

    def format(self, name: str) -> Format | None:
        for f in self.formats:
            if f.format == name:
                return f
        return None

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "driver": self.driver,
            "card": self.card,
            "bus_info": self.bus_info,
            "capabilities": self.capabilities,
            "device_caps": self.device_caps,
            "formats": [f.to_dict() for f in self.formats],
        }

    @classmethod
    def from_dict(cls, d: dict) -> Capabilities:
        return cls(
            path=d["path"],
            driver=d.get("driver", ""),
            card=d.get("card", ""),
            bus_info=d.get("bus_info", ""),
            capabilities=int(d.get("capabilities", 0)),
            device_caps=int(d.get("device_caps", 0)),
            formats=tuple(Format.from_dict(f) for f in d.get("formats", ())),
        )


# --- syscall side -------------------------------------------------------------------------


def _call(ioctl: IoctlFunc, fd: int, request: int, struct: ctypes.Structure, path: str):
    """Run one ioctl on a copy of ``struct``; return the filled struct, or None on
    EINVAL (the end-of-enumeration answer).  Vanished-device errnos raise ProbeError;
    other OSErrors propagate to the caller, which knows whether they are fatal."""
    buf = bytearray(bytes(struct))
    try:
        ioctl(fd, request, buf)
    except OSError as e:
        if e.errno == errno.EINVAL:
            return None
        if e.errno in _VANISHED_ERRNOS:
            raise ProbeError(path, "vanished", f"device vanished ({os.strerror(e.errno)})", e.errno) from e
        raise
    return type(struct).from_buffer_copy(bytes(buf))


def query_device(fd: int, *, ioctl: IoctlFunc = _default_ioctl, path: str = "?") -> DeviceInfo:
    """``VIDIOC_QUERYCAP`` on an open fd."""
    try:
        out = _call(ioctl, fd, VIDIOC_QUERYCAP, v4l2_capability(), path)
    except OSError as e:
        raise ProbeError(path, "error", f"VIDIOC_QUERYCAP failed: {os.strerror(e.errno)}", e.errno) from e
    if out is None:
        raise ProbeError(path, "error", "VIDIOC_QUERYCAP failed: EINVAL", errno.EINVAL)
    return DeviceInfo.decode(bytes(out))


def query_node(
    path: str,
    *,
    ioctl: IoctlFunc = _default_ioctl,
    opener: Callable[[str, int], int] = os.open,
    closer: Callable[[int], None] = os.close,
) -> DeviceInfo:
    """Open ``path``, ``VIDIOC_QUERYCAP``, close: what discovery asks before announcing
    a node (one ioctl, no format enumeration).  Raises :class:`ProbeError`."""
    try:
        fd = opener(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        reason = "vanished" if e.errno in _VANISHED_ERRNOS else "error"
        raise ProbeError(path, reason, f"cannot open: {os.strerror(e.errno)}", e.errno) from e
    try:
        return query_device(fd, ioctl=ioctl, path=path)
    finally:
        try:
            closer(fd)
        except OSError:
            pass


def _enum_intervals(ioctl, fd, path, pixfmt: int, width: int, height: int):
    """Rates for one size → (fps tuple highest first, fps_range or None)."""
    rates: list = []
    for index in range(MAX_INTERVALS):
        req = v4l2_frmivalenum(index=index, pixel_format=pixfmt, width=width, height=height)
        try:
            out = _call(ioctl, fd, VIDIOC_ENUM_FRAMEINTERVALS, req, path)
        except OSError:
            break  # ENOTTY etc.: the driver does not enumerate intervals
        if out is None:
            break
        if out.type == V4L2_FRMIVAL_TYPE_DISCRETE:
            r = _fps(out.discrete.numerator, out.discrete.denominator)
            if r is not None and r not in rates:
                rates.append(r)
        else:
            # stepwise/continuous: one answer describes the whole range; a long
            # interval is a low rate.
            lo = _fps(out.stepwise.max.numerator, out.stepwise.max.denominator)
            hi = _fps(out.stepwise.min.numerator, out.stepwise.min.denominator)
            if lo is None or hi is None:
                break
            pts = tuple(sorted({lo, hi}, reverse=True))
            return pts, (lo, hi)
    return tuple(sorted(rates, reverse=True)), None


def _enum_sizes(ioctl, fd, path, pixfmt: int):
    """Sizes of one format → (tuple of FrameSize, SizeRange or None)."""
    sizes: list[tuple[int, int]] = []
    size_range = None
    for index in range(MAX_SIZES):
        req = v4l2_frmsizeenum(index=index, pixel_format=pixfmt)
        try:
            out = _call(ioctl, fd, VIDIOC_ENUM_FRAMESIZES, req, path)
        except OSError:
            break
        if out is None:
            break
        if out.type == V4L2_FRMSIZE_TYPE_DISCRETE:
            wh = (out.discrete.width, out.discrete.height)
            if wh not in sizes:
                sizes.append(wh)
        else:
            sw = out.stepwise
            step = out.type == V4L2_FRMSIZE_TYPE_STEPWISE
            size_range = SizeRange(
                sw.min_width,
                sw.max_width,
                sw.step_width if step else 1,
                sw.min_height,
                sw.max_height,
                sw.step_height if step else 1,
            )
            sizes = size_range.candidates()
            break
    result = []
    for w, h in sizes:
        fps, rng = _enum_intervals(ioctl, fd, path, pixfmt, w, h)
        result.append(FrameSize(w, h, fps, rng))
    return tuple(result), size_range


def enumerate_formats(
    fd: int, info: DeviceInfo, *, ioctl: IoctlFunc = _default_ioctl, path: str = "?"
) -> tuple[Format, ...]:
    """All formats with their sizes and rates (bounded loops).  ENUM_FMT failing with
    anything but EINVAL/vanished is a ProbeError("error")."""
    formats: list[Format] = []
    seen: set[int] = set()
    for index in range(MAX_FORMATS):
        req = v4l2_fmtdesc(index=index, type=info.buf_type)
        try:
            out = _call(ioctl, fd, VIDIOC_ENUM_FMT, req, path)
        except OSError as e:
            raise ProbeError(path, "error", f"VIDIOC_ENUM_FMT failed: {os.strerror(e.errno)}", e.errno) from e
        if out is None:
            break
        if out.pixelformat in seen:
            continue
        seen.add(out.pixelformat)
        sizes, size_range = _enum_sizes(ioctl, fd, path, out.pixelformat)
        formats.append(
            Format(
                format=fourcc(out.pixelformat),
                description=_cstr(out.description),
                compressed=bool(out.flags & V4L2_FMT_FLAG_COMPRESSED),
                sizes=sizes,
                size_range=size_range,
            )
        )
    return tuple(formats)


def probe(
    path: str,
    *,
    ioctl: IoctlFunc = _default_ioctl,
    opener: Callable[[str, int], int] = os.open,
    closer: Callable[[int], None] = os.close,
) -> Capabilities:
    """Open ``path`` (``O_RDWR|O_NONBLOCK|O_CLOEXEC``), query and enumerate, close.

    Blocking but fast (a few dozen ioctls on a UVC camera).  Raises :class:`ProbeError`
    when the node vanished, is not a video capture node, or cannot be queried.
    """
    try:
        fd = opener(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        reason = "vanished" if e.errno in _VANISHED_ERRNOS else "error"
        raise ProbeError(path, reason, f"cannot open: {os.strerror(e.errno)}", e.errno) from e
    try:
        info = query_device(fd, ioctl=ioctl, path=path)
        if not info.is_capture:
            raise ProbeError(
                path,
                "not_capture",
                f"not a video capture node (device_caps=0x{info.node_caps:08x})",
            )
        formats = enumerate_formats(fd, info, ioctl=ioctl, path=path)
    finally:
        try:
            closer(fd)
        except OSError:
            pass  # closing a vanished node may fail; nothing is left to release
    return Capabilities(
        path=path,
        driver=info.driver,
        card=info.card,
        bus_info=info.bus_info,
        capabilities=info.capabilities,
        device_caps=info.device_caps,
        formats=formats,
    )


# --- default choice -------------------------------------------------------------------------

DEFAULT_PREFERRED: tuple[str, ...] = ("MJPG", "YUYV", "H264")


@dataclass(frozen=True)
class Default:
    """The chosen default mode of a camera."""

    format: str
    width: int
    height: int
    fps: float | int | None

    @property
    def resolution(self) -> str:
        return f"{self.width}x{self.height}"


def _pick_rate(size: FrameSize, min_fps: float, max_fps: float) -> float | int | None:
    """Highest rate of ``size`` within [min_fps, max_fps]; None if there is none."""
    if size.fps_range is not None:
        lo, hi = size.fps_range
        top = min(hi, max_fps)
        if top >= lo and top >= min_fps:
            return int(top) if float(top).is_integer() else top
        return None
    ok = [r for r in size.fps if min_fps <= r <= max_fps]
    return max(ok) if ok else None


def _ordered(formats: Iterable[Format], preferred: Sequence[str]) -> list[Format]:
    rank = {name: i for i, name in enumerate(preferred)}
    indexed = list(enumerate(formats))
    indexed.sort(key=lambda p: (rank.get(p[1].format, len(rank)), p[0]))
    return [f for _, f in indexed]


def choose_default(
    caps: Capabilities,
    preferred: Sequence[str] = DEFAULT_PREFERRED,
    *,
    max_width: int = 1920,
    max_height: int = 1080,
    min_fps: float = 15,
    max_fps: float = 30,
) -> Default | None:
    """Pick a default format, size and rate.  The rule, in order:

    1. Formats are tried in ``preferred`` order (default MJPG > YUYV > H264), then any
       other format in driver order.
    2. In the first format that has one, take the **largest size (by area, then width)
       that fits within max_width x max_height** and has a rate in
       ``[min_fps, max_fps]`` (default 15..30: smooth, yet cheap to transcode to H.264);
       its rate is the highest one in that window.
    3. If no format has such a mode, drop the rate window (keep the size limit, take the
       highest rate of the largest fitting size, or ``None`` if the driver lists none).
    4. If nothing fits the size limit, take the smallest size of the first format.
    5. A format with no enumerable sizes, or no formats at all → ``None``.
    """
    ordered = _ordered(caps.formats, preferred)

    def fits(s: FrameSize) -> bool:
        return s.width <= max_width and s.height <= max_height

    def area(s: FrameSize):
        return (s.width * s.height, s.width)

    for fmt in ordered:
        cands = [(s, _pick_rate(s, min_fps, max_fps)) for s in fmt.sizes if fits(s)]
        cands = [(s, r) for s, r in cands if r is not None]
        if cands:
            s, r = max(cands, key=lambda c: area(c[0]))
            return Default(fmt.format, s.width, s.height, r)
    for fmt in ordered:
        fitting = [s for s in fmt.sizes if fits(s)]
        if fitting:
            s = max(fitting, key=area)
            r = _pick_rate(s, 0, float("inf"))
            return Default(fmt.format, s.width, s.height, r)
    for fmt in ordered:
        if fmt.sizes:
            s = min(fmt.sizes, key=area)
            return Default(fmt.format, s.width, s.height, _pick_rate(s, 0, float("inf")))
    return None


# --- CLI ----------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m camsvc.cameras.v4l2 /dev/videoN``.

    Exit 0 and print the :meth:`Capabilities.to_dict` JSON (plus ``"default"``, the
    :func:`choose_default` choice or null) on stdout; on a :class:`ProbeError` exit 2 and
    print ``{"error": message, "reason": ..., "errno": ...}``; usage errors exit 64.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or args[0].startswith("-"):
        sys.stderr.write("usage: python -m camsvc.cameras.v4l2 /dev/videoN\n")
        return 64
    try:
        caps = probe(args[0])
    except ProbeError as e:
        out = {"error": str(e), "reason": e.reason, "errno": e.errno, "path": e.path}
        sys.stdout.write(json.dumps(out) + "\n")
        return 2
    d = caps.to_dict()
    default = choose_default(caps)
    d["default"] = (
        None
        if default is None
        else {"format": default.format, "width": default.width, "height": default.height, "fps": default.fps}
    )
    sys.stdout.write(json.dumps(d) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
