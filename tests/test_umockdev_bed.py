"""Real udev on umockdev: the test bed, pyudev on a reactor, V4L2 probing of emulated nodes.

The process under test is ``tests/support/udev_listener.py`` run as a preloaded venv
subprocess (the pytest process itself is not preloaded, see tests/support/umockdev.py).
Skipped only when umockdev is genuinely missing.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import select
import subprocess
import sys
import time

import pytest
import pytest_twisted

from tests.support.umockdev import (
    QLEN_PATH,
    AsyncTestbed,
    Testbed,
    UMockdevError,
    in_preloaded_process,
    umockdev_available,
)

_ok, _reason = umockdev_available()
pytestmark = pytest.mark.skipif(not _ok, reason=f"umockdev unavailable: {_reason}")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FORMATS = [
    {
        "format": "MJPG",
        "description": "Motion-JPEG",
        "compressed": True,
        "sizes": [
            {"width": 1920, "height": 1080, "fps": [30, 15]},
            {"width": 1280, "height": 720, "fps": [60, 30]},
            {"width": 640, "height": 480, "fps": [29.97]},
        ],
    },
    {
        "format": "YUYV",
        "description": "YUYV 4:2:2",
        "compressed": False,
        "sizes": [{"width": 640, "height": 480, "fps": [30, 15, 7.5]}],
    },
    {
        "format": "NV12",
        "description": "Y/UV 4:2:0",
        "stepwise": {
            "min_width": 160,
            "max_width": 1280,
            "step_width": 16,
            "min_height": 120,
            "max_height": 720,
            "step_height": 8,
            "fps_range": {"min": 1, "max": 60},
        },
    },
]


class Listener:
    """The preloaded udev_listener subprocess, read with timeouts."""

    def __init__(self, env: dict):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.udev_listener"],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
        )
        self.buf = b""
        self.events: list[dict] = []
        self.hello = self._next(15)

    def _next(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"listener silent for {timeout}s (events so far {self.events})")
            if select.select([fd], [], [], left)[0]:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise AssertionError(f"listener exited rc={self.proc.wait()}")
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def ask(self, command: str, timeout: float = 15):
        self.proc.stdin.write(command.encode() + b"\n")
        while True:
            msg = self._next(timeout)
            if "event" in msg:
                self.events.append(msg["event"])
            elif "reply" in msg:
                return msg["reply"]

    def wait_events(self, n: int, timeout: float = 15) -> list[dict]:
        while len(self.events) < n:
            msg = self._next(timeout)
            if "event" in msg:
                self.events.append(msg["event"])
        got, self.events = self.events[:n], self.events[n:]
        return got

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()


@pytest.fixture
def bed():
    tb = Testbed()
    yield tb
    tb.close()


@pytest.fixture
def listener_factory(bed):
    made = []

    def make():
        lst = Listener(bed.env())
        made.append(lst)
        return lst

    yield make
    for lst in made:
        lst.close()


def _add_two(bed):
    a = bed.add_camera("usbcam", card="HD Webcam C270", serial="ABC123", port="1.2", formats=FORMATS)
    b = bed.add_camera("vivid", card="vivid", platform=True, metadata=False)
    return a, b


def test_enumeration_sees_two_cameras_and_metadata_node(bed, listener_factory):
    a, b = _add_two(bed)
    lst = listener_factory()
    devs = {d["devnode"]: d for d in lst.ask("list")}
    assert set(devs) == {"/dev/video0", "/dev/video1", "/dev/video2"}
    usb = devs["/dev/video0"]
    assert usb["props"]["ID_V4L_CAPABILITIES"] == ":capture:"
    assert usb["props"]["ID_SERIAL_SHORT"] == "ABC123"
    assert usb["props"]["ID_PATH"] == "pci-0000:00:14.0-usb-0:1.2:1.0"
    assert usb["usb_serial"] == "ABC123"  # find_parent("usb", "usb_device") works
    assert usb["initialized"] is False  # no udev database under umockdev
    assert devs["/dev/video1"]["props"]["ID_V4L_CAPABILITIES"] == ":"
    vivid = devs["/dev/video2"]
    assert "ID_SERIAL" not in vivid["props"]
    assert vivid["props"]["ID_PATH"] == "platform-vivid.0"
    assert vivid["usb_serial"] is None


def test_hotplug_events_reach_a_monitor_on_the_reactor(bed, listener_factory):
    lst = listener_factory()
    assert lst.hello["rcvbuf"] == "ok"  # set_receive_buffer_size works under the preload
    bed.wait_for_listeners(1)
    _add_two(bed)
    ev = lst.wait_events(3)
    assert [(e["action"], e["devnode"]) for e in ev] == [
        ("add", "/dev/video0"),
        ("add", "/dev/video1"),
        ("add", "/dev/video2"),
    ]
    # the event is built from the bed's sysfs: udev properties are there
    assert ev[0]["props"]["ID_SERIAL_SHORT"] == "ABC123"

    bed.remove("usbcam")
    ev = lst.wait_events(2)
    assert [(e["action"], e["devnode"]) for e in ev] == [("remove", "/dev/video1"), ("remove", "/dev/video0")]
    assert "/dev/video0" not in {d["devnode"] for d in lst.ask("list")}

    r = bed.replug("vivid", video=5)
    ev = lst.wait_events(2)
    assert [(e["action"], e["devnode"]) for e in ev] == [("remove", "/dev/video2"), ("add", "/dev/video5")]
    assert ev[1]["props"]["ID_PATH"] == "platform-vivid.0"  # same identity, new node
    assert r["t_remove"] < r["t"]
    # the event arrives after the helper's timestamp, on the same (system-wide) clock
    assert 0 < ev[1]["t"] - r["t"] < 5


def test_probe_of_emulated_nodes(bed, listener_factory):
    a, _ = _add_two(bed)
    lst = listener_factory()
    caps = lst.ask("probe /dev/video0")
    assert caps["driver"] == "uvcvideo" and caps["card"] == "HD Webcam C270"
    assert caps["bus_info"] == "usb-0000:00:14.0-1.2"
    by = {f["format"]: f for f in caps["formats"]}
    assert list(by) == ["MJPG", "YUYV", "NV12"]
    assert by["MJPG"]["compressed"] and not by["YUYV"]["compressed"]
    assert by["MJPG"]["sizes"] == [
        {"width": 1920, "height": 1080, "fps": [30, 15]},
        {"width": 1280, "height": 720, "fps": [60, 30]},
        {"width": 640, "height": 480, "fps": [29.97]},
    ]
    assert by["YUYV"]["sizes"] == [{"width": 640, "height": 480, "fps": [30, 15, 7.5]}]
    nv12 = by["NV12"]
    assert nv12["size_range"]["max_width"] == 1280 and nv12["size_range"]["step_height"] == 8
    assert nv12["sizes"][0] == {"width": 1280, "height": 720, "fps": [60, 1], "fps_range": {"min": 1, "max": 60}}
    assert {"width": 640, "height": 480} in [{"width": s["width"], "height": s["height"]} for s in nv12["sizes"]]

    meta = lst.ask("probe /dev/video1")
    assert meta["reason"] == "not_capture"
    assert lst.ask("probe /dev/video2")["driver"] == "vivid"

    bed.remove("usbcam")
    gone = lst.ask("probe /dev/video0")
    assert gone["reason"] == "vanished"


def test_vanish_mid_probe_and_cli(bed):
    bed.add_camera("flaky", serial="F1", fail_after=3)
    r = subprocess.run(
        [sys.executable, "-m", "camsvc.cameras.v4l2", "/dev/video0"],
        cwd=REPO,
        env=bed.env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 2, r.stderr
    out = json.loads(r.stdout)
    assert out["reason"] == "vanished" and out["errno"] == 19  # ENODEV
    bed.add_camera("good", serial="G1")
    r = subprocess.run(
        [sys.executable, "-m", "camsvc.cameras.v4l2", "/dev/video2"],
        cwd=REPO,
        env=bed.env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["default"] == {"format": "MJPG", "width": 1920, "height": 1080, "fps": 30}


def test_late_umockdev_dir_in_a_preloaded_process(bed):
    """Finding 1: LD_PRELOAD must be there at exec; UMOCKDEV_DIR may come later."""
    bed.add_camera("c", serial="S")
    code = (
        "import os, sys, pyudev\n"
        "n = lambda: len(list(pyudev.Context().list_devices(subsystem='video4linux')))\n"
        "before = n(); os.environ['UMOCKDEV_DIR'] = sys.argv[1]; print(before, n())\n"
    )
    env = {k: v for k, v in bed.env().items() if k != "UMOCKDEV_DIR"}
    r = subprocess.run([sys.executable, "-c", code, bed.root_dir], env=env, capture_output=True, text=True, timeout=30)
    before, after = map(int, r.stdout.split())
    assert after == 2 and before != after
    env = {k: v for k, v in bed.env().items() if k not in ("UMOCKDEV_DIR", "LD_PRELOAD")}
    r = subprocess.run([sys.executable, "-c", code, bed.root_dir], env=env, capture_output=True, text=True, timeout=30)
    assert r.stdout.split()[1] != "2"  # without the preload at start: the real /sys


def _bed_waits(root: str) -> int:
    """How many sends the helper has held back for a full listener queue so far."""
    try:
        with open(os.path.join(root, "bed-waits")) as f:
            return int(f.read())
    except FileNotFoundError:
        return 0


def test_paced_storm_survives_a_slow_listener(bed, listener_factory):
    """More events than max_dgram_qlen while the listener is not reading: the helper
    waits for room instead of aborting, and every event arrives in order.

    The storm is sized from the limit in force (10 on a bare kernel, 512 or more where
    systemd set it at boot), and the listener reads again only once its queue is
    full and the helper is waiting for room, so the test depends neither on the host's
    sysctl nor on timing."""
    with open(QLEN_PATH) as f:
        qlen = int(f.read())
    pairs = qlen // 2 + 10  # 2 uevents a pair: at least 20 more than the queue holds
    bed.add_camera("c", serial="S", metadata=False)
    lst = listener_factory()
    bed.wait_for_listeners(1)
    assert lst.ask("pause 600") == "paused"
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        storm = pool.submit(bed.storm, "c", pairs, drain_timeout=120)
        deadline = time.monotonic() + 120
        while _bed_waits(bed.root_dir) == 0:
            assert not storm.done(), f"storm of {pairs} pairs ended without waiting: {storm.result()}"
            assert time.monotonic() < deadline, "the helper never had to wait for the listener"
            time.sleep(0.01)
        assert lst.ask("resume") == "resumed"
        r = storm.result(timeout=300)
    assert r["waits"] > 0  # it had to wait for the paused listener
    assert r["present"] is True and len(r["times"]) == pairs
    ev = lst.wait_events(2 * pairs, timeout=60)
    assert [e["action"] for e in ev] == ["remove", "add"] * pairs
    assert all(e["devnode"] == "/dev/video0" for e in ev)
    assert [d["devnode"] for d in lst.ask("list")] == ["/dev/video0"]


def test_stuck_listener_fails_the_command_not_the_helper(bed, listener_factory):
    bed.add_camera("c", serial="S", metadata=False)
    lst = listener_factory()
    bed.wait_for_listeners(1)
    lst.ask("pause 30")
    # More events than the queue holds *now* (other tests may raise the
    # system-wide limit for a while and put it back).
    with open("/proc/sys/net/unix/max_dgram_qlen") as f:
        qlen = int(f.read())
    with pytest.raises(UMockdevError, match="not draining"):
        bed.storm("c", qlen + 10, drain_timeout=0.5)
    assert bed.listeners()["full"]  # the queue really is full
    if bed.max_dgram_qlen is not None and bed.max_dgram_qlen < 100:
        with pytest.raises(UMockdevError, match="max_dgram_qlen"):
            bed.storm("c", 100, paced=False)
    assert bed.cameras()["ok"]  # the helper is alive


def test_end_absent_storm_and_raw_uevent(bed, listener_factory):
    bed.add_camera("c", serial="S")
    lst = listener_factory()
    bed.wait_for_listeners(1)
    r = bed.storm("c", 3, end_present=False)
    assert r["present"] is False
    ev = lst.wait_events(6)  # 3 removes and 2 adds of video0, then video1's remove
    assert [(e["action"], e["devnode"]) for e in ev] == [("remove", "/dev/video0"), ("add", "/dev/video0")] * 2 + [
        ("remove", "/dev/video0"),
        ("remove", "/dev/video1"),
    ]
    assert lst.ask("list") == []
    d = bed.add_camera("d", serial="T", metadata=False)
    lst.wait_events(1)
    r = bed.uevent("change", name="d")
    (e,) = lst.wait_events(1)
    assert e["action"] == "change" and e["sys_path"] == d["syspath"]


def test_pytest_process_is_not_preloaded():
    # documents finding 1 for this run: the service under test must be a subprocess
    # unless pytest itself was started with LD_PRELOAD
    assert in_preloaded_process() == ("libumockdev-preload" in os.environ.get("LD_PRELOAD", ""))


@pytest_twisted.inlineCallbacks
def test_async_testbed_with_reactor():
    from twisted.internet import reactor
    from twisted.internet.utils import getProcessOutputAndValue

    bed = yield AsyncTestbed.start(reactor)
    try:
        r = yield bed.add_camera("a", serial="X", metadata=False)
        assert r["devnode"] == "/dev/video0"
        out, err, code = yield getProcessOutputAndValue(
            sys.executable, ["-m", "camsvc.cameras.v4l2", "/dev/video0"], env=bed.env(), path=REPO
        )
        assert code == 0, err
        assert json.loads(out)["formats"][0]["format"] == "MJPG"
        with pytest.raises(UMockdevError):
            yield bed.remove("nope")
        yield bed.remove("a")
    finally:
        yield bed.close()


def test_usb_replug_on_same_port_keeps_identity(bed, listener_factory):
    bed.add_camera("u", serial="R1", port="2")
    lst = listener_factory()
    bed.wait_for_listeners(1)
    r = bed.replug("u", video=4)
    ev = lst.wait_events(4)
    assert [(e["action"], e["devnode"]) for e in ev] == [
        ("remove", "/dev/video1"),
        ("remove", "/dev/video0"),
        ("add", "/dev/video4"),
        ("add", "/dev/video5"),
    ]
    assert ev[2]["props"]["ID_SERIAL_SHORT"] == "R1"
    assert ev[2]["props"]["ID_PATH"] == ev[1]["props"]["ID_PATH"]
    assert r["devnode"] == "/dev/video4"
    assert lst.ask("probe /dev/video4")["card"] == "USB Camera"
    bed.remove("u")
    bed.add_camera("again", serial="R2", port="2")  # same port after removal
    assert [d["devnode"] for d in lst.ask("list")] == ["/dev/video0", "/dev/video1"]
