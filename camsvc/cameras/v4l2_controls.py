"""V4L2 controls: the ctypes binding of the extended-control ioctls, no extra dependency.

This module owns the control half of the V4L2 ABI (the capture half, QUERYCAP and the
format enumeration, is :mod:`camsvc.cameras.v4l2`):

* the structures and request numbers of ``VIDIOC_QUERY_EXT_CTRL``, ``VIDIOC_QUERYMENU``,
  ``VIDIOC_G_EXT_CTRLS`` and ``VIDIOC_S_EXT_CTRLS`` (sizes checked against
  ``linux/videodev2.h``: 232, 44, 20 and 32 bytes on 64-bit);
* :func:`enumerate_controls`: every control of an open node, walked with
  ``V4L2_CTRL_FLAG_NEXT_CTRL | V4L2_CTRL_FLAG_NEXT_COMPOUND``, menus read with
  ``VIDIOC_QUERYMENU``, decoded into :class:`ControlInfo`;
* :func:`get_values` / :func:`set_values`: one ``G_EXT_CTRLS`` / ``S_EXT_CTRLS`` call for
  several controls; a failure raises :class:`ControlIoError` naming the control the
  driver's ``error_idx`` points at;
* :func:`control_name`, the ``v4l2-ctl`` rule that turns ``"Exposure Time, Absolute"``
  into ``exposure_time_absolute``.

Collaborator: an ``ioctl(fd, request, buf) -> int`` callable (default :func:`fcntl.ioctl`
on a mutable buffer), injectable so unit tests need no device
(:class:`camsvc.testing.FakeControlDevice` answers these ioctls in memory).  Every call
here is a syscall on an already open fd; none sleeps in Python.  How long the kernel
takes (microseconds for vivid, one USB control transfer for UVC) is measured by the
caller (:mod:`camsvc.cameras.controls`).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from camsvc.cameras.v4l2 import _IOC_READ, _IOC_WRITE, _cstr, _ioc

# --- ABI ------------------------------------------------------------------------------


class v4l2_query_ext_ctrl(ctypes.Structure):
    _fields_ = [
        ("id", ctypes.c_uint32),
        ("type", ctypes.c_uint32),
        ("name", ctypes.c_char * 32),
        ("minimum", ctypes.c_int64),
        ("maximum", ctypes.c_int64),
        ("step", ctypes.c_uint64),
        ("default_value", ctypes.c_int64),
        ("flags", ctypes.c_uint32),
        ("elem_size", ctypes.c_uint32),
        ("elems", ctypes.c_uint32),
        ("nr_of_dims", ctypes.c_uint32),
        ("dims", ctypes.c_uint32 * 4),
        ("reserved", ctypes.c_uint32 * 32),
    ]


class _querymenu_union(ctypes.Union):
    _pack_ = 1
    _fields_ = [("name", ctypes.c_char * 32), ("value", ctypes.c_int64)]


class v4l2_querymenu(ctypes.Structure):
    _pack_ = 1  # __attribute__((packed)) in videodev2.h
    _anonymous_ = ("u",)
    _fields_ = [
        ("id", ctypes.c_uint32),
        ("index", ctypes.c_uint32),
        ("u", _querymenu_union),
        ("reserved", ctypes.c_uint32),
    ]


class _ext_control_union(ctypes.Union):
    _pack_ = 1
    _fields_ = [("value", ctypes.c_int32), ("value64", ctypes.c_int64), ("ptr", ctypes.c_void_p)]


class v4l2_ext_control(ctypes.Structure):
    _pack_ = 1  # __attribute__((packed))
    _anonymous_ = ("u",)
    _fields_ = [
        ("id", ctypes.c_uint32),
        ("size", ctypes.c_uint32),
        ("reserved2", ctypes.c_uint32 * 1),
        ("u", _ext_control_union),
    ]


class v4l2_ext_controls(ctypes.Structure):
    _fields_ = [
        ("which", ctypes.c_uint32),  # union with ctrl_class
        ("count", ctypes.c_uint32),
        ("error_idx", ctypes.c_uint32),
        ("request_fd", ctypes.c_int32),
        ("reserved", ctypes.c_uint32 * 1),
        ("controls", ctypes.c_void_p),
    ]


assert ctypes.sizeof(v4l2_query_ext_ctrl) == 232
assert ctypes.sizeof(v4l2_querymenu) == 44
assert ctypes.sizeof(v4l2_ext_control) == 20
assert ctypes.sizeof(v4l2_ext_controls) == 16 + 2 * ctypes.sizeof(ctypes.c_void_p)

_RW = _IOC_READ | _IOC_WRITE
VIDIOC_QUERYMENU = _ioc(_RW, 37, ctypes.sizeof(v4l2_querymenu))  # 0xc02c5625
VIDIOC_G_EXT_CTRLS = _ioc(_RW, 71, ctypes.sizeof(v4l2_ext_controls))  # 0xc0205647
VIDIOC_S_EXT_CTRLS = _ioc(_RW, 72, ctypes.sizeof(v4l2_ext_controls))  # 0xc0205648
VIDIOC_QUERY_EXT_CTRL = _ioc(_RW, 103, ctypes.sizeof(v4l2_query_ext_ctrl))  # 0xc0e85667

V4L2_CTRL_FLAG_NEXT_CTRL = 0x80000000
V4L2_CTRL_FLAG_NEXT_COMPOUND = 0x40000000
V4L2_CTRL_WHICH_CUR_VAL = 0

# Control flags (the names the API reports).
FLAGS = {
    "disabled": 0x0001,
    "grabbed": 0x0002,
    "read_only": 0x0004,
    "update": 0x0008,
    "inactive": 0x0010,
    "slider": 0x0020,
    "write_only": 0x0040,
    "volatile": 0x0080,
    "has_payload": 0x0100,
    "execute_on_write": 0x0200,
    "modify_layout": 0x0400,
    "dynamic_array": 0x0800,
}
FLAG_DISABLED = FLAGS["disabled"]
FLAG_GRABBED = FLAGS["grabbed"]
FLAG_READ_ONLY = FLAGS["read_only"]
FLAG_INACTIVE = FLAGS["inactive"]
FLAG_WRITE_ONLY = FLAGS["write_only"]
FLAG_VOLATILE = FLAGS["volatile"]

# Control types.
TYPE_INTEGER = 1
TYPE_BOOLEAN = 2
TYPE_MENU = 3
TYPE_BUTTON = 4
TYPE_INTEGER64 = 5
TYPE_CTRL_CLASS = 6
TYPE_STRING = 7
TYPE_BITMASK = 8
TYPE_INTEGER_MENU = 9
TYPE_NAMES = {
    TYPE_INTEGER: "integer",
    TYPE_BOOLEAN: "boolean",
    TYPE_MENU: "menu",
    TYPE_BUTTON: "button",
    TYPE_INTEGER64: "int64",
    TYPE_CTRL_CLASS: "ctrl_class",
    TYPE_STRING: "string",
    TYPE_BITMASK: "bitmask",
    TYPE_INTEGER_MENU: "integer_menu",
}
#: Types camsvc reads and writes; any other (strings, arrays, compound types) is listed
#: with ``"supported": false`` and no value.
SUPPORTED_TYPES = frozenset(
    {TYPE_INTEGER, TYPE_BOOLEAN, TYPE_MENU, TYPE_BUTTON, TYPE_INTEGER64, TYPE_BITMASK, TYPE_INTEGER_MENU}
)

#: Control classes (``V4L2_CTRL_ID2WHICH(id)``) -> the name the API groups by.
CLASSES = {
    0x00980000: "user",
    0x00990000: "codec",
    0x009A0000: "camera",
    0x009B0000: "fm_tx",
    0x009C0000: "flash",
    0x009D0000: "jpeg",
    0x009E0000: "image_source",
    0x009F0000: "image_proc",
    0x00A00000: "dv",
    0x00A10000: "fm_rx",
    0x00A20000: "rf_tuner",
    0x00A30000: "detect",
    0x00A40000: "codec_stateless",
    0x00A50000: "colorimetry",
}

#: Bound of the enumeration loops (a driver that never answers EINVAL cannot hang us).
MAX_CONTROLS = 1024
MAX_MENU_ITEMS = 256

IoctlFunc = Callable[[int, int, bytearray], int]


def _default_ioctl(fd: int, request: int, buf: bytearray) -> int:
    return fcntl.ioctl(fd, request, buf, True)


def control_class(control_id: int) -> str:
    which = control_id & 0x0FFF0000
    return CLASSES.get(which, f"0x{which:08x}")


def control_name(name: str) -> str:
    """``v4l2-ctl``'s name for a control: lower-case words joined by ``_``
    (``"White Balance, Automatic"`` -> ``white_balance_automatic``)."""
    out: list[str] = []
    pending = False
    for ch in name:
        if ch.isascii() and ch.isalnum():
            if pending:
                out.append("_")
            pending = False
            out.append(ch.lower())
        elif out:
            pending = True
    return "".join(out)


# --- value objects ------------------------------------------------------------------------


@dataclass(frozen=True)
class MenuItem:
    index: int
    name: str | None = None  # a menu
    value: int | None = None  # an integer menu

    def to_dict(self) -> dict:
        d: dict = {"index": self.index}
        if self.value is not None:
            d["value"] = self.value
        else:
            d["name"] = self.name
        return d


@dataclass(frozen=True)
class ControlInfo:
    """One decoded ``VIDIOC_QUERY_EXT_CTRL`` answer (plus its menu items)."""

    id: int
    type: int
    label: str  # the driver's name, "Exposure Time, Absolute"
    minimum: int
    maximum: int
    step: int
    default: int
    flags: int
    elems: int = 1
    menu: tuple[MenuItem, ...] = field(default=())

    @property
    def name(self) -> str:
        return control_name(self.label)

    @property
    def type_name(self) -> str:
        return TYPE_NAMES.get(self.type, f"0x{self.type:x}")

    @property
    def klass(self) -> str:
        return control_class(self.id)

    @property
    def supported(self) -> bool:
        return self.type in SUPPORTED_TYPES and self.elems == 1

    @property
    def readable(self) -> bool:
        """A value can be read: supported, not a button, not write-only, not disabled."""
        return self.supported and self.type != TYPE_BUTTON and not self.flags & (FLAG_WRITE_ONLY | FLAG_DISABLED)

    def has(self, flag: int) -> bool:
        return bool(self.flags & flag)

    def flag_names(self) -> list[str]:
        return [name for name, bit in FLAGS.items() if self.flags & bit]

    def menu_index(self, index: int) -> MenuItem | None:
        for item in self.menu:
            if item.index == index:
                return item
        return None


class ControlIoError(Exception):
    """A control ioctl failed: ``errno``, and ``control`` (an id) when the driver's
    ``error_idx`` named one of the controls of the call (None when it did not)."""

    def __init__(self, request: str, errno_: int, control: int | None = None):
        self.request = request
        self.errno = errno_
        self.control = control
        what = f" (control 0x{control:08x})" if control is not None else ""
        super().__init__(f"{request} failed: {errno.errorcode.get(errno_, errno_)} {os.strerror(errno_)}{what}")


# --- syscalls -----------------------------------------------------------------------------------


def _query(ioctl: IoctlFunc, fd: int, control_id: int) -> v4l2_query_ext_ctrl | None:
    buf = bytearray(bytes(v4l2_query_ext_ctrl(id=control_id)))
    try:
        ioctl(fd, VIDIOC_QUERY_EXT_CTRL, buf)
    except OSError as e:
        if e.errno == errno.EINVAL:
            return None
        raise ControlIoError("VIDIOC_QUERY_EXT_CTRL", e.errno or errno.EIO) from e
    return v4l2_query_ext_ctrl.from_buffer_copy(bytes(buf))


def _menu(ioctl: IoctlFunc, fd: int, q: v4l2_query_ext_ctrl) -> tuple[MenuItem, ...]:
    items = []
    last = min(q.maximum, q.minimum + MAX_MENU_ITEMS - 1)
    for index in range(max(0, q.minimum), last + 1):
        buf = bytearray(bytes(v4l2_querymenu(id=q.id, index=index)))
        try:
            ioctl(fd, VIDIOC_QUERYMENU, buf)
        except OSError as e:
            if e.errno == errno.EINVAL:
                continue  # a hole in the menu (an index the driver skips)
            raise ControlIoError("VIDIOC_QUERYMENU", e.errno or errno.EIO, q.id) from e
        m = v4l2_querymenu.from_buffer_copy(bytes(buf))
        if q.type == TYPE_INTEGER_MENU:
            items.append(MenuItem(index, value=int(m.value)))
        else:
            items.append(MenuItem(index, name=_cstr(m.name)))
    return tuple(items)


MenuCache = dict  # (id, minimum, maximum) -> menu items: a driver's menus do not change


def _decode(ioctl: IoctlFunc, fd: int, q: v4l2_query_ext_ctrl, menus: MenuCache | None = None) -> ControlInfo:
    menu: tuple[MenuItem, ...] = ()
    if q.type in (TYPE_MENU, TYPE_INTEGER_MENU):
        key = (q.id, q.minimum, q.maximum)
        cached = menus.get(key) if menus is not None else None
        if cached is None:
            cached = _menu(ioctl, fd, q)
            if menus is not None:
                menus[key] = cached
        menu = cached
    return ControlInfo(
        id=q.id,
        type=q.type,
        label=_cstr(q.name),
        minimum=q.minimum,
        maximum=q.maximum,
        step=q.step,
        default=q.default_value,
        flags=q.flags,
        elems=q.elems or 1,
        menu=menu,
    )


def enumerate_controls(
    fd: int, *, ioctl: IoctlFunc = _default_ioctl, menus: MenuCache | None = None
) -> list[ControlInfo]:
    """Every control of the node (control-class headings left out), in driver order.

    ``menus``, a dict kept by the caller per open node, saves the QUERYMENU calls of
    menus already read (keyed by id and range, so a driver changing a range is re-read)."""
    controls: list[ControlInfo] = []
    next_id = V4L2_CTRL_FLAG_NEXT_CTRL | V4L2_CTRL_FLAG_NEXT_COMPOUND
    for _ in range(MAX_CONTROLS):
        q = _query(ioctl, fd, next_id)
        if q is None:
            break
        if q.type != TYPE_CTRL_CLASS:
            controls.append(_decode(ioctl, fd, q, menus))
        next_id = q.id | V4L2_CTRL_FLAG_NEXT_CTRL | V4L2_CTRL_FLAG_NEXT_COMPOUND
    return controls


def query_control(
    fd: int, control_id: int, *, ioctl: IoctlFunc = _default_ioctl, menus: MenuCache | None = None
) -> ControlInfo | None:
    """One control by id (its current flags: inactive, grabbed change at run time)."""
    q = _query(ioctl, fd, control_id)
    return None if q is None else _decode(ioctl, fd, q, menus)


def _array(items: Iterable[tuple[int, int, bool]]):
    entries = list(items)
    arr = (v4l2_ext_control * max(1, len(entries)))()
    for i, (cid, value, wide) in enumerate(entries):
        arr[i].id = cid
        if wide:
            arr[i].value64 = value
        else:
            arr[i].value = value
    return arr, len(entries)


def _ext_call(ioctl: IoctlFunc, fd: int, request: int, name: str, arr, count: int) -> None:
    ctrls = v4l2_ext_controls(which=V4L2_CTRL_WHICH_CUR_VAL, count=count, controls=ctypes.addressof(arr))
    buf = bytearray(bytes(ctrls))
    try:
        ioctl(fd, request, buf)
    except OSError as e:
        out = v4l2_ext_controls.from_buffer_copy(bytes(buf))
        # error_idx == count means "before any control was touched" (validation of the
        # whole array): no single control to blame.
        failed = arr[out.error_idx].id if out.error_idx < count else None
        raise ControlIoError(name, e.errno or errno.EIO, failed) from e


def get_values(fd: int, controls: Iterable[ControlInfo], *, ioctl: IoctlFunc = _default_ioctl) -> dict[int, int]:
    """Current values of ``controls`` (readable ones only) in one ``VIDIOC_G_EXT_CTRLS``."""
    wanted = [c for c in controls if c.readable]
    if not wanted:
        return {}
    arr, count = _array((c.id, 0, c.type == TYPE_INTEGER64) for c in wanted)
    _ext_call(ioctl, fd, VIDIOC_G_EXT_CTRLS, "VIDIOC_G_EXT_CTRLS", arr, count)
    out = {}
    for i, c in enumerate(wanted):
        value = arr[i].value64 if c.type == TYPE_INTEGER64 else arr[i].value
        if c.type == TYPE_BITMASK:
            value &= 0xFFFFFFFF
        out[c.id] = int(value)
    return out


def set_values(fd: int, values: list[tuple[ControlInfo, int]], *, ioctl: IoctlFunc = _default_ioctl) -> None:
    """Write ``values`` (in this order) with one ``VIDIOC_S_EXT_CTRLS``.

    The driver applies all or none; :class:`ControlIoError` names the failing control.
    """
    if not values:
        return
    arr, count = _array((c.id, v, c.type == TYPE_INTEGER64) for c, v in values)
    _ext_call(ioctl, fd, VIDIOC_S_EXT_CTRLS, "VIDIOC_S_EXT_CTRLS", arr, count)
