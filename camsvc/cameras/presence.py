"""Presence: the capture nodes udev reports present, the camera each one is, and the
device path and name each camera is known by.

This module owns the :class:`Node` record (a present camera node, its camera id,
identity key and QUERYCAP) and two rules over the whole present set:

* :func:`unique_paths` — the one device path every consumer of a camera uses
  (MediaMTX publish command, device snapshots, probes, controls).  udev names
  ``/dev/v4l/by-id/<bus>-<ID_SERIAL>-video-index<N>`` without the serial when there
  is none and without the USB interface, so two identical serial-less cameras, or
  the RGB and IR functions of one camera, claim the *same* by-id name and only one
  node owns the link (zoo files 01, 07, 13, 25).  A by-id link is used only when no
  other present camera lists the same name *and* it resolves to this camera's
  node; else its by-path link under the same two conditions; else the node itself.
  Recomputed whenever the present set changes (link ownership can move on
  replug); a changed path is a changed record, so the reconciler rewrites it.
* :func:`display_names` — names a person can tell apart: cameras present at the
  same time with the same name (two C920s: "HD Pro Webcam C920"; a BRIO's RGB and
  IR functions: "Logitech BRIO") get the least specific place that tells them
  apart appended: the USB port (``HD Pro Webcam C920 (usb 1.2)``), port and
  interface (``Logitech BRIO (usb 1.1.4.1, interface 2)``), the whole ID_PATH (two
  C270 on port 1 of two host controllers), QUERYCAP's ``bus_info`` (several V4L2
  devices under one platform device: ``vivid (platform:vivid-001)``, the same when the
  kernel renumbers the node), the node.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from camsvc.cameras.udev import UdevDevice

BY_ID = "/dev/v4l/by-id/"
BY_PATH = "/dev/v4l/by-path/"


class Node:
    """A camera node udev reports present, and the camera it is."""

    __slots__ = ("_device", "camera_id", "key", "info", "path", "links")

    def __init__(self, device: UdevDevice, camera_id: str, key: str, info: Any = None) -> None:
        self.device = device
        self.camera_id = camera_id
        self.key = key
        self.info = info  # QUERYCAP (camsvc.cameras.v4l2.DeviceInfo) or None
        self.path = device.device_node or ""

    @property
    def device(self) -> UdevDevice:
        return self._device

    @device.setter
    def device(self, device: UdevDevice) -> None:
        self._device = device
        self.links = device.links  # split once per event, read on every refresh


def unique_paths(
    nodes: Iterable[Node], resolve: Callable[[str], str | None], memo: dict | None = None
) -> dict[str, str]:
    """``camera_id -> device path`` by the rule in the module docstring.

    ``resolve(link)`` is the node a link points at now (None if it does not exist).
    ``memo`` (kept by the caller between calls) skips the ``readlink`` of a camera whose
    node and link claims are what they were: a link's owner only changes when a
    claimant comes or goes, which changes the claims.
    """
    nodes = list(nodes)
    claims = Counter(link for node in nodes for link in node.links)
    out: dict[str, str] = {}
    for node in nodes:
        devnode = node.device.device_node or ""
        signature = (devnode, node.links, tuple(claims[link] for link in node.links))
        if memo is not None:
            known = memo.get(node.camera_id)
            if known is not None and known[0] == signature:
                out[node.camera_id] = known[1]
                continue
        out[node.camera_id] = next(
            (
                link
                for prefix in (BY_ID, BY_PATH)
                for link in node.links
                if link.startswith(prefix) and claims[link] == 1 and resolve(link) == devnode
            ),
            devnode,
        )
        if memo is not None:
            memo[node.camera_id] = (signature, out[node.camera_id])
    if memo is not None:
        for camera_id in set(memo) - set(out):
            del memo[camera_id]
    return out


_USB_PORT = re.compile(r"-usb(?:v2)?-\d+:([\d.]+):\d+\.(\d+)$")


def _labels(node: Node) -> list[str]:
    """Ever more specific place names for a node: the USB port; port and interface;
    the whole ID_PATH; ID_PATH and node index; QUERYCAP bus_info; the node."""
    device = node.device
    id_path = device.properties.get("ID_PATH", "")
    interface = device.properties.get("ID_USB_INTERFACE_NUM", "")
    match = _USB_PORT.search(id_path)
    devnode = device.device_node or "?"
    labels = []
    if match:
        iface = str(int(interface, 16)) if interface else match.group(2)
        labels += [f"usb {match.group(1)}", f"usb {match.group(1)}, interface {iface}"]
    if id_path:
        labels += [id_path, f"{id_path}, index {device.index}"]
        bus = (getattr(node.info, "bus_info", "") or "").strip()
        if bus:  # several V4L2 devices under one port (vivid n_devs=2): platform:vivid-001
            labels.append(f"{bus}, index {device.index}" if device.index else bus)
    labels.append(devnode)
    return labels


def display_names(nodes: Iterable[Node], base: Callable[[Node], str]) -> dict[str, str]:
    """``camera_id -> name``: ``base(node)``; cameras that share a name get the least
    specific place label that tells all of them apart appended (module docstring)."""
    nodes = list(nodes)
    names = {node.camera_id: base(node) for node in nodes}
    groups: dict[str, list[Node]] = {}
    for node in nodes:
        groups.setdefault(names[node.camera_id], []).append(node)
    for name, group in groups.items():
        if len(group) < 2:
            continue
        labels = {node.camera_id: _labels(node) for node in group}
        depth = max(len(v) for v in labels.values())
        for level in range(depth):
            chosen = {cid: v[min(level, len(v) - 1)] for cid, v in labels.items()}
            if len(set(chosen.values())) == len(chosen) or level == depth - 1:
                for cid, label in chosen.items():
                    names[cid] = f"{name} ({label})"
                break
    return names
