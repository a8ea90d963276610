"""Presence: the capture nodes udev reports present and the camera each one is.

This module owns the :class:`Node` record (a present capture node, its camera id
and identity key) that discovery keeps per sys_path and per camera id.
"""

from __future__ import annotations

from camsvc.cameras.udev import UdevDevice


class Node:
    """A capture node udev reports present, and the camera it is."""

    __slots__ = ("device", "camera_id", "key")

    def __init__(self, device: UdevDevice, camera_id: str, key: str) -> None:
        self.device = device
        self.camera_id = camera_id
        self.key = key
