"""Unit tests of camsvc.cameras.v4l2_controls with an in-memory node (camsvc.testing)."""

from __future__ import annotations

import errno

import pytest

from camsvc.cameras import v4l2_controls as vc
from camsvc.testing import FakeControlDevice


def test_request_numbers_match_videodev2_h():
    assert vc.VIDIOC_QUERYMENU == 0xC02C5625
    assert vc.VIDIOC_G_EXT_CTRLS == 0xC0205647
    assert vc.VIDIOC_S_EXT_CTRLS == 0xC0205648
    assert vc.VIDIOC_QUERY_EXT_CTRL == 0xC0E85667


@pytest.mark.parametrize(
    "label, name",
    [
        ("Brightness", "brightness"),
        ("White Balance, Automatic", "white_balance_automatic"),
        ("Exposure Time, Absolute", "exposure_time_absolute"),
        ("Integer 64 Bits", "integer_64_bits"),
        ("  Gain (dB)  ", "gain_db"),
    ],
)
def test_control_name_is_v4l2_ctls(label, name):
    assert vc.control_name(label) == name


def test_enumeration_walks_every_control_and_skips_class_headings():
    dev = FakeControlDevice()
    controls = vc.enumerate_controls(3, ioctl=dev.ioctl)
    names = [c.name for c in controls]
    assert "user_controls" not in names and "camera_controls" not in names
    assert names[:3] == ["brightness", "contrast", "saturation"]
    by = {c.name: c for c in controls}
    assert by["brightness"].klass == "user" and by["auto_exposure"].klass == "camera"
    assert (by["saturation"].minimum, by["saturation"].maximum, by["saturation"].step) == (0, 200, 4)
    # a menu with holes: only the indexes the driver answers
    assert [m.to_dict() for m in by["auto_exposure"].menu] == [
        {"index": 1, "name": "Manual Mode"},
        {"index": 3, "name": "Aperture Priority Mode"},
    ]
    assert [m.value for m in by["integer_menu"].menu] == [1, 12, 10000, -7]
    assert by["exposure_time_absolute"].flag_names() == ["inactive"]
    assert by["sensor_temperature"].flag_names() == ["read_only"]
    assert not by["string"].supported and not by["u32_array"].supported
    assert by["integer_64_bits"].maximum == 1 << 40


def test_get_and_set_values_roundtrip_including_int64_and_bitmask():
    dev = FakeControlDevice()
    controls = {c.name: c for c in vc.enumerate_controls(3, ioctl=dev.ioctl)}
    big = controls["integer_64_bits"]
    mask = controls["bitmask"]
    vc.set_values(3, [(controls["brightness"], 200), (big, -(1 << 39)), (mask, 0x80000001)], ioctl=dev.ioctl)
    got = vc.get_values(3, [controls["brightness"], big, mask, controls["button"]], ioctl=dev.ioctl)
    assert got == {controls["brightness"].id: 200, big.id: -(1 << 39), mask.id: 0x80000001}
    assert dev.calls["S_EXT_CTRLS"] == 1 and dev.calls["G_EXT_CTRLS"] == 1


def test_error_idx_names_the_control_that_failed():
    dev = FakeControlDevice()
    controls = {c.name: c for c in vc.enumerate_controls(3, ioctl=dev.ioctl)}
    dev.errors[controls["contrast"].id] = errno.EIO
    with pytest.raises(vc.ControlIoError) as info:
        vc.set_values(3, [(controls["brightness"], 1), (controls["contrast"], 2)], ioctl=dev.ioctl)
    assert info.value.control == controls["contrast"].id and info.value.errno == errno.EIO
    assert dev.values[controls["brightness"].id] == 128  # all or nothing


def test_enotty_on_query_is_an_io_error():
    def ioctl(fd, request, buf):
        raise OSError(errno.ENOTTY, "nope")

    with pytest.raises(vc.ControlIoError) as info:
        vc.enumerate_controls(3, ioctl=ioctl)
    assert info.value.errno == errno.ENOTTY


def test_enumeration_is_bounded():
    calls = []

    def ioctl(fd, request, buf):  # a driver that answers the same control forever
        calls.append(request)
        q = vc.v4l2_query_ext_ctrl(id=0x00980900, type=vc.TYPE_INTEGER, name=b"Loop", maximum=1)
        buf[:] = bytes(q)
        return 0

    assert len(vc.enumerate_controls(3, ioctl=ioctl)) == vc.MAX_CONTROLS
