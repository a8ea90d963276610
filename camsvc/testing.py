"""Test doubles for camsvc's injected collaborators (synchronous, no I/O).

* :class:`FakeUdev` — a udev backend for :class:`camsvc.cameras.discovery.DiscoveryService`:
  a set of present devices (what enumeration returns) and a :class:`FakeMonitor`
  whose queue tests fill with events and errors (``ENOBUFS``);
* :class:`FakeProber` — ``probe(path) -> Deferred`` that the test fires by hand;
* :func:`usb_camera` / :func:`platform_camera` — udev device records shaped like the
  ones udev (and the umockdev test bed) produce.

Use with ``twisted.internet.testing.MemoryReactorClock`` as the reactor: the reader
added by discovery is in ``reactor.readers``; call its ``doRead()`` to deliver.
"""

from __future__ import annotations

import errno
from dataclasses import replace
from typing import Any

from twisted.internet.defer import Deferred

from camsvc.cameras.probing import ProbeFailed
from camsvc.cameras.udev import UdevDevice

__all__ = [
    "FakeMonitor",
    "FakeProber",
    "FakeUdev",
    "querycap_for",
    "enobufs",
    "platform_camera",
    "usb_camera",
]


def enobufs() -> OSError:
    return OSError(errno.ENOBUFS, "No buffer space available")


def usb_camera(
    video: int,
    *,
    serial: str | None = None,
    port: str = "1",
    card: str = "USB Camera",
    metadata: bool = False,
    interface: str = "00",
) -> UdevDevice:
    """A UVC capture node (or, with ``metadata=True``, its metadata sibling)."""
    model = card.replace(" ", "_")
    id_serial = f"Vendor_{model}" + (f"_{serial}" if serial else "")
    id_path = f"pci-0000:00:14.0-usb-0:{port}:1.0"
    index = 1 if metadata else 0
    props = {
        "DEVNAME": f"/dev/video{video}",
        "SUBSYSTEM": "video4linux",
        "ID_V4L_PRODUCT": card,
        "ID_V4L_CAPABILITIES": ":" if metadata else ":capture:",
        "ID_BUS": "usb",
        "ID_MODEL": model,
        "ID_SERIAL": id_serial,
        "ID_USB_INTERFACE_NUM": interface,
        "ID_PATH": id_path,
        "DEVLINKS": f"/dev/v4l/by-id/usb-{id_serial}-video-index{index} /dev/v4l/by-path/{id_path}-video-index{index}",
    }
    if serial:
        props["ID_SERIAL_SHORT"] = serial
    return UdevDevice(
        sys_path=f"/sys/devices/pci0000:00/0000:00:14.0/usb1/1-{port}/1-{port}:1.0/video4linux/video{video}",
        device_node=f"/dev/video{video}",
        properties=props,
        index=index,
    )


def platform_camera(video: int, *, name: str = "vivid.0", card: str = "vivid") -> UdevDevice:
    """A platform (CSI-like, vivid-like) capture node: no ID_SERIAL, an ID_PATH."""
    id_path = f"platform-{name}"
    props = {
        "DEVNAME": f"/dev/video{video}",
        "SUBSYSTEM": "video4linux",
        "ID_V4L_PRODUCT": card,
        "ID_V4L_CAPABILITIES": ":capture:",
        "ID_PATH": id_path,
        "DEVLINKS": f"/dev/v4l/by-path/{id_path}-video-index0",
    }
    return UdevDevice(
        sys_path=f"/sys/devices/platform/{name}/video4linux/video{video}",
        device_node=f"/dev/video{video}",
        properties=props,
    )


def querycap_for(device: UdevDevice) -> Any:
    """The QUERYCAP a node answers when its udev capabilities are right: a UVC capture
    node (device caps 0x04200001) or, for anything else, a metadata node (0x04a00000)."""
    from camsvc.cameras.v4l2 import DeviceInfo

    capture = ":capture:" in device.properties.get("ID_V4L_CAPABILITIES", "")
    device_caps = 0x04200001 if capture else 0x04A00000
    return DeviceInfo(
        driver=device.properties.get("ID_USB_DRIVER", "uvcvideo" if "ID_SERIAL" in device.properties else "vivid"),
        card=device.properties.get("ID_V4L_PRODUCT", ""),
        bus_info="",
        version=0,
        capabilities=0x84A00001,
        device_caps=device_caps,
    )


class FakeMonitor:
    """A monitor whose queue holds :class:`UdevDevice` events and exceptions."""

    def __init__(self, receive_buffer_size: int) -> None:
        self.receive_buffer_size = receive_buffer_size
        self.queue: list[Any] = []
        self.closed = False
        self.received = 0

    def fileno(self) -> int:
        return -1 if self.closed else 99

    def receive(self) -> UdevDevice | None:
        if not self.queue:
            return None
        item = self.queue.pop(0)
        if isinstance(item, BaseException):
            raise item
        self.received += 1
        return item

    def pending(self) -> bool:
        return bool(self.queue)

    def close(self) -> None:
        self.closed = True


class FakeUdev:
    """A udev backend: ``devices`` (by sys_path) is what enumeration returns.

    :meth:`add`, :meth:`remove` and :meth:`change` update ``devices`` and queue the
    matching event; ``quiet=True`` changes the devices without an event (an event the
    kernel dropped).  :meth:`overflow` queues an ENOBUFS error.
    """

    def __init__(self, devices: list[UdevDevice] = ()) -> None:
        self.devices: dict[str, UdevDevice] = {}
        self.monitors: list[FakeMonitor] = []
        self.enumerations = 0
        self.fail_enumerate: Exception | None = None
        #: devnode -> QUERYCAP answer (a DeviceInfo, or an exception to raise); a node
        #: not listed answers as udev's ID_V4L_CAPABILITIES suggests (:func:`querycap_for`)
        self.caps: dict[str, Any] = {}
        self.querycaps = 0
        #: /dev/v4l link -> sys_path of the node that owns it (udev: one owner per name;
        #: the first claimant keeps it, it moves to another claimant when the owner goes)
        self.owners: dict[str, str] = {}
        for device in devices:
            self._present(device)

    def _present(self, device: UdevDevice) -> None:
        self.devices[device.sys_path] = device
        for link in device.links:
            if self.owners.get(link) not in self.devices:
                self.owners[link] = device.sys_path

    def _gone(self, sys_path: str) -> None:
        self.devices.pop(sys_path, None)
        for link, owner in list(self.owners.items()):
            if owner == sys_path:
                heirs = [d.sys_path for d in self.devices.values() if link in d.links]
                if heirs:
                    self.owners[link] = heirs[0]
                else:
                    del self.owners[link]

    def querycap(self, devnode: str) -> Any:
        self.querycaps += 1
        answer = self.caps.get(devnode)
        if answer is None:
            device = next((d for d in self.devices.values() if d.device_node == devnode), None)
            if device is None:
                from camsvc.cameras.v4l2 import ProbeError

                raise ProbeError(devnode, "vanished", "cannot open: No such file or directory", errno.ENOENT)
            answer = querycap_for(device)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def resolve_link(self, link: str) -> str | None:
        owner = self.devices.get(self.owners.get(link, ""))
        return owner.device_node if owner is not None else None

    def __call__(self) -> FakeUdev:  # usable as the udev_factory itself
        return self

    def enumerate(self) -> list[UdevDevice]:
        if self.fail_enumerate is not None:
            raise self.fail_enumerate
        self.enumerations += 1
        return [replace(d, action=None) for d in self.devices.values()]

    def monitor(self, receive_buffer_size: int) -> FakeMonitor:
        m = FakeMonitor(receive_buffer_size)
        self.monitors.append(m)
        return m

    def _queue(self, item: Any) -> None:
        if self.monitors:
            self.monitors[-1].queue.append(item)

    def add(self, device: UdevDevice, *, quiet: bool = False) -> UdevDevice:
        self._present(device)
        if not quiet:
            self._queue(replace(device, action="add"))
        return device

    def remove(self, device: UdevDevice, *, quiet: bool = False) -> None:
        self._gone(device.sys_path)
        if not quiet:
            self._queue(replace(device, action="remove"))

    def change(self, device: UdevDevice, *, quiet: bool = False) -> None:
        self._present(device)
        if not quiet:
            self._queue(replace(device, action="change"))

    def event(self, device: UdevDevice, action: str) -> None:
        """Queue an arbitrary event without touching ``devices``."""
        self._queue(replace(device, action=action))

    def overflow(self) -> None:
        self._queue(enobufs())


class FakeProber:
    """``probe(path)`` returns a Deferred kept in ``calls`` for the test to fire.

    :meth:`succeed` / :meth:`fail` fire the oldest pending probe of ``path``.
    Cancelling a probe records it in ``cancelled``.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, Deferred]] = []
        self.cancelled: list[str] = []

    def probe(self, path: str) -> Deferred:
        def cancel(d: Deferred) -> None:
            self.cancelled.append(path)

        d: Deferred = Deferred(cancel)
        self.calls.append((path, d))
        return d

    @property
    def pending(self) -> list[str]:
        return [p for p, d in self.calls if not d.called]

    def _take(self, path: str) -> Deferred:
        for p, d in self.calls:
            if p == path and not d.called:
                return d
        raise AssertionError(f"no pending probe of {path} (pending: {self.pending})")

    def succeed(self, path: str, result: dict | None = None) -> None:
        self._take(path).callback(result if result is not None else probe_result(path))

    def fail(self, path: str, reason: str, message: str = "") -> None:
        self._take(path).errback(ProbeFailed(reason, message or f"{path}: {reason}"))


def probe_result(path: str, card: str = "USB Camera", *, fps: Any = 30) -> dict:
    """What ``python -m camsvc.cameras.v4l2 PATH`` prints for a typical UVC camera."""
    return {
        "path": path,
        "driver": "uvcvideo",
        "card": card,
        "bus_info": "usb-0000:00:14.0-1",
        "capabilities": 0x84A00001,
        "device_caps": 0x04A00001,
        "formats": [
            {
                "format": "MJPG",
                "description": "Motion-JPEG",
                "compressed": True,
                "sizes": [
                    {"width": 1920, "height": 1080, "fps": [30, 15]},
                    {"width": 640, "height": 480, "fps": [30, 15]},
                ],
            },
            {
                "format": "YUYV",
                "description": "YUYV 4:2:2",
                "compressed": False,
                "sizes": [{"width": 640, "height": 480, "fps": [30, 15]}],
            },
        ],
        "default": {"format": "MJPG", "width": 1920, "height": 1080, "fps": fps},
    }


# --- V4L2 controls ----------------------------------------------------------------------


def webcam_controls() -> list[dict]:
    """A control table shaped like a UVC webcam's plus one of every other type (vivid's).

    Each entry: ``id, type, name, min, max, step, default`` and optional ``flags``,
    ``menu`` ({index: name or int}), ``elems``; ``auto`` names the id of the automatic
    control that makes this one inactive while ``auto_on(value)`` of that control holds.
    """
    from camsvc.cameras import v4l2_controls as vc

    auto_wb, wb_temp = 0x0098090C, 0x0098091A
    auto_exp, exp_abs = 0x009A0901, 0x009A0902
    return [
        {"id": 0x00980001, "type": vc.TYPE_CTRL_CLASS, "name": "User Controls", "flags": 0x0044},
        {
            "id": 0x00980900,
            "type": vc.TYPE_INTEGER,
            "name": "Brightness",
            "min": 0,
            "max": 255,
            "step": 1,
            "default": 128,
        },
        {"id": 0x00980901, "type": vc.TYPE_INTEGER, "name": "Contrast", "min": 0, "max": 255, "step": 1, "default": 32},
        {
            "id": 0x00980902,
            "type": vc.TYPE_INTEGER,
            "name": "Saturation",
            "min": 0,
            "max": 200,
            "step": 4,
            "default": 64,
        },
        {
            "id": auto_wb,
            "type": vc.TYPE_BOOLEAN,
            "name": "White Balance, Automatic",
            "min": 0,
            "max": 1,
            "step": 1,
            "default": 1,
        },
        {
            "id": 0x00980918,
            "type": vc.TYPE_MENU,
            "name": "Power Line Frequency",
            "min": 0,
            "max": 2,
            "step": 1,
            "default": 2,
            "menu": {0: "Disabled", 1: "50 Hz", 2: "60 Hz"},
        },
        {
            "id": wb_temp,
            "type": vc.TYPE_INTEGER,
            "name": "White Balance Temperature",
            "min": 2800,
            "max": 6500,
            "step": 10,
            "default": 4000,
            "auto": auto_wb,
        },
        {
            "id": 0x00980929,
            "type": vc.TYPE_INTEGER,
            "name": "Sensor Temperature",
            "min": -40,
            "max": 125,
            "step": 1,
            "default": 30,
            "flags": 0x0004,
        },
        {
            "id": 0x00980930,
            "type": vc.TYPE_BUTTON,
            "name": "Button",
            "min": 0,
            "max": 0,
            "step": 0,
            "default": 0,
            "flags": 0x0240,
        },
        {
            "id": 0x00980931,
            "type": vc.TYPE_INTEGER64,
            "name": "Integer 64 Bits",
            "min": -(1 << 40),
            "max": 1 << 40,
            "step": 1,
            "default": 0,
        },
        {
            "id": 0x00980932,
            "type": vc.TYPE_BITMASK,
            "name": "Bitmask",
            "min": 0,
            "max": 0x8000250F,
            "step": 0,
            "default": 0x80002000,
        },
        {
            "id": 0x00980933,
            "type": vc.TYPE_INTEGER_MENU,
            "name": "Integer Menu",
            "min": 0,
            "max": 3,
            "step": 1,
            "default": 1,
            "menu": {0: 1, 1: 12, 2: 10000, 3: -7},
        },
        {"id": 0x00980934, "type": vc.TYPE_STRING, "name": "String", "min": 2, "max": 10, "step": 1, "default": 0},
        {
            "id": 0x00980935,
            "type": vc.TYPE_INTEGER,
            "name": "U32 Array",
            "min": 0,
            "max": 100,
            "step": 1,
            "default": 0,
            "elems": 8,
        },
        {"id": 0x009A0001, "type": vc.TYPE_CTRL_CLASS, "name": "Camera Controls", "flags": 0x0044},
        {
            "id": auto_exp,
            "type": vc.TYPE_MENU,
            "name": "Auto Exposure",
            "min": 0,
            "max": 3,
            "step": 1,
            "default": 3,
            "menu": {1: "Manual Mode", 3: "Aperture Priority Mode"},
        },
        {
            "id": exp_abs,
            "type": vc.TYPE_INTEGER,
            "name": "Exposure Time, Absolute",
            "min": 3,
            "max": 2047,
            "step": 1,
            "default": 250,
            "auto": auto_exp,
            "auto_on": 3,
        },
        {
            "id": 0x009A090D,
            "type": vc.TYPE_INTEGER,
            "name": "Zoom, Absolute",
            "min": 100,
            "max": 500,
            "step": 1,
            "default": 100,
        },
    ]


class FakeControlDevice:
    """An in-memory V4L2 node answering the control ioctls of :mod:`camsvc.cameras.v4l2_controls`.

    ``ioctl(fd, request, buf)`` has the signature of the binding's collaborator; pass
    :meth:`open` as ``open_device`` of :class:`camsvc.cameras.controls.CameraControls`.
    ``errors[id] = errno`` makes writes of that control fail (the driver's
    ``error_idx`` points at it); ``grab(id)`` sets GRABBED; ``calls`` counts
    ioctls by request; ``external_set(id, value)`` is another program's change.
    """

    def __init__(self, table: list[dict] | None = None) -> None:
        self.table = {c["id"]: dict(c) for c in (table if table is not None else webcam_controls())}
        self.values = {cid: c.get("default", 0) for cid, c in self.table.items()}
        self.errors: dict[int, int] = {}
        self.calls: dict[str, int] = {}
        self.writes: list[list[tuple[int, int]]] = []
        self.opened: list[str] = []
        self.closed = 0
        self.vanished = False

    # -- test controls ------------------------------------------------------------------

    def open(self, path: str) -> Any:
        from camsvc.cameras.controls import ControlDevice

        if self.vanished:
            raise OSError(errno.ENOENT, "No such file or directory")
        self.opened.append(path)
        return ControlDevice(path, ioctl=self.ioctl, opener=lambda p, flags: 100 + len(self.opened), closer=self._close)

    def _close(self, fd: int) -> None:
        self.closed += 1

    def grab(self, control_id: int, grabbed: bool = True) -> None:
        flags = self.table[control_id].get("flags", 0)
        self.table[control_id]["flags"] = flags | 0x0002 if grabbed else flags & ~0x0002

    def external_set(self, control_id: int, value: int) -> None:
        self.values[control_id] = value

    def flags(self, cid: int) -> int:
        c = self.table[cid]
        flags = c.get("flags", 0)
        auto = c.get("auto")
        if auto is not None and self.values[auto] == c.get("auto_on", 1):
            flags |= 0x0010  # inactive while its automatic control is on
        return flags

    # -- the ioctls ---------------------------------------------------------------------

    def ioctl(self, fd: int, request: int, buf: bytearray) -> int:
        from camsvc.cameras import v4l2_controls as vc

        name = {
            vc.VIDIOC_QUERY_EXT_CTRL: "QUERY_EXT_CTRL",
            vc.VIDIOC_QUERYMENU: "QUERYMENU",
            vc.VIDIOC_G_EXT_CTRLS: "G_EXT_CTRLS",
            vc.VIDIOC_S_EXT_CTRLS: "S_EXT_CTRLS",
        }.get(request)
        if name is None:
            raise OSError(errno.ENOTTY, "Inappropriate ioctl for device")
        self.calls[name] = self.calls.get(name, 0) + 1
        if self.vanished:
            raise OSError(errno.ENODEV, "No such device")
        return getattr(self, "_" + name.lower())(vc, buf)

    def _query_ext_ctrl(self, vc: Any, buf: bytearray) -> int:
        q = vc.v4l2_query_ext_ctrl.from_buffer_copy(bytes(buf))
        want = q.id
        ids = sorted(self.table)
        if want & vc.V4L2_CTRL_FLAG_NEXT_CTRL:
            base = want & ~(vc.V4L2_CTRL_FLAG_NEXT_CTRL | vc.V4L2_CTRL_FLAG_NEXT_COMPOUND)
            nxt = [i for i in ids if i > base]
            if not nxt:
                raise OSError(errno.EINVAL, "Invalid argument")
            cid = nxt[0]
        elif want in self.table:
            cid = want
        else:
            raise OSError(errno.EINVAL, "Invalid argument")
        c = self.table[cid]
        out = vc.v4l2_query_ext_ctrl(
            id=cid,
            type=c["type"],
            name=c["name"].encode(),
            minimum=c.get("min", 0),
            maximum=c.get("max", 0),
            step=c.get("step", 0),
            default_value=c.get("default", 0),
            flags=self.flags(cid),
            elem_size=8 if c["type"] == vc.TYPE_INTEGER64 else 4,
            elems=c.get("elems", 1),
            nr_of_dims=1 if c.get("elems", 1) > 1 else 0,
        )
        buf[:] = bytes(out)
        return 0

    def _querymenu(self, vc: Any, buf: bytearray) -> int:
        m = vc.v4l2_querymenu.from_buffer_copy(bytes(buf))
        c = self.table.get(m.id)
        if c is None or m.index not in c.get("menu", {}):
            raise OSError(errno.EINVAL, "Invalid argument")
        item = c["menu"][m.index]
        if isinstance(item, int):
            m.value = item
        else:
            m.name = item.encode()
        buf[:] = bytes(m)
        return 0

    def _entries(self, vc: Any, buf: bytearray):

        head = vc.v4l2_ext_controls.from_buffer_copy(bytes(buf))
        arr = (vc.v4l2_ext_control * max(1, head.count)).from_address(head.controls)
        return head, arr

    def _fail(self, vc: Any, buf: bytearray, head: Any, index: int, err: int) -> None:
        head.error_idx = index
        buf[:] = bytes(head)
        raise OSError(err, "control ioctl failed")

    def _g_ext_ctrls(self, vc: Any, buf: bytearray) -> int:
        head, arr = self._entries(vc, buf)
        for i in range(head.count):
            cid = arr[i].id
            c = self.table.get(cid)
            if c is None:
                self._fail(vc, buf, head, head.count, errno.EINVAL)
            if self.flags(cid) & 0x0040:
                self._fail(vc, buf, head, i, errno.EACCES)
            if c["type"] == vc.TYPE_INTEGER64:
                arr[i].value64 = self.values[cid]
            else:
                arr[i].value = self.values[cid]
        return 0

    def _s_ext_ctrls(self, vc: Any, buf: bytearray) -> int:
        head, arr = self._entries(vc, buf)
        pending = []
        for i in range(head.count):
            cid = arr[i].id
            c = self.table.get(cid)
            if c is None:
                self._fail(vc, buf, head, head.count, errno.EINVAL)
            flags = self.flags(cid)
            if flags & 0x0004:
                self._fail(vc, buf, head, i, errno.EACCES)
            if flags & 0x0002:
                self._fail(vc, buf, head, i, errno.EBUSY)
            if cid in self.errors:
                self._fail(vc, buf, head, i, self.errors[cid])
            value = arr[i].value64 if c["type"] == vc.TYPE_INTEGER64 else arr[i].value
            if c["type"] == vc.TYPE_INTEGER:
                # the framework clamps and rounds to the step
                step = max(1, c.get("step", 1))
                value = min(max(value, c["min"]), c["max"])
                value = c["min"] + (value - c["min"] + step // 2) // step * step
            pending.append((cid, value))
        for cid, value in pending:
            if self.table[cid]["type"] != vc.TYPE_BUTTON:
                self.values[cid] = value
        self.writes.append(pending)
        return 0
