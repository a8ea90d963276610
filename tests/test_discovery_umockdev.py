"""Camera discovery end to end on umockdev: real libudev, real uevents, emulated V4L2 ioctls.

camsvc runs under ``twistd -n camsvc`` as a preloaded subprocess (``Testbed.env()``: the
pytest process itself cannot see the bed, see tests/support/umockdev.py); a WebSocket
client (the ``websockets`` library) watches the API and the ``camera_status_update``
notifications while the test bed plugs and unplugs cameras.  Capability probes are real
``python -m camsvc.cameras.v4l2`` children answered by the bed's ioctl emulation.

ENOBUFS cannot happen under umockdev (its datagram sockets push back on the sender
instead of dropping, finding 2 of tests/support/umockdev.py), so the overflow →
re-enumeration path is covered by tests/test_discovery.py with a fake monitor; here an
event storm checks that a burst of hundreds of uevents ends in the right state.

Skipped only when umockdev is not installed (Debian: umockdev, gir1.2-umockdev-1.0,
python3-gi — in the Makefile's APT_PACKAGES).
"""

from __future__ import annotations

import json
import time

import pytest

from tests.support.server import PROBE_TIMEOUT, ServiceProcess
from tests.support.umockdev import Testbed, raised_dgram_qlen, umockdev_available
from tests.support.wsclient import RpcCallError, RpcClient

_ok, _reason = umockdev_available()
pytestmark = pytest.mark.skipif(not _ok, reason=f"umockdev unavailable: {_reason}")

DEBOUNCE = 0.2
VIVID_FORMATS = [
    {
        "format": "YUYV",
        "description": "YUYV 4:2:2",
        "compressed": False,
        "sizes": [{"width": 1280, "height": 720, "fps": [60, 30]}, {"width": 3840, "height": 2160, "fps": [15]}],
    },
    {
        "format": "NV12",
        "description": "Y/UV 4:2:0",
        "stepwise": {
            "min_width": 16,
            "max_width": 1920,
            "step_width": 16,
            "min_height": 16,
            "max_height": 1080,
            "step_height": 8,
            "fps_range": {"min": 1, "max": 60},
        },
    },
]


@pytest.fixture
def bed():
    tb = Testbed()
    yield tb
    tb.close()


def start_camsvc(tmp_path, tb, **discovery):
    config = {"discovery": {"enabled": True, "debounce": DEBOUNCE, "probe_timeout": PROBE_TIMEOUT, **discovery}}
    return ServiceProcess(tmp_path, config, env=tb.env(), wait_ready=True).start()


def update(client, camera_id, predicate=lambda p: True, timeout=30):
    """The next camera_status_update for ``camera_id`` matching ``predicate``."""
    note = client.wait_notification(
        "camera_status_update", lambda p: p["camera_id"] == camera_id and predicate(p), timeout=timeout
    )
    return note["params"]


def probed(p):
    return p["resolution"] != ""


def wait_for(check, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def by_id(client):
    return {c["camera_id"]: c for c in client.call("get_camera_list")["cameras"]}


def test_discovery_end_to_end(tmp_path, bed):
    usb = bed.add_camera("usb", serial="SER-0001", card="HD Pro Webcam", port="1")
    vivid = bed.add_camera("vivid", platform=True, card="vivid", formats=VIVID_FORMATS)
    assert usb["meta_devnode"] == "/dev/video1"  # a UVC metadata node, not a camera
    svc = start_camsvc(tmp_path, bed)
    try:
        with RpcClient(svc.url) as client:
            # -- start with 2 cameras present; the metadata node is ignored ----------
            listing = client.call("get_camera_list")
            assert (listing["total"], listing["connected"]) == (2, 2)
            cams = {c["camera_id"]: c for c in listing["cameras"]}
            assert (cams["camera0"]["device"], cams["camera0"]["name"]) == ("/dev/video0", "HD Pro Webcam")
            assert (cams["camera1"]["device"], cams["camera1"]["name"]) == (vivid["devnode"], "vivid")
            assert cams["camera0"]["streams"]["rtsp"] == "rtsp://127.0.0.1:8554/camera0"
            with pytest.raises(RpcCallError) as err:
                client.call("get_camera_status", {"device": "/dev/video1"})
            assert err.value.code == -32004 and "/dev/video1" in err.value.error["message"]

            # -- capabilities from the emulated ioctls ----------------------------------
            caps = client.call("get_camera_capabilities", {"device": "camera0"})  # waits for the probe
            assert caps["driver"] == "uvcvideo" and caps["card"] == "HD Pro Webcam"
            assert [f["format"] for f in caps["formats"]] == ["MJPG", "YUYV"]
            assert caps["formats"][0]["sizes"][0] == {"width": 1920, "height": 1080, "fps": [30, 15]}
            assert caps["default"] == {"format": "MJPG", "width": 1920, "height": 1080, "fps": 30}
            platform = client.call("get_camera_capabilities", {"device": vivid["devnode"]})
            assert platform["driver"] == "vivid"
            nv12 = platform["formats"][1]
            assert nv12["size_range"]["max_width"] == 1920 and {"width": 1280, "height": 720} in [
                {"width": s["width"], "height": s["height"]} for s in nv12["sizes"]
            ]
            # YUYV is preferred over NV12; 4K is above the default size limit
            assert platform["default"] == {"format": "YUYV", "width": 1280, "height": 720, "fps": 30}
            status = client.call("get_camera_status", {"device": "camera1"})
            assert (status["resolution"], status["fps"], status["status"]) == ("1280x720", 30, "CONNECTED")

            # -- hot-add: announced at once, then its capabilities -------------------------
            client.notifications.clear()
            cheap = bed.add_camera("cheap", card="Cheap Cam", port="2")  # no serial: by port
            added = update(client, "camera2")
            assert added == {
                "device": cheap["devnode"],
                "camera_id": "camera2",
                "status": "CONNECTED",
                "name": "Cheap Cam",
                "resolution": "",
                "fps": 0,
                "streams": {
                    "rtsp": "rtsp://127.0.0.1:8554/camera2",
                    "webrtc": "http://127.0.0.1:8889/camera2/",
                    "hls": "http://127.0.0.1:8888/camera2/index.m3u8",
                },
                "recording": False,
                "last_seen": None,
                "mode": None,
            }
            assert update(client, "camera2", probed)["resolution"] == "1920x1080"
            assert [c["camera_id"] for c in client.call("get_camera_list")["cameras"]] == [
                "camera0",
                "camera1",
                "camera2",
            ]

            # -- hot-remove ------------------------------------------------------------------
            time.sleep(DEBOUNCE)
            bed.remove("usb")
            gone = update(client, "camera0", lambda p: p["status"] == "DISCONNECTED")
            assert gone["device"] == "/dev/video0"
            listing = client.call("get_camera_list")
            assert (listing["total"], listing["connected"]) == (3, 2)

            # -- replug on another port and node: same id -----------------------------------
            time.sleep(DEBOUNCE)
            back = bed.add_camera("usb2", serial="SER-0001", card="HD Pro Webcam", port="4", video=6)
            again = update(client, "camera0", lambda p: p["status"] == "CONNECTED")
            assert again["device"] == back["devnode"] == "/dev/video6"
            assert client.call("get_camera_status", {"device": "/dev/video6"})["camera_id"] == "camera0"
            assert again["resolution"] == "1920x1080"  # its known mode, announced at once
    finally:
        svc.stop_cleanly()
    ids = json.loads((tmp_path / "state" / "camera-ids.json").read_text())["cameras"]
    assert ids["camera0"]["key"] == "usb:Vendor046d_HD_Pro_Webcam_SER-0001:00"
    assert ids["camera1"]["key"] == "path:platform-vivid.0"
    assert ids["camera2"]["key"] == "path:pci-0000:00:14.0-usb-0:2:1.0"

    # -- after a camsvc restart the ids are the persisted ones ------------------------------
    bed.remove("cheap")
    bed.add_camera("other", serial="SER-0002", card="Other Cam", port="5", video=0)
    svc = start_camsvc(tmp_path, bed)
    try:
        with RpcClient(svc.url) as client:
            cams = by_id(client)
            assert {cid: c["device"] for cid, c in cams.items()} == {
                "camera0": "/dev/video6",
                "camera1": vivid["devnode"],
                "camera3": "/dev/video0",  # a new camera: the next number, never a reused one
            }
            bed.add_camera("cheap", card="Cheap Cam", port="2", video=8)  # replugged into its port
            assert update(client, "camera2")["device"] == "/dev/video8"
            status = client.call("get_status")["components"]["discovery"]
            assert status["enumerations"] == 1 and status["overflows"] == 0 and status["events"] >= 1
    finally:
        svc.stop_cleanly()


def test_two_identical_serialless_cameras_and_a_probe_failure(tmp_path, bed):
    bed.add_camera("left", card="Twin Cam", port="1")
    bed.add_camera("right", card="Twin Cam", port="2")
    # a camera whose node stops answering mid-probe (vanishes, but udev still lists it)
    bed.add_camera("flaky", serial="FLAKY", card="Flaky Cam", port="3", fail_after=3)
    svc = start_camsvc(tmp_path, bed)
    try:
        with RpcClient(svc.url) as client:
            cams = by_id(client)
            assert [cams[c]["name"] for c in ("camera0", "camera1")] == ["Twin Cam (usb 1)", "Twin Cam (usb 2)"]
            assert cams["camera0"]["device"] != cams["camera1"]["device"]
            flaky = wait_for(
                lambda: by_id(client)["camera2"]["status"] == "ERROR" and by_id(client)["camera2"],
                what="the flaky camera to be in ERROR",
            )
            status = client.call("get_camera_status", {"device": "camera2"})
            assert "vanished" in status["error"] and flaky["resolution"] == ""
            with pytest.raises(RpcCallError) as err:
                client.call("get_camera_capabilities", {"device": "camera2"})
            assert err.value.code == -32005
            # unplugged for real: DISCONNECTED, not ERROR
            client.notifications.clear()
            bed.remove("flaky")
            update(client, "camera2", lambda p: p["status"] == "DISCONNECTED")
    finally:
        svc.stop_cleanly()


@pytest.mark.parametrize("end_present", [True, False])
def test_event_storm_ends_in_the_right_state(tmp_path, bed, end_present):
    # 150 remove/add pairs (30 times the default queue of 10), unpaced when we may raise net.unix.max_dgram_qlen (root; it is
    # read when a socket is created, so camsvc starts inside; restored afterwards), else
    # paced by the bed's flow control
    with raised_dgram_qlen(1000) as raised:
        bed.add_camera("cam", serial="STORM", card="Storm Cam", metadata=False)
        svc = start_camsvc(tmp_path, bed)
        try:
            with RpcClient(svc.url) as client:
                assert by_id(client)["camera0"]["status"] == "CONNECTED"
                client.notifications.clear()
                reply = bed.storm("cam", 150, paced=not raised, end_present=end_present)
                assert len(reply["times"]) == 150
                final = "CONNECTED" if end_present else "DISCONNECTED"
                wait_for(lambda: by_id(client)["camera0"]["status"] == final, what=f"camera0 {final}")
                time.sleep(DEBOUNCE * 2)  # nothing stale may follow
                assert by_id(client)["camera0"]["status"] == final
                updates = [n["params"]["status"] for n in client.notifications if n["method"] == "camera_status_update"]
                assert updates and updates[-1] == final
                # every presence change is told at once (an "add" whose node is already gone
                # again is not one); no notification repeats the previous one
                seen = [
                    (n["params"]["status"], n["params"]["resolution"])
                    for n in client.notifications
                    if n["method"] == "camera_status_update"
                ]
                assert all(a != b for a, b in zip(seen, seen[1:], strict=False)), seen
                assert sum(1 for a, b in zip(updates, updates[1:], strict=False) if a != b) >= 100  # not held back
                status = client.call("get_status")["components"]["discovery"]
                assert status["events"] == 300 - (0 if end_present else 1) and status["coalesced"] >= 1
                # only the costly part is coalesced: a handful of probes for 150 plugs
                assert status["probes"] < 10, status
                assert client.call("ping") == "pong"
        finally:
            svc.stop_cleanly()
