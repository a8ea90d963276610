"""The camera zoo (tests/support/zoo.py, built from real udev/v4l2 dumps) replayed through
discovery: which nodes are cameras, their ids, names and the device path every consumer
opens, across replugs in every order and restarts.  Fake udev and prober, MemoryReactorClock.
The same populations on umockdev: tests/test_zoo_umockdev.py."""

from __future__ import annotations

import itertools
import json

import pytest
from twisted.internet.testing import MemoryReactorClock

from camsvc.cameras.discovery import DiscoveryService
from camsvc.cameras.identity import FILENAME, IdentityStore
from camsvc.cameras.registry import CONNECTED, DISCONNECTED, CameraRegistry
from camsvc.config import parse_config_dict
from camsvc.mediamtx.desired import publish_command
from camsvc.testing import FakeProber, FakeUdev
from tests.support import zoo


class Bed:
    def __init__(self, tmp_path, population, present=None, **discovery):
        self.nodes = population()
        self.by_video = {n.devnode: n for n in self.nodes}
        self.reactor = MemoryReactorClock()
        self.registry = CameraRegistry(self.reactor)
        self.config = parse_config_dict({"discovery": {"debounce": 0.3, **discovery}})
        chosen = [n for n in self.nodes if present is None or n.devnode in present]
        self.udev = FakeUdev([])
        for node in chosen:
            self._plug(node, quiet=True)
        self.svc = DiscoveryService(
            self.registry,
            self.config.discovery,
            IdentityStore(str(tmp_path / FILENAME)),
            self.reactor,
            udev_factory=self.udev,
            prober=FakeProber(),
        )
        self.svc.startService()
        self.probe()

    def _plug(self, node, quiet=False):
        self.udev.caps[node.devnode] = node.querycap()
        self.udev.add(zoo.udev_device(node), quiet=quiet)
        owners = zoo.link_owners([n for n in self.nodes if n.sys_path in self.udev.devices])
        for link in node.links:
            if owners.get(link) in self.udev.devices:
                self.udev.owners[link] = owners[link]

    def plug(self, *devnodes):
        for devnode in devnodes:
            self._plug(self.by_video[devnode])
        self.deliver()

    def unplug(self, *devnodes):
        for devnode in devnodes:
            self.udev.remove(zoo.udev_device(self.by_video[devnode]))
        self.deliver()

    def deliver(self):
        for reader in list(self.reactor.readers):
            reader.doRead()
        self.probe()

    def probe(self):
        """Let the probes start and answer each as the node would."""
        prober = self.svc.prober
        self.reactor.advance(0.35)
        while prober.pending:  # at most MAX_CONCURRENT at a time
            for path in prober.pending:
                prober.succeed(path, zoo.probe_result(self.by_video[path]))
            self.reactor.advance(0.35)

    def cameras(self):
        return {c.camera_id: c for c in self.registry.cameras() if c.status == CONNECTED}

    def table(self):
        return {cid: (c.device, c.stable_device, c.name) for cid, c in self.cameras().items()}

    def stop(self):
        self.svc.stopService()


@pytest.fixture
def bed(tmp_path):
    made = []

    def factory(population, present=None, **discovery):
        b = Bed(tmp_path, population, present, **discovery)
        made.append(b)
        return b

    yield factory
    for b in made:
        if b.svc.running:
            b.stop()


def assert_unique_paths(b):
    """Every present camera opens its own node: the path is unique and leads to it."""
    cams = b.cameras().values()
    paths = [c.stable_device for c in cams]
    assert len(set(paths)) == len(paths), paths
    for c in cams:
        target = c.stable_device if c.stable_device.startswith("/dev/video") else b.udev.resolve_link(c.stable_device)
        assert target == c.device, (c.camera_id, c.stable_device)
        cmd = publish_command(c, b.config.mediamtx)
        assert f" -i {c.stable_device} " in cmd


C270_PATH0 = "/dev/v4l/by-path/platform-xhci-hcd.1-usb-0:1:1.0-video-index0"
C270_PATH2 = "/dev/v4l/by-path/platform-xhci-hcd.0-usb-0:1:1.0-video-index0"


def test_two_c270_with_the_same_bogus_serial(bed):
    b = bed(zoo.two_c270_bogus_serial)
    assert b.table() == {
        "camera0": ("/dev/video0", C270_PATH0, "C270 HD WEBCAM (platform-xhci-hcd.1-usb-0:1:1.0)"),
        "camera1": ("/dev/video2", C270_PATH2, "C270 HD WEBCAM (platform-xhci-hcd.0-usb-0:1:1.0)"),
    }
    keys = {c.camera_id: c.key for c in b.cameras().values()}
    assert keys == {
        "camera0": "path:platform-xhci-hcd.1-usb-0:1:1.0",
        "camera1": "path:platform-xhci-hcd.0-usb-0:1:1.0",
    }
    assert_unique_paths(b)
    # replug only the second: it comes back as itself
    b.unplug("/dev/video2", "/dev/video3")
    assert b.registry.get("camera1").status == DISCONNECTED
    b.plug("/dev/video2", "/dev/video3")
    assert b.table()["camera1"][0] == "/dev/video2"
    assert_unique_paths(b)


@pytest.mark.parametrize("order", list(itertools.permutations(["/dev/video0", "/dev/video2"])))
def test_two_serialless_cameras_replugged_in_any_order(bed, order):
    b = bed(zoo.two_hd_usb_camera_no_serial)
    before = b.table()
    assert len(before) == 2 and len({p for _, p, _ in before.values()}) == 2
    assert all("/by-path/" in p for _, p, _ in before.values())  # the by-id name is shared
    assert_unique_paths(b)
    b.unplug("/dev/video0", "/dev/video1", "/dev/video2", "/dev/video3")
    for devnode in order:
        b.plug(devnode, devnode[:-1] + str(int(devnode[-1]) + 1))
    assert b.table() == before
    assert_unique_paths(b)


def test_only_one_present_uses_its_by_id_link_and_moves_off_it_when_a_twin_arrives(bed):
    b = bed(zoo.two_hd_usb_camera_no_serial, present={"/dev/video0", "/dev/video1"})
    by_id = "/dev/v4l/by-id/usb-HD_USB_Camera_HD_USB_Camera-video-index0"
    assert b.cameras()["camera0"].stable_device == by_id
    changed = []

    class Rec:
        def camera_added(self, c):
            pass

        camera_removed = camera_added

        def camera_changed(self, c):
            changed.append((c.camera_id, c.stable_device))

    b.registry.subscribe(Rec())  # what the MediaMTX reconciler is told
    before = publish_command(b.cameras()["camera0"], b.config.mediamtx)
    b.plug("/dev/video2", "/dev/video3")
    assert ("camera0", "/dev/v4l/by-path/platform-3610000.xhci-usb-0:2.1:1.0-video-index0") in changed
    after = publish_command(b.cameras()["camera0"], b.config.mediamtx)
    assert by_id in before and by_id not in after  # the reconciler rewrites camera0's path
    assert {c.stable_device for c in b.cameras().values()} == {
        "/dev/v4l/by-path/platform-3610000.xhci-usb-0:2.1:1.0-video-index0",
        "/dev/v4l/by-path/platform-3610000.xhci-usb-0:2.2:1.0-video-index0",
    }
    assert_unique_paths(b)
    b.unplug("/dev/video2", "/dev/video3")
    assert b.cameras()["camera0"].stable_device == by_id


def test_raspberry_pi_soc_nodes_are_not_cameras_and_burn_no_id(bed):
    b = bed(zoo.rpi4_soc_nodes)
    assert b.registry.cameras() == []  # unicam is raw Bayer; codec/isp/rpivid are pipeline nodes
    assert len(b.svc.identity) == 0
    b.stop()


def test_unicam_is_a_camera_when_included(bed):
    b = bed(zoo.rpi4_soc_nodes, include=["driver:unicam"])
    assert b.table() == {"camera0": ("/dev/video0", "/dev/v4l/by-path/platform-fe801000.csi-video-index0", "unicam")}


def test_exclude_by_link_glob_wins(bed):
    b = bed(zoo.two_c920_with_serials, exclude=["/dev/v4l/by-id/*5A3A22DF*"])
    assert [c.device for c in b.cameras().values()] == ["/dev/video0"]


def test_rgb_and_ir_of_one_laptop_module(bed):
    b = bed(zoo.laptop_rgb_ir_one_device)
    t = b.table()
    assert t == {
        "camera0": (
            "/dev/video0",
            "/dev/v4l/by-path/pci-0000:00:14.0-usb-0:6:1.0-video-index0",
            "Integrated_Webcam_HD: Integrate (usb 6, interface 0)",
        ),
        "camera1": (
            "/dev/video2",
            "/dev/v4l/by-path/pci-0000:00:14.0-usb-0:6:1.2-video-index0",
            "Integrated_Webcam_HD: Integrate (usb 6, interface 2)",
        ),
    }
    assert_unique_paths(b)


def test_brio_rgb_and_ir_are_two_cameras_keyed_by_serial_and_interface(bed):
    b = bed(zoo.brio)
    cams = b.cameras()
    assert {c.key for c in cams.values()} == {
        "usb:046d_Logitech_BRIO_B2A1C3D4:00",
        "usb:046d_Logitech_BRIO_B2A1C3D4:02",
    }
    assert [c.name for c in cams.values()] == [
        "Logitech BRIO (usb 1.1.4.1, interface 0)",
        "Logitech BRIO (usb 1.1.4.1, interface 2)",
    ]
    assert_unique_paths(b)
    assert all("/by-path/" in c.stable_device for c in cams.values())  # index0 by-id name shared inside the BRIO


def test_two_c920_with_serials_keep_by_id_and_get_port_names(bed):
    b = bed(zoo.two_c920_with_serials)
    assert b.table() == {
        "camera0": (
            "/dev/video0",
            "/dev/v4l/by-id/usb-046d_HD_Pro_Webcam_C920_B61DEDAF-video-index0",
            "HD Pro Webcam C920 (usb 1.1)",
        ),
        "camera1": (
            "/dev/video2",
            "/dev/v4l/by-id/usb-046d_HD_Pro_Webcam_C920_5A3A22DF-video-index0",
            "HD Pro Webcam C920 (usb 1.2)",
        ),
    }
    b.unplug("/dev/video0", "/dev/video1")
    assert b.cameras()["camera1"].name == "HD Pro Webcam C920"  # alone again: no suffix needed


def test_old_udev_metadata_node_is_not_announced(bed):
    b = bed(zoo.guillemot_old_udev, present=set())
    events = []

    class Rec:
        def camera_added(self, c):
            events.append(("added", c.device))

        def camera_removed(self, c):
            events.append(("removed", c.device))

        def camera_changed(self, c):
            pass

    b.registry.subscribe(Rec())
    b.plug("/dev/video0", "/dev/video1")
    assert events == [("added", "/dev/video0")]  # never CONNECTED-then-dropped
    assert len(b.svc.identity) == 1  # no id burnt on the metadata node


@pytest.mark.parametrize("name", sorted(zoo.POPULATIONS))
def test_every_population_restarts_with_the_same_ids(bed, tmp_path, name):
    b = bed(zoo.POPULATIONS[name], include=["driver:unicam"])
    before = b.table()
    b.stop()
    saved = json.loads((tmp_path / FILENAME).read_text()) if before else {"cameras": {}}
    assert len(saved["cameras"]) == len(before)
    # a restart: a new process reads the saved map and enumerates the same nodes
    again = bed(zoo.POPULATIONS[name], include=["driver:unicam"])
    assert again.table() == before
    assert_unique_paths(again)


def test_vivid_node_renumbered_keeps_its_camera_id(bed, tmp_path):
    """A vivid instance unplugged while a program still held its node comes back on
    another one (/dev/video4 -> /dev/video5, sysfs .../video5): same camera, same id,
    also after a restart; the key holds no node number."""
    b = bed(zoo.vivid_two_instances)
    first, second = b.nodes
    assert {cid: c.device for cid, c in b.cameras().items()} == {"camera0": "/dev/video0", "camera1": "/dev/video4"}
    moved = zoo.renumbered(second, 5)
    b.nodes.append(moved)
    b.by_video[moved.devnode] = moved
    for order in (("/dev/video0", "/dev/video5"), ("/dev/video5", "/dev/video0")):
        b.unplug(
            *[d for d in ("/dev/video0", "/dev/video4", "/dev/video5") if b.by_video[d].sys_path in b.udev.devices]
        )
        b.plug(*order)
        assert b.table() == {
            "camera0": ("/dev/video0", "/dev/video0", "vivid (platform:vivid-000)"),
            "camera1": ("/dev/video5", "/dev/video5", "vivid (platform:vivid-001)"),  # same name too
        }
    assert all("/video" not in c.key for c in b.cameras().values()), [c.key for c in b.cameras().values()]
    b.unplug("/dev/video5")
    b.plug("/dev/video4")  # and back on its old node
    assert {cid: c.device for cid, c in b.cameras().items()} == {"camera0": "/dev/video0", "camera1": "/dev/video4"}
    assert len(b.svc.identity) == 2
    b.stop()
    again = bed(zoo.vivid_two_instances, present=["/dev/video0"])
    moved_again = zoo.renumbered(again.nodes[1], 5)
    again.nodes.append(moved_again)
    again.by_video[moved_again.devnode] = moved_again
    again.plug("/dev/video5")
    assert {cid: c.device for cid, c in again.cameras().items()} == {"camera0": "/dev/video0", "camera1": "/dev/video5"}


def test_vivid_instances_that_swap_nodes_keep_their_ids(bed):
    """Instance 0 back on instance 1's old node and the other way round (a held node
    shifts the kernel's minors): each keeps its id, read from QUERYCAP again (an answer
    remembered for the node would be the other camera's)."""
    b = bed(zoo.vivid_two_instances)
    first, second = b.nodes
    swapped = [zoo.renumbered(first, 4), zoo.renumbered(second, 0)]
    b.unplug("/dev/video0", "/dev/video4")
    b.nodes[:] = swapped
    b.by_video.update({n.devnode: n for n in swapped})
    b.plug("/dev/video4", "/dev/video0")
    assert b.table() == {
        "camera0": ("/dev/video4", "/dev/video4", "vivid (platform:vivid-000)"),
        "camera1": ("/dev/video0", "/dev/video0", "vivid (platform:vivid-001)"),
    }


def test_vivid_map_with_node_keys_migrates_without_renumbering(bed, tmp_path):
    """A map written before the rule (the two vivid instances keyed by sysfs path, node
    number included): each entry moves to the port + bus_info key of its node, same id;
    the node the kernel renumbers afterwards keeps it."""
    old = {
        "version": 1,
        "next_number": 3,
        "cameras": {
            "camera1": {"key": "sys:/sys/devices/platform/vivid.0/video4linux/video0", "name": "vivid"},
            "camera2": {"key": "sys:/sys/devices/platform/vivid.0/video4linux/video4", "name": "vivid"},
        },
        "shared_ports": ["path:platform-vivid.0"],
    }
    (tmp_path / FILENAME).write_text(json.dumps(old))
    b = bed(zoo.vivid_two_instances)
    assert {cid: c.device for cid, c in b.cameras().items()} == {"camera1": "/dev/video0", "camera2": "/dev/video4"}
    b.stop()
    saved = json.loads((tmp_path / FILENAME).read_text())
    assert {cid: e["key"] for cid, e in saved["cameras"].items()} == {
        "camera1": "path:platform-vivid.0#bus:platform:vivid-000",
        "camera2": "path:platform-vivid.0#bus:platform:vivid-001",
    }
    assert saved["next_number"] == 3
    again = bed(zoo.vivid_two_instances, present=["/dev/video0"])
    moved = zoo.renumbered(again.nodes[1], 5)
    again.nodes.append(moved)
    again.by_video[moved.devnode] = moved
    again.plug("/dev/video5")
    assert {cid: c.device for cid, c in again.cameras().items()} == {"camera1": "/dev/video0", "camera2": "/dev/video5"}


def test_cameras_under_one_port_without_bus_info_fall_back_to_their_nodes(bed):
    """QUERYCAP told nothing apart (no bus_info): the sysfs path is the last resort."""

    def blank():
        nodes = zoo.vivid_two_instances()
        for n in nodes:
            n.bus_info = ""
        return nodes

    b = bed(blank)
    assert {c.camera_id: c.key for c in b.cameras().values()} == {
        "camera0": "sys:/sys/devices/platform/vivid.0/video4linux/video0",
        "camera1": "sys:/sys/devices/platform/vivid.0/video4linux/video4",
    }


def test_elp_two_capture_nodes_are_two_cameras(bed):
    b = bed(zoo.elp_h264_two_capture_nodes)
    t = b.table()
    assert t == {
        "camera0": (
            "/dev/video0",
            "/dev/v4l/by-path/platform-3530000.xhci-usb-0:2:1.0-video-index0",
            "H264 USB Camera (usb 2, interface 0)",
        ),
        "camera1": (
            "/dev/video1",
            "/dev/v4l/by-path/platform-3530000.xhci-usb-0:2:1.2-video-index0",
            "H264 USB Camera (usb 2, interface 2)",
        ),
    }
    assert_unique_paths(b)


def _input_format(command):
    args = command.split()
    return args[args.index("-input_format") + 1], args[args.index("-video_size") + 1]


def test_each_single_format_camera_gets_a_working_publish_command(bed):
    from camsvc.mediamtx.desired import published_mode

    b = bed(zoo.single_format_cameras)
    cams = b.cameras()
    got = {c.name: _input_format(publish_command(c, b.config.mediamtx)) for c in cams.values()}
    assert got == {
        "USB Camera H264": ("h264", "1920x1080"),
        "PIXPRO 4KVR360": ("mjpeg", "1440x1440"),
        "IR Camera": ("gray", "640x360"),
    }
    modes = {c.name: published_mode(c, b.config.mediamtx) for c in cams.values()}
    assert all(m["why"].startswith("the only format offered") for m in modes.values())
    assert "greyscale" in modes["IR Camera"]["why"] and modes["IR Camera"]["copy"] is False
    passthrough = parse_config_dict({"mediamtx": {"passthrough": True}}).mediamtx
    h264 = next(c for c in cams.values() if c.name == "USB Camera H264")
    assert published_mode(h264, passthrough)["copy"] is True
    assert "-c:v copy" in publish_command(h264, passthrough)


def test_vivid_with_two_instances_gives_two_cameras_with_their_own_nodes(bed, tmp_path):
    """The QEMU guest's ``vivid n_devs=2``: one platform device, two identical capture
    nodes; the shared by-path name is used by neither, each publishes from its node."""
    b = bed(zoo.vivid_two_instances)
    assert b.table() == {
        "camera0": ("/dev/video0", "/dev/video0", "vivid (platform:vivid-000)"),
        "camera1": ("/dev/video4", "/dev/video4", "vivid (platform:vivid-001)"),
    }
    assert_unique_paths(b)
    keys = {c.camera_id: c.key for c in b.cameras().values()}
    assert keys == {
        "camera0": "path:platform-vivid.0#bus:platform:vivid-000",  # port + QUERYCAP bus_info, no node number
        "camera1": "path:platform-vivid.0#bus:platform:vivid-001",
    }
    b.unplug("/dev/video0", "/dev/video4")  # unbind: both go
    b.plug("/dev/video4", "/dev/video0")  # bind: udev may report them in any order
    assert set(b.table()) == {"camera0", "camera1"}
