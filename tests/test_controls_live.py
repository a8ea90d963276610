"""Camera controls through a running camsvc (twistd) on umockdev cameras: set, watch, replug.

The C920 of :data:`tests.support.livestack.CAMERAS` has the control table of
``camsvc.testing.webcam_controls()``; the test bed answers the control ioctls and lets
the test read and change the values "in the camera".  A replugged camera is a new
emulated node with the driver's defaults, as a real camera after a power cycle.
"""

from __future__ import annotations

import time

import pytest

from tests.support.livestack import LiveStack
from tests.support.wsclient import RpcClient

BRIGHTNESS, AUTO_EXP, EXP_ABS = 0x00980900, 0x009A0901, 0x009A0902


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    live = LiveStack(tmp_path_factory.mktemp("controls"), cameras=1, config={"controls": {"poll_interval": 0.2}})
    live.start()
    yield live
    live.stop()


def client(stack):
    c = RpcClient(stack.url)
    if stack.auth_required:
        c.call("authenticate", {"auth_token": stack.admin_key})
    return c


def values(stack):
    return {int(k): v for k, v in stack.bed.command("control_values", name="c920")["values"].items()}


def wait_values(stack, want, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        got = values(stack)
        if all(got.get(k) == v for k, v in want.items()):
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"control values never became {want}: {got}")
        time.sleep(0.1)


def test_set_watch_and_reapply_on_replug(stack):
    cams = stack.wait_cameras(lambda cams: any(c["status"] == "CONNECTED" for c in cams))
    cam_id = cams[0]["camera_id"]
    with client(stack) as c:
        out = c.call(
            "set_camera_controls",
            {
                "device": cam_id,
                "controls": {"exposure_time_absolute": 900, "auto_exposure": "manual", "brightness": 140},
            },
        )
        assert out["controls"] == {"exposure_time_absolute": 900, "auto_exposure": 1, "brightness": 140}
        assert values(stack)[BRIGHTNESS] == 140  # in the "camera", through real ioctls
        note = c.wait_notification("camera_controls_update", lambda p: p["camera_id"] == cam_id)
        assert {x["name"] for x in note["params"]["controls"]} >= {"brightness", "auto_exposure"}
        # another program changes a control: the watch notices and tells clients
        stack.bed.command("control_values", name="c920", set={str(0x00980901): 7})
        note = c.wait_notification(
            "camera_controls_update", lambda p: any(x["name"] == "contrast" for x in p["controls"])
        )
        assert [x["value"] for x in note["params"]["controls"] if x["name"] == "contrast"] == [7]
    # unplug and plug: a new node with the driver's defaults, then the stored values again
    stack.unplug("c920")
    stack.plug(0)
    wait_values(stack, {BRIGHTNESS: 140, AUTO_EXP: 1, EXP_ABS: 900})
    with client(stack) as c:
        result = c.call("get_camera_controls", {"device": cam_id})
        assert result["stored"] == {"auto_exposure": 1, "brightness": 140, "exposure_time_absolute": 900}
