"""Reading udev: the :class:`UdevDevice` record, pyudev's backend and monitor, and the
monitor's fd on the reactor.

This module owns the boundary to libudev.  :func:`from_pyudev` copies only the
properties discovery reads (:data:`PROPERTIES`) into plain data;
:class:`PyudevBackend` enumerates ``video4linux``; :class:`PyudevMonitor` is a
started netlink monitor whose ``receive()`` never blocks (receive buffer
``discovery.receive_buffer_size``, falling back to plain ``SO_RCVBUF`` without
CAP_NET_ADMIN); :class:`MonitorReader` puts its fd on the reactor as an
``IReadDescriptor`` and hands every read to its owner's ``read_events()``
(never raises, never returns a truthy value).  Which of these nodes are cameras
is :mod:`camsvc.cameras.selection`'s business.
"""

from __future__ import annotations

import os
import re
import select
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.interfaces import IReadDescriptor
from twisted.logger import Logger
from zope.interface import implementer

log = Logger()

SUBSYSTEM = "video4linux"
#: Events handled per doRead before yielding to the reactor (it calls again while readable).
MAX_EVENTS_PER_READ = 256
#: Queued events discarded after an overflow before re-enumerating.
MAX_DISCARD = 100000


@dataclass(frozen=True)
class UdevDevice:
    """One udev device as discovery needs it (plain data, built at the pyudev boundary).

    ``action`` is None for enumerated devices; ``index`` is sysfs ``index`` (0 for
    the first node of an interface).
    """

    sys_path: str
    device_node: str | None
    properties: Mapping[str, str] = field(default_factory=dict)
    action: str | None = None
    index: int = 0

    @property
    def links(self) -> tuple[str, ...]:
        return tuple(sorted(self.properties.get("DEVLINKS", "").split()))

    @property
    def product(self) -> str:
        """The V4L2 card name as udev's v4l_id read it (``ID_V4L_PRODUCT``), or ""."""
        return self.properties.get("ID_V4L_PRODUCT", "").strip()

    @property
    def name(self) -> str:
        """A display name: the V4L2 card, else the USB model, else the node's name."""
        props = self.properties
        model = props.get("ID_MODEL_FROM_DATABASE") or props.get("ID_MODEL", "").replace("_", " ")
        return self.product or model.strip() or os.path.basename(self.device_node or self.sys_path)

    def describe(self) -> str:
        return f"{self.device_node or self.sys_path}"


#: The udev properties discovery reads.  Fetched one by one: copying all of a node's
#: properties (~25, each an iteration step plus a lookup in libudev) was the largest
#: cost of handling an event.
PROPERTIES = (
    "ID_V4L_CAPABILITIES",
    "ID_V4L_PRODUCT",
    "ID_SERIAL",
    "ID_SERIAL_SHORT",
    "ID_USB_INTERFACE_NUM",
    "ID_VENDOR_ID",
    "ID_MODEL_ID",
    "ID_REVISION",
    "ID_PATH",
    "ID_MODEL",
    "ID_MODEL_FROM_DATABASE",
    "DEVLINKS",
    "DEVPATH",
    "DEVPATH_OLD",
)


_LINK_INDEX = re.compile(r"-video-index(\d+)(?:\s|$)")


def from_pyudev(device: Any) -> UdevDevice:
    """A pyudev Device as a :class:`UdevDevice` (a "remove" needs only its sys_path)."""
    action = device.action
    index = 0
    properties: dict[str, str] = {}
    if action != "remove":
        props = device.properties
        for key in PROPERTIES:
            value = props.get(key)
            if value is not None:
                properties[key] = value
        # udev's persistent links carry sysfs "index" ("...-video-index1"); read sysfs only without them
        match = _LINK_INDEX.search(properties.get("DEVLINKS", ""))
        if match:
            index = int(match.group(1))
        else:
            try:
                index = int(device.attributes.asstring("index"))
            except (KeyError, ValueError, OSError, UnicodeDecodeError):
                index = 0
    return UdevDevice(
        sys_path=device.sys_path,
        device_node=device.device_node,
        properties=properties,
        action=action,
        index=index,
    )


def _plain_receive_buffer(fd: int, wanted: int, forced_error: Exception) -> str:
    """Fall back to plain SO_RCVBUF (capped by net.core.rmem_max); return the size in force."""
    import socket

    sock = socket.socket(fileno=os.dup(fd))
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, wanted)
        got = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    except OSError as exc:
        log.warn(
            "Cannot enlarge the udev receive buffer ({error}; {plain}); event storms are more "
            "likely to overflow (handled by re-enumeration)",
            error=forced_error,
            plain=exc,
        )
        return "default"
    finally:
        sock.close()
    if got < wanted:
        log.info(
            "udev receive buffer is {got} bytes, not {wanted} ({error}); raise net.core.rmem_max to allow more",
            got=got,
            wanted=wanted,
            error=forced_error,
        )
    return str(got)


class PyudevMonitor:
    """A started ``pyudev.Monitor`` for video4linux; ``receive()`` never blocks."""

    def __init__(self, context: Any, receive_buffer_size: int) -> None:
        import pyudev

        monitor = pyudev.Monitor.from_netlink(context)
        monitor.filter_by(SUBSYSTEM)
        self.receive_buffer = "default"
        try:
            # SO_RCVBUFFORCE: needs CAP_NET_ADMIN, which the systemd unit does not grant.
            monitor.set_receive_buffer_size(receive_buffer_size)
            self.receive_buffer = str(receive_buffer_size)
        except Exception as exc:
            self.receive_buffer = _plain_receive_buffer(monitor.fileno(), receive_buffer_size, exc)
        monitor.start()
        self._monitor: Any = monitor
        self._fd = monitor.fileno()

    def fileno(self) -> int:
        return self._fd if self._monitor is not None else -1

    def receive(self) -> UdevDevice | None:
        device = self._monitor.poll(timeout=0)
        return None if device is None else from_pyudev(device)

    def pending(self) -> bool:
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        return bool(poller.poll(0))

    def close(self) -> None:
        # libudev closes the socket when the last reference goes (udev_monitor_unref)
        self._monitor = None


class PyudevBackend:
    """The host's udev through pyudev (libudev)."""

    def __init__(self) -> None:
        import pyudev

        self.context = pyudev.Context()

    def enumerate(self) -> list[UdevDevice]:
        return [from_pyudev(d) for d in self.context.list_devices(subsystem=SUBSYSTEM)]

    def monitor(self, receive_buffer_size: int) -> PyudevMonitor:
        return PyudevMonitor(self.context, receive_buffer_size)

    def querycap(self, devnode: str) -> Any:
        """The node's ``VIDIOC_QUERYCAP`` (:class:`camsvc.cameras.v4l2.DeviceInfo`);
        raises :class:`camsvc.cameras.v4l2.ProbeError`.  One open + ioctl + close."""
        from camsvc.cameras.v4l2 import query_node

        return query_node(devnode)

    def resolve_link(self, link: str) -> str | None:
        """The node a /dev/v4l link points at now, or None when it does not exist."""
        try:
            target = os.readlink(link)
        except OSError:
            return None
        return os.path.normpath(os.path.join(os.path.dirname(link), target))


@implementer(IReadDescriptor)
class MonitorReader:
    """The monitor's fd on the reactor; every read goes to :meth:`DiscoveryService.read_events`."""

    def __init__(self, discovery: Any) -> None:
        self.discovery = discovery

    def fileno(self) -> int:
        monitor = self.discovery.monitor
        return monitor.fileno() if monitor is not None else -1

    def doRead(self) -> None:
        try:
            self.discovery.read_events()
        except Exception:
            log.failure("udev monitor reader failed; it keeps running")
        return None

    def connectionLost(self, reason: Any) -> None:
        if self.discovery.running:
            log.error("The reactor dropped the udev monitor: {reason}", reason=reason)

    def logPrefix(self) -> str:
        return "udev"
