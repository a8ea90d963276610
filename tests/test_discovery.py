"""camsvc.cameras.discovery with a fake udev, a fake prober and a MemoryReactorClock (no I/O)."""

from __future__ import annotations

import errno
import json
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.testing import MemoryReactorClock

from camsvc.cameras.discovery import FLUSH_DELAY, PROBE_START_DELAY, RETRY_DELAY, VANISHED_RETRY_DELAY, DiscoveryService
from camsvc.cameras.identity import FILENAME, IdentityStore
from camsvc.cameras.registry import CONNECTED, DISCONNECTED, ERROR, CameraRegistry
from camsvc.config import parse_config_dict
from camsvc.ops.health import Health
from camsvc.testing import FakeProber, FakeUdev, platform_camera, probe_result, querycap_for, usb_camera

DEBOUNCE = 0.3


class Recorder:
    def __init__(self):
        self.events = []

    def camera_added(self, camera):
        self.events.append(("added", camera.camera_id, camera.status, camera.device))

    def camera_removed(self, camera):
        self.events.append(("removed", camera.camera_id, camera.status, camera.device))

    def camera_changed(self, camera):
        self.events.append(("changed", camera.camera_id, camera.status, camera.device))

    def take(self):
        out, self.events = self.events, []
        return out


class Harness:
    def __init__(self, tmp_path, devices=(), **discovery):
        self.tmp_path = tmp_path
        self.reactor = MemoryReactorClock()
        self.udev = FakeUdev(devices)
        self.prober = FakeProber()
        self.registry = CameraRegistry(self.reactor)
        self.recorder = Recorder()
        self.registry.subscribe(self.recorder)
        self.health = Health(self.reactor)
        self.health.require("discovery")
        self.config = parse_config_dict({"discovery": {"debounce": DEBOUNCE, **discovery}}).discovery
        self.identity = IdentityStore(str(tmp_path / FILENAME))
        self.svc = DiscoveryService(
            self.registry,
            self.config,
            self.identity,
            self.reactor,
            health=self.health,
            udev_factory=self.udev,
            prober=self.prober,
        )

    def start(self):
        self.svc.startService()
        return self

    def deliver(self):
        for reader in list(self.reactor.readers):
            assert reader.doRead() is None

    def advance(self, seconds=0.0):
        self.reactor.advance(seconds)

    def probes_start(self):
        self.advance(PROBE_START_DELAY)

    def status(self, camera_id):
        return self.registry.get(camera_id).status

    def cam(self, camera_id):
        return self.registry.get(camera_id)

    def stop(self):
        self.svc.stopService()
        assert self.reactor.getDelayedCalls() == []
        assert not self.reactor.readers


@pytest.fixture
def make(tmp_path):
    harnesses = []

    def factory(devices=(), **discovery):
        h = Harness(tmp_path, devices, **discovery)
        harnesses.append(h)
        return h

    yield factory
    for h in harnesses:
        if h.svc.running:
            h.svc.stopService()


def test_start_enumerates_capture_nodes_only(make, tmp_path):
    usb = usb_camera(0, serial="S1", port="1")
    meta = usb_camera(1, serial="S1", port="1", metadata=True)
    vivid = platform_camera(2)
    output = replace(platform_camera(3, name="vivid.1"), properties={"ID_V4L_CAPABILITIES": ":video_output:"})
    no_caps = replace(platform_camera(4, name="x.0"), properties={"ID_PATH": "platform-x.0"})
    h = make([vivid, meta, output, usb, no_caps])
    assert not h.health.is_ok("discovery")
    h.start()
    assert h.health.is_ok("discovery")
    assert len(h.reactor.readers) == 1
    # ids follow the node numbers on the first start
    assert [(c.camera_id, c.device, c.status) for c in h.registry.cameras()] == [
        ("camera0", "/dev/video0", CONNECTED),
        ("camera1", "/dev/video2", CONNECTED),
    ]
    assert h.cam("camera0").key == "usb:Vendor_USB_Camera_S1:00"
    assert h.cam("camera1").key == "path:platform-vivid.0"
    assert h.cam("camera1").name == "vivid"
    assert "/dev/v4l/by-id/usb-Vendor_USB_Camera_S1-video-index0" in h.cam("camera0").links
    # the id map is written right after, not before, the announcement
    assert not (tmp_path / FILENAME).exists()
    h.advance(FLUSH_DELAY)
    saved = json.loads((tmp_path / FILENAME).read_text())["cameras"]
    assert saved == {
        "camera0": {"key": "usb:Vendor_USB_Camera_S1:00", "name": "USB Camera"},
        "camera1": {"key": "path:platform-vivid.0", "name": "vivid"},
    }
    # events for the metadata and output nodes change nothing
    h.recorder.take()
    h.udev.change(meta)
    h.udev.remove(output)
    h.udev.add(output)
    h.deliver()
    assert h.recorder.take() == []
    h.stop()


def test_hot_add_is_announced_at_once_then_probed(make):
    h = make().start()
    assert h.registry.cameras() == []
    cam = h.udev.add(usb_camera(0, serial="S1", card="HD Webcam"))
    h.deliver()
    assert h.recorder.take() == [("added", "camera0", CONNECTED, "/dev/video0")]
    record = h.cam("camera0")
    assert (record.name, record.resolution, record.fps, record.capabilities) == ("HD Webcam", "", 0, None)
    assert h.prober.pending == []  # the probe starts after the announcement
    h.probes_start()
    assert h.prober.pending == ["/dev/video0"]
    h.prober.succeed("/dev/video0", probe_result(cam.device_node, card="HD Webcam"))
    assert h.recorder.take() == [("changed", "camera0", CONNECTED, "/dev/video0")]
    record = h.cam("camera0")
    assert (record.resolution, record.fps) == ("1920x1080", 30)
    assert record.capabilities["driver"] == "uvcvideo"
    assert [f["format"] for f in record.capabilities["formats"]] == ["MJPG", "YUYV"]
    assert h.svc.status()["probes"] == 1
    h.stop()


def test_hot_remove_and_replug_keep_the_id(make):
    cam = usb_camera(0, serial="S1", port="1")
    h = make([cam]).start()
    h.probes_start()
    h.prober.succeed("/dev/video0")
    h.recorder.take()
    h.advance(DEBOUNCE)
    h.udev.remove(cam)
    h.deliver()
    assert h.recorder.take() == [("removed", "camera0", DISCONNECTED, "/dev/video0")]
    gone = h.cam("camera0")
    assert gone.capabilities is not None and gone.resolution == "1920x1080"  # last known mode kept
    h.advance(DEBOUNCE)
    # back on another port and node: the serial identifies it
    h.udev.add(usb_camera(4, serial="S1", port="3"))
    h.deliver()
    assert h.recorder.take() == [("added", "camera0", CONNECTED, "/dev/video4")]
    assert h.cam("camera0").resolution == "1920x1080"  # cached until the new probe answers
    h.probes_start()
    assert h.prober.pending == ["/dev/video4"]
    assert len(h.registry.cameras()) == 1
    h.stop()


def test_ids_survive_a_restart(make, tmp_path):
    a, b = usb_camera(0, serial="S1", port="1"), platform_camera(2)
    h = make([a, b]).start()
    h.stop()
    # reboot: nodes renumbered, enumeration order different
    h2 = make([replace(b, device_node="/dev/video0"), replace(a, device_node="/dev/video3")]).start()
    assert {c.camera_id: c.device for c in h2.registry.cameras()} == {
        "camera0": "/dev/video3",
        "camera1": "/dev/video0",
    }
    new = h2.udev.add(usb_camera(6, serial="S9", port="5"))
    h2.deliver()
    assert h2.registry.resolve(new.device_node).camera_id == "camera2"
    h2.stop()
    assert json.loads((tmp_path / FILENAME).read_text())["next_number"] == 3


def test_identical_serialless_cameras_on_different_ports(make):
    a, b = usb_camera(0, port="1"), usb_camera(2, port="2")
    h = make([a, b]).start()
    assert [c.camera_id for c in h.registry.cameras()] == ["camera0", "camera1"]
    h.advance(DEBOUNCE)
    # both unplugged, then replugged in the opposite order (nodes swap): ids follow the ports
    h.udev.remove(a)
    h.udev.remove(b)
    h.deliver()
    h.advance(DEBOUNCE)
    h.udev.add(usb_camera(0, port="2"))
    h.udev.add(usb_camera(2, port="1"))
    h.deliver()
    assert {c.camera_id: (c.device, c.status) for c in h.registry.cameras()} == {
        "camera0": ("/dev/video2", CONNECTED),
        "camera1": ("/dev/video0", CONNECTED),
    }
    h.stop()


def test_a_placeholder_serial_is_no_serial(make):
    a, b = usb_camera(0, serial="0001", port="1"), usb_camera(2, serial="0001", port="2")
    h = make([a, b]).start()
    cams = h.registry.cameras()
    assert [(c.camera_id, c.key) for c in cams] == [
        ("camera0", "path:pci-0000:00:14.0-usb-0:1:1.0"),
        ("camera1", "path:pci-0000:00:14.0-usb-0:2:1.0"),
    ]
    h.stop()


def test_a_serial_shared_by_two_present_cameras_identifies_neither(make, tmp_path):
    """The first camera had the serial key; when a twin appears both are keyed by port, the
    first keeps its id, and replugging only the second (in any order, after a restart too)
    never gives it the first one's id."""
    a, b = usb_camera(0, serial="A1B2C3", port="1"), usb_camera(2, serial="A1B2C3", port="2")
    h = make([a]).start()
    assert h.cam("camera0").key == "usb:Vendor_USB_Camera_A1B2C3:00"
    h.udev.add(b)
    h.deliver()
    assert {c.camera_id: c.key for c in h.registry.cameras()} == {
        "camera0": "path:pci-0000:00:14.0-usb-0:1:1.0",
        "camera1": "path:pci-0000:00:14.0-usb-0:2:1.0",
    }
    h.udev.remove(b)
    h.udev.remove(a)
    h.deliver()
    h.udev.add(b)
    h.deliver()
    assert h.cam("camera1").status == CONNECTED and h.cam("camera0").status == DISCONNECTED
    h.stop()
    saved = json.loads((tmp_path / FILENAME).read_text())
    assert saved["shared_serials"] == ["A1B2C3"]
    h2 = make([b]).start()  # restart with only the second one plugged in
    assert [(c.camera_id, c.status) for c in h2.registry.cameras()] == [("camera1", CONNECTED)]
    h2.stop()


def test_an_old_map_migrates_without_renumbering(make, tmp_path):
    """A map from before the rule: the first C270 had the placeholder serial key, its twin
    the port key.  Both keep their ids, whichever is plugged first."""
    (tmp_path / FILENAME).write_text(
        json.dumps(
            {
                "version": 1,
                "next_number": 3,
                "cameras": {
                    "camera0": {"key": "usb:Vendor_USB_Camera_200901010001:00", "name": "C270"},
                    "camera1": {"key": "path:pci-0000:00:14.0-usb-0:2:1.0", "name": "C270"},
                    "camera2": {"key": "usb:Vendor_USB_Camera_REAL1:00", "name": "C920"},
                },
            }
        )
    )
    a = usb_camera(0, serial="200901010001", port="1")
    b = usb_camera(2, serial="200901010001", port="2")
    c = usb_camera(4, serial="REAL1", port="3")
    h = make([b, c]).start()
    assert {x.camera_id: x.device for x in h.registry.cameras()} == {"camera1": "/dev/video2", "camera2": "/dev/video4"}
    h.udev.add(a)
    h.deliver()
    assert h.cam("camera0").device == "/dev/video0"
    assert h.cam("camera0").key == "path:pci-0000:00:14.0-usb-0:1:1.0"
    h.stop()


def test_flapping_notifies_every_change_at_once_and_probes_once_settled(make):
    cam = usb_camera(0, serial="S1")
    h = make().start()
    h.udev.caps["/dev/video0"] = querycap_for(cam)  # answers QUERYCAP even when the events lag behind
    h.udev.add(cam)
    h.deliver()
    assert h.recorder.take() == [("added", "camera0", CONNECTED, "/dev/video0")]  # at once
    for _ in range(5):
        h.udev.remove(cam)
        h.udev.add(cam)
    h.udev.remove(cam)
    h.deliver()
    events = h.recorder.take()
    assert [e[0] for e in events] == ["removed", "added"] * 5 + ["removed"]  # none held back
    assert h.status("camera0") == DISCONNECTED
    assert h.svc.status()["coalesced"] >= 1
    h.udev.add(cam)
    h.deliver()
    assert h.recorder.take() == [("added", "camera0", CONNECTED, "/dev/video0")]
    h.probes_start()
    assert h.prober.pending == []  # the probe waits for the camera to settle
    h.advance(DEBOUNCE)
    assert h.prober.pending == ["/dev/video0"]
    h.stop()


def test_flapping_costs_at_most_one_probe_per_window(make):
    cam = usb_camera(0, serial="S1")
    h = make().start()
    for _ in range(20):
        h.udev.add(cam)
        h.udev.remove(cam)
        h.deliver()
        h.advance(0.02)
    h.udev.add(cam)
    h.deliver()
    h.advance(DEBOUNCE)
    h.probes_start()
    # the first probe was cancelled when the node went away; one probe for the final node
    assert len(h.prober.calls) <= 3
    assert h.prober.pending == ["/dev/video0"]
    assert h.status("camera0") == CONNECTED
    h.stop()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["add", "remove", "change", "renumber"]), st.sampled_from([0, 0.01, 0.1, 0.31])),
        max_size=30,
    )
)
def test_registry_converges_to_udev_state(tmp_path_factory, steps):
    h = Harness(tmp_path_factory.mktemp("conv"), debounce=DEBOUNCE).start()
    present = None
    for action, gap in steps:
        if action == "add" or (action == "renumber" and present is not None):
            if present is not None:
                h.udev.remove(present)
            present = usb_camera(2 if present is not None and present.device_node.endswith("0") else 0, serial="S")
            h.udev.add(present)
        elif action == "remove" and present is not None:
            h.udev.remove(present)
            present = None
        elif action == "change" and present is not None:
            h.udev.change(present)
        h.deliver()
        h.advance(gap)
    h.advance(DEBOUNCE)
    record = h.registry.get("camera0")
    if present is None:
        assert record is None or record.status == DISCONNECTED
    else:
        assert record.status == CONNECTED and record.device == present.device_node
    h.svc.stopService()
    assert h.reactor.getDelayedCalls() == []


def test_overflow_discards_stale_events_and_re_enumerates(make):
    a, b = usb_camera(0, serial="A"), usb_camera(2, serial="B", port="2")
    h = make([a]).start()
    h.advance(DEBOUNCE)
    monitor = h.udev.monitors[-1]
    # The kernel dropped events: "a" went away and "b" came, unseen.  What is still
    # queued predates the loss (an "add" of "a") and must not resurrect it.
    h.udev.remove(a, quiet=True)
    h.udev.add(b, quiet=True)
    h.udev.overflow()
    h.udev.event(a, "add")
    before = h.udev.enumerations
    h.deliver()
    assert h.udev.enumerations == before + 1
    assert monitor.queue == []
    assert {c.camera_id: c.status for c in h.registry.cameras()} == {"camera0": DISCONNECTED, "camera1": CONNECTED}
    assert h.svc.status()["overflows"] == 1
    # the reader lives on
    h.advance(DEBOUNCE)
    h.udev.remove(b)
    h.deliver()
    assert h.status("camera1") == DISCONNECTED
    assert len(h.reactor.readers) == 1
    h.stop()


def test_reader_survives_errors(make):
    cam = usb_camera(0, serial="A")
    h = make().start()
    h.udev.monitors[-1].queue.append(OSError(errno.EIO, "boom"))
    h.deliver()
    assert h.svc.status()["read_errors"] == 1
    h.udev.monitors[-1].queue.append(RuntimeError("unexpected"))
    h.deliver()
    h.udev.overflow()
    h.udev.fail_enumerate = OSError(errno.EIO, "sysfs unreadable")
    h.deliver()  # re-enumeration fails: logged, reader alive
    h.udev.fail_enumerate = None
    h.udev.add(cam)
    h.deliver()
    assert h.status("camera0") == CONNECTED
    assert len(h.reactor.readers) == 1
    h.stop()


def test_probe_timeout_is_an_error_until_the_camera_changes(make):
    cam = usb_camera(0, serial="A")
    h = make([cam]).start()
    h.probes_start()
    h.recorder.take()
    h.prober.fail("/dev/video0", "timeout", "capability probe of /dev/video0 timed out after 5s")
    assert h.recorder.take() == [("changed", "camera0", ERROR, "/dev/video0")]
    assert h.cam("camera0").error == "capability probe of /dev/video0 timed out after 5s"
    assert h.svc.status()["probe_timeouts"] == 1
    assert h.prober.pending == []
    # a udev "change" gives it another chance
    h.udev.change(cam)
    h.deliver()
    h.probes_start()
    h.prober.succeed("/dev/video0")
    assert h.status("camera0") == CONNECTED and h.cam("camera0").error is None
    h.stop()


def test_vanished_mid_probe_then_removed(make):
    cam = usb_camera(0, serial="A")
    h = make([cam]).start()
    h.advance(DEBOUNCE)  # the probe starts; the plug's debounce window ends
    h.recorder.take()
    h.prober.fail("/dev/video0", "vanished")
    assert h.recorder.take() == []  # no ERROR flash: udev's remove is probably on its way
    h.udev.remove(cam)
    h.deliver()
    assert h.recorder.take() == [("removed", "camera0", DISCONNECTED, "/dev/video0")]
    h.advance(VANISHED_RETRY_DELAY)
    assert h.prober.pending == []
    h.stop()


def test_vanished_twice_while_udev_still_lists_it_is_an_error(make):
    cam = usb_camera(0, serial="A")
    h = make([cam]).start()
    h.probes_start()
    h.prober.fail("/dev/video0", "vanished")
    h.advance(VANISHED_RETRY_DELAY)
    h.probes_start()
    h.prober.fail("/dev/video0", "vanished", "/dev/video0: device vanished (No such device)")
    assert h.status("camera0") == ERROR
    assert "vanished" in h.cam("camera0").error
    h.stop()


def test_removal_cancels_a_running_probe(make):
    cam = usb_camera(0, serial="A")
    h = make([cam]).start()
    h.probes_start()
    assert h.prober.pending == ["/dev/video0"]
    h.udev.remove(cam)
    h.deliver()
    assert h.prober.cancelled == []  # killed right after the notification has left
    h.advance(PROBE_START_DELAY)
    assert h.prober.cancelled == ["/dev/video0"]
    h.advance(DEBOUNCE)  # the removal came within the plug's window: committed at its end
    assert h.status("camera0") == DISCONNECTED
    assert h.svc.status()["probes_running"] == 0
    h.stop()


def test_a_node_the_probe_rejects_is_withdrawn(make):
    odd = platform_camera(5, name="odd.0", card="Odd")
    h = make().start()
    h.udev.add(odd)
    h.deliver()
    h.probes_start()
    h.recorder.take()
    h.prober.fail("/dev/video5", "not_capture", "not a video capture node")
    assert h.recorder.take() == [("removed", "camera0", DISCONNECTED, "/dev/video5")]
    assert h.registry.get("camera0") is None  # no ghost record
    h.udev.change(odd)
    h.deliver()
    h.advance(1)
    assert h.registry.cameras() == [] and h.prober.pending == []
    # a new device on that path gets a fresh look
    h.udev.remove(odd)
    h.udev.add(odd)
    h.deliver()
    assert h.status("camera0") == CONNECTED
    h.stop()


def test_probes_are_bounded_and_queued(make):
    cams = [usb_camera(2 * i, serial=f"S{i}", port=str(i + 1)) for i in range(4)]
    h = make(cams).start()
    h.probes_start()
    assert h.prober.pending == ["/dev/video0", "/dev/video2"]
    h.prober.succeed("/dev/video0")
    h.advance(0)
    assert h.prober.pending == ["/dev/video2", "/dev/video4"]
    h.prober.fail("/dev/video2", "error", "permission denied")
    h.prober.succeed("/dev/video4")
    h.advance(0)
    h.prober.succeed("/dev/video6")
    assert [c.status for c in h.registry.cameras()] == [CONNECTED, ERROR, CONNECTED, CONNECTED]
    h.stop()


def test_when_probed(make):
    cam = usb_camera(0, serial="A")
    h = make([cam]).start()
    waiting = h.svc.when_probed("camera0")
    assert waiting is not None and not waiting.called
    h.probes_start()
    h.prober.succeed("/dev/video0")
    assert waiting.called
    assert h.svc.when_probed("camera0") is None
    assert h.svc.when_probed("camera9") is None
    h.stop()


def test_disabled_discovery_is_ready_with_no_cameras(make):
    h = make([usb_camera(0, serial="A")], enabled=False).start()
    assert h.health.is_ok("discovery")
    assert h.registry.cameras() == [] and not h.reactor.readers and h.udev.enumerations == 0
    assert h.svc.status()["enabled"] is False
    h.stop()


def test_null_discovery_reports_what_the_disabled_service_reports(make, tmp_path):
    """discovery.enabled: false builds camsvc.cameras.component's null object (the discovery
    chain stays unimported): its readiness, status, probes and forget answer as the real
    service does when disabled."""
    from twisted.application.service import MultiService

    from camsvc.app import App
    from camsvc.cameras import component

    h = make([usb_camera(0, serial="A")], enabled=False).start()
    config = parse_config_dict({"discovery": {"enabled": False}, "storage": {"state_dir": str(tmp_path)}})
    app = App(config, MemoryReactorClock())
    app.service = MultiService()
    null = component.setup_discovery(app)
    assert isinstance(null, component.DisabledDiscovery) and null.parent is app.service
    assert not app.health.is_ok("discovery")  # required at build, ok once started
    null.startService()
    assert app.health.report()["checks"]["discovery"]["ok"] is True
    assert app.status_providers["discovery"]() == h.svc.status()
    assert null.when_probed("camera0") is None is h.svc.when_probed("camera0")
    assert null.forget("camera0") is False is h.svc.forget("camera0")
    null.stopService()
    h.stop()


def test_enabled_discovery_is_the_real_service(tmp_path):
    from twisted.application.service import MultiService

    from camsvc.app import App
    from camsvc.cameras import component

    app = App(parse_config_dict({"storage": {"state_dir": str(tmp_path)}}), MemoryReactorClock())
    app.service = MultiService()
    assert isinstance(component.setup_discovery(app), DiscoveryService)


def test_udev_unavailable_at_start_is_retried(make):
    h = make([usb_camera(0, serial="A")])
    h.udev.fail_enumerate = OSError(errno.ENOENT, "no /sys")
    h.start()
    assert not h.health.is_ok("discovery")
    assert "udev unavailable" in h.health.report()["checks"]["discovery"]["reason"]
    assert h.udev.monitors[-1].closed
    h.udev.fail_enumerate = None
    h.advance(RETRY_DELAY)
    assert h.health.is_ok("discovery") and h.status("camera0") == CONNECTED
    h.stop()


def test_stop_cleans_up(make, tmp_path):
    cam = usb_camera(0, serial="A")
    h = make([cam]).start()
    h.probes_start()
    h.udev.remove(cam)
    h.udev.add(cam)
    h.deliver()  # a coalesced commit is pending
    monitor = h.udev.monitors[-1]
    h.stop()  # asserts no delayed calls and no readers remain
    assert monitor.closed
    assert (tmp_path / FILENAME).exists()


def test_status_section(make):
    h = make([usb_camera(0, serial="A"), platform_camera(2)]).start()
    status = h.svc.status()
    assert status["enabled"] and status["running"]
    assert (status["cameras"], status["connected"], status["known_ids"]) == (2, 2, 2)
    assert status["enumerations"] == 1
    h.stop()


class PyudevLike:
    """Just what from_pyudev reads of a pyudev.Device."""

    def __init__(self, action, properties, index=None):
        self.action = action
        self.sys_path = "/sys/devices/x/video4linux/video1"
        self.device_node = "/dev/video1"
        self.properties = properties
        self.reads = 0
        outer = self

        class Attributes:
            def asstring(self, name):
                outer.reads += 1
                if index is None:
                    raise KeyError(name)
                return index

        self.attributes = Attributes()


def test_from_pyudev_reads_only_what_discovery_uses():
    from camsvc.cameras.selection import udev_capture
    from camsvc.cameras.udev import from_pyudev

    props = dict(usb_camera(1, serial="S", metadata=True).properties, SOMETHING_ELSE="x")
    dev = PyudevLike("add", props)
    record = from_pyudev(dev)
    assert record.index == 1 and dev.reads == 0  # from the "-video-index1" link, no sysfs read
    assert "SOMETHING_ELSE" not in record.properties and record.properties["ID_SERIAL_SHORT"] == "S"
    assert udev_capture(record) is False  # a metadata node
    no_links = {k: v for k, v in props.items() if k != "DEVLINKS"}
    dev = PyudevLike("change", no_links, index="2")
    assert from_pyudev(dev).index == 2 and dev.reads == 1
    assert from_pyudev(PyudevLike(None, no_links)).index == 0
    gone = from_pyudev(PyudevLike("remove", props))
    assert (gone.action, gone.properties, gone.sys_path) == ("remove", {}, "/sys/devices/x/video4linux/video1")


@pytest.mark.parametrize("node", ["v4l-touch0", "vbi0", "radio0", "swradio0", "v4l-subdev0"])
def test_only_video_nodes_are_candidates(node):
    from camsvc.cameras.selection import udev_capture
    from camsvc.cameras.udev import UdevDevice

    dev = UdevDevice(
        sys_path=f"/sys/devices/platform/vivid.0/video4linux/{node}",
        device_node=f"/dev/{node}",
        properties={"ID_V4L_CAPABILITIES": ":capture:"},
    )
    assert udev_capture(dev) is False
    video = UdevDevice(
        sys_path="/sys/devices/platform/vivid.0/video4linux/video0",
        device_node="/dev/video0",
        properties={"ID_V4L_CAPABILITIES": ":capture:"},
    )
    assert udev_capture(video) is True


def test_receive_buffer_falls_back_to_plain_so_rcvbuf():
    """Without CAP_NET_ADMIN (the systemd unit) SO_RCVBUFFORCE fails: plain SO_RCVBUF, capped by rmem_max, still applies."""
    import socket

    from camsvc.cameras.udev import _plain_receive_buffer

    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        before = a.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        got = _plain_receive_buffer(a.fileno(), before * 4, PermissionError("Operation not permitted"))
        assert int(got) == a.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        assert int(got) >= before
        a.send(b"x")  # the original fd still works: only a dup was closed
        assert b.recv(1) == b"x"
    finally:
        a.close()
        b.close()


# -- odd udev input -------------------------------------------------------------------------


def test_a_moved_node_is_the_same_camera_at_its_new_path(make):
    old = usb_camera(0, serial="M")
    h = make([old]).start()
    h.probes_start()
    h.prober.succeed("/dev/video0")
    h.advance(DEBOUNCE)
    h.recorder.take()
    moved = usb_camera(3, serial="M")
    moved = replace(
        moved,
        properties={
            **moved.properties,
            "DEVPATH": moved.sys_path[len("/sys") :],
            "DEVPATH_OLD": old.sys_path[len("/sys") :],
        },
    )
    h.udev.remove(old, quiet=True)
    h.udev.add(moved, quiet=True)
    h.udev.event(moved, "move")  # one event names both paths
    h.deliver()
    h.advance(DEBOUNCE)
    assert [(c.camera_id, c.device, c.status) for c in h.registry.cameras()] == [("camera0", "/dev/video3", CONNECTED)]
    h.stop()


def test_unbind_and_offline_change_nothing(make):
    cam = usb_camera(0, serial="U")
    h = make([cam]).start()
    h.recorder.take()
    h.udev.event(cam, "unbind")
    h.udev.event(cam, "offline")
    h.deliver()
    h.advance(DEBOUNCE)
    assert h.recorder.take() == [] and h.status("camera0") == CONNECTED
    h.stop()


def test_a_node_that_stops_being_a_capture_node_is_withdrawn(make):
    cam = usb_camera(0, serial="C")
    h = make([cam]).start()
    h.advance(DEBOUNCE)
    h.udev.change(replace(cam, properties={**cam.properties, "ID_V4L_CAPABILITIES": ":video_output:"}))
    h.deliver()
    h.advance(DEBOUNCE)
    assert h.status("camera0") == DISCONNECTED
    h.stop()


def test_an_add_without_its_remove_replaces_the_device_on_that_path(make):
    first = usb_camera(0, serial="FIRST")
    h = make([first]).start()
    h.advance(DEBOUNCE)
    other = usb_camera(0, serial="OTHER")  # same port, same node, another camera: the remove was lost
    h.udev.add(other)
    h.deliver()
    h.advance(DEBOUNCE)
    assert {c.camera_id: (c.status, c.key) for c in h.registry.cameras()} == {
        "camera0": (DISCONNECTED, "usb:Vendor_USB_Camera_FIRST:00"),
        "camera1": (CONNECTED, "usb:Vendor_USB_Camera_OTHER:00"),
    }
    h.stop()


def test_disconnected_cameras_are_forgotten_after_forget_after(make):
    cam, other = usb_camera(0, serial="S1"), usb_camera(2, serial="S2", port="2")
    h = make([cam, other], forget_after=3600).start()
    h.advance(10)
    h.udev.remove(cam)
    h.deliver()
    assert h.cam("camera0").status == DISCONNECTED and h.cam("camera0").last_seen == h.reactor.seconds()
    h.advance(1800)
    h.udev.add(cam)  # back within the hour: the countdown stops
    h.deliver()
    h.advance(3600)
    assert h.cam("camera0").status == CONNECTED
    h.udev.remove(cam)
    h.deliver()
    h.advance(3599)
    assert h.cam("camera0") is not None
    h.advance(1)
    assert h.cam("camera0") is None and "camera0" not in h.svc._probes  # per-camera state bounded
    assert h.identity.get("usb:Vendor_USB_Camera_S1:00") == "camera0"  # the id stays reserved
    h.udev.add(cam)
    h.deliver()
    assert h.cam("camera0").status == CONNECTED
    h.stop()


def test_querycap_is_asked_once_per_node_identity(make):
    cam = usb_camera(0, serial="S1")
    h = make().start()
    h.udev.add(cam)
    h.deliver()
    asked = h.udev.querycaps
    h.udev.remove(cam)
    h.udev.add(cam)  # replugged on the same port: the same answer
    h.deliver()
    assert h.udev.querycaps == asked and h.status("camera0") == CONNECTED
    h.udev.remove(cam)
    h.udev.add(usb_camera(0, serial="S2"))  # another camera on that node: asked again
    h.deliver()
    assert h.udev.querycaps == asked + 1
    h.stop()


def _model(device, product="0825", vendor="046d"):
    return replace(device, properties={**device.properties, "ID_VENDOR_ID": vendor, "ID_MODEL_ID": product})


def test_querycap_is_asked_once_per_usb_model_and_node_index(make):
    """A second camera of a model (another port, another serial) is decided by the first
    one's QUERYCAP without asking; another model, interface or a platform node is asked."""
    h = make().start()
    h.udev.add(_model(usb_camera(0, serial="S1", port="1")))
    h.deliver()
    asked = h.udev.querycaps
    assert asked == 1 and h.svc.status()["querycaps"] == 1
    h.udev.add(_model(usb_camera(2, serial="S2", port="2")))
    h.deliver()
    assert h.udev.querycaps == asked and h.status("camera1") == CONNECTED
    h.udev.add(_model(usb_camera(4, serial="S3", port="3"), product="082d"))  # another model
    h.udev.add(_model(usb_camera(6, serial="S4", port="4", interface="02")))  # another interface
    h.udev.add(platform_camera(8))
    h.deliver()
    assert h.udev.querycaps == asked + 3
    assert [h.status(f"camera{i}") for i in range(5)] == [CONNECTED] * 5
    h.stop()


def test_a_reused_model_answer_still_decides(make):
    """Old udev marks UVC metadata nodes ``:capture:``: the first camera's metadata node is
    rejected by its QUERYCAP, and the same node of a second camera of that model by the
    same answer, without asking and without an id."""
    h = make().start()
    meta = [_model(usb_camera(2 * i + 1, serial=f"S{i}", port=str(i + 1), metadata=True)) for i in range(2)]
    meta = [replace(m, properties={**m.properties, "ID_V4L_CAPABILITIES": ":capture:"}) for m in meta]
    h.udev.caps[meta[0].device_node] = querycap_for(usb_camera(1, metadata=True))
    h.udev.add(_model(usb_camera(0, serial="S0", port="1")))
    h.udev.add(meta[0])
    h.deliver()
    asked = h.udev.querycaps
    h.udev.add(_model(usb_camera(2, serial="S1", port="2")))
    h.udev.add(meta[1])
    h.deliver()
    assert h.udev.querycaps == asked
    assert [(c.camera_id, c.device) for c in h.registry.cameras()] == [
        ("camera0", "/dev/video0"),
        ("camera1", "/dev/video2"),
    ]
    h.stop()
