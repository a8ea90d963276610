"""The camera registry: every camera camsvc knows, its state, and who to tell.

This module owns the :class:`Camera` record and the :class:`CameraRegistry`,
the single place camera state lives.  Discovery (udev) writes to it; the API,
the MediaMTX reconciler, recordings and notifications read it and subscribe
to changes through the :class:`CameraObserver` interface.  It does no I/O.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from twisted.logger import Logger

from camsvc.common.errors import CameraNotFound
from camsvc.common.timefmt import iso

log = Logger()

CONNECTED = "CONNECTED"
DISCONNECTED = "DISCONNECTED"
ERROR = "ERROR"

_CAMERA_ID = re.compile(r"^camera(\d+)$")


@dataclass(frozen=True)
class Camera:
    """One physical camera (immutable snapshot; the registry swaps whole records).

    ``key`` is the identity key (USB serial + interface, else ID_PATH, else the
    node path); ``links`` the stable /dev/v4l/by-id and by-path symlinks seen
    for it; ``capabilities`` the probed V4L2 capabilities as plain data
    (:meth:`camsvc.cameras.v4l2.Capabilities.to_dict`); ``default`` the chosen
    ``{"format", "width", "height", "fps"}``; ``error`` why status is ERROR;
    ``path`` the device path unique to this camera that every consumer opens
    (:func:`camsvc.cameras.presence.unique_paths`); ``last_seen`` when a DISCONNECTED
    camera was last present (clock seconds; None while present).
    """

    camera_id: str
    device: str
    status: str = CONNECTED
    name: str = ""
    key: str = ""
    links: tuple = ()
    capabilities: dict | None = None
    default: dict | None = None
    error: str | None = None
    since: float = 0.0
    extra: dict = field(default_factory=dict)
    path: str = ""
    last_seen: float | None = None

    @property
    def resolution(self) -> str:
        if not self.default:
            return ""
        return f"{self.default['width']}x{self.default['height']}"

    @property
    def fps(self) -> int:
        if not self.default or not self.default.get("fps"):
            return 0
        return int(round(self.default["fps"]))

    @property
    def stable_device(self) -> str:
        """The path to open this camera by: unique to it (a by-id link it owns alone,
        else by-path, else the node; chosen by discovery), else the node."""
        return self.path or self.device

    def to_dict(self, streams: dict, recording: bool) -> dict:
        """The API's Camera object (SPEC §3)."""
        return {
            "device": self.device,
            "camera_id": self.camera_id,
            "status": self.status,
            "name": self.name,
            "resolution": self.resolution,
            "fps": self.fps,
            "streams": streams,
            "recording": recording,
            "last_seen": iso(self.last_seen) if self.last_seen is not None else None,
        }


class CameraObserver(Protocol):
    """Told about every registry change; must not raise (errors are logged)."""

    def camera_added(self, camera: Camera) -> None: ...

    def camera_removed(self, camera: Camera) -> None: ...

    def camera_changed(self, camera: Camera) -> None: ...


def camera_number(camera_id: str) -> int:
    match = _CAMERA_ID.match(camera_id)
    return int(match.group(1)) if match else 1 << 30


class CameraRegistry:
    """Cameras by id, and the observers told about changes.

    ``camera_added`` fires when a camera becomes present (new or replugged),
    ``camera_removed`` when it is gone (record kept as DISCONNECTED, so its id
    and files stay meaningful), ``camera_changed`` for any other change (ERROR,
    capabilities, device renumbering).  Collaborator: ``clock``.
    """

    def __init__(self, clock: Any) -> None:
        self.clock = clock
        self._cameras: dict[str, Camera] = {}
        self._observers: list[Any] = []

    # -- reading ----------------------------------------------------------------

    def get(self, camera_id: str) -> Camera | None:
        return self._cameras.get(camera_id)

    def cameras(self) -> list[Camera]:
        return sorted(self._cameras.values(), key=lambda c: camera_number(c.camera_id))

    def connected(self) -> list[Camera]:
        return [c for c in self.cameras() if c.status == CONNECTED]

    def resolve(self, device: str) -> Camera:
        """Find a camera by id (``camera0``), node (``/dev/video0``) or a /dev/v4l link.

        Raises CameraNotFound (-32004) otherwise.
        """
        camera = self._cameras.get(device)
        if camera is not None:
            return camera
        if device.startswith("/dev/"):
            # A node number may have belonged to a camera now unplugged: the present one wins.
            matches = [c for c in self._cameras.values() if device == c.device or device in c.links]
            if matches:
                matches.sort(key=lambda c: (c.status == DISCONNECTED, -c.since))
                return matches[0]
            if device.startswith("/dev/v4l/"):
                try:
                    target = os.path.realpath(device)
                except (OSError, ValueError):
                    target = None
                if target:
                    for camera in self._cameras.values():
                        if camera.device == target and camera.status != DISCONNECTED:
                            return camera
        raise CameraNotFound(f"Camera not found: {device}", data={"device": device})

    # -- observers ----------------------------------------------------------------

    def subscribe(self, observer: Any) -> None:
        self._observers.append(observer)

    def _tell(self, event: str, camera: Camera) -> None:
        for observer in list(self._observers):
            try:
                getattr(observer, event)(camera)
            except Exception:
                log.failure(
                    "Camera observer {observer} failed on {event} for {camera_id}",
                    observer=type(observer).__name__,
                    event=event,
                    camera_id=camera.camera_id,
                )

    # -- writing (discovery) -------------------------------------------------------

    def put(self, camera: Camera) -> Camera:
        """Insert or replace a camera record and tell observers what changed."""
        previous = self._cameras.get(camera.camera_id)
        if previous is not None and previous == replace(camera, since=previous.since):
            return previous
        if previous is None or previous.status != camera.status:
            camera = replace(camera, since=self.clock.seconds())
        else:
            camera = replace(camera, since=previous.since)
        self._cameras[camera.camera_id] = camera
        was_present = previous is not None and previous.status != DISCONNECTED
        is_present = camera.status != DISCONNECTED
        if is_present and not was_present:
            self._tell("camera_added", camera)
        elif was_present and not is_present:
            self._tell("camera_removed", camera)
        else:
            self._tell("camera_changed", camera)
        return camera

    def forget(self, camera_id: str) -> Camera | None:
        """Drop a record for good (a DISCONNECTED camera pruned or forgotten by an admin).

        Observers with a ``camera_forgotten(camera)`` method are told (so they can drop
        their per-camera state); the others are not.
        """
        camera = self._cameras.pop(camera_id, None)
        if camera is None:
            return None
        for observer in list(self._observers):
            hook = getattr(observer, "camera_forgotten", None)
            if hook is None:
                continue
            try:
                hook(camera)
            except Exception:
                log.failure(
                    "Camera observer {observer} failed on camera_forgotten for {camera_id}",
                    observer=type(observer).__name__,
                    camera_id=camera_id,
                )
        return camera

    def discard(self, camera_id: str) -> Camera | None:
        """Forget a record entirely (a node that turned out not to be a camera).

        Observers see ``camera_removed`` with the record marked DISCONNECTED.
        """
        camera = self._cameras.pop(camera_id, None)
        if camera is None:
            return None
        gone = replace(camera, status=DISCONNECTED, error=None, since=self.clock.seconds())
        if camera.status != DISCONNECTED:
            self._tell("camera_removed", gone)
        return gone

    def mark_disconnected(self, camera_id: str) -> Camera | None:
        camera = self._cameras.get(camera_id)
        if camera is None or camera.status == DISCONNECTED:
            return camera
        return self.put(replace(camera, status=DISCONNECTED, error=None))
