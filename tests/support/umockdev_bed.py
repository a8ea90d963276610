"""umockdev test-bed helper: owns a ``UMockdev.Testbed`` and emulates V4L2 cameras.

Run by **Debian's** python under the umockdev preload — it needs ``gi`` (not in the
project venv) and must itself be preloaded to send uevents::

    LD_PRELOAD=libumockdev-preload.so.0 /usr/bin/python3 -I tests/support/umockdev_bed.py

It imports nothing from camsvc or Twisted (``-I`` also keeps the venv's PYTHONPATH out).
The venv-side driver is ``tests/support/umockdev.py``; see its docstring for findings.

Protocol: line-delimited JSON.  The first line on stdout is
``{"ready": true, "root_dir": ..., "pid": ..., "max_dgram_qlen": ...}``.  Then every
stdin line is one command object ``{"cmd": NAME, ...}`` and gets exactly one reply line
``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}`` (an ``"id"`` is echoed).
Every reply that sent a uevent carries ``t``: ``time.monotonic()`` taken right before
the uevent for the camera's capture node was sent (CLOCK_MONOTONIC is system-wide, so
another process can compute uevent → notification latency).

Commands (see ``handle_*`` below for every field):
  add_camera   usb (serial or none) or platform (vivid-like) camera with its /dev node,
               optional UVC metadata sibling node, V4L2 ioctls answered from ``formats``
  remove       remove uevents (children first) then remove_device
  replug       remove + add with the same identity, optionally another videoN
  storm        N add/remove pairs of a camera's capture node, as fast as listeners drain
  uevent       a raw uevent for a syspath or camera name
  set_property / set_attribute   edit a device in place (no uevent)
  listeners    the monitor sockets currently open in the test bed
  control_errors / control_values   V4L2 control errnos per id; read or change control
               values (``add_camera`` takes ``controls``: QUERY_EXT_CTRL, QUERYMENU, G/S_EXT_CTRLS)
  list         the emulated cameras
  quit

Flow control (the ``max_dgram_qlen`` abort): umockdev's sender writes each uevent to
every monitor socket (``$UMOCKDEV_DIR/event<fd>``, AF_UNIX datagram) and SIGABRTs the
whole process ("sendmsg failed: Resource temporarily unavailable") when one listener
already has more than ``net.unix.max_dgram_qlen`` (default 10) unread events.  Events a
listener's subsystem filter rejects never enter its queue.  So by default every uevent
is *paced*: before it is sent, each listener socket is probed with a connected datagram
socket and ``poll(POLLOUT)``, which the kernel reports only while the peer's queue has
room; the helper waits (still serving ioctls, so a listener that probes the emulated
camera cannot deadlock with us) up to ``drain_timeout`` seconds, then fails the command
instead of aborting.  ``"paced": false`` sends blindly: only safe with
``sysctl -w net.unix.max_dgram_qlen=1000`` (root, system-wide: restore it afterwards;
the venv wrapper has a context manager for that).  A umockdev listener never sees
ENOBUFS: datagram sockets push back on the sender instead of dropping.
"""

import errno
import glob
import json
import os
import select
import socket
import struct
import sys
import time
import traceback

import gi

gi.require_version("UMockdev", "1.0")
from gi.repository import GLib, UMockdev

# --- V4L2 ABI (independent of camsvc.cameras.v4l2 on purpose: it cross-checks the binding) ---
VIDIOC_QUERYCAP = 0x80685600
VIDIOC_ENUM_FMT = 0xC0405602
VIDIOC_ENUM_FRAMESIZES = 0xC02C564A
VIDIOC_ENUM_FRAMEINTERVALS = 0xC034564B
VIDIOC_QUERYMENU = 0xC02C5625
VIDIOC_G_EXT_CTRLS = 0xC0205647
VIDIOC_S_EXT_CTRLS = 0xC0205648
VIDIOC_QUERY_EXT_CTRL = 0xC0E85667
SIZES = {
    VIDIOC_QUERYCAP: 104,
    VIDIOC_ENUM_FMT: 64,
    VIDIOC_ENUM_FRAMESIZES: 44,
    VIDIOC_ENUM_FRAMEINTERVALS: 52,
    VIDIOC_QUERYMENU: 44,
    VIDIOC_G_EXT_CTRLS: 32,
    VIDIOC_S_EXT_CTRLS: 32,
    VIDIOC_QUERY_EXT_CTRL: 232,
}
CTRL_NEXT = 0x80000000 | 0x40000000
CTRL_TYPE_INTEGER64 = 5
CTRL_TYPE_BUTTON = 4
CTRL_FLAG_GRABBED, CTRL_FLAG_READ_ONLY, CTRL_FLAG_INACTIVE, CTRL_FLAG_WRITE_ONLY = 0x2, 0x4, 0x10, 0x40

CAP_VIDEO_CAPTURE = 0x00000001
CAP_META_CAPTURE = 0x00800000
CAP_EXT_PIX_FORMAT = 0x00200000
CAP_STREAMING = 0x04000000
CAP_DEVICE_CAPS = 0x80000000
BUF_TYPE_VIDEO_CAPTURE = 1
BUF_TYPE_META_CAPTURE = 13
FMT_FLAG_COMPRESSED = 1
V4L2_MAJOR = 81

DEFAULT_FORMATS = [
    {
        "format": "MJPG",
        "description": "Motion-JPEG",
        "compressed": True,
        "sizes": [
            {"width": 1920, "height": 1080, "fps": [30, 15]},
            {"width": 1280, "height": 720, "fps": [30, 15]},
            {"width": 640, "height": 480, "fps": [30, 15]},
        ],
    },
    {
        "format": "YUYV",
        "description": "YUYV 4:2:2",
        "compressed": False,
        "sizes": [
            {"width": 640, "height": 480, "fps": [30, 15]},
            {"width": 1280, "height": 720, "fps": [10]},
        ],
    },
]
META_FORMAT = {"format": "UVCH", "description": "UVC Payload Header Metadata", "compressed": False, "sizes": []}


def fourcc_code(name):
    raw = name.encode("latin-1").ljust(4, b" ")[:4]
    return struct.unpack("<I", raw)[0]


def cbytes(s, n):
    return s.encode("utf-8")[: n - 1].ljust(n, b"\0")


def out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class CommandError(Exception):
    pass


class Node:
    """One emulated /dev/videoN answering V4L2 ioctls from a format table."""

    def __init__(self, bed, devnode, driver, card, bus_info, device_caps, buf_type, formats, fail_after, controls=()):
        self.bed, self.devnode = bed, devnode
        # V4L2 controls: {id: spec} (the shape of camsvc.testing.webcam_controls(); menu
        # keys arrive as strings over JSON), current values, and errnos to answer per id.
        self.controls = {}
        for c in controls or ():
            c = dict(c)
            c["menu"] = {int(k): v for k, v in (c.get("menu") or {}).items()}
            self.controls[int(c["id"])] = c
        self.values = {cid: int(c.get("default", 0)) for cid, c in self.controls.items()}
        self.control_errors = {}
        self.driver, self.card, self.bus_info = driver, card, bus_info
        self.device_caps, self.buf_type, self.formats = device_caps, buf_type, formats
        self.fail_after = fail_after  # answer ENODEV after this many ioctls (vanish mid-probe)
        self.calls = 0
        self.handler = UMockdev.IoctlBase()
        self.handler.connect("handle-ioctl", self.on_ioctl)

    def attach(self):
        if not self.bed.tb.attach_ioctl(self.devnode, self.handler):
            raise CommandError("attach_ioctl failed for " + self.devnode)

    def detach(self):
        try:
            self.bed.tb.detach_ioctl(self.devnode)
        except Exception:  # already detached: nothing to release
            pass

    def on_ioctl(self, _handler, client):
        req = client.get_request()
        self.calls += 1
        size = SIZES.get(req)
        if size is None:
            client.complete(-1, errno.ENOTTY)
            return True
        if self.fail_after is not None and self.calls > self.fail_after:
            client.complete(-1, errno.ENODEV)
            return True
        data = client.get_arg().resolve(0, size)
        buf = bytearray(bytes(data.retrieve()))
        try:
            if req in (VIDIOC_G_EXT_CTRLS, VIDIOC_S_EXT_CTRLS):
                answer = self.answer_ext(req, data, buf)
            else:
                answer = self.answer(req, buf)
        except Exception:
            traceback.print_exc()
            answer = errno.EIO
        if answer:
            client.complete(-1, answer)
        else:
            data.update(0, list(buf))
            client.complete(0, 0)
        return True

    def answer(self, req, buf):
        """Fill ``buf`` in place; return 0 or an errno."""
        if req in (VIDIOC_QUERY_EXT_CTRL, VIDIOC_QUERYMENU):
            return self.answer_control(req, buf) if self.controls else errno.EINVAL
        if req == VIDIOC_QUERYCAP:
            caps = self.bed.card_caps | CAP_DEVICE_CAPS
            struct.pack_into(
                "<16s32s32sIII",
                buf,
                0,
                cbytes(self.driver, 16),
                cbytes(self.card, 32),
                cbytes(self.bus_info, 32),
                0x00060000,
                caps,
                self.device_caps,
            )
            return 0
        if req == VIDIOC_ENUM_FMT:
            index, typ = struct.unpack_from("<II", buf, 0)
            if typ != self.buf_type or index >= len(self.formats):
                return errno.EINVAL
            f = self.formats[index]
            flags = FMT_FLAG_COMPRESSED if f.get("compressed") else 0
            struct.pack_into(
                "<III32sII",
                buf,
                0,
                index,
                typ,
                flags,
                cbytes(f.get("description", f["format"]), 32),
                fourcc_code(f["format"]),
                0,
            )
            return 0
        if req == VIDIOC_ENUM_FRAMESIZES:
            index, pixfmt = struct.unpack_from("<II", buf, 0)
            f = self.find(pixfmt)
            if f is None:
                return errno.EINVAL
            if "stepwise" in f:
                if index != 0:
                    return errno.EINVAL
                s = f["stepwise"]
                typ = 2 if s.get("continuous") else 3
                struct.pack_into(
                    "<IIIIIIIII",
                    buf,
                    0,
                    0,
                    pixfmt,
                    typ,
                    s["min_width"],
                    s["max_width"],
                    s.get("step_width", 1),
                    s["min_height"],
                    s["max_height"],
                    s.get("step_height", 1),
                )
                return 0
            sizes = f.get("sizes", [])
            if index >= len(sizes):
                return errno.EINVAL
            struct.pack_into("<IIIII", buf, 0, index, pixfmt, 1, sizes[index]["width"], sizes[index]["height"])
            return 0
        if req == VIDIOC_ENUM_FRAMEINTERVALS:
            index, pixfmt, width, height = struct.unpack_from("<IIII", buf, 0)
            f = self.find(pixfmt)
            if f is None:
                return errno.EINVAL
            if "stepwise" in f:
                s = f["stepwise"]
                spec = {"fps": s.get("fps", [30]), "fps_range": s.get("fps_range")}
            else:
                spec = next((z for z in f.get("sizes", []) if z["width"] == width and z["height"] == height), None)
                if spec is None:
                    return errno.EINVAL
            rng = spec.get("fps_range")
            if rng:
                if index != 0:
                    return errno.EINVAL
                # interval = 1/fps: the *max* rate is the *min* interval
                struct.pack_into(
                    "<IIIIIIIIIII",
                    buf,
                    0,
                    index,
                    pixfmt,
                    width,
                    height,
                    3,
                    1,
                    int(rng["max"]),
                    1,
                    int(rng["min"]),
                    1,
                    int(rng["max"]),
                )
                return 0
            rates = spec.get("fps", [])
            if index >= len(rates):
                return errno.EINVAL
            num, den = fps_fraction(rates[index])
            struct.pack_into("<IIIIIII", buf, 0, index, pixfmt, width, height, 1, num, den)
            return 0
        return errno.ENOTTY

    # --- controls -------------------------------------------------------------------
    def control_flags(self, cid):
        c = self.controls[cid]
        flags = int(c.get("flags", 0))
        auto = c.get("auto")
        if auto is not None and self.values.get(int(auto)) == int(c.get("auto_on", 1)):
            flags |= CTRL_FLAG_INACTIVE
        return flags

    def answer_control(self, req, buf):
        if req == VIDIOC_QUERY_EXT_CTRL:
            (want,) = struct.unpack_from("<I", buf, 0)
            if want & CTRL_NEXT:
                later = sorted(i for i in self.controls if i > (want & ~CTRL_NEXT))
                if not later:
                    return errno.EINVAL
                cid = later[0]
            elif want in self.controls:
                cid = want
            else:
                return errno.EINVAL
            c = self.controls[cid]
            elems = int(c.get("elems", 1))
            buf[:] = b"\0" * 232
            struct.pack_into(
                "<II32sqqQqIIII",
                buf,
                0,
                cid,
                int(c["type"]),
                cbytes(c["name"], 32),
                int(c.get("min", 0)),
                int(c.get("max", 0)),
                int(c.get("step", 0)),
                int(c.get("default", 0)),
                self.control_flags(cid),
                8 if int(c["type"]) == CTRL_TYPE_INTEGER64 else 4,
                elems,
                1 if elems > 1 else 0,
            )
            return 0
        if req == VIDIOC_QUERYMENU:
            cid, index = struct.unpack_from("<II", buf, 0)
            c = self.controls.get(cid)
            if c is None or index not in c["menu"]:
                return errno.EINVAL
            item = c["menu"][index]
            if isinstance(item, int):
                struct.pack_into("<q", buf, 8, item)
            else:
                struct.pack_into("<32s", buf, 8, cbytes(item, 32))
            return 0
        return None

    def answer_ext(self, req, data, buf):
        """G/S_EXT_CTRLS: the control array is behind the pointer at offset 24."""
        which, count = struct.unpack_from("<II", buf, 0)
        if count == 0 or count > 1024:
            return errno.EINVAL
        arr_data = data.resolve(24, 20 * count)
        arr = bytearray(bytes(arr_data.retrieve()))

        def fail(index, err):
            struct.pack_into("<I", buf, 8, index)
            data.update(0, list(buf))
            return err

        entries = [struct.unpack_from("<IIIq", arr, 20 * i) for i in range(count)]
        pending = []
        for i, (cid, _size, _res, raw) in enumerate(entries):
            c = self.controls.get(cid)
            if c is None:
                return fail(count, errno.EINVAL)
            flags = self.control_flags(cid)
            wide = int(c["type"]) == CTRL_TYPE_INTEGER64
            if req == VIDIOC_G_EXT_CTRLS:
                if flags & CTRL_FLAG_WRITE_ONLY:
                    return fail(i, errno.EACCES)
                if wide:
                    struct.pack_into("<q", arr, 20 * i + 12, self.values[cid])
                else:
                    struct.pack_into("<I", arr, 20 * i + 12, self.values[cid] & 0xFFFFFFFF)
                continue
            if flags & CTRL_FLAG_READ_ONLY:
                return fail(i, errno.EACCES)
            if flags & CTRL_FLAG_GRABBED:
                return fail(i, errno.EBUSY)
            if cid in self.control_errors:
                return fail(i, self.control_errors[cid])
            fmt = "<I" if int(c["type"]) == 8 else "<i"  # a bitmask is unsigned
            value = raw if wide else struct.unpack_from(fmt, arr, 20 * i + 12)[0]
            pending.append((cid, value))
        for cid, value in pending:
            if int(self.controls[cid]["type"]) != CTRL_TYPE_BUTTON:
                self.values[cid] = value
        if req == VIDIOC_G_EXT_CTRLS:
            arr_data.update(0, list(arr))
        return 0

    def find(self, pixfmt):
        for f in self.formats:
            if fourcc_code(f["format"]) == pixfmt:
                return f
        return None


def fps_fraction(fps):
    """30 → (1, 30); 29.97 → (1001, 30000); 7.5 → (2, 15)."""
    if float(fps).is_integer():
        return 1, int(fps)
    if abs(fps * 1001 / 1000 - round(fps * 1001 / 1000)) < 1e-6:
        return 1001, int(round(fps * 1001))
    for num in range(2, 1001):
        den = fps * num
        if abs(den - round(den)) < 1e-6:
            return num, int(round(den))
    raise CommandError("cannot express fps %r as a fraction" % fps)


class Bed:
    def __init__(self):
        self.tb = UMockdev.Testbed.new()
        self.root = self.tb.get_root_dir()
        self.cameras = {}  # name -> dict
        self.card_caps = CAP_VIDEO_CAPTURE | CAP_META_CAPTURE | CAP_STREAMING | CAP_EXT_PIX_FORMAT
        self.ctx = GLib.MainContext.default()
        self.buf = b""
        self.waits = 0  # sends that found a full listener queue and waited for room

    # --- flow control ---------------------------------------------------------------
    def listeners(self):
        return sorted(glob.glob(os.path.join(self.root, "event[0-9]*")))

    def full_listeners(self):
        """Listener sockets whose queue has no room for one more datagram."""
        full = []
        for path in self.listeners():
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                s.connect(path)
            except OSError:
                continue  # closed monitor: umockdev's sender unlinks and skips it too
            try:
                p = select.poll()
                p.register(s, select.POLLOUT)
                if not p.poll(0):
                    full.append(path)
            finally:
                s.close()
        return full

    def publish_waits(self):
        """Write ``waits`` to ``<root>/bed-waits`` (atomically): a test that must see the
        helper held up by a full listener reads it while a command is still running."""
        tmp = os.path.join(self.root, ".bed-waits.tmp")
        with open(tmp, "w") as f:
            f.write(str(self.waits))
        os.rename(tmp, os.path.join(self.root, "bed-waits"))

    def wait_room(self, paced, drain_timeout):
        if not paced:
            return
        deadline = time.monotonic() + drain_timeout
        waited = False
        while True:
            full = self.full_listeners()
            if not full:
                return
            if not waited:
                waited = True
                self.waits += 1
                self.publish_waits()
            if time.monotonic() > deadline:
                raise CommandError(
                    "listener(s) %s not draining for %.1fs; not sending (it would abort on "
                    "net.unix.max_dgram_qlen)" % ([os.path.basename(p) for p in full], drain_timeout)
                )
            # keep serving ioctls: the listener may be blocked probing our emulated camera
            while self.ctx.iteration(False):
                pass
            time.sleep(0.0002)

    def send(self, syspath, action, paced, drain_timeout):
        self.wait_room(paced, drain_timeout)
        t = time.monotonic()
        self.tb.uevent(syspath, action)
        return t

    def add_device(self, subsystem, name, parent, attrs, props, paced, drain_timeout):
        """Create a device, then send its "add" (paced, timestamped).

        ``Testbed.add_device`` sends "add" itself, but only after ~2 ms of sysfs file
        creation, so a timestamp taken before it would overstate the latency.  The
        listener sockets are therefore hidden from umockdev's sender (renamed out of its
        ``event[0-9]*`` glob) while the device is created, and the "add" is sent with
        ``uevent()`` afterwards — still exactly one "add" per device."""
        flat_a = [x for kv in attrs for x in kv]
        flat_p = [x for kv in props for x in kv]
        hidden = []
        try:
            for path in self.listeners():
                tmp = os.path.join(os.path.dirname(path), ".hidden-" + os.path.basename(path))
                try:
                    os.rename(path, tmp)
                    hidden.append((tmp, path))
                except OSError:
                    pass  # the monitor closed meanwhile
            syspath = self.tb.add_device(subsystem, name, parent, flat_a, flat_p)
        finally:
            for tmp, path in hidden:
                try:
                    os.rename(tmp, path)
                except OSError:
                    pass
        if syspath is None:
            raise CommandError("add_device(%s, %s) failed" % (subsystem, name))
        t = self.send(syspath, "add", paced, drain_timeout)
        return syspath, t

    # --- cameras ----------------------------------------------------------------------
    def used_indexes(self):
        used = set()
        for c in self.cameras.values():
            if "videos" in c:
                used.update(c["videos"])
                continue
            used.add(c["video"])
            if c["metadata"]:
                used.add(c["video"] + 1)
        return used

    # --- zoo devices: nodes exactly as a dump shows them -----------------------------
    def handle_add_zoo(self, cmd):
        """Fields: name, devices (parents: [{subsystem, name, parent (index or null),
        attrs, props}]), nodes ([{parent (index), video, props, attrs, driver, card,
        bus_info, device_caps, formats, owns}]), paced, drain_timeout.

        Each node's ``DEVLINKS`` become real symlinks under the bed's /dev (the preload
        resolves them): a name another present node already holds stays with it unless
        this node ``owns`` it, as udev gives a contested name to one device only."""
        name = cmd["name"]
        if name in self.cameras:
            raise CommandError("camera %r exists" % name)
        paced = cmd.get("paced", True)
        dt = float(cmd.get("drain_timeout", 10.0))
        videos = [int(n["video"]) for n in cmd["nodes"]]
        if set(videos) & self.used_indexes():
            raise CommandError("video nodes %s in use" % sorted(set(videos) & self.used_indexes()))
        parents = []
        for dev in cmd.get("devices", []):
            parent = parents[dev["parent"]] if dev.get("parent") is not None else None
            syspath, _ = self.add_device(
                dev["subsystem"], dev["name"], parent, dev.get("attrs", []), dev.get("props", []), paced, dt
            )
            parents.append(syspath)
        cam = {"name": name, "spec": cmd, "videos": videos, "metadata": False, "zoo_parents": parents}
        nodes = []
        for spec in cmd["nodes"]:
            n = int(spec["video"])
            devnode = "/dev/video%d" % n
            props = [tuple(kv) for kv in spec["props"]]
            attrs = [tuple(kv) for kv in spec.get("attrs", [])] + [("dev", "%d:%d" % (V4L2_MAJOR, n))]
            props += [("MAJOR", str(V4L2_MAJOR)), ("MINOR", str(n))]
            device_caps = int(spec["device_caps"])
            is_meta = bool(device_caps & CAP_META_CAPTURE) and not device_caps & CAP_VIDEO_CAPTURE
            node = Node(
                self,
                devnode,
                spec["driver"],
                spec["card"],
                spec["bus_info"],
                device_caps,
                BUF_TYPE_META_CAPTURE if is_meta else BUF_TYPE_VIDEO_CAPTURE,
                spec.get("formats") or ([META_FORMAT] if is_meta else []),
                None,
            )
            self._make_node(devnode)
            node.attach()
            links = dict(props).get("DEVLINKS", "").split()
            self._claim_links(devnode, links, spec.get("owns", []))
            parent = parents[spec["parent"]] if spec.get("parent") is not None else None
            syspath, t = self.add_device("video4linux", "video4linux/video%d" % n, parent, attrs, props, paced, dt)
            nodes.append({"syspath": syspath, "devnode": devnode, "node": node, "props": props, "t": t, "links": links})
        cam["nodes"] = nodes
        cam["parent"] = parents[-1] if parents else None
        cam["top"] = parents[0] if parents else None
        cam["top_is_shared"] = True  # the zoo parents are removed by _remove_zoo_parents
        self.cameras[name] = cam
        return {"name": name, "nodes": [{"devnode": x["devnode"], "syspath": x["syspath"], "t": x["t"]} for x in nodes]}

    def _link_path(self, link):
        return os.path.join(self.root, link.lstrip("/"))

    def _claim_links(self, devnode, links, owns):
        for link in links:
            real = self._link_path(link)
            held = os.path.lexists(real) and os.path.exists(real)
            if held and link not in owns:
                continue
            os.makedirs(os.path.dirname(real), exist_ok=True)
            if os.path.lexists(real):
                os.unlink(real)
            os.symlink(os.path.relpath(devnode, os.path.dirname(link)), real)

    def _release_links(self, cam):
        """Drop the links of ``cam``'s nodes; a contested name moves to another claimant."""
        gone = {n["devnode"] for n in cam["nodes"]}
        for node in cam["nodes"]:
            for link in node.get("links", []):
                real = self._link_path(link)
                try:
                    target = os.path.normpath(os.path.join(os.path.dirname(link), os.readlink(real)))
                except OSError:
                    continue
                if target not in gone:
                    continue
                os.unlink(real)
                for other in self.cameras.values():
                    if other is cam:
                        continue
                    for o in other.get("nodes", []):
                        if link in o.get("links", []):
                            self._claim_links(o["devnode"], [link], [link])
                            break

    def free_index(self, metadata):
        used = self.used_indexes()
        n = 0
        while n in used or (metadata and n + 1 in used):
            n += 1
        return n

    def handle_add_camera(self, cmd):
        """Fields (all optional): name, card, serial (str|null), vendor, product,
        vendor_name, model, bus, port ("1.2"), pci ("0000:00:14.0"), video (N),
        metadata (bool, default true for USB), platform (bool), platform_name ("vivid.0"),
        id_path, capabilities (ID_V4L_CAPABILITIES, default ":capture:"), driver,
        bus_info, formats (list), fail_after (ioctl count), owns_links (take contested
        /dev/v4l names from their holder), paced, drain_timeout."""
        name = cmd.get("name") or "cam%d" % len(self.cameras)
        if name in self.cameras:
            raise CommandError("camera %r exists" % name)
        spec = dict(cmd)
        spec["name"] = name
        return self._add(spec)

    def _add(self, spec):
        paced = spec.get("paced", True)
        dt = float(spec.get("drain_timeout", 10.0))
        platform = bool(spec.get("platform", False))
        metadata = bool(spec.get("metadata", not platform))
        video = spec.get("video")
        if video is None:
            video = self.free_index(metadata)
        video = int(video)
        used = self.used_indexes()
        if video in used or (metadata and video + 1 in used):
            raise CommandError("/dev/video%d (or its metadata sibling) is in use" % video)
        card = spec.get("card", "USB Camera")
        formats = spec.get("formats") or DEFAULT_FORMATS
        caps = spec.get("capabilities", ":capture:")
        fail_after = spec.get("fail_after")
        vid, pid = spec.get("vendor", "046d"), spec.get("product", "0825")
        vendor_name = spec.get("vendor_name", "Vendor%s" % vid)
        model = spec.get("model", card.replace(" ", "_"))
        serial = spec.get("serial")
        cam = {"name": name_of(spec), "spec": spec, "video": video, "metadata": metadata}

        times = {}
        if platform:
            pname = spec.get("platform_name", "vivid.0")
            top_path = self._ensure_platform(pname, paced, dt)
            parent = top_path
            driver = spec.get("driver", "vivid")
            bus_info = spec.get("bus_info", "platform:%s" % pname.replace(".", "-00"))
            id_path = spec.get("id_path", "platform-%s" % pname)
            common = [("ID_PATH", id_path), ("ID_PATH_TAG", tagify(id_path))]
            by_id = None
            cam["top"], cam["top_is_shared"] = top_path, True
        else:
            bus, port = int(spec.get("bus", 1)), str(spec.get("port", str(video // 2 + 1)))
            pci = spec.get("pci", "0000:00:14.0")
            kname = "%d-%s" % (bus, port)
            usb_attrs = [
                ("idVendor", vid),
                ("idProduct", pid),
                ("product", card),
                ("manufacturer", vendor_name),
                ("busnum", str(bus)),
                ("devnum", str(video + 2)),
                ("devpath", port),
                ("bDeviceClass", "ef"),
            ]
            if serial:
                usb_attrs.append(("serial", serial))
            id_serial = "%s_%s" % (vendor_name, model) + ("_%s" % serial if serial else "")
            usb_props = [
                ("DEVTYPE", "usb_device"),
                ("ID_VENDOR_ID", vid),
                ("ID_MODEL_ID", pid),
                ("ID_SERIAL", id_serial),
                ("DEVNAME", "/dev/bus/usb/%03d/%03d" % (bus, video + 2)),
            ]
            if serial:
                usb_props.append(("ID_SERIAL_SHORT", serial))
            if self._exists("/sys/devices/pci0000:00/%s/usb%d/%s" % (pci, bus, kname)):
                raise CommandError("USB port %s is in use" % kname)
            usb, times["usb"] = self.add_device(
                "usb", "pci0000:00/%s/usb%d/%s" % (pci, bus, kname), None, usb_attrs, usb_props, paced, dt
            )
            intf, times["usb_interface"] = self.add_device(
                "usb",
                "%s:1.0" % kname,
                usb,
                [("bInterfaceClass", "0e"), ("bInterfaceNumber", "00")],
                [("DEVTYPE", "usb_interface"), ("INTERFACE", "14/1/0")],
                paced,
                dt,
            )
            parent = intf
            driver = spec.get("driver", "uvcvideo")
            bus_info = spec.get("bus_info", "usb-%s-%s" % (pci, port))
            id_path = spec.get("id_path", "pci-%s-usb-0:%s:1.0" % (pci, port))
            common = [
                ("ID_BUS", "usb"),
                ("ID_VENDOR_ID", vid),
                ("ID_MODEL_ID", pid),
                ("ID_VENDOR", vendor_name),
                ("ID_MODEL", model),
                ("ID_SERIAL", id_serial),
                ("ID_USB_INTERFACE_NUM", "00"),
                ("ID_USB_DRIVER", driver),
                ("ID_TYPE", "video"),
                ("ID_PATH", id_path),
                ("ID_PATH_TAG", tagify(id_path)),
            ]
            if serial:
                common.append(("ID_SERIAL_SHORT", serial))
            by_id = "usb-%s" % id_serial
            cam["top"], cam["top_is_shared"] = usb, False

        nodes = []
        for idx, n in enumerate([video] + ([video + 1] if metadata else [])):
            is_meta = idx == 1
            devnode = "/dev/video%d" % n
            links = ["/dev/v4l/by-path/%s-video-index%d" % (id_path, idx)]
            if by_id:
                links.insert(0, "/dev/v4l/by-id/%s-video-index%d" % (by_id, idx))
            props = [
                ("DEVNAME", devnode),
                ("MAJOR", str(V4L2_MAJOR)),
                ("MINOR", str(n)),
                ("ID_V4L_VERSION", "2"),
                ("ID_V4L_PRODUCT", card),
                ("ID_V4L_CAPABILITIES", ":" if is_meta else caps),
                ("DEVLINKS", " ".join(links)),
            ] + common
            attrs = [("name", card), ("index", str(idx)), ("dev", "%d:%d" % (V4L2_MAJOR, n))]
            node = Node(
                self,
                devnode,
                driver,
                card,
                bus_info,
                (CAP_META_CAPTURE if is_meta else CAP_VIDEO_CAPTURE) | CAP_STREAMING | CAP_EXT_PIX_FORMAT,
                BUF_TYPE_META_CAPTURE if is_meta else BUF_TYPE_VIDEO_CAPTURE,
                [META_FORMAT] if is_meta else formats,
                fail_after,
                () if is_meta else spec.get("controls") or (),
            )
            # the /dev node and its ioctl socket exist before the "add" goes out, as udev
            # guarantees for a real device
            self._make_node(devnode)
            node.attach()
            # udev creates the /dev/v4l links before it broadcasts the "add"; a by-id name
            # another present node already holds (identical serial-less cameras) stays
            # with it unless ``owns_links`` says this camera is the one udev gave it to
            self._claim_links(devnode, links, links if spec.get("owns_links") else [])
            syspath, t = self.add_device("video4linux", "video4linux/video%d" % n, parent, attrs, props, paced, dt)
            nodes.append(
                {
                    "syspath": syspath,
                    "devnode": devnode,
                    "node": node,
                    "attrs": attrs,
                    "props": props,
                    "t": t,
                    "links": links,
                }
            )
        cam["nodes"] = nodes
        cam["parent"] = parent
        self.cameras[cam["name"]] = cam
        return self.describe(cam, t=nodes[0]["t"], t_meta=nodes[1]["t"] if metadata else None)

    def _exists(self, syspath):
        return os.path.exists(os.path.join(self.root, syspath.lstrip("/"), "uevent"))

    def _ensure_platform(self, pname, paced, dt):
        path = "/sys/devices/platform/%s" % pname
        if not self._exists(path):
            path, _ = self.add_device(
                "platform",
                "platform/%s" % pname,
                None,
                [("driver_override", "(null)")],
                [("DRIVER", pname.split(".")[0]), ("MODALIAS", "platform:%s" % pname.split(".")[0])],
                paced,
                dt,
            )
        return path

    def _make_node(self, devnode):
        real = os.path.join(self.root, devnode.lstrip("/"))
        os.makedirs(os.path.dirname(real), exist_ok=True)
        with open(real, "wb"):
            pass

    def describe(self, cam, **extra):
        d = {
            "name": cam["name"],
            "syspath": cam["nodes"][0]["syspath"],
            "devnode": cam["nodes"][0]["devnode"],
            "parent": cam["parent"],
            "top": cam["top"],
            "props": dict(cam["nodes"][0]["props"]),
        }
        if cam["metadata"] and len(cam["nodes"]) > 1:
            d["meta_syspath"] = cam["nodes"][1]["syspath"]
            d["meta_devnode"] = cam["nodes"][1]["devnode"]
        d.update({k: v for k, v in extra.items() if v is not None})
        return d

    def camera(self, cmd):
        name = cmd.get("name")
        if name not in self.cameras:
            raise CommandError("no camera %r" % name)
        return self.cameras[name]

    def handle_remove(self, cmd):
        """Fields: name, paced, drain_timeout.  Sends remove for the metadata node, the
        capture node, then the USB interface and device (children first, like the kernel),
        then removes the sysfs tree and /dev nodes."""
        cam = self.camera(cmd)
        t = self._remove(cam, cmd.get("paced", True), float(cmd.get("drain_timeout", 10.0)))
        del self.cameras[cam["name"]]
        return {"name": cam["name"], "t": t}

    def _remove(self, cam, paced, dt):
        t = None
        for node in reversed(cam["nodes"]):
            tt = self.send(node["syspath"], "remove", paced, dt)
            if node is cam["nodes"][0]:
                t = tt
        if not cam["top_is_shared"]:
            self.send(cam["parent"], "remove", paced, dt)
            self.send(cam["top"], "remove", paced, dt)
        for node in cam["nodes"]:
            node["node"].detach()
        for syspath in reversed(cam.get("zoo_parents", [])):
            self.send(syspath, "remove", paced, dt)
        self._release_links(cam)
        # remove_device() deletes the /dev node of the device it is given only, not of
        # its children: remove the video nodes one by one first
        for node in reversed(cam["nodes"]):
            self.tb.remove_device(node["syspath"])
        self._remove_parents(cam)
        for syspath in reversed(cam.get("zoo_parents", [])):
            self.tb.remove_device(syspath)
        return t

    def _remove_parents(self, cam):
        # one level at a time: remove_device() cleans the /dev node and /sys/bus link of
        # the device it is given only, and a stale /sys/bus/usb/devices/1-1:1.0 link
        # makes umockdev abort when the same port is used again
        if not cam["top_is_shared"]:
            self.tb.remove_device(cam["parent"])
            self.tb.remove_device(cam["top"])

    def handle_replug(self, cmd):
        """Fields: name, video (new index, optional), paced, drain_timeout, gap (seconds
        between remove and add, default 0)."""
        cam = self.camera(cmd)
        paced, dt = cmd.get("paced", True), float(cmd.get("drain_timeout", 10.0))
        t_remove = self._remove(cam, paced, dt)
        del self.cameras[cam["name"]]
        if cmd.get("gap"):
            self.sleep(float(cmd["gap"]))
        spec = dict(cam["spec"])
        spec["video"] = cmd.get("video")
        reply = self._add(spec)
        reply["t_remove"] = t_remove
        return reply

    def sleep(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            while self.ctx.iteration(False):
                pass
            time.sleep(0.0005)

    def handle_storm(self, cmd):
        """Fields: name (an existing camera), count (pairs), paced (default true),
        end_present (default true: the capture node is present afterwards),
        drain_timeout.  Each pair removes the capture node (uevent + remove_device) and
        adds it back (add_device sends add); the USB parents and the metadata node stay.
        Replies ``times``: [[t_remove, t_add], ...] and ``waits``: how many of its
        uevents found a listener's queue full and had to wait for room."""
        cam = self.camera(cmd)
        count = int(cmd.get("count", 10))
        paced, dt = cmd.get("paced", True), float(cmd.get("drain_timeout", 10.0))
        node = cam["nodes"][0]
        if not paced:
            qlen = read_qlen()
            if qlen is not None and qlen < 2 * count + 4 and not cmd.get("force"):
                raise CommandError(
                    "unpaced storm of %d pairs needs net.unix.max_dgram_qlen >= %d (is %d): "
                    "sysctl -w net.unix.max_dgram_qlen=1000 (root), or pass force" % (count, 2 * count + 4, qlen)
                )
        times = []
        present = True
        waits0 = self.waits
        for i in range(count):
            t_rm = self.send(node["syspath"], "remove", paced, dt)
            self.tb.remove_device(node["syspath"])
            present = False
            if i == count - 1 and not cmd.get("end_present", True):
                times.append([t_rm, None])
                break
            self._make_node(node["devnode"])
            parent = os.path.dirname(os.path.dirname(node["syspath"]))
            _, t_add = self.add_device(
                "video4linux",
                "video4linux/" + os.path.basename(node["syspath"]),
                parent,
                node["attrs"],
                node["props"],
                paced,
                dt,
            )
            present = True
            times.append([t_rm, t_add])
        if not present:
            # the capture node is gone: forget the camera but keep no dangling parents
            for n in cam["nodes"][1:]:
                self.send(n["syspath"], "remove", paced, dt)
            if not cam["top_is_shared"]:
                self.send(cam["parent"], "remove", paced, dt)
                self.send(cam["top"], "remove", paced, dt)
            for n in cam["nodes"]:
                n["node"].detach()
            for n in cam["nodes"][1:]:
                self.tb.remove_device(n["syspath"])
            self._remove_parents(cam)
            del self.cameras[cam["name"]]
        return {"name": cam["name"], "count": count, "times": times, "present": present, "waits": self.waits - waits0}

    def handle_uevent(self, cmd):
        """Fields: syspath or name (its capture node), action (add/remove/change)."""
        syspath = cmd.get("syspath") or self.camera(cmd)["nodes"][0]["syspath"]
        t = self.send(
            syspath, cmd.get("action", "change"), cmd.get("paced", True), float(cmd.get("drain_timeout", 10.0))
        )
        return {"t": t, "syspath": syspath}

    def handle_set_property(self, cmd):
        self.tb.set_property(cmd["syspath"], cmd["key"], str(cmd["value"]))
        return {}

    def handle_set_attribute(self, cmd):
        self.tb.set_attribute(cmd["syspath"], cmd["key"], str(cmd["value"]))
        return {}

    def handle_listeners(self, cmd):
        return {
            "listeners": [os.path.basename(p) for p in self.listeners()],
            "full": [os.path.basename(p) for p in self.full_listeners()],
        }

    def handle_list(self, cmd):
        return {"cameras": [self.describe(c) for c in self.cameras.values()]}

    def handle_control_errors(self, cmd):
        """``errors``: {control id: errno name} the capture node answers to writes of it."""
        node = self.camera(cmd)["nodes"][0]["node"]
        node.control_errors = {int(k): getattr(errno, v) for k, v in cmd.get("errors", {}).items()}
        return {}

    def handle_control_values(self, cmd):
        """The capture node's control values ``{id: value}``; ``set`` changes them first
        (another program's change)."""
        node = self.camera(cmd)["nodes"][0]["node"]
        for k, v in (cmd.get("set") or {}).items():
            node.values[int(k)] = int(v)
        return {"values": {str(k): v for k, v in node.values.items()}}

    def handle_ioctl_calls(self, cmd):
        cam = self.camera(cmd)
        return {"calls": [n["node"].calls for n in cam["nodes"]]}

    # --- stdin loop ---------------------------------------------------------------------
    def on_stdin(self, fd, condition):
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            chunk = b""
        if not chunk:
            self.loop.quit()
            return False
        self.buf += chunk
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            if line.strip():
                if not self.dispatch(line):
                    self.loop.quit()
                    return False
        return True

    def dispatch(self, line):
        cmd = {}
        try:
            cmd = json.loads(line)
            name = cmd.get("cmd")
            if name == "quit":
                out({"ok": True, "id": cmd.get("id")})
                return False
            fn = getattr(self, "handle_%s" % name, None)
            if fn is None:
                raise CommandError("unknown command %r" % name)
            reply = fn(cmd)
            reply["ok"] = True
        except CommandError as e:
            reply = {"ok": False, "error": str(e)}
        except Exception as e:
            traceback.print_exc()
            reply = {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
        if isinstance(cmd, dict) and "id" in cmd:
            reply["id"] = cmd["id"]
        out(reply)
        return True

    def run(self):
        self.loop = GLib.MainLoop()
        GLib.unix_fd_add_full(GLib.PRIORITY_DEFAULT, 0, GLib.IOCondition.IN | GLib.IOCondition.HUP, self.on_stdin)
        out({"ready": True, "root_dir": self.root, "pid": os.getpid(), "max_dgram_qlen": read_qlen()})
        self.loop.run()
        for cam in self.cameras.values():
            for n in cam["nodes"]:
                n["node"].detach()


def name_of(spec):
    return spec["name"]


def tagify(id_path):
    return "".join(c if c.isalnum() or c == "-" else "_" for c in id_path)


def read_qlen():
    try:
        with open("/proc/sys/net/unix/max_dgram_qlen") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def main():
    if "libumockdev-preload" not in os.environ.get("LD_PRELOAD", ""):
        sys.stderr.write("umockdev_bed: must run under LD_PRELOAD=libumockdev-preload.so.0\n")
        return 2
    Bed().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
