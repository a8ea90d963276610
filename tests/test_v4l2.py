"""Unit tests of camsvc.cameras.v4l2 with a fake ioctl: no device, no umockdev."""

from __future__ import annotations

import ctypes
import errno
import json
import os

import pytest

from camsvc.cameras import v4l2
from camsvc.cameras.v4l2 import (
    Capabilities,
    Format,
    FrameSize,
    ProbeError,
    choose_default,
    fourcc,
    fourcc_code,
    probe,
)

FD = 42


class FakeDevice:
    """Answers V4L2 ioctls from a table, mimicking a driver.

    ``formats``: [(fourcc, description, flags, sizes)] where sizes is a list of
    ``((w, h), intervals)`` with intervals a list of (num, den), or ``("stepwise",
    (minw, maxw, stepw, minh, maxh, steph), ival)`` where ival is a list of (num, den)
    or ``("range", (minnum, minden), (maxnum, maxden))``.
    """

    def __init__(
        self, formats, *, caps=0x84A00001, device_caps=0x04200001, card="Fake Cam", vanish_after=None, endless=False
    ):
        self.formats = formats
        self.caps, self.device_caps, self.card = caps, device_caps, card
        self.vanish_after = vanish_after
        self.endless = endless
        self.calls = []
        self.closed = []

    def open(self, path, flags):
        assert flags & os.O_NONBLOCK and flags & os.O_RDWR
        self.opened = (path, flags)
        return FD

    def close(self, fd):
        self.closed.append(fd)

    def ioctl(self, fd, req, buf):
        assert fd == FD
        self.calls.append(req)
        if self.vanish_after is not None and len(self.calls) > self.vanish_after:
            raise OSError(errno.ENODEV, os.strerror(errno.ENODEV))
        if req == v4l2.VIDIOC_QUERYCAP:
            c = v4l2.v4l2_capability.from_buffer(buf)
            c.driver, c.card, c.bus_info = b"fake", self.card.encode(), b"usb-0000:00:14.0-1"
            c.capabilities, c.device_caps = self.caps, self.device_caps
            return 0
        if req == v4l2.VIDIOC_ENUM_FMT:
            f = v4l2.v4l2_fmtdesc.from_buffer(buf)
            assert f.type == v4l2.V4L2_BUF_TYPE_VIDEO_CAPTURE
            if self.endless:
                f.pixelformat = fourcc_code("MJPG") + f.index  # a new format forever
                return 0
            if f.index >= len(self.formats):
                raise OSError(errno.EINVAL, "end")
            name, desc, flags, _ = self.formats[f.index]
            f.pixelformat, f.description, f.flags = fourcc_code(name), desc.encode(), flags
            return 0
        if req == v4l2.VIDIOC_ENUM_FRAMESIZES:
            s = v4l2.v4l2_frmsizeenum.from_buffer(buf)
            sizes = self._fmt(s.pixel_format)[3]
            if sizes and sizes[0][0] == "stepwise":
                if s.index:
                    raise OSError(errno.EINVAL, "end")
                s.type = v4l2.V4L2_FRMSIZE_TYPE_STEPWISE
                (
                    s.stepwise.min_width,
                    s.stepwise.max_width,
                    s.stepwise.step_width,
                    s.stepwise.min_height,
                    s.stepwise.max_height,
                    s.stepwise.step_height,
                ) = sizes[0][1]
                return 0
            if s.index >= len(sizes):
                raise OSError(errno.EINVAL, "end")
            s.type = v4l2.V4L2_FRMSIZE_TYPE_DISCRETE
            s.discrete.width, s.discrete.height = sizes[s.index][0]
            return 0
        if req == v4l2.VIDIOC_ENUM_FRAMEINTERVALS:
            i = v4l2.v4l2_frmivalenum.from_buffer(buf)
            sizes = self._fmt(i.pixel_format)[3]
            if sizes and sizes[0][0] == "stepwise":
                ivals = sizes[0][2]
            else:
                match = [iv for wh, iv in sizes if wh == (i.width, i.height)]
                if not match:
                    raise OSError(errno.EINVAL, "bad size")
                ivals = match[0]
            if ivals and ivals[0] == "range":
                if i.index:
                    raise OSError(errno.EINVAL, "end")
                i.type = v4l2.V4L2_FRMIVAL_TYPE_CONTINUOUS
                (i.stepwise.min.numerator, i.stepwise.min.denominator) = ivals[1]
                (i.stepwise.max.numerator, i.stepwise.max.denominator) = ivals[2]
                i.stepwise.step.numerator, i.stepwise.step.denominator = 1, 1
                return 0
            if i.index >= len(ivals):
                raise OSError(errno.EINVAL, "end")
            i.type = v4l2.V4L2_FRMIVAL_TYPE_DISCRETE
            i.discrete.numerator, i.discrete.denominator = ivals[i.index]
            return 0
        raise OSError(errno.ENOTTY, "no")

    def _fmt(self, pixfmt):
        for f in self.formats:
            if fourcc_code(f[0]) == pixfmt:
                return f
        raise OSError(errno.EINVAL, "unknown format")

    def probe(self, path="/dev/video0"):
        return probe(path, ioctl=self.ioctl, opener=self.open, closer=self.close)


UVC = [
    ("YUYV", "YUYV 4:2:2", 0, [((640, 480), [(1, 30), (1, 15)]), ((1280, 720), [(1, 10)])]),
    (
        "MJPG",
        "Motion-JPEG",
        1,
        [
            ((1920, 1080), [(1, 30), (1, 15)]),
            ((2592, 1944), [(1, 15)]),
            ((1280, 720), [(1, 60), (1, 30)]),
            ((640, 480), [(1001, 30000)]),
        ],
    ),
]


def test_abi_request_numbers_match_videodev2_h():
    assert v4l2.VIDIOC_QUERYCAP == 0x80685600
    assert v4l2.VIDIOC_ENUM_FMT == 0xC0405602
    assert v4l2.VIDIOC_ENUM_FRAMESIZES == 0xC02C564A
    assert v4l2.VIDIOC_ENUM_FRAMEINTERVALS == 0xC034564B
    assert ctypes.sizeof(v4l2.v4l2_frmivalenum) == 52


def test_fourcc_roundtrip():
    assert fourcc(0x47504A4D) == "MJPG"
    assert fourcc_code("MJPG") == 0x47504A4D
    assert fourcc(fourcc_code("Y10")) == "Y10 "


def test_discrete_probe_decodes_everything():
    dev = FakeDevice(UVC)
    caps = dev.probe()
    assert dev.closed == [FD]
    assert (caps.driver, caps.card, caps.bus_info) == ("fake", "Fake Cam", "usb-0000:00:14.0-1")
    assert [f.format for f in caps.formats] == ["YUYV", "MJPG"]
    mjpg = caps.format("MJPG")
    assert mjpg.compressed and mjpg.description == "Motion-JPEG"
    assert not caps.format("YUYV").compressed
    assert [(s.width, s.height) for s in mjpg.sizes] == [(1920, 1080), (2592, 1944), (1280, 720), (640, 480)]
    assert mjpg.sizes[0].fps == (30, 15)
    assert mjpg.sizes[2].fps == (60, 30)
    assert mjpg.sizes[3].fps == (29.97,)  # NTSC 1001/30000
    assert mjpg.sizes[0].fps_range is None
    d = caps.to_dict()
    assert d["formats"][1]["sizes"][0] == {"width": 1920, "height": 1080, "fps": [30, 15]}
    assert Capabilities.from_dict(json.loads(json.dumps(d))) == caps


def test_stepwise_sizes_and_interval_range():
    dev = FakeDevice(
        [("YU12", "Planar YUV 4:2:0", 0, [("stepwise", (16, 1920, 16, 16, 1080, 8), ("range", (1, 60), (1, 1)))])]
    )
    caps = dev.probe()
    f = caps.formats[0]
    assert f.size_range == v4l2.SizeRange(16, 1920, 16, 16, 1080, 8)
    res = [(s.width, s.height) for s in f.sizes]
    assert res[0] == (1920, 1080) and res[-1] == (16, 16)
    assert (1280, 720) in res and (640, 480) in res
    assert (1280, 960) in res  # 960 = 16 + 118*8
    assert all(f.size_range.contains(w, h) for w, h in res)
    s = f.sizes[0]
    assert s.fps_range == (1, 60) and s.fps == (60, 1)
    assert Capabilities.from_dict(caps.to_dict()) == caps
    assert choose_default(caps) == v4l2.Default("YU12", 1920, 1080, 30)


def test_stepwise_size_steps_respected():
    r = v4l2.SizeRange(100, 2000, 100, 100, 2000, 100)
    assert not r.contains(640, 480)
    assert r.contains(1600, 1200)
    assert (640, 480) not in r.candidates()


def test_metadata_node_is_not_a_capture_node():
    # UVC metadata node: device-wide caps say capture, the node's device_caps say META only
    dev = FakeDevice(UVC, caps=0x84A00001, device_caps=0x04A00000)
    with pytest.raises(ProbeError) as ei:
        dev.probe("/dev/video1")
    assert ei.value.reason == "not_capture" and not ei.value.vanished
    assert v4l2.VIDIOC_ENUM_FMT not in dev.calls
    assert dev.closed == [FD]


def test_old_driver_without_device_caps_uses_capabilities():
    dev = FakeDevice(UVC, caps=0x05000001, device_caps=0)
    assert dev.probe().formats


def test_output_only_and_m2m_are_not_capture():
    for caps in (0x80000002, 0x80008000):
        dev = FakeDevice(UVC, caps=caps, device_caps=caps & ~0x80000000)
        with pytest.raises(ProbeError) as ei:
            dev.probe()
        assert ei.value.reason == "not_capture"


def test_mplane_capture_counts():
    info = v4l2.DeviceInfo("d", "c", "b", 0, 0x80001000, 0x00001000)
    assert info.is_capture and info.buf_type == v4l2.V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE


@pytest.mark.parametrize("after", [0, 1, 2, 5, 12])
def test_vanish_mid_probe_raises_probe_error(after):
    dev = FakeDevice(UVC, vanish_after=after)
    with pytest.raises(ProbeError) as ei:
        dev.probe()
    assert ei.value.vanished and ei.value.errno == errno.ENODEV
    assert dev.closed == [FD]


def test_open_of_missing_node_is_vanished():
    def opener(path, flags):
        raise FileNotFoundError(errno.ENOENT, "gone")

    with pytest.raises(ProbeError) as ei:
        probe("/dev/video7", opener=opener)
    assert ei.value.vanished and "/dev/video7" in str(ei.value)


def test_open_permission_denied_is_error_not_vanished():
    def opener(path, flags):
        raise PermissionError(errno.EACCES, "denied")

    with pytest.raises(ProbeError) as ei:
        probe("/dev/video0", opener=opener)
    assert ei.value.reason == "error" and ei.value.errno == errno.EACCES


def test_enumeration_is_bounded():
    dev = FakeDevice([], endless=True)
    caps = dev.probe()
    assert len(caps.formats) == v4l2.MAX_FORMATS


def test_querycap_enotty_is_error():
    def ioctl(fd, req, buf):
        raise OSError(errno.ENOTTY, "not a v4l2 device")

    with pytest.raises(ProbeError) as ei:
        probe("/dev/null", ioctl=ioctl, opener=lambda p, f: FD, closer=lambda fd: None)
    assert ei.value.reason == "error"


def test_real_non_v4l2_file_is_error():
    with pytest.raises(ProbeError) as ei:
        probe("/dev/null")
    assert ei.value.reason == "error" and ei.value.errno == errno.ENOTTY


def _caps(*formats):
    return Capabilities("/dev/video0", "d", "c", "b", 0, 0, tuple(formats))


def _fmt(name, *sizes):
    return Format(name, name, name in ("MJPG", "H264"), tuple(FrameSize(w, h, tuple(fps)) for w, h, fps in sizes))


def test_choose_default_prefers_mjpg_largest_fitting_size_capped_rate():
    caps = FakeDevice(UVC).probe()
    d = choose_default(caps)
    assert (d.format, d.resolution, d.fps) == ("MJPG", "1920x1080", 30)


def test_choose_default_rate_window_and_fallbacks():
    # 1080p only at 5 fps: 720p at 30 wins (rate floor 15)
    caps = _caps(_fmt("MJPG", (1920, 1080, [5]), (1280, 720, [60, 30])))
    assert choose_default(caps) == v4l2.Default("MJPG", 1280, 720, 30)
    # only 60 fps: highest within 15..30 impossible → falls back to the rate anyway
    caps = _caps(_fmt("MJPG", (1280, 720, [60])))
    assert choose_default(caps) == v4l2.Default("MJPG", 1280, 720, 60)
    # YUYV preferred over H264; unknown formats last
    caps = _caps(_fmt("NV12", (1920, 1080, [30])), _fmt("H264", (1920, 1080, [30])), _fmt("YUYV", (640, 480, [30])))
    assert choose_default(caps).format == "YUYV"
    caps = _caps(_fmt("NV12", (1920, 1080, [30])), _fmt("H264", (1920, 1080, [30])))
    assert choose_default(caps).format == "H264"
    # custom preference
    assert choose_default(caps, preferred=("NV12",)).format == "NV12"
    # nothing fits 1920x1080: smallest size
    caps = _caps(_fmt("MJPG", (3840, 2160, [30]), (2560, 1440, [30])))
    assert choose_default(caps) == v4l2.Default("MJPG", 2560, 1440, 30)
    # no formats / no sizes
    assert choose_default(_caps()) is None
    assert choose_default(_caps(_fmt("MJPG"))) is None


def test_cli_prints_json_error_for_non_v4l2(capsys):
    assert v4l2.main(["/dev/null"]) == 2
    out = json.loads(capsys.readouterr().out)
    assert out["reason"] == "error" and out["path"] == "/dev/null"
    assert v4l2.main([]) == 64


@pytest.mark.parametrize(
    "device_caps, what",
    [
        (0x10000001 | 0x04000000, "touch sensor (vivid's v4l-touch0)"),
        (0x00008000 | 0x04000000, "memory-to-memory codec"),
        (0x00004000 | 0x04000000, "multi-planar memory-to-memory device"),
        (0x00000002 | 0x04000000, "output only"),
    ],
)
def test_nodes_that_are_not_cameras(device_caps, what):
    info = v4l2.DeviceInfo("d", "c", "b", 0, 0x80000000 | device_caps, device_caps)
    assert not info.is_capture, what
