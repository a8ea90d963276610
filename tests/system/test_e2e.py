"""End-to-end: the installed camsvc .deb, under its systemd unit, with a real
kernel camera (vivid) in a Debian 12 QEMU guest, driven over its JSON-RPC API.

The host talks to the guest's camsvc through a loopback-only port forward and
simulates unplug/plug through the guest's control listener (unbind/bind of the
vivid platform device).  Methods not implemented yet answer -32601 and the
test depending on them is skipped naming the method, so each check turns on by
itself as the feature lands.
"""

import asyncio
import json
import os
import statistics
import struct
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
import websockets
from camsvc_system_vm import latency_figures

pytestmark = pytest.mark.system

# Unplug/plug cycles of test_survives_unplug_plug_cycles: isolated ones, then ones
# whose sysfs writes are GAP s apart (a replug after a USB reset, a loose cable).
# (`python3 tests/system/vm.py --bench` runs more of them, each isolated one once
# camsvc's capability probes are done: the figures docs/performance.md quotes.)
ISOLATED = 8
RAPID = 8
GAP = 0.1
NOTIFY_TIMEOUT = 30  # seconds; TCG is slow, but a lost event must not hang the suite


class MethodMissing(Exception):
    pass


class RpcError(Exception):
    def __init__(self, method, error):
        super().__init__(f"{method}: {error}")
        self.error = error


class Rpc:
    """A JSON-RPC 2.0 client on one WebSocket: replies by id, notifications queued."""

    def __init__(self, ws):
        self.ws = ws
        self.next_id = 0
        self.pending = {}
        self.notifications = asyncio.Queue()
        self.reader = asyncio.ensure_future(self._read())

    @classmethod
    async def connect(cls, url):
        return cls(await websockets.connect(url, open_timeout=30, max_size=2**24))

    async def _read(self):
        async for raw in self.ws:
            msg = json.loads(raw)
            if "id" in msg and msg["id"] in self.pending:
                self.pending.pop(msg["id"]).set_result(msg)
            elif "method" in msg:
                await self.notifications.put((time.monotonic(), msg))

    async def call(self, method, timeout=60, **params):
        self.next_id += 1
        fut = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = fut
        req = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if params:
            req["params"] = params
        await self.ws.send(json.dumps(req))
        reply = await asyncio.wait_for(fut, timeout)
        if "error" in reply:
            if reply["error"].get("code") == -32601:
                raise MethodMissing(method)
            raise RpcError(method, reply["error"])
        return reply["result"]

    async def wait_status(self, camera_id, status, timeout=NOTIFY_TIMEOUT):
        """The first camera_status_update for camera_id with status; (t, camera)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no camera_status_update {camera_id} {status} in {timeout}s")
            t, msg = await asyncio.wait_for(self.notifications.get(), left)
            if msg.get("method") != "camera_status_update":
                continue
            cam = msg.get("params") or {}
            cam = cam.get("camera", cam) if isinstance(cam, dict) else {}
            if cam.get("camera_id") == camera_id and cam.get("status") == status:
                return t, cam

    def drain(self):
        while not self.notifications.empty():
            self.notifications.get_nowait()

    async def close(self):
        self.reader.cancel()
        await self.ws.close()


def run(coro_fn, guest):
    """Run one async test body against a fresh connection, -32601 → skip."""

    async def body():
        rpc = await Rpc.connect(guest.ws_url)
        if guest.token:
            auth = await rpc.call("authenticate", auth_token=guest.token)
            assert auth["authenticated"] and auth["role"] == "admin", auth
        try:
            return await coro_fn(rpc)
        finally:
            await rpc.close()

    try:
        return asyncio.run(body())
    except MethodMissing as e:
        pytest.skip(f"camsvc does not implement `{e.args[0]}` yet (-32601 method not found)")


async def control(guest, method, path, timeout=120):
    return await asyncio.get_running_loop().run_in_executor(None, guest.control, method, path, timeout)


STATE = {}


def test_ping_auth_and_unit_sandbox(guest):
    async def body(rpc):
        assert await rpc.call("ping") == "pong"
        # The production default in the guest: nothing without authenticating.
        anonymous = await Rpc.connect(guest.ws_url)
        try:
            assert await anonymous.call("ping") == "pong"
            with pytest.raises(RpcError) as refused:
                await anonymous.call("get_camera_list")
            assert refused.value.error["code"] == -32001, refused.value.error
        finally:
            await anonymous.close()

    run(body, guest)
    unit = guest.control("GET", "/unit")
    props, proc = unit["props"], unit["proc"]
    assert props["ActiveState"] == "active", unit
    assert props["User"] == "camsvc"
    assert proc["NoNewPrivs"] == "1"
    assert proc["Seccomp"] == "2", "SystemCallFilter= not in force"
    assert int(proc["CapEff"], 16) == 0 and int(proc["CapBnd"], 16) == 0
    assert "44" in proc["Groups"].split(), "not in group video (gid 44)"
    STATE["main_pid"] = props["MainPID"]


def test_sandbox_runs_ffmpeg_and_python(guest):
    """ffmpeg and Python under exactly the unit's sandbox (MemoryDenyWriteExecute,
    seccomp, DevicePolicy): ffmpeg grabs a JPEG from the camera node."""
    probe = guest.control("POST", "/exec/ffmpeg-probe")
    ff, py = probe["ffmpeg"], probe["python"]
    assert ff["rc"] == 0, ff["stderr"]
    assert ff["stdout_head"].startswith("ffd8ff") and ff["stdout_tail"] == "ffd9", ff
    assert py["rc"] == 0 and "imports ok" in py["stdout"], py
    assert "FAILED" not in py["stdout"], py["stdout"]


def capture_nodes(guest):
    """The nodes the driver itself says are video capture devices (not touch,
    metadata, output, VBI or radio nodes): what camsvc must list as cameras."""
    nodes = guest.control("GET", "/v4l2/nodes")
    capture = sorted(
        n
        for n, caps in nodes.items()
        if any(c.startswith("Video Capture") for c in caps) and "Touch Device" not in caps
    )
    return capture, nodes


def test_camera_listed_with_driver_capabilities(guest, results):
    expected, nodes = capture_nodes(guest)
    assert expected, f"vivid created no capture node: {nodes}"
    results["v4l2_nodes"] = {n: ", ".join(c) for n, c in nodes.items()}

    async def body(rpc):
        listing = await rpc.call("get_camera_list")
        results["cameras_listed"] = [(c["camera_id"], c["device"], c["status"]) for c in listing["cameras"]]
        mine = [c for c in listing["cameras"] if c["device"] == expected[0]]
        assert mine, f"{expected[0]} not listed: {listing}"
        caps = await rpc.call("get_camera_capabilities", device=mine[0]["camera_id"])
        return mine[0], caps, listing

    cam, caps, listing = run(body, guest)
    STATE["camera"] = cam
    STATE["cameras"] = [c for n in expected for c in listing["cameras"] if c["device"] == n]
    assert cam["camera_id"].startswith("camera")
    assert cam["status"] == "CONNECTED", cam
    # What camsvc reports is what the driver reports in the guest (v4l2-ctl).
    v4l = guest.control("GET", "/v4l2?device=" + urllib.parse.quote(cam["device"]))
    assert "vivid" in v4l["info"]["stdout"], v4l["info"]
    driver = parse_formats_ext(v4l["formats"]["stdout"])
    assert driver, v4l["formats"]
    reported = {fourcc_name(f["format"]): f for f in caps["formats"]}
    STATE["formats"] = (set(driver), set(reported))
    results["capabilities_formats"] = f"{len(set(reported) & set(driver))} of the driver's {len(driver)} reported"
    assert set(reported) <= set(driver), sorted(set(reported) - set(driver))
    for name, f in reported.items():
        sizes = {(sz["width"], sz["height"]) for sz in f["sizes"]}
        assert sizes == driver[name], (name, sorted(sizes ^ driver[name]))


def test_capabilities_list_every_driver_format():
    if "formats" not in STATE:
        pytest.skip("no capabilities read")
    driver, reported = STATE["formats"]
    assert reported == driver, {"missing": sorted(driver - reported), "unexpected": sorted(reported - driver)}


def parse_formats_ext(text):
    """v4l2-ctl --list-formats-ext -> {fourcc: {(width, height), ...}}."""
    out, current = {}, None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("[") and "'" in line:
            current = line.split("'")[1]
            out[current] = set()
        elif current and line.startswith("Size: Discrete "):
            w, h = line.split()[-1].split("x")
            out[current].add((int(w), int(h)))
    return out


def fourcc_name(fourcc):
    """v4l2-ctl's spelling: trailing blanks kept, the big-endian flag (bit 31,
    i.e. the high bit of the last byte) written as a "-BE" suffix."""
    fourcc = fourcc.strip("\x00")
    if fourcc and ord(fourcc[-1]) >= 0x80:
        return fourcc[:-1] + chr(ord(fourcc[-1]) - 0x80) + "-BE"
    return fourcc


def test_only_capture_nodes_are_cameras(guest):
    """vivid also creates output, VBI, radio, SDR, metadata and touch nodes."""
    expected, nodes = capture_nodes(guest)

    async def body(rpc):
        return await rpc.call("get_camera_list")

    listing = run(body, guest)
    listed = sorted(c["device"] for c in listing["cameras"] if c["status"] != "DISCONNECTED")
    assert listed == expected, {n: nodes.get(n) for n in set(listed) ^ set(expected)}


SHARED_BY_PATH = "/dev/v4l/by-path/platform-vivid.0-video-index0"


def ids_nodes(status):
    return [st["device"] for st in status]


def test_two_vivid_cameras_are_two_cameras(guest, results):
    """vivid with n_devs=2: two capture nodes under one platform device whose by-path
    names collide (only one node owns ``platform-vivid.0-video-index0``).  Two
    cameras, two ids, two names, and each camera's publish device (the path its
    MediaMTX publish command, snapshots and probes open) leads to its own node."""
    cams = STATE.get("cameras") or []
    expected, _ = capture_nodes(guest)
    assert len(expected) == 2, f"vivid n_devs=2 should give two capture nodes: {expected}"
    assert [c["device"] for c in cams] == expected, cams

    async def body(rpc):
        return [await rpc.call("get_camera_status", device=c["camera_id"]) for c in cams]

    status = run(body, guest)
    ids = [st["camera_id"] for st in status]
    names = [st["name"] for st in status]
    paths = [st["path"] for st in status]
    results["two_cameras"] = [
        {"camera_id": st["camera_id"], "name": st["name"], "device": st["device"], "path": st["path"]} for st in status
    ]
    assert len(set(ids)) == 2 and len(set(names)) == 2, results["two_cameras"]
    assert all(st["status"] == "CONNECTED" for st in status), status
    assert len(set(paths)) == 2, f"both cameras publish from the same path: {paths}"
    # The collision itself: udev gives both capture nodes this one by-path name.
    shared = guest.control("GET", "/realpath?path=" + urllib.parse.quote(SHARED_BY_PATH))
    assert shared["exists"] and shared["realpath"] in ids_nodes(status), shared
    assert SHARED_BY_PATH not in paths, paths
    for st in status:
        real = guest.control("GET", "/realpath?path=" + urllib.parse.quote(st["path"]))
        assert real["realpath"] == st["device"], (st["path"], real, st["device"])
        published = (st.get("capabilities") or {}).get("published")
        assert published and published["width"] > 0, st.get("capabilities")
    STATE["two_cameras"] = status


async def unplug_plug(rpc, guest, camera_id):
    """One cycle; returns (unplug latency, plug latency) in seconds, host clock."""
    rpc.drain()
    t0 = time.monotonic()
    w = await control(guest, "POST", "/vivid/unbind")
    assert w["error"] is None, w
    t1, cam = await rpc.wait_status(camera_id, "DISCONNECTED")
    unplug = t1 - t0
    t0 = time.monotonic()
    w = await control(guest, "POST", "/vivid/bind")
    assert w["error"] is None, w
    t1, cam = await rpc.wait_status(camera_id, "CONNECTED")
    plug = t1 - t0
    assert cam["camera_id"] == camera_id
    return unplug, plug


def test_unplug_plug_keeps_camera_id(guest, results):
    if "camera" not in STATE:
        pytest.skip("no camera listed (see test_camera_listed_with_driver_capabilities)")
    camera_id = STATE["camera"]["camera_id"]

    async def body(rpc):
        await rpc.call("get_camera_list")  # a session the service knows about
        unplug, plug = await unplug_plug(rpc, guest, camera_id)
        listing = await rpc.call("get_camera_list")
        cam = [c for c in listing["cameras"] if c["camera_id"] == camera_id]
        assert len(cam) == 1, listing
        return unplug, plug, cam[0]

    unplug, plug, cam = run(body, guest)
    assert cam["device"] == STATE["camera"]["device"] and cam["status"] != "DISCONNECTED", cam
    # Host clock, from sending the control request: includes the control channel.
    results["host_unplug_to_notification_ms"] = round(unplug * 1000)
    results["host_plug_to_notification_ms"] = round(plug * 1000)


async def wait_note(rpc, method, predicate, timeout=NOTIFY_TIMEOUT):
    """The first notification ``method`` whose params satisfy ``predicate``."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no matching {method} in {timeout}s")
        _, msg = await asyncio.wait_for(rpc.notifications.get(), left)
        if msg.get("method") == method and predicate(msg.get("params") or {}):
            return msg["params"]


def v4l2_ctl_value(guest, device, name):
    """``v4l2-ctl -d DEVICE -C NAME`` in the guest -> the value it prints (``name: 200``)."""
    out = guest.control("GET", f"/v4l2/ctrl?device={urllib.parse.quote(device)}&name={name}")
    assert out["rc"] == 0, out
    key, _, value = out["stdout"].strip().partition(":")
    assert key.strip() == name, out
    return int(value.strip().split()[0])


def test_controls_on_vivid_kept_across_replug(guest, results):
    """vivid's real user controls: listed, set, read back by v4l2-ctl, re-applied after
    unbind/bind (which re-creates the device with the driver's defaults)."""
    if "camera" not in STATE:
        pytest.skip("no camera listed (see test_camera_listed_with_driver_capabilities)")
    camera_id, device = STATE["camera"]["camera_id"], STATE["camera"]["device"]
    timings = {}

    async def body(rpc):
        t = time.monotonic()
        listing = await rpc.call("get_camera_controls", device=camera_id)
        timings["get_ms"] = round((time.monotonic() - t) * 1000, 1)
        by = {c["name"]: c for g in listing["classes"] for c in g["controls"]}
        for name in ("brightness", "contrast", "saturation", "hue"):
            assert by[name]["type"] == "integer" and by[name]["supported"], by.get(name)
        types = {c["type"] for c in by.values()}
        assert {"integer", "boolean", "menu", "button", "int64", "bitmask", "integer_menu"} <= types, types
        assert "unsupported" in types  # vivid's strings and arrays
        menus = [c for c in by.values() if c["type"] == "menu"]
        assert menus and all(c["menu"] for c in menus)
        brightness = by["brightness"]
        want = 200 if brightness["value"] != 200 else 100
        t = time.monotonic()
        out = await rpc.call("set_camera_controls", device=camera_id, controls={"brightness": want, "contrast": 50})
        timings["set_ms"] = round((time.monotonic() - t) * 1000, 1)
        assert out["controls"] == {"brightness": want, "contrast": 50}, out
        with pytest.raises(RpcError) as bad:
            await rpc.call("set_camera_controls", device=camera_id, controls={"brightness": 100000})
        assert bad.value.error["code"] == -32602 and bad.value.error["data"]["control"] == "brightness"
        return want

    want = run(body, guest)
    # The driver holds the value: read with v4l2-ctl, not with camsvc.
    assert v4l2_ctl_value(guest, device, "brightness") == want
    assert v4l2_ctl_value(guest, device, "contrast") == 50

    async def replug(rpc):
        await rpc.call("get_camera_list")
        await unplug_plug(rpc, guest, camera_id)
        # a change made outside camsvc reaches clients through the watch
        rpc.drain()
        w = await control(guest, "POST", f"/v4l2/ctrl?device={urllib.parse.quote(device)}&name=saturation&value=77")
        assert w["rc"] == 0, w
        note = await wait_note(
            rpc, "camera_controls_update", lambda p: any(c["name"] == "saturation" for c in p["controls"])
        )
        return [c["value"] for c in note["controls"] if c["name"] == "saturation"]

    assert run(replug, guest) == [77]
    # vivid came back with its defaults; camsvc re-applied the stored values on plug.
    assert v4l2_ctl_value(guest, device, "brightness") == want
    assert v4l2_ctl_value(guest, device, "contrast") == 50
    results["vivid_controls_get_ms"] = timings["get_ms"]
    results["vivid_controls_set_ms"] = timings["set_ms"]

    async def reset(rpc):
        return await rpc.call("reset_camera_controls", device=camera_id, controls=["brightness", "contrast"])

    out = run(reset, guest)
    assert v4l2_ctl_value(guest, device, "brightness") == out["controls"]["brightness"]


def jpeg_size(data):
    """(width, height) from a baseline/progressive JPEG's SOF marker."""
    assert data[:3] == b"\xff\xd8\xff", data[:8]
    assert data.rstrip(b"\x00")[-2:] == b"\xff\xd9", "no EOI marker"
    i = 2
    while i < len(data):
        if data[i] != 0xFF:
            raise AssertionError(f"bad marker at {i}")
        marker = data[i + 1]
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return w, h
        i += 2 + length
    raise AssertionError("no SOF marker")


def test_snapshot_is_a_valid_jpeg(guest, results):
    if "camera" not in STATE:
        pytest.skip("no camera listed")
    camera_id = STATE["camera"]["camera_id"]

    async def body(rpc):
        t0 = time.monotonic()
        snap = await rpc.call("take_snapshot", timeout=120, device=camera_id, format="jpg")
        return snap, time.monotonic() - t0

    snap, took = run(body, guest)
    assert snap["status"] == "completed", snap
    assert snap["file_size"] > 0
    results["snapshot_ms"] = round(took * 1000)
    url = snap.get("download_url")
    if not url:
        pytest.skip("take_snapshot result has no download_url: cannot fetch the file")
    url = urllib.parse.urljoin(guest.http_base + "/", url)
    # The service builds URLs from the Host header: the forwarded port must survive.
    assert urllib.parse.urlsplit(url).port == guest.api_port, url
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            data = r.read()
    except urllib.error.HTTPError as e:
        if e.code == 404 and "/files/" in url:
            pytest.skip(f"/files/ downloads not implemented yet ({url} → 404)")
        raise
    assert len(data) == snap["file_size"]
    w, h = jpeg_size(data)
    assert w > 0 and h > 0
    results["snapshot_jpeg"] = f"{w}x{h}, {len(data)} bytes"


def menu_index(guest, device, control, label):
    """The index of ``label`` in the menu ``control`` of ``device`` (v4l2-ctl --list-ctrls-menus)."""
    out = guest.control("GET", "/v4l2/ctrls?device=" + urllib.parse.quote(device))
    assert out["rc"] == 0, out
    inside = False
    for line in out["stdout"].splitlines():
        text = line.strip()
        if not line.startswith("\t\t\t"):
            inside = text.split(" ", 1)[0] == control
        elif inside and text.endswith(": " + label):
            return int(text.split(":", 1)[0])
    raise AssertionError(f"{control} of {device} has no menu entry {label!r}: {out['stdout']}")


def set_ctrl(guest, device, name, value):
    w = guest.control("POST", f"/v4l2/ctrl?device={urllib.parse.quote(device)}&name={name}&value={value}")
    assert w["rc"] == 0, w


def test_snapshot_from_each_camera(guest, results):
    """Each of the two cameras shows its own picture (vivid's test pattern set to
    solid red on one and solid blue on the other, with v4l2-ctl on the node), and
    take_snapshot of each camera gives a JPEG of that camera's colour: the path
    camsvc opens for a camera is that camera's device."""
    cams = STATE.get("two_cameras")
    if not cams:
        pytest.skip("two cameras not listed (see test_two_vivid_cameras_are_two_cameras)")
    colours = {"100% Red": 0, "100% Blue": 2}  # label -> the RGB channel that must dominate
    plan = list(zip(cams, colours, strict=True))
    for cam, label in plan:
        set_ctrl(guest, cam["device"], "test_pattern", menu_index(guest, cam["device"], "test_pattern", label))
        set_ctrl(guest, cam["device"], "osd_text_mode", menu_index(guest, cam["device"], "osd_text_mode", "None"))

    async def body(rpc):
        return [await rpc.call("take_snapshot", timeout=120, device=cam["camera_id"], format="jpg") for cam, _ in plan]

    snaps = run(body, guest)
    figures = {}
    for (cam, label), snap in zip(plan, snaps, strict=True):
        assert snap["status"] == "completed" and snap["camera_id"] == cam["camera_id"], snap
        url = urllib.parse.urljoin(guest.http_base + "/", snap["download_url"])
        data = fetch(url)
        assert len(data) == snap["file_size"]
        w, h = jpeg_size(data)
        assert w > 0 and h > 0
        mean = guest.control("GET", "/image/mean?name=" + urllib.parse.quote(snap["filename"]))
        assert mean["rc"] == 0 and mean["rgb"], mean
        rgb = mean["rgb"]
        channel = colours[label]
        others = [v for i, v in enumerate(rgb) if i != channel]
        assert rgb[channel] > 150 and max(others) < 100, (cam["camera_id"], label, rgb)
        figures[cam["camera_id"]] = f"{label}: mean RGB {rgb}, {w}x{h}, {len(data)} bytes"
    results["two_camera_snapshots"] = figures


def test_recording_written_by_mediamtx_user_is_managed_by_camsvc(guest, results):
    """The shared-group setup of docs/deployment.md: a file MediaMTX's user writes
    into the setgid recordings directory is listed, served and deleted by the
    sandboxed camsvc."""
    if "camera" not in STATE:
        pytest.skip("no camera listed")
    name = f"{STATE['camera']['camera_id']}_2026-01-02_03-04-05-000006.mp4"
    written = guest.control("POST", "/mediamtx/record?name=" + name)
    assert written["rc"] == 0, written
    assert written["stat"]["owner"] == "mediamtx" and written["stat"]["group"] == "camsvc", written
    results["mediamtx_recording"] = written["stat"]

    async def body(rpc):
        listing = await rpc.call("list_recordings")
        mine = [f for f in listing["files"] if f["filename"] == name]
        assert mine, listing
        url = urllib.parse.urljoin(guest.http_base + "/", mine[0]["download_url"])
        data = await asyncio.get_running_loop().run_in_executor(None, fetch, url)
        assert len(data) == written["stat"]["size"] and data[4:8] == b"ftyp", data[:16]
        await rpc.call("delete_recording", filename=name)
        listing = await rpc.call("list_recordings")
        return [f["filename"] for f in listing["files"]]

    remaining = run(body, guest)
    assert name not in remaining
    path = urllib.parse.quote("/var/lib/camsvc/recordings/" + name)
    assert guest.control("GET", "/exists?path=" + path)["exists"] is False


def fetch(url):
    with urllib.request.urlopen(url, timeout=60) as r:
        return r.read()


def test_probe_child_runs_niced(guest, results):
    """Under the shipped unit (SystemCallFilter= allowing setpriority again), the
    capability probe child camsvc starts after a plug runs at a lower CPU priority
    than the service: its niceness read from /proc while it runs."""
    if not STATE.get("cameras"):
        pytest.skip("no camera listed")
    out = guest.control("POST", "/probe/nice", timeout=180)
    assert out["error"] is None, out
    assert out["probes"], f"no capability probe child of camsvc seen after a plug: {out}"
    for probe in out["probes"]:
        assert probe["nice"] > out["service_nice"], (probe, out["service_nice"])
    results["probe_nice"] = {
        "service": out["service_nice"],
        "probes": [(p["nice"], p["argv"][-1], p["after_s"]) for p in out["probes"]],
    }


def test_survives_unplug_plug_cycles(guest, results):
    """ISOLATED isolated unplug/plug cycles, then RAPID cycles whose sysfs writes are
    GAP s apart, of both cameras at once, driven inside the guest: udev event ->
    notification at guest-local WebSocket clients of camsvc and of the minimal
    pyudev + Autobahn broadcaster (bench/broadcaster.py, same sandbox, same run).
    Each client is notified of every presence change of every node in order; so is
    the host's client through the forward; no service restart.  The two services'
    shares (p50, ratio) are figures in results.json, not assertions."""
    cams = STATE.get("cameras")
    if not cams:
        pytest.skip("no camera listed")
    before = guest.control("GET", "/unit")["props"]
    q = urllib.parse.urlencode(
        [("node", c["device"]) for c in cams] + [("isolated", ISOLATED), ("rapid", RAPID), ("gap", GAP)]
    )

    async def body(rpc):
        await rpc.call("get_camera_list")
        rpc.drain()
        m = await control(guest, "POST", "/measure/latency?" + q, timeout=600)
        await asyncio.sleep(2)  # the last notifications' trip through the forward
        # camera id -> the node it had at the start (a camera camsvc re-identified on
        # another node is in m["new_ids"]); the host's notifications per camera, in order
        label = {c["camera_id"]: c["device"] for c in cams} | (m.get("new_ids") or {})
        seen = {c["device"]: [] for c in cams}
        while not rpc.notifications.empty():
            _, msg = rpc.notifications.get_nowait()
            cam = msg.get("params") or {}
            cam = cam.get("camera", cam)
            if msg.get("method") == "camera_status_update" and cam.get("camera_id") in label:
                seen[label[cam["camera_id"]]].append(cam["status"])
        assert await rpc.call("ping") == "pong"
        listing = await rpc.call("get_camera_list")
        return m, seen, listing

    t0 = time.monotonic()
    m, seen, listing = run(body, guest)
    results["cycles_duration_s"] = round(time.monotonic() - t0, 1)
    with open(os.path.join(os.path.dirname(os.environ["CAMSVC_SYSTEM_ENV"]), "latency-run.json"), "w") as f:
        json.dump(m, f)  # the raw stamps, for a failure's diagnosis
    assert m["error"] is None, m["error"]
    figures = latency_figures(m)  # every change udev reported, in order, at both guest clients
    for c in cams:
        # the host's client: the same presence changes as camsvc's guest-local client,
        # in order (a probe may add ERROR/CONNECTED updates between them)
        statuses = seen[c["device"]]
        present = [st != "DISCONNECTED" for st in statuses]
        changes = [p for i, p in enumerate(present) if p != (present[i - 1] if i else True)]
        assert changes == [p for _, p in m["transitions"]["camsvc"][c["device"]]], (c["camera_id"], statuses)
    # Each camera back, on a capture node of its own (a replug may renumber a node whose
    # old minor someone still held open: /dev/video4 -> /dev/video5, same camera id).
    # (A camera camsvc gave a new id on its new node would be recorded here; the id's
    # stability is test_renumbered_node_keeps_camera_id's business.)
    now, _ = capture_nodes(guest)
    present = sorted(x["device"] for x in listing["cameras"] if x["status"] != "DISCONNECTED")
    assert present == now, (present, now)
    results["reidentified_during_cycles"] = m.get("new_ids") or {}
    after = guest.control("GET", "/unit")["props"]
    assert after["MainPID"] == before["MainPID"], "camsvc restarted during the cycles"
    assert after["NRestarts"] == before["NRestarts"]
    results["cycles"] = {"isolated": ISOLATED, "rapid": RAPID, "gap_s": GAP, "cameras": len(cams)}
    results["udev_to_notification_ms"] = figures
    rtt = []
    for _ in range(5):
        t = time.monotonic()
        guest.control("GET", "/status")
        rtt.append((time.monotonic() - t) * 1000)
    results["control_channel_rtt_ms_median"] = round(statistics.median(rtt), 1)


def test_renumbered_node_keeps_camera_id(guest, results):
    """A camera whose node was still open when it was unplugged comes back on another
    node (the kernel frees a minor only at the last close: /dev/video4 -> /dev/video5),
    as a real webcam does when some program still holds it.  Same camera, same id.
    Seen in a latency run (camsvc's own fd open at the unbind) before being made
    deterministic here: the guest holds the node open across the unbind."""
    cams = STATE.get("cameras")
    if not cams or len(cams) < 2:
        pytest.skip("two cameras not listed")
    camera_id = cams[1]["camera_id"]

    async def body(rpc):
        listing = await rpc.call("get_camera_list")
        mine = [c for c in listing["cameras"] if c["camera_id"] == camera_id and c["status"] != "DISCONNECTED"]
        assert mine, listing
        old = mine[0]["device"]
        rpc.drain()
        out = await control(guest, "POST", "/vivid/replug-held?device=" + urllib.parse.quote(old))
        assert out["error"] is None, out
        new = sorted(set(out["nodes_after"]) - set(out["nodes_before"]))
        assert new, f"no node was renumbered: {out}"  # else this test proves nothing
        _, cam = await wait_note_status(rpc, lambda c: c.get("device") in new and c.get("status") == "CONNECTED")
        return old, new, cam

    old, new, cam = run(body, guest)
    results["renumbered_node"] = {"before": old, "after": cam["device"], "camera_id": cam["camera_id"]}
    # the two instances share ID_PATH and index; camsvc keys them by port + QUERYCAP
    # bus_info (platform:vivid-001), which holds no node number
    assert cam["camera_id"] == camera_id, f"{camera_id} on {old} came back on {cam['device']} as {cam['camera_id']}"


async def wait_note_status(rpc, predicate, timeout=NOTIFY_TIMEOUT):
    """The first camera_status_update whose camera satisfies ``predicate``: (t, camera)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no matching camera_status_update in {timeout}s")
        t, msg = await asyncio.wait_for(rpc.notifications.get(), left)
        cam = msg.get("params") or {}
        cam = cam.get("camera", cam) if isinstance(cam, dict) else {}
        if msg.get("method") == "camera_status_update" and predicate(cam):
            return t, cam


# Unplug-during-recording cycles of test_unplug_during_recording_cycles (issue 15 asks
# for 20; about 25 s each under TCG on a loaded host).
UNPLUG_RECORDING_CYCLES = int(os.environ.get("CAMSVC_UNPLUG_RECORDING_CYCLES", "20"))


def test_unplug_during_recording_cycles(guest, results):
    """UNPLUG_RECORDING_CYCLES times: start_recording on a vivid camera, with the
    MediaMTX stand-in in publish mode running camsvc's real publish command
    (ffmpeg reading /dev/videoN) and recording what it sends; unplug (vivid
    unbind) once the first segment is there; the client is told FAILED
    (camera_disconnected); the file is listed, whole (its size no longer
    changes) and readable by ffprobe with frames in it; replug; the path is back."""
    cams = STATE.get("cameras")
    if not cams:
        pytest.skip("no camera listed")
    out = guest.control("POST", "/mediamtx/standin/start", timeout=120)
    assert out["error"] is None, out

    async def path_back(camera_id, timeout=90):
        deadline = time.monotonic() + timeout
        while True:
            paths = (await control(guest, "GET", "/mediamtx/paths"))["paths"]
            if any(p["name"] == camera_id for p in paths):
                return
            assert time.monotonic() < deadline, f"camsvc made no MediaMTX path for {camera_id}: {paths}"
            await asyncio.sleep(0.5)

    async def all_back(rpc, camera_id=None, timeout=90):
        """Once every camera is CONNECTED again: ``camera_id``, which must have kept its id
        (the publisher holds the node at the unbind, so the kernel may renumber it), or at
        the start the camera on the lowest node."""
        deadline = time.monotonic() + timeout
        while True:
            listing = await rpc.call("get_camera_list")
            live = sorted((c for c in listing["cameras"] if c["status"] == "CONNECTED"), key=lambda c: c["device"])
            if len(live) == len(cams):
                mine = [c for c in live if camera_id in (None, c["camera_id"])]
                assert mine, f"{camera_id} came back under a new id: {live}"
                return mine[0]["camera_id"], mine[0]["device"]
            assert time.monotonic() < deadline, f"cameras not back: {listing}"
            await asyncio.sleep(0.5)

    async def body(rpc):
        cycles = []
        camera_id, device = await all_back(rpc)
        await path_back(camera_id)
        for i in range(UNPLUG_RECORDING_CYCLES):
            t0 = time.monotonic()
            rpc.drain()
            started = await rpc.call("start_recording", timeout=120, device=camera_id)
            assert started["status"] == "STARTED" and started["filename"], (i, started)
            t_started = time.monotonic()
            await asyncio.sleep(1)  # a fragment or two more
            w = await control(guest, "POST", "/vivid/unbind")
            assert w["error"] is None, w
            t_unplug = time.monotonic()
            note = await wait_note(
                rpc,
                "recording_status_update",
                lambda p, sid=started["session_id"]: p.get("session_id") == sid and p.get("status") != "STARTED",
                timeout=60,
            )
            t_failed = time.monotonic()
            assert note["status"] == "FAILED" and note.get("reason") == "camera_disconnected", (i, note)
            w = await control(guest, "POST", "/vivid/bind")
            assert w["error"] is None, w
            next_id, next_device = await all_back(rpc, camera_id)
            name = started["filename"]
            listing = await rpc.call("list_recordings", limit=1000)
            mine = [f for f in listing["files"] if f["filename"] == name]
            assert mine, (name, [f["filename"] for f in listing["files"]])
            probe = await control(guest, "GET", "/ffprobe?name=" + urllib.parse.quote(name))
            assert probe["rc"] == 0 and probe["probe"], probe
            stream = probe["probe"]["streams"][0]
            frames = int(stream.get("nb_read_frames") or 0)
            assert stream["codec_name"] == "h264" and frames > 0, probe
            # finalised: the listing's size (after the replug) is the size ffprobe read
            assert int(probe["probe"]["format"]["size"]) == mine[0]["file_size"], (probe, mine)
            await path_back(next_id)
            cycles.append(
                {
                    "camera_id": camera_id,
                    "device": device,
                    "came_back_on": next_device,
                    "start_s": round(t_started - t0, 2),
                    "unplug_to_failed_s": round(t_failed - t_unplug, 2),
                    "frames": frames,
                    "bytes": mine[0]["file_size"],
                    "cycle_s": round(time.monotonic() - t0, 2),
                }
            )
            camera_id, device = next_id, next_device
        assert await rpc.call("ping") == "pong"
        return cycles

    before = guest.control("GET", "/unit")["props"]
    t0 = time.monotonic()
    try:
        cycles = run(body, guest)
    finally:
        guest.control("POST", "/mediamtx/standin/stop")
    after = guest.control("GET", "/unit")["props"]
    assert after["MainPID"] == before["MainPID"], "camsvc restarted during the cycles"

    def p50(key):
        return statistics.median(c[key] for c in cycles)

    results["unplug_during_recording"] = {
        "cycles": len(cycles),
        "duration_s": round(time.monotonic() - t0, 1),
        "start_to_started_p50_s": p50("start_s"),
        "unplug_to_failed_p50_s": p50("unplug_to_failed_s"),
        "unplug_to_failed_max_s": max(c["unplug_to_failed_s"] for c in cycles),
        "frames_min": min(c["frames"] for c in cycles),
        "cycle_p50_s": p50("cycle_s"),
        "renumbered_nodes": sum(c["device"] != c["came_back_on"] for c in cycles),
        "all": cycles,
    }
    assert len(cycles) == UNPLUG_RECORDING_CYCLES
