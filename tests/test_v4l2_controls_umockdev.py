"""The control binding against umockdev's ioctl emulation (a preloaded subprocess).

The test bed (tests/support/umockdev_bed.py) answers VIDIOC_QUERY_EXT_CTRL, QUERYMENU
and G/S_EXT_CTRLS from the control table of ``camsvc.testing.webcam_controls()`` with
its own struct packing, so this checks the ctypes layout (including the pointer to the
control array) end to end through real ``ioctl(2)`` calls on an emulated /dev node.
umockdev is a required test tool (Makefile APT_PACKAGES): no skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from camsvc.testing import webcam_controls
from tests.support.umockdev import Testbed

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = r"""
import errno, json, sys
from camsvc.cameras import v4l2_controls as vc
from camsvc.cameras.controls import ControlDevice

dev = ControlDevice(sys.argv[1])
out = {}
controls = dev.controls()
by = {c.name: c for c in controls}
out["names"] = [c.name for c in controls]
out["menu"] = [m.to_dict() for m in by["power_line_frequency"].menu]
out["int_menu"] = [m.value for m in by["integer_menu"].menu]
out["flags"] = {n: by[n].flag_names() for n in ("white_balance_temperature", "sensor_temperature")}
vals = dev.values(controls)
out["values"] = {c.name: vals.get(c.id) for c in controls if c.readable}
dev.set([(by["brightness"], 140), (by["integer_64_bits"], -(1 << 39)), (by["white_balance_automatic"], 0)])
vals = dev.values([by["brightness"], by["integer_64_bits"]])
out["after"] = {"brightness": vals[by["brightness"].id], "integer_64_bits": vals[by["integer_64_bits"].id]}
out["wb_temp_flags"] = dev.query(by["white_balance_temperature"].id).flag_names()
def err(fn):
    try:
        fn()
    except vc.ControlIoError as e:
        return {"errno": errno.errorcode[e.errno], "control": e.control}
    return None
out["read_only"] = err(lambda: dev.set([(by["sensor_temperature"], 1)]))
out["write_only"] = err(lambda: dev.values([vc.ControlInfo(by["button"].id, vc.TYPE_INTEGER, "b", 0, 1, 1, 0, 0)]))
sys.stdout.write(json.dumps(out) + "\n")
dev.close()
"""

ERRORS = r"""
import errno, json, sys
from camsvc.cameras import v4l2_controls as vc
from camsvc.cameras.controls import ControlDevice
dev = ControlDevice(sys.argv[1])
by = {c.name: c for c in dev.controls()}
try:
    dev.set([(by["brightness"], 1), (by["contrast"], 2), (by["saturation"], 4)])
    print(json.dumps(None))
except vc.ControlIoError as e:
    print(json.dumps({"errno": errno.errorcode[e.errno], "control": e.control}))
"""


def run(bed, code, node):
    r = subprocess.run(
        [sys.executable, "-c", code, node], cwd=REPO, env=bed.env(), capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.fixture
def bed():
    tb = Testbed()
    yield tb
    tb.close()


def test_controls_through_real_ioctls_on_an_emulated_node(bed):
    cam = bed.add_camera("cam", serial="C1", controls=webcam_controls())
    node = cam["devnode"]
    out = run(bed, SCRIPT, node)
    assert out["names"][:4] == ["brightness", "contrast", "saturation", "white_balance_automatic"]
    assert "user_controls" not in out["names"]
    assert out["menu"] == [
        {"index": 0, "name": "Disabled"},
        {"index": 1, "name": "50 Hz"},
        {"index": 2, "name": "60 Hz"},
    ]
    assert out["int_menu"] == [1, 12, 10000, -7]
    assert out["flags"] == {"white_balance_temperature": ["inactive"], "sensor_temperature": ["read_only"]}
    assert out["values"]["brightness"] == 128 and out["values"]["bitmask"] == 0x80002000
    assert out["after"] == {"brightness": 140, "integer_64_bits": -(1 << 39)}
    assert out["wb_temp_flags"] == []  # white balance went manual: its temperature is active
    assert out["read_only"] == {"errno": "EACCES", "control": 0x00980929}
    assert out["write_only"] == {"errno": "EACCES", "control": 0x00980930}
    values = bed.command("control_values", name="cam")["values"]
    assert values[str(0x00980900)] == 140


@pytest.mark.parametrize("name", ["EINVAL", "EBUSY", "EIO"])
def test_error_idx_names_the_failing_control(bed, name):
    bed.add_camera("cam", serial="C1", controls=webcam_controls())
    bed.command("control_errors", name="cam", errors={str(0x00980901): name})
    out = run(bed, ERRORS, "/dev/video0")
    assert out == {"errno": name, "control": 0x00980901}
    values = bed.command("control_values", name="cam")["values"]
    assert values[str(0x00980900)] == 128  # all or nothing


def test_node_without_controls_has_none(bed):
    bed.add_camera("plain", serial="P1")
    code = "import sys, json\nfrom camsvc.cameras.controls import ControlDevice\nprint(json.dumps(len(ControlDevice(sys.argv[1]).controls())))"
    assert run(bed, code, "/dev/video0") == 0
