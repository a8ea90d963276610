"""Camera control methods and camera_controls_update on a fully built App (fake udev, fake node)."""

from __future__ import annotations

import errno
import json

import pytest

from camsvc.cameras.settings import FILENAME
from camsvc.testing import FakeControlDevice, usb_camera, webcam_controls
from tests.test_api_cameras import Env

BRIGHTNESS = 0x00980900
AUTO_WB = 0x0098090C
WB_TEMP = 0x0098091A
AUTO_EXP = 0x009A0901
EXP_ABS = 0x009A0902


class ControlsEnv(Env):
    def __init__(self, tmp_path, devices=(), node=None):
        self.node = node or FakeControlDevice()
        super().__init__(tmp_path, devices)
        self.conn = self.connect("box.example")

    def before_start(self):
        self.app.controls.open_device = self.node.open

    def updates(self):
        return [m["params"] for m in self.conn.sent if m["method"] == "camera_controls_update"]

    def error(self, method, params):
        reply = self.call(method, params)
        assert "error" in reply, reply
        return reply["error"]


@pytest.fixture
def cenv(tmp_path):
    made = []

    def factory(*a, **kw):
        e = ControlsEnv(tmp_path, *a, **kw)
        made.append(e)
        return e

    yield factory
    for e in made:
        e.stop()


def controls_by_name(result):
    return {c["name"]: c for group in result["classes"] for c in group["controls"]}


def test_get_camera_controls_lists_every_control_grouped_by_class(cenv):
    e = cenv([usb_camera(0, serial="S1")])
    result = e.result("get_camera_controls", {"device": "camera0"})
    assert [g["class"] for g in result["classes"]] == ["user", "camera"]
    by = controls_by_name(result)
    assert by["brightness"] == {
        "id": BRIGHTNESS,
        "name": "brightness",
        "label": "Brightness",
        "class": "user",
        "type": "integer",
        "supported": True,
        "flags": [],
        "value": 128,
        "stored": None,
        "minimum": 0,
        "maximum": 255,
        "step": 1,
        "default": 128,
    }
    assert by["white_balance_automatic"]["value"] is True and by["white_balance_automatic"]["type"] == "boolean"
    assert by["white_balance_temperature"]["flags"] == ["inactive"]
    assert by["power_line_frequency"]["menu"] == [
        {"index": 0, "name": "Disabled"},
        {"index": 1, "name": "50 Hz"},
        {"index": 2, "name": "60 Hz"},
    ]
    assert by["integer_menu"]["menu"][2] == {"index": 2, "value": 10000}
    assert by["button"]["type"] == "button" and by["button"]["value"] is None
    assert set(by["button"]["flags"]) == {"write_only", "execute_on_write"}
    assert by["string"]["type"] == "unsupported" and by["string"]["v4l2_type"] == "string"
    assert by["u32_array"]["supported"] is False
    assert by["integer_64_bits"]["type"] == "int64"
    assert by["bitmask"]["value"] == 0x80002000
    assert e.node.opened == ["/dev/video0"]  # the camera's actual node


def test_set_returns_values_read_back_and_stores_them(cenv, tmp_path):
    e = cenv([usb_camera(0, serial="S1")])
    e.result("get_camera_controls", {"device": "camera0"})
    out = e.result(
        "set_camera_controls",
        {"device": "/dev/video0", "controls": {"brightness": 140, "power_line_frequency": "50 Hz"}},
    )
    assert out == {
        "device": "/dev/video0",
        "camera_id": "camera0",
        "controls": {"brightness": 140, "power_line_frequency": 1},
    }
    assert e.node.values[BRIGHTNESS] == 140
    e.reactor.advance(1)  # the deferred write
    stored = json.loads((tmp_path / FILENAME).read_text())
    assert stored["cameras"]["camera0"]["controls"] == {"brightness": 140, "power_line_frequency": 1}
    result = e.result("get_camera_controls", {"device": "camera0"})
    assert result["stored"] == {"brightness": 140, "power_line_frequency": 1}
    assert controls_by_name(result)["brightness"]["stored"] == 140
    # ... and the change was published, with the new value
    (update,) = e.updates()
    assert update["camera_id"] == "camera0"
    assert {c["name"]: c["value"] for c in update["controls"]} == {"brightness": 140, "power_line_frequency": 1}


def test_set_by_id_and_hex_id(cenv):
    e = cenv([usb_camera(0, serial="S1")])
    e.result("set_camera_controls", {"device": "camera0", "controls": {str(BRIGHTNESS): 1}})
    e.result("set_camera_controls", {"device": "camera0", "controls": {"0x00980901": 2}})
    assert e.node.values[BRIGHTNESS] == 1 and e.node.values[0x00980901] == 2


@pytest.mark.parametrize(
    "controls, reason, needle",
    [
        ({"brightness": 256}, "invalid_value", "out of range 0..255"),
        ({"brightness": "bright"}, "invalid_value", "is not an integer"),
        ({"brightness": True}, "invalid_value", "is not an integer"),
        ({"saturation": 63}, "invalid_value", "step of 4"),
        ({"power_line_frequency": 3}, "invalid_value", "0=Disabled, 1=50 Hz, 2=60 Hz"),
        ({"auto_exposure": 0}, "invalid_value", "1=Manual Mode, 3=Aperture Priority Mode"),
        ({"white_balance_automatic": 2}, "invalid_value", "not a boolean"),
        ({"bitmask": 0x10}, "invalid_value", "outside the mask"),
        ({"nope": 1}, "unknown", "Unknown control"),
        ({"sensor_temperature": 20}, "read_only", "read-only"),
        ({"string": 1}, "unsupported", "not supported"),
    ],
)
def test_invalid_values_are_32602_naming_control_and_allowed(cenv, controls, reason, needle):
    e = cenv([usb_camera(0, serial="S1")])
    err = e.error("set_camera_controls", {"device": "camera0", "controls": controls})
    assert err["code"] == -32602
    assert needle in err["message"]
    assert err["data"]["reason"] == reason
    if reason == "invalid_value":
        assert err["data"]["control"] == next(iter(controls)) and "allowed" in err["data"]
    assert not e.node.writes  # nothing written


def test_one_bad_control_writes_nothing(cenv):
    e = cenv([usb_camera(0, serial="S1")])
    err = e.error("set_camera_controls", {"device": "camera0", "controls": {"brightness": 10, "contrast": 999}})
    assert err["data"]["control"] == "contrast"
    assert e.node.values[BRIGHTNESS] == 128 and not e.node.writes


def test_inactive_and_grabbed_are_32005(cenv):
    e = cenv([usb_camera(0, serial="S1")])
    err = e.error("set_camera_controls", {"device": "camera0", "controls": {"white_balance_temperature": 5000}})
    assert err["code"] == -32005 and err["data"]["reason"] == "inactive"
    assert "white_balance_automatic" not in err["message"] and "automatic control is on" in err["message"]
    e.node.grab(BRIGHTNESS)
    err = e.error("set_camera_controls", {"device": "camera0", "controls": {"brightness": 5}})
    assert err["code"] == -32005 and err["data"]["reason"] == "grabbed"


def test_auto_to_manual_pair_applied_in_the_order_that_works(cenv):
    e = cenv([usb_camera(0, serial="S1")])
    # manual value listed first: still applied after its automatic control went manual
    out = e.result(
        "set_camera_controls",
        {"device": "camera0", "controls": {"exposure_time_absolute": 500, "auto_exposure": "manual", "contrast": 3}},
    )
    assert out["controls"] == {"exposure_time_absolute": 500, "auto_exposure": 1, "contrast": 3}
    assert e.node.writes == [[(AUTO_EXP, 1), (0x00980901, 3)], [(EXP_ABS, 500)]]
    # back to automatic with a manual value: the value first (while active), automatic last
    e.node.writes.clear()
    e.result(
        "set_camera_controls",
        {"device": "camera0", "controls": {"white_balance_automatic": False, "white_balance_temperature": 5000}},
    )
    e.result(
        "set_camera_controls",
        {"device": "camera0", "controls": {"white_balance_automatic": True, "white_balance_temperature": 3000}},
    )
    assert e.node.writes == [[(AUTO_WB, 0)], [(WB_TEMP, 5000)], [(WB_TEMP, 3000)], [(AUTO_WB, 1)]]


def test_driver_errors_name_the_control(cenv):
    e = cenv([usb_camera(0, serial="S1")])
    e.node.errors[0x00980901] = errno.EBUSY
    err = e.error("set_camera_controls", {"device": "camera0", "controls": {"brightness": 1, "contrast": 2}})
    assert err["code"] == -32005 and err["data"]["control"] == "contrast" and err["data"]["reason"] == "busy"
    e.node.errors[0x00980901] = errno.EACCES
    err = e.error("set_camera_controls", {"device": "camera0", "controls": {"contrast": 2}})
    assert err["data"]["reason"] == "access" and "contrast" in err["message"]


def test_reset_returns_defaults_and_forgets_stored(cenv):
    e = cenv([usb_camera(0, serial="S1")])
    e.result("set_camera_controls", {"device": "camera0", "controls": {"brightness": 10, "contrast": 20}})
    out = e.result("reset_camera_controls", {"device": "camera0", "controls": ["brightness"]})
    assert out["controls"] == {"brightness": 128}
    assert e.result("get_camera_controls", {"device": "camera0"})["stored"] == {"contrast": 20}
    out = e.result("reset_camera_controls", {"device": "camera0"})
    assert out["controls"]["contrast"] == 32 and "sensor_temperature" not in out["controls"]
    assert e.result("get_camera_controls", {"device": "camera0"})["stored"] == {}


def test_stored_values_reapplied_on_replug_and_at_start(cenv, tmp_path):
    cam = usb_camera(0, serial="S1")
    e = cenv([cam])
    e.result(
        "set_camera_controls",
        {"device": "camera0", "controls": {"auto_exposure": "manual", "exposure_time_absolute": 900}},
    )
    e.reactor.advance(1)
    # the camera loses its settings when unplugged (a new device on replug)
    e.udev.remove(cam)
    e.deliver()
    e.reactor.advance(1)
    assert e.app.cameras.get("camera0").status == "DISCONNECTED"
    fresh = FakeControlDevice()
    e.app.controls.open_device = fresh.open
    e.udev.add(cam)
    e.deliver()
    e.reactor.advance(1)
    assert e.app.cameras.get("camera0").status == "CONNECTED"
    assert fresh.values[AUTO_EXP] == 1 and fresh.values[EXP_ABS] == 900
    assert fresh.writes == [[(AUTO_EXP, 1)], [(EXP_ABS, 900)]]
    # service start: a new App over the same state directory
    again = cenv([cam], node=FakeControlDevice())
    assert again.node.values[EXP_ABS] == 900


def test_external_change_is_published_by_the_watch(cenv):
    e = cenv([usb_camera(0, serial="S1")])
    e.app.controls.startService()
    try:
        e.reactor.advance(e.app.config.controls.poll_interval)  # reference taken
        assert e.updates() == []
        e.node.external_set(BRIGHTNESS, 77)
        e.reactor.advance(e.app.config.controls.poll_interval)
        (update,) = e.updates()
        assert [(c["name"], c["value"]) for c in update["controls"]] == [("brightness", 77)]
        e.node.external_set(AUTO_WB, 0)  # the manual partner becomes active: its flags change too
        e.reactor.advance(e.app.config.controls.poll_interval)
        names = {c["name"]: c["flags"] for c in e.updates()[-1]["controls"]}
        assert names == {"white_balance_automatic": [], "white_balance_temperature": []}
    finally:
        e.app.controls.stopService()


def test_a_read_publishes_what_changed_outside(cenv):
    e = cenv([usb_camera(0, serial="S1")])
    e.result("get_camera_controls", {"device": "camera0"})
    e.node.external_set(BRIGHTNESS, 5)
    e.result("get_camera_controls", {"device": "camera0"})
    (update,) = e.updates()
    assert [(c["name"], c["value"]) for c in update["controls"]] == [("brightness", 5)]


def test_disconnected_or_vanished_camera_is_32005(cenv):
    cam = usb_camera(0, serial="S1")
    e = cenv([cam])
    e.node.vanished = True
    err = e.error("get_camera_controls", {"device": "camera0"})
    assert err["code"] == -32005
    e.udev.remove(cam)
    e.deliver()
    e.reactor.advance(1)
    err = e.error("set_camera_controls", {"device": "camera0", "controls": {"brightness": 1}})
    assert err["code"] == -32005 and "DISCONNECTED" in err["message"]
    assert e.error("get_camera_controls", {"device": "camera9"})["code"] == -32004


def test_a_stored_value_the_camera_no_longer_takes_is_skipped(cenv, tmp_path):
    cam = usb_camera(0, serial="S1")
    e = cenv([cam])
    e.result("set_camera_controls", {"device": "camera0", "controls": {"brightness": 200, "contrast": 10}})
    e.reactor.advance(1)
    # new firmware: brightness now tops out at 100
    table = [dict(c) for c in webcam_controls()]
    for c in table:
        if c["id"] == BRIGHTNESS:
            c["max"] = 100
    again = cenv([cam], node=FakeControlDevice(table))
    assert again.node.values[0x00980901] == 10 and again.node.values[BRIGHTNESS] == 128
    assert again.app.controls.stats["applied"] == 1


def test_camera_controls_are_made_at_the_first_camera_and_answer_as_made_before(cenv):
    """app.controls is camsvc.cameras.component.ControlsOnFirstUse: without a camera nothing of
    CameraControls runs and get_status reports an empty component; the first camera makes it
    (with the injected node) and its stored values are applied as before."""
    from camsvc.cameras.component import ControlsOnFirstUse
    from camsvc.cameras.controls import CameraControls

    cam = usb_camera(0, serial="S1")
    e = cenv([])
    assert isinstance(e.app.controls, ControlsOnFirstUse) and e.app.controls.component is None
    empty = CameraControls(e.app.cameras, e.app.camera_settings, e.reactor, lambda *a: None)
    assert e.app.status_providers["controls"]() == empty.status()
    assert e.error("get_camera_controls", {"device": "camera9"})["code"] == -32004
    e.udev.add(cam)
    e.deliver()
    e.reactor.advance(1)
    made = e.app.controls.component
    assert isinstance(made, CameraControls) and made.open_device == e.node.open
    e.result("set_camera_controls", {"device": "camera0", "controls": {"brightness": 200}})
    assert e.app.status_providers["controls"]() == made.status() and made.status()["open_devices"] == 1
    assert e.app.controls.stats is made.stats


def test_stopping_before_any_camera_flushes_pending_camera_settings(cenv, tmp_path):
    e = cenv([])
    e.app.camera_settings.store_stream("camera0", {"fps": 15})
    assert e.app.camera_settings.pending and e.app.controls.component is None
    e.app.controls.startService()
    e.app.controls.stopService()
    assert not e.app.camera_settings.pending
    assert json.loads((tmp_path / FILENAME).read_text())["cameras"]["camera0"]["stream"] == {"fps": 15}
    assert e.app.controls.component is None
