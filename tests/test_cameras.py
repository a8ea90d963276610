"""camsvc.cameras.registry: the registry's records, resolve() and observer events."""

from __future__ import annotations

from dataclasses import replace

import pytest
from twisted.internet.task import Clock

from camsvc.cameras.registry import CONNECTED, DISCONNECTED, ERROR, Camera, CameraRegistry
from camsvc.common.errors import CameraNotFound


class Events(list):
    def camera_added(self, c):
        self.append(("added", c.camera_id, c.status))

    def camera_removed(self, c):
        self.append(("removed", c.camera_id, c.status))

    def camera_changed(self, c):
        self.append(("changed", c.camera_id, c.status))


@pytest.fixture
def reg():
    registry = CameraRegistry(Clock())
    registry.events = Events()
    registry.subscribe(registry.events)
    return registry


def test_put_tells_observers_what_changed(reg):
    cam = Camera("camera0", "/dev/video0", links=("/dev/v4l/by-id/usb-X-video-index0",))
    reg.put(cam)
    reg.put(cam)  # identical: nothing
    reg.put(replace(cam, status=ERROR, error="probe failed"))
    reg.put(replace(cam, status=DISCONNECTED))
    reg.put(replace(cam, device="/dev/video4"))
    assert reg.events == [
        ("added", "camera0", CONNECTED),
        ("changed", "camera0", ERROR),
        ("removed", "camera0", DISCONNECTED),
        ("added", "camera0", CONNECTED),
    ]


def test_resolve_prefers_the_present_camera_on_a_reused_node(reg):
    reg.clock.advance(1)
    reg.put(Camera("camera0", "/dev/video0", status=DISCONNECTED))
    reg.clock.advance(1)
    reg.put(Camera("camera1", "/dev/video0", links=("/dev/v4l/by-path/p1-video-index0",)))
    assert reg.resolve("/dev/video0").camera_id == "camera1"
    assert reg.resolve("camera0").camera_id == "camera0"
    assert reg.resolve("/dev/v4l/by-path/p1-video-index0").camera_id == "camera1"
    with pytest.raises(CameraNotFound) as err:
        reg.resolve("/dev/v4l/by-id/unknown")
    assert err.value.code == -32004 and "/dev/v4l/by-id/unknown" in err.value.message


def test_discard_removes_the_record(reg):
    reg.put(Camera("camera3", "/dev/video3"))
    gone = reg.discard("camera3")
    assert gone.status == DISCONNECTED and reg.get("camera3") is None
    assert reg.events[-1] == ("removed", "camera3", DISCONNECTED)
    assert reg.discard("camera3") is None


def test_resolution_and_fps_of_unknown_or_rateless_modes():
    assert (Camera("camera0", "/dev/video0").resolution, Camera("camera0", "/dev/video0").fps) == ("", 0)
    cam = Camera("camera0", "/dev/video0", default={"format": "YUYV", "width": 640, "height": 480, "fps": None})
    assert (cam.resolution, cam.fps) == ("640x480", 0)
    assert Camera("camera0", "/dev/video0", default={"format": "M", "width": 1, "height": 1, "fps": 29.97}).fps == 30


def test_a_failing_observer_does_not_stop_the_others(reg):
    class Broken:
        def camera_added(self, c):
            raise RuntimeError("boom")

    registry = CameraRegistry(Clock())
    events = Events()
    registry.subscribe(Broken())
    registry.subscribe(events)
    registry.put(Camera("camera0", "/dev/video0"))
    assert events == [("added", "camera0", CONNECTED)]
