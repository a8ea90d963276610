"""Which udev nodes are cameras.

This module owns the rule that picks camera nodes out of ``video4linux``: only
``videoN`` nodes (the V4L2 core names touch sensors ``v4l-touchN``, which report
VIDEO_CAPTURE too, and VBI, radio, SDR and sub-device nodes have names of their
own) whose ``ID_V4L_CAPABILITIES`` (udev's ``v4l_id``, from VIDIOC_QUERYCAP)
contains ``:capture:``; and the order nodes are handled in at enumeration
(by node number, so ids are handed out in a stable order).
"""

from __future__ import annotations

import os
from typing import Any


def is_video_node(device: Any) -> bool:
    """Only ``/dev/videoN`` nodes can be cameras."""
    return os.path.basename(device.device_node or device.sys_path).startswith("video")


def udev_capture(device: Any) -> bool | None:
    """True/False from ``ID_V4L_CAPABILITIES``; None when udev did not set it."""
    if not is_video_node(device):
        return False
    caps = device.properties.get("ID_V4L_CAPABILITIES")
    if caps is None:
        return None
    return ":capture:" in caps


def node_number(devnode: str | None) -> tuple[int, str]:
    base = os.path.basename(devnode or "")
    digits = base[len(base.rstrip("0123456789")) :]
    return (int(digits) if digits else 1 << 30, base)
