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
