"""Cameras as discovery hands them to the registry, for the tests that start at the registry
(MediaMTX, recordings, metrics, faults) and need no udev: camera ``n`` is an MJPEG 640x480
webcam on ``/dev/video{2n}`` with its own by-id link."""

from __future__ import annotations

from camsvc.cameras.registry import CONNECTED, Camera

MJPEG_VGA = {"formats": [{"format": "MJPG", "sizes": [{"width": 640, "height": 480, "fps": [30]}]}]}


def acme_camera(n: int = 0, **fields) -> Camera:
    """Connected camera ``camera{n}``; ``fields`` override any :class:`Camera` field."""
    link = f"/dev/v4l/by-id/usb-Acme_{n}-video-index0"
    values = {
        "camera_id": f"camera{n}",
        "device": f"/dev/video{2 * n}",
        "status": CONNECTED,
        "name": f"Acme {n}",
        "links": (link,),
        "path": link,  # discovery's unique path: the by-id link this camera owns
        "capabilities": MJPEG_VGA,
        "default": {"format": "MJPG", "width": 640, "height": 480, "fps": 30},
    }
    values.update(fields)
    return Camera(**values)
