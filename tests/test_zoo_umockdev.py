"""The camera zoo on umockdev: each population of tests/support/zoo.py (real dumps) is
plugged into a umockdev test bed exactly as udev shows it (properties, DEVLINKS as real
/dev/v4l symlinks with one owner per contested name, QUERYCAP and formats answered by the
bed's ioctl emulation), then ``twistd -n camsvc`` with the MediaMTX stand-in must list the
same cameras, ids, names and device paths as the in-process model (tests/test_zoo.py),
publish each camera from its own path, and keep all of it across replugs in reverse order.

Skipped only when umockdev is not installed (Debian: umockdev, gir1.2-umockdev-1.0,
python3-gi — in the Makefile's APT_PACKAGES).
"""

from __future__ import annotations

import os
import time

import pytest

from tests.support import zoo
from tests.support.mediamtx_process import StandInProcess
from tests.support.server import PROBE_TIMEOUT, ServiceProcess
from tests.support.umockdev import Testbed, umockdev_available
from tests.support.wsclient import RpcClient
from tests.test_mediamtx_e2e import standin_path
from tests.test_zoo import Bed

_ok, _reason = umockdev_available()
pytestmark = pytest.mark.skipif(not _ok, reason=f"umockdev unavailable: {_reason}")

#: populations with at least one camera (the Raspberry Pi SoC nodes are checked with
#: unicam included, the rest with the defaults)
CASES = {
    "two_c270_bogus_serial": {},
    "two_hd_usb_camera_no_serial": {},
    "laptop_rgb_ir_one_device": {},
    "brio": {},
    "guillemot_old_udev": {},
    "elp_h264_two_capture_nodes": {},
    "rpi4_soc_nodes": {"include": ["driver:unicam"]},
    "vivid_two_instances": {},
}


def wait_for(check, what, timeout=60.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def listing(client):
    cams = client.call("get_camera_list")["cameras"]
    out = {}
    for c in cams:
        if c["status"] != "CONNECTED":
            continue
        status = client.call("get_camera_status", {"device": c["camera_id"]})
        out[c["camera_id"]] = (c["device"], status["path"], c["name"])
    return out


def publishes(standin, camera_id, path):
    """MediaMTX ends up publishing ``camera_id`` from ``path`` (a path that changed while the
    cameras were enumerated one by one is rewritten by the reconciler)."""

    def current():
        conf = standin_path(standin, camera_id)
        return conf is not None and f" -i {path} " in conf["runOnDemand"] and conf

    try:
        wait_for(current, f"{camera_id} published from {path}")
    except AssertionError:
        raise AssertionError(f"{camera_id}: MediaMTX has {standin_path(standin, camera_id)}, want -i {path}") from None


def resolve(bed, path):
    if path.startswith("/dev/video"):
        return path
    real = os.path.join(bed.root_dir, path.lstrip("/"))
    return os.path.normpath(os.path.join(os.path.dirname(path), os.readlink(real)))


@pytest.mark.parametrize("name", sorted(CASES))
def test_population_on_umockdev(tmp_path, name):
    discovery = CASES[name]
    expected = Bed(tmp_path / "model", zoo.POPULATIONS[name], **discovery)
    want = expected.table()
    expected.stop()
    assert want, "a population with cameras"
    plugs = zoo.bed_plugs(zoo.POPULATIONS[name]())
    standin = StandInProcess(tmp_path / "mediamtx").start()
    try:
        with Testbed() as bed:
            for plug in plugs:  # present at start: enumerated, ids in node order like the model
                bed.add_zoo(plug)
            svc = ServiceProcess(
                tmp_path / "camsvc",
                {
                    "discovery": {"enabled": True, "debounce": 0.2, "probe_timeout": PROBE_TIMEOUT, **discovery},
                    "mediamtx": {
                        "enabled": True,
                        "api_url": standin.url,
                        "health_interval": 0.2,
                        "reconcile_interval": 2,
                    },
                },
                env=bed.env(),
                wait_ready=True,
            ).start()
            try:
                with RpcClient(svc.url) as client:
                    assert wait_for(lambda: listing(client) == want and listing(client), "the model's cameras") == want
                    for camera_id, (device, path, _) in want.items():
                        assert resolve(bed, path) == device  # the path leads to this camera's node
                        publishes(standin, camera_id, path)
                    # unplug everything, plug back in reverse order: same ids, names, paths
                    for plug in plugs:
                        bed.remove(plug["name"])
                    wait_for(lambda: listing(client) == {}, "all DISCONNECTED")
                    for plug in reversed(plugs):
                        bed.add_zoo(plug)
                    wait_for(lambda: listing(client) == want, "the same cameras after replugging in reverse")
                    for camera_id, (device, path, _) in want.items():
                        assert resolve(bed, path) == device
                        publishes(standin, camera_id, path)
            finally:
                svc.stop_cleanly()
            assert "Traceback" not in svc.log()
    finally:
        standin.stop()


def test_vivid_node_renumbered_on_umockdev_keeps_its_camera_id(tmp_path):
    """vivid n_devs=2 unbound while a program still holds the second instance's node:
    bound again, that instance comes back on another node and sysfs name (/dev/video4 ->
    /dev/video5, the kernel frees a minor only at the last close), same properties and
    QUERYCAP.  Same camera id, on the node it is on now; also when the two come back on
    each other's nodes (QUERYCAP's bus_info tells them apart); and back on the old ones."""
    nodes = zoo.vivid_two_instances()
    (before,) = zoo.bed_plugs(nodes)
    (after,) = zoo.bed_plugs([nodes[0], zoo.renumbered(nodes[1], 5)])
    (swapped,) = zoo.bed_plugs([zoo.renumbered(nodes[0], 4), zoo.renumbered(nodes[1], 0)])
    with Testbed() as bed:
        bed.add_zoo(before)
        svc = ServiceProcess(
            tmp_path / "camsvc",
            {"discovery": {"enabled": True, "debounce": 0.2, "probe_timeout": PROBE_TIMEOUT}},
            env=bed.env(),
            wait_ready=True,
        ).start()
        try:
            with RpcClient(svc.url) as client:

                def devices():
                    return {cid: device for cid, (device, _, _) in listing(client).items()}

                want = {"camera0": "/dev/video0", "camera1": "/dev/video4"}
                wait_for(lambda: devices() == want, f"{want}")
                for plug, want in (
                    (after, {"camera0": "/dev/video0", "camera1": "/dev/video5"}),
                    (swapped, {"camera0": "/dev/video4", "camera1": "/dev/video0"}),  # each on the other's node
                    (before, {"camera0": "/dev/video0", "camera1": "/dev/video4"}),
                ):
                    bed.remove(before["name"])
                    wait_for(lambda: devices() == {}, "all DISCONNECTED")
                    bed.add_zoo(plug)
                    try:
                        wait_for(lambda w=want: devices() == w, f"{want}", timeout=30)
                    except AssertionError:
                        raise AssertionError(f"want {want}, got {devices()}") from None
                ids = {c["camera_id"] for c in client.call("get_camera_list")["cameras"]}
                assert ids == {"camera0", "camera1"}  # no id burnt on the renumbered node
        finally:
            svc.stop_cleanly()
        assert "Traceback" not in svc.log()
