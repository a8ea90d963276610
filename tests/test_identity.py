"""camsvc.cameras.identity: identity keys and the persisted, atomic camera id map."""

from __future__ import annotations

import json
import os

import pytest

from camsvc.cameras.identity import FILENAME, IdentityStore, fallback_key, identity_key, node_key
from camsvc.testing import platform_camera, usb_camera


def key_of(device):
    return identity_key(device.properties, device.device_node, device.index)


def test_key_uses_the_usb_serial_and_interface_when_there_is_a_real_serial():
    cam = usb_camera(0, serial="A1B2", port="1")
    assert key_of(cam) == "usb:Vendor_USB_Camera_A1B2:00"
    # the same camera on another port and node: same key
    assert key_of(usb_camera(4, serial="A1B2", port="3")) == key_of(cam)
    assert key_of(usb_camera(0, serial="A1B2", interface="02")) != key_of(cam)


def test_key_without_serial_is_the_port_path():
    # ID_SERIAL without ID_SERIAL_SHORT is only vendor_model: identical cameras share it
    a, b = usb_camera(0, port="1"), usb_camera(2, port="2")
    assert a.properties["ID_SERIAL"] == b.properties["ID_SERIAL"]
    assert key_of(a) == "path:pci-0000:00:14.0-usb-0:1:1.0"
    assert key_of(a) != key_of(b)
    assert key_of(usb_camera(6, port="1")) == key_of(a)  # renumbered, same port


def test_key_for_platform_cameras_and_bare_nodes():
    assert key_of(platform_camera(0)) == "path:platform-vivid.0"
    assert identity_key({}, "/dev/video7") == "node:/dev/video7"
    assert identity_key({"ID_PATH": "platform-x"}, "/dev/video1", index=2) == "path:platform-x#index2"
    assert fallback_key(usb_camera(0, serial="S", port="4").properties, "/dev/video0") == (
        "path:pci-0000:00:14.0-usb-0:4:1.0"
    )
    assert fallback_key({}, "/dev/video3") == "node:/dev/video3"


def test_ids_are_allocated_in_order_and_persisted(tmp_path):
    path = str(tmp_path / FILENAME)
    store = IdentityStore(path)
    store.load()
    assert store.camera_id("k0", "Cam A") == ("camera0", True)
    assert store.camera_id("k1") == ("camera1", True)
    assert store.camera_id("k0") == ("camera0", False)
    assert store.dirty and store.flush() and not store.dirty
    data = json.loads(open(path).read())
    assert data == {
        "version": 1,
        "next_number": 2,
        "cameras": {"camera0": {"key": "k0", "name": "Cam A"}, "camera1": {"key": "k1", "name": ""}},
    }
    again = IdentityStore(path)
    again.load()
    assert again.camera_id("k1") == ("camera1", False)
    assert again.camera_id("k2") == ("camera2", True)
    # no temporary files left behind
    assert sorted(os.listdir(tmp_path)) == [FILENAME]


def test_ids_are_never_reused_even_after_an_entry_is_deleted(tmp_path):
    path = tmp_path / FILENAME
    path.write_text(json.dumps({"version": 1, "next_number": 5, "cameras": {"camera1": {"key": "k1"}}}))
    store = IdentityStore(str(path))
    store.load()
    assert store.camera_id("new") == ("camera5", True)
    # an operator-edited file without next_number: above the highest id
    path.write_text(json.dumps({"cameras": {"camera7": {"key": "k7"}, "camera2": {"key": "k2"}}}))
    store.load()
    assert store.camera_id("k2") == ("camera2", False)
    assert store.camera_id("other") == ("camera8", True)


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "[]",
        '{"cameras": []}',
        '{"cameras": {"cam-x": {"key": "k"}}}',
        '{"cameras": {"camera0": {"nokey": 1}}}',
        '{"next_number": -1, "cameras": {}}',
        b"\xff\xfe garbage",
    ],
)
def test_a_corrupt_map_is_set_aside_and_rebuilt(tmp_path, content):
    path = tmp_path / FILENAME
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    store = IdentityStore(str(path))
    store.load()  # never raises
    assert len(store) == 0
    assert (tmp_path / (FILENAME + ".corrupt")).exists()
    assert store.camera_id("k") == ("camera0", True)
    assert store.flush()
    assert json.loads(path.read_text())["cameras"] == {"camera0": {"key": "k", "name": ""}}


def test_missing_map_starts_empty_and_creates_the_directory(tmp_path):
    store = IdentityStore(str(tmp_path / "state" / "sub" / FILENAME))
    store.load()
    assert len(store) == 0 and not store.dirty
    store.camera_id("k")
    assert store.flush()
    assert (tmp_path / "state" / "sub" / FILENAME).exists()


def test_duplicate_keys_keep_the_first_id(tmp_path):
    path = tmp_path / FILENAME
    path.write_text(json.dumps({"cameras": {"camera0": {"key": "k"}, "camera3": {"key": "k"}}}))
    store = IdentityStore(str(path))
    store.load()
    assert store.get("k") == "camera0"
    assert store.camera_id("x") == ("camera4", True)  # camera3 stays retired


def test_a_failed_write_is_logged_and_retried(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    store = IdentityStore(str(blocker / FILENAME))
    store.load()
    store.camera_id("k")
    assert store.flush() is False
    assert store.dirty and store.write_errors == 1
    assert store.camera_id("k") == ("camera0", False)  # ids stay stable in memory
    store.path = str(tmp_path / FILENAME)
    assert store.flush() and not store.dirty


def test_node_key_of_cameras_under_one_port_holds_no_node_number():
    props = {"ID_PATH": "platform-vivid.0"}
    four = node_key(props, 0, "platform:vivid-001", "/sys/devices/platform/vivid.0/video4linux/video4")
    five = node_key(props, 0, "platform:vivid-001", "/sys/devices/platform/vivid.0/video4linux/video5")
    assert four == five == "path:platform-vivid.0#bus:platform:vivid-001"
    assert node_key(props, 0, "platform:vivid-000", "/x/video0") != four
    assert (
        node_key(props, 2, "platform:vivid-001", "/x/video6") == "path:platform-vivid.0#bus:platform:vivid-001#index2"
    )
    # nothing stable to tell them apart: the sysfs path is the last resort
    assert node_key(props, 0, " ", "/x/video4") == "sys:/x/video4"
    assert node_key({}, 0, "platform:vivid-001", "/x/video4") == "sys:/x/video4"
