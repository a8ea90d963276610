"""Command channel of the e2e guest (test image only, never in the package).

A few fixed actions the host-side test needs inside the guest, over plain HTTP
on a port the host reaches only through QEMU's loopback-bound forward:

  GET  /status            vivid bound?, /dev/video* nodes, camsvc unit state
  POST /vivid/unbind      simulated unplug (write vivid.0 to the driver's unbind)
  POST /vivid/bind        simulated plug
  POST /vivid/replug-held?device=D  unplug/plug with D held open meanwhile
  POST /camsvc/restart    systemctl restart camsvc
  GET  /journal?unit=U&lines=N   journalctl output of one unit
  GET  /unit              `systemctl show camsvc` plus the main process's ids
  GET  /boot              systemd-analyze time / blame
  GET  /v4l2?device=D     v4l2-ctl --info / --list-formats-ext of one node
  POST /exec/ffmpeg-probe ffmpeg and Python under the unit's exact sandbox
  GET  /v4l2/nodes        every V4L2 node with its device capabilities
  GET  /v4l2/ctrl?device=D&name=N   v4l2-ctl -d D -C N (one control's value)
  POST /v4l2/ctrl?device=D&name=N&value=V   v4l2-ctl -d D -c N=V (a change outside camsvc)
  GET  /v4l2/ctrls?device=D         v4l2-ctl -d D --list-ctrls-menus
  GET  /exists?path=P     whether a file exists
  GET  /realpath?path=P   where a /dev path (a by-id/by-path link) leads
  POST /mediamtx/record?name=N
                          a recording written as MediaMTX's user would
  POST /mediamtx/standin/start   the MediaMTX stand-in (tests/support/mediamtx, copied to
                          /opt/camsvc-e2e/standin) in publish mode, as MediaMTX's user,
                          on MediaMTX's ports 9997/8554: it runs camsvc's real publish
                          commands (ffmpeg reading /dev/videoN) and records what they send
  POST /mediamtx/standin/stop    stop it (camsvc is back to running without MediaMTX)
  GET  /mediamtx/paths    the stand-in's /v3/paths/list
  GET  /ffprobe?name=F    ffprobe of one file in camsvc's recordings directory
  POST /measure/latency?node=D&node=D2&isolated=N&rapid=M&gap=S[&quiet=1]
                          udev event -> notification at guest-local WebSocket
                          clients of camsvc and of the minimal broadcaster
                          (bench/broadcaster.py, started for the run), for N
                          isolated unplug/plug cycles (quiet=1: each once camsvc's
                          capability probes are done) and M cycles in which each
                          sysfs write comes S s after udev reported the last one
  POST /probe/nice        one unplug/plug; the niceness of camsvc's capability
                          probe children (sampled from /proc) and of camsvc
  GET  /image/mean?name=F the mean RGB of a snapshot (ffmpeg, scaled to 1x1)

Replies are JSON with guest-side CLOCK_MONOTONIC timings of the action itself.
No arbitrary command execution: every action is a fixed argv.  Stdlib only,
but for pyudev (a camsvc dependency, so in the guest) in the latency run's
udev monitor.
"""

import argparse
import base64
import glob
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

VIVID = "/sys/bus/platform/drivers/vivid"


def run(argv, timeout=60, binary=False):
    p = subprocess.run(argv, capture_output=True, timeout=timeout)
    out = {"rc": p.returncode, "stderr": p.stderr.decode(errors="replace")}
    if binary:
        out["stdout_bytes"] = len(p.stdout)
        out["stdout_head"] = p.stdout[:4].hex()
        out["stdout_tail"] = p.stdout[-2:].hex()
    else:
        out["stdout"] = p.stdout.decode(errors="replace")
    return out


def status():
    return {
        "vivid_bound": os.path.exists(os.path.join(VIVID, "vivid.0")),
        "video_nodes": sorted(glob.glob("/dev/video*")),
        "camsvc": run(["systemctl", "is-active", "camsvc"])["stdout"].strip(),
        "uptime": float(open("/proc/uptime").read().split()[0]),
    }


def sysfs_write(name):
    t0 = time.monotonic()
    try:
        with open(os.path.join(VIVID, name), "w") as f:
            f.write("vivid.0")
        err = None
    except OSError as e:
        err = str(e)
    return {"action": name, "error": err, "duration": time.monotonic() - t0}


def replug_held(device):
    """Unplug with ``device`` held open (closed after the plug), as when a program still
    has a camera open when it is pulled: the kernel frees its minor only at the last
    close, so the re-created node gets another number."""
    if device not in glob.glob("/dev/video*"):
        return {"error": "no such device"}
    before = sorted(glob.glob("/dev/video*"))
    fd = os.open(device, os.O_RDONLY | os.O_NONBLOCK)
    try:
        w = sysfs_write("unbind")
        if w["error"]:
            return {"error": w}
        w = sysfs_write("bind")
        if w["error"]:
            return {"error": w}
    finally:
        os.close(fd)
    deadline = time.monotonic() + 30
    while len(glob.glob("/dev/video*")) < len(before) and time.monotonic() < deadline:
        time.sleep(0.1)  # udev creating the nodes
    return {"error": None, "nodes_before": before, "nodes_after": sorted(glob.glob("/dev/video*"))}


def unit_info():
    show = run(
        [
            "systemctl",
            "show",
            "camsvc",
            "-p",
            "ActiveState,SubState,MainPID,NRestarts,User,ExecMainStartTimestampMonotonic",
        ]
    )
    props = dict(line.split("=", 1) for line in show["stdout"].splitlines() if "=" in line)
    pid = props.get("MainPID", "0")
    proc = {}
    if pid != "0":
        try:
            for line in open(f"/proc/{pid}/status"):
                k, _, v = line.partition(":")
                if k in ("Uid", "Gid", "Groups", "NoNewPrivs", "Seccomp", "CapBnd", "CapEff"):
                    proc[k] = v.strip()
        except OSError:
            pass
    return {"props": props, "proc": proc}


def sandbox_properties(unit="/lib/systemd/system/camsvc.service"):
    """The [Service] settings of the installed unit, as systemd-run -p args."""
    skip = {
        "Type",
        "ExecStart",
        "ExecReload",
        "Restart",
        "RestartSec",
        "SyslogIdentifier",
        "WatchdogSec",
        "NotifyAccess",
    }
    props, section = [], None
    for line in open(unit):
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and line and not line.startswith("#") and "=" in line:
            if line.split("=", 1)[0] not in skip:
                props += ["-p", line]
    return props


def sandboxed(argv, timeout=120, binary=False):
    """Run argv as a transient unit with exactly the camsvc unit's sandbox."""
    return run(
        ["systemd-run", "--quiet", "--wait", "--pipe", "--collect", *sandbox_properties(), "--", *argv],
        timeout=timeout,
        binary=binary,
    )


# What camsvc's Python needs from the sandbox: its libraries import, and TLS
# contexts (pyOpenSSL registers cffi callbacks: ffi.callback needs writable+
# executable memory unless libffi has static trampolines).
PY_PROBE = """
import twisted, autobahn, treq, pyudev, yaml, jwt, prometheus_client, service_identity
print("imports ok")
from cffi import FFI
try:
    cb = FFI().callback("int(int)", lambda x: x + 1)
    print("cffi callback", cb(41))
except MemoryError as e:
    print("cffi callback FAILED", e)
from OpenSSL import SSL
try:
    ctx = SSL.Context(SSL.TLS_METHOD)
    ctx.set_verify(SSL.VERIFY_PEER, lambda *a: True)
    print("pyOpenSSL set_verify ok")
except MemoryError as e:
    print("pyOpenSSL set_verify FAILED", e)
from twisted.internet import ssl
try:
    ssl.CertificateOptions().getContext()
    print("twisted CertificateOptions ok")
except MemoryError as e:
    print("twisted CertificateOptions FAILED", e)
"""


STANDIN_DIR = "/opt/camsvc-e2e/standin"
RECORDINGS = "/var/lib/camsvc/recordings"


def standin_start():
    """The stand-in as a transient unit with MediaMTX's service settings; waits for its API."""
    out = run(
        [
            "systemd-run",
            "--quiet",
            "--unit=mediamtx-standin",
            "--collect",
            "-p",
            "User=mediamtx",
            "-p",
            "Group=mediamtx",
            "-p",
            "SupplementaryGroups=video camsvc",
            "-p",
            "UMask=0027",
            "-p",
            "WorkingDirectory=" + STANDIN_DIR,
            "--",
            "/usr/bin/python3",
            "-m",
            "tests.support.mediamtx",
            "--port",
            "9997",
            "--rtsp-port",
            "8554",
            "--publishers",
            "--no-spec-check",
        ]
    )
    t0 = time.monotonic()
    out["error"] = None if out["rc"] == 0 else "systemd-run failed"
    while out["error"] is None:
        try:
            with socket.create_connection(("127.0.0.1", 9997), timeout=2):
                break
        except OSError:
            if time.monotonic() - t0 > 90:
                out["error"] = "the stand-in's API never listened"
            time.sleep(0.2)
    out["wait_s"] = round(time.monotonic() - t0, 2)
    return out


def standin_paths():
    import urllib.request

    try:
        with urllib.request.urlopen("http://127.0.0.1:9997/v3/paths/list", timeout=10) as r:
            return {"error": None, "paths": json.loads(r.read())["items"]}
    except (OSError, ValueError) as e:
        return {"error": str(e), "paths": []}


def ffprobe(name):
    if "/" in name or name.startswith("."):
        return {"error": "bad name"}
    path = os.path.join(RECORDINGS, name)
    out = run(
        [
            "ffprobe",
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "stream=codec_name,nb_read_frames:format=duration,size",
            "-of",
            "json",
            path,
        ],
        timeout=120,
    )
    try:
        out["probe"] = json.loads(out["stdout"])
    except ValueError:
        out["probe"] = None
    return out


def mediamtx_record(name):
    """Write a small fMP4 recording as MediaMTX would: as user mediamtx, with the
    service settings docs/deployment.md gives its unit (groups video camsvc,
    UMask=0027), into camsvc's recordings directory."""
    if not name.endswith(".mp4") or "/" in name or name.startswith("."):
        return {"error": "bad name"}
    path = os.path.join("/var/lib/camsvc/recordings", name)
    out = run(
        [
            "systemd-run",
            "--quiet",
            "--wait",
            "--pipe",
            "--collect",
            "-p",
            "User=mediamtx",
            "-p",
            "Group=mediamtx",
            "-p",
            "SupplementaryGroups=video camsvc",
            "-p",
            "UMask=0027",
            "--",
            "/usr/bin/ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=duration=1:size=160x120:rate=5",
            "-c:v",
            "mpeg4",
            "-movflags",
            "+frag_keyframe+empty_moov+default_base_moof",
            "-f",
            "mp4",
            path,
        ],
        timeout=120,
    )
    try:
        st = os.stat(path)
        import grp
        import pwd

        out["stat"] = {
            "owner": pwd.getpwuid(st.st_uid).pw_name,
            "group": grp.getgrgid(st.st_gid).gr_name,
            "mode": oct(st.st_mode & 0o7777),
            "size": st.st_size,
        }
    except OSError as e:
        out["stat"] = {"error": str(e)}
    return out


def ffmpeg_probe():
    # ffmpeg grabbing a JPEG from the camera and Python importing camsvc's
    # dependencies, both under the service's user, seccomp filter, device ACL
    # and MemoryDenyWriteExecute: what take_snapshot will do.
    nodes = sorted(glob.glob("/dev/video*"))
    grab = sandboxed(
        [
            "/usr/bin/ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "v4l2",
            "-i",
            nodes[0] if nodes else "/dev/video0",
            "-frames:v",
            "1",
            "-f",
            "mjpeg",
            "pipe:1",
        ],
        binary=True,
    )
    py = sandboxed(["/usr/bin/python3", "-c", PY_PROBE])
    return {"ffmpeg": grab, "python": py}


NODE_GLOBS = ("/dev/video*", "/dev/v4l-touch*", "/dev/vbi*", "/dev/radio*", "/dev/swradio*")


def v4l2_nodes():
    """Every V4L2 node with the device capabilities the driver reports for it."""
    out = {}
    for node in sorted(n for g in NODE_GLOBS for n in glob.glob(g)):
        info = run(["v4l2-ctl", "-d", node, "--info"])["stdout"]
        caps, in_dev_caps = [], False
        for line in info.splitlines():
            if line.strip().startswith("Device Caps"):
                in_dev_caps = True
            elif in_dev_caps and line.startswith("\t\t") and not line.strip().startswith("0x"):
                caps.append(line.strip())
            elif in_dev_caps:
                in_dev_caps = False
        out[node] = caps
    return out


class WsClient:
    """Minimal RFC 6455 client (stdlib only) for the guest-side measurements:
    latencies on the guest's own clock, free of the host<->guest channel."""

    def __init__(self, port=8002, timeout=60):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise ConnectionError("closed during handshake")
            head += chunk
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(head.decode(errors="replace"))
        self.next_id = 0

    def _exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        return buf

    def _send_frame(self, opcode, payload):
        mask = os.urandom(4)
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def send(self, obj):
        self._send_frame(0x1, json.dumps(obj).encode())

    def recv(self, timeout):
        """The next JSON message, or TimeoutError."""
        self.sock.settimeout(timeout)
        data = b""
        while True:
            try:
                b0, b1 = self._exact(2)
            except TimeoutError:
                raise TimeoutError from None
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._exact(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._exact(8))[0]
            payload = self._exact(n)
            opcode = b0 & 0x0F
            if opcode == 0x9:
                self._send_frame(0xA, payload)
            elif opcode == 0x8:
                raise ConnectionError("server closed")
            elif opcode in (0x0, 0x1, 0x2):
                data += payload
                if b0 & 0x80:
                    return json.loads(data)

    def call(self, method, timeout=60, **params):
        self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
        deadline = time.monotonic() + timeout
        while True:
            msg = self.recv(max(0.01, deadline - time.monotonic()))
            if msg.get("id") == self.next_id:
                return msg

    def wait_status(self, camera_id, status, timeout):
        deadline = time.monotonic() + timeout
        while True:
            msg = self.recv(max(0.01, deadline - time.monotonic()))
            if msg.get("method") == "camera_status_update":
                cam = msg.get("params") or {}
                cam = cam.get("camera", cam)
                if cam.get("camera_id") == camera_id and cam.get("status") == status:
                    return time.monotonic()

    def close(self):
        try:
            self._send_frame(0x8, struct.pack(">H", 1000))
        except OSError:
            pass
        self.sock.close()


TOKEN_FILE = "/etc/camsvc-e2e/api_key"


# --- latency: udev event -> notification, camsvc vs the minimal broadcaster --------
#
# Three stamping processes, so that no stamp waits for another's GIL: one reads
# udevd's netlink multicast (the same one camsvc and the broadcaster read), one is a
# WebSocket client of camsvc, one of the broadcaster.  Each prints one line per event
# with its CLOCK_MONOTONIC time (system-wide, so comparable); this process drives the
# sysfs writes and matches the k-th udev transition of a node with the k-th
# notification transition of the same node at each client.

SELF = os.path.abspath(__file__)
BROADCASTER = os.path.join(os.path.dirname(SELF), "broadcaster.py")
BROADCASTER_PORT = 8010
BROADCASTER_UNIT = "camsvc-e2e-broadcaster"
#: How much later than a notification its udev event may be stamped (the stamping
#: process can wait for a vCPU under TCG); less than ``gap``, so never the previous change.
STAMP_SLACK = 0.05


def v4l_name(node):
    """The driver's name of a node (sysfs ``name``: vivid's ``vivid-001-vid-cap``), or None."""
    try:
        with open(f"/sys/class/video4linux/{os.path.basename(node)}/name") as f:
            return f.read().strip()
    except OSError:
        return None


class Labels:
    """Node -> the label of the camera it is: the node that camera had when the run
    started.  A replugged camera can come back on another node (its old minor still
    held open by someone: /dev/video4 -> /dev/video5), so nodes are told apart by the
    driver's name of them, read on add and remembered for the remove."""

    def __init__(self):
        self.by_name = json.loads(os.environ.get("CAMSVC_E2E_LABELS") or "{}")  # driver name -> label
        self.names = {}
        for path in glob.glob("/sys/class/video4linux/*"):
            node = "/dev/" + os.path.basename(path)
            name = v4l_name(node)
            if name:
                self.names[node] = name

    def added(self, node):
        name = v4l_name(node)
        if name:
            self.names[node] = name
        return self.by_name.get(self.names.get(node))

    def removed(self, node):
        return self.by_name.get(self.names.get(node))


def listen_udev():
    """Child mode: ``T add|remove|add-unknown NODE`` per video4linux event, stamped on
    readability.  ``add-unknown``: udev could not tell what the node is (no
    ``:capture:`` in ID_V4L_CAPABILITIES: it vanished before v4l_id opened it, as
    when an unplug follows a plug within ~100 ms), so nobody can announce a camera."""
    import pyudev

    monitor = pyudev.Monitor.from_netlink(pyudev.Context())
    monitor.filter_by("video4linux")
    monitor.start()
    print("ready", flush=True)
    labels = Labels()
    fd = monitor.fileno()
    while True:
        select.select([fd], [], [])
        t = time.monotonic()
        while True:
            dev = monitor.poll(timeout=0)
            if dev is None:
                break
            action, node = dev.action, dev.device_node or "-"
            if action == "add" and ":capture:" not in (dev.properties.get("ID_V4L_CAPABILITIES") or ""):
                action = "add-unknown"
            label = labels.removed(node) if action == "remove" else labels.added(node)
            if label:
                print(f"{t:.6f} {action} {label}", flush=True)


def listen_ws(port, key_file):
    """Child mode: ``T NODE STATUS`` per camera_status_update, stamped on readability.

    With ``key_file`` (camsvc): only the cameras present at the start, each by the
    node it had then (a DISCONNECTED record of another camera names its last node)."""
    ws = WsClient(port)
    labels = Labels()
    ids = {}
    if key_file:
        reply = ws.call("authenticate", auth_token=open(key_file).read().strip())
        if "error" in reply:
            print(f"error {reply['error']}", flush=True)
            return
        listing = ws.call("get_camera_list")["result"]["cameras"]
        ids = {c["camera_id"]: c["device"] for c in listing if c["status"] != "DISCONNECTED"}
    print("ready", flush=True)
    while True:
        select.select([ws.sock], [], [])
        t = time.monotonic()
        msg = ws.recv(60)
        if msg.get("method") == "camera_status_update":
            cam = msg.get("params") or {}
            cam = cam.get("camera", cam)
            status = cam.get("status")
            cid = cam.get("camera_id")
            if ids and cid not in ids and status != "DISCONNECTED":
                # a camera back under a new id (camsvc re-identified it): known by its node's name
                label = labels.added(cam.get("device") or "-")
                if label:
                    ids[cid] = label
                    print(f"newid {cid} {label}", flush=True)
            if ids:
                label = ids.get(cid)
            else:  # the broadcaster: by node
                node = cam.get("device") or "-"
                label = labels.removed(node) if status == "DISCONNECTED" else labels.added(node)
            if label:
                print(f"{t:.6f} {label} {status}", flush=True)


class Stamper:
    """One stamping child and the events it printed (``(t, node, present)``)."""

    def __init__(self, argv, cond, labels):
        self.argv = argv
        self.cond = cond
        self.events = []
        self.raw = {}  # label -> udev events of any kind (one per sysfs write)
        self.unknown = {}  # label -> udev adds of a node nobody could identify
        self.new_ids = {}  # camera id -> label: cameras camsvc announced under a new id
        env = dict(os.environ, CAMSVC_E2E_LABELS=json.dumps(labels))
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    def wait_ready(self):
        """Until the child listens (interpreter start-up takes seconds under TCG)."""
        first = self.proc.stdout.readline().strip()
        if first != "ready":
            self.stop()
            raise RuntimeError(f"{self.argv[2:]}: {first!r} {self.proc.stderr.read()[-2000:]}")
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            parts = line.split()
            if len(parts) != 3:
                continue
            t, a, b = parts
            if t == "newid":
                with self.cond:
                    self.new_ids[a] = b
                continue
            with self.cond:
                if a in ("add", "remove", "add-unknown", "change", "bind", "unbind"):  # udev: action node
                    if a not in ("add", "remove", "add-unknown"):
                        continue
                    self.raw[b] = self.raw.get(b, 0) + 1
                    if a == "add-unknown":
                        self.unknown.setdefault(b, []).append(float(t))
                        self.cond.notify_all()
                        continue
                    self.events.append((float(t), b, a == "add"))
                else:  # client: node status
                    self.events.append((float(t), a, b != "DISCONNECTED"))
                self.cond.notify_all()

    def transitions(self, node):
        """[(t, present)] of ``node``: the first event of each presence change
        (every camera is present when the run starts)."""
        out, state = [], True
        for t, n, present in list(self.events):
            if n == node and present != state:
                out.append((t, present))
                state = present
        return out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def start_broadcaster(timeout=90):
    """bench/broadcaster.py as a transient unit under exactly camsvc's sandbox
    (user, seccomp filter, device policy): the same conditions as the service."""
    subprocess.run(["systemctl", "stop", BROADCASTER_UNIT], capture_output=True)
    subprocess.run(["systemctl", "reset-failed", BROADCASTER_UNIT], capture_output=True)
    r = run(
        [
            "systemd-run",
            "--quiet",
            "--collect",
            f"--unit={BROADCASTER_UNIT}",
            *sandbox_properties(),
            "--",
            "/usr/bin/python3",
            BROADCASTER,
            "--port",
            str(BROADCASTER_PORT),
        ]
    )
    if r["rc"] != 0:
        raise RuntimeError(f"broadcaster: {r}")
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", BROADCASTER_PORT), timeout=2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    "broadcaster not listening: " + run(["journalctl", "-u", BROADCASTER_UNIT])["stdout"]
                ) from None
            time.sleep(0.2)


def measure_latency(nodes, isolated, rapid, gap, quiet=False, settle=0.3, timeout=30):
    """``nodes``: the cameras, by their node when the run starts (the label each
    camera keeps in the reply even if it comes back on another node).

    ``isolated`` unplug/plug cycles (each write once every client has seen the
    previous transition, plus ``settle`` s, and with ``quiet`` once camsvc's capability
    probes have finished), then ``rapid`` cycles in which each sysfs write comes
    ``gap`` s after udev reported the previous one; for every node the udev
    transitions and each client's notification transitions."""
    cond = threading.Condition()
    stampers = {}
    writes = []
    result = {"nodes": nodes, "isolated": isolated, "rapid": rapid, "gap": gap, "error": None}
    try:
        start_broadcaster()
        # each camera is labelled by its node now, and known by the driver's name of it
        labels = {v4l_name(n): n for n in nodes}
        if None in labels or len(labels) != len(nodes):
            raise RuntimeError(f"cannot tell the nodes apart by name: {labels}")
        stampers["udev"] = Stamper([sys.executable, SELF, "--listen-udev"], cond, labels)
        stampers["camsvc"] = Stamper([sys.executable, SELF, "--listen-ws", "8002", TOKEN_FILE], cond, labels)
        stampers["broadcaster"] = Stamper(
            [sys.executable, SELF, "--listen-ws", str(BROADCASTER_PORT), ""], cond, labels
        )
        for stamper in stampers.values():
            stamper.wait_ready()

        def write(name):
            t = time.monotonic()
            w = sysfs_write(name)
            writes.append((t, name, w["duration"]))
            if w["error"]:
                raise RuntimeError(f"{name}: {w['error']}")

        def wait(count):
            """Until udev reported ``count`` events per node and each client as many
            presence changes as udev's (an add udev could not identify is none)."""
            deadline = time.monotonic() + timeout
            udev = stampers["udev"]
            with cond:
                while True:
                    want = {n: len(udev.transitions(n)) for n in nodes}
                    short = {
                        name: {n: len(s.transitions(n)) for n in nodes}
                        for name, s in stampers.items()
                        if name != "udev" and any(len(s.transitions(n)) < want[n] for n in nodes)
                    }
                    if all(udev.raw.get(n, 0) >= count for n in nodes) and not short:
                        return
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError(
                            f"{count} udev events per node expected, seen {udev.raw}; "
                            f"udev presence changes {want}; clients short: {short}"
                        )
                    cond.wait(left)

        def wait_udev(count):
            """Until udev reported ``count`` events per node."""
            deadline = time.monotonic() + timeout
            udev = stampers["udev"]
            with cond:
                while not all(udev.raw.get(n, 0) >= count for n in nodes):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError(f"{count} udev events per node expected, seen {udev.raw}")
                    cond.wait(left)

        def wait_caught_up():
            """Until each client announced every node present after udev's last add of it
            (a plug whose node was gone before a service could read it may be missing:
            latency_figures allows a whole plug + unplug pair to be, nothing else)."""
            deadline = time.monotonic() + timeout
            udev = stampers["udev"]
            with cond:
                while True:
                    changes = {n: udev.transitions(n) for n in nodes}
                    behind = {}
                    for name, s in stampers.items():
                        if name == "udev":
                            continue
                        for n in nodes:
                            seen = s.transitions(n)
                            # As many presence changes as udev's, the last one "present": caught
                            # up, whatever the stamps say (on a loaded guest the udev stamper's own
                            # read can come later than a service's notification).  With a plug +
                            # unplug pair missing, the time of the last "present" decides
                            # (STAMP_SLACK: the udev stamp itself can come a little late).
                            if not seen or not seen[-1][1]:
                                behind.setdefault(name, []).append(n)
                            elif len(seen) < len(changes[n]) and seen[-1][0] < changes[n][-1][0] - STAMP_SLACK:
                                behind.setdefault(name, []).append(n)
                    if not any(behind.values()):
                        return
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError(f"not announced present after udev's last add: {behind}")
                    cond.wait(left)

        main = int(unit_info()["props"].get("MainPID", "0"))

        def wait_probes_done():
            """Isolated means quiet: no capability probe of camsvc's still running."""
            deadline = time.monotonic() + timeout
            while any(_is_probe(pid) for pid in _children(main)) and time.monotonic() < deadline:
                time.sleep(0.05)

        count = 0
        for _ in range(isolated):
            for name in ("unbind", "bind"):
                write(name)
                count += 1
                wait(count)
                time.sleep(settle)
                if quiet:
                    wait_probes_done()
        result["rapid_start"] = time.monotonic()
        for i in range(2 * rapid):
            write(("unbind", "bind")[i % 2])
            count += 1
            wait_udev(count)
            time.sleep(gap)  # the next change comes `gap` s after udev reported this one
        wait_caught_up()
        time.sleep(settle)  # nothing more may come
        result["writes"] = [(round(t, 6), name, round(d, 6)) for t, name, d in writes]
        result["unidentified_adds"] = {n: len(stampers["udev"].unknown.get(n, [])) for n in nodes}
        result["new_ids"] = stampers["camsvc"].new_ids
        result["transitions"] = {
            name: {n: [(round(t, 6), p) for t, p in s.transitions(n)] for n in nodes} for name, s in stampers.items()
        }
    except (RuntimeError, TimeoutError, ConnectionError, OSError) as e:
        result["error"] = f"{type(e).__name__}: {e}"
        result["transitions"] = {
            name: {n: [(round(t, 6), p) for t, p in s.transitions(n)] for n in nodes} for name, s in stampers.items()
        }
    finally:
        for s in stampers.values():
            s.stop()
        subprocess.run(["systemctl", "stop", BROADCASTER_UNIT], capture_output=True)
    return result


def _stat_fields(pid):
    """/proc/PID/stat after the command name: [state, ppid, ..., nice (16), ...]."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rpartition(")")[2].split()


def _children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:  # no CONFIG_PROC_CHILDREN: scan
        out = []
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    if int(_stat_fields(d)[1]) == pid:
                        out.append(int(d))
                except (OSError, IndexError, ValueError):
                    pass
        return out


def _probe_argv(pid):
    """The argv of ``pid`` if it is a capability probe child past its ``nice`` exec, else None."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return None
    # before its exec, `nice -n 10 python3 -m ...` is still `nice` at the parent's niceness
    if "camsvc.cameras.v4l2" in argv and os.path.basename(argv[0]) != "nice":
        return argv
    return None


def _is_probe(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"camsvc.cameras.v4l2" in f.read()
    except OSError:
        return False


def probe_nice(timeout=60):
    """One unplug/plug, then camsvc's children sampled from /proc every 20 ms until
    the capability probes it starts have come and gone: their niceness and argv."""
    main = int(unit_info()["props"].get("MainPID", "0"))
    if not main:
        return {"error": "camsvc not running"}
    service_nice = int(_stat_fields(main)[16])
    for name in ("unbind", "bind"):
        w = sysfs_write(name)
        if w["error"]:
            return {"error": w}
        time.sleep(0.3 if name == "unbind" else 0)
    seen = {}
    t0 = time.monotonic()
    last_seen = None
    while time.monotonic() - t0 < timeout:
        probing = False
        for pid in _children(main):
            argv = _probe_argv(pid)
            if argv is None:
                continue
            try:
                nice = int(_stat_fields(pid)[16])
            except (OSError, IndexError, ValueError):
                continue
            if argv:
                probing = True
                seen.setdefault(
                    pid, {"pid": pid, "argv": argv, "nice": nice, "after_s": round(time.monotonic() - t0, 3)}
                )
        if probing:
            last_seen = time.monotonic()
        elif last_seen is not None and time.monotonic() - last_seen > 1.0:
            break
        time.sleep(0.02)
    return {"error": None, "service_pid": main, "service_nice": service_nice, "probes": list(seen.values())}


def image_mean(name):
    """Mean colour of a snapshot in camsvc's snapshots directory, as ``[r, g, b]``."""
    if "/" in name or name.startswith(".") or not name:
        return {"error": "bad name"}
    out = run(
        [
            "/usr/bin/ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            "-i",
            os.path.join("/var/lib/camsvc/snapshots", name),
            "-vf",
            "scale=1:1:flags=area",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "pipe:1",
        ],
        binary=True,
    )
    out["rgb"] = list(bytes.fromhex(out["stdout_head"]))[:3] if out["rc"] == 0 else None
    return out


class Handler(BaseHTTPRequestHandler):
    def _reply(self, obj, code=200):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        u = urlparse(self.path)
        q = parse_qs(u.query)
        if u.path == "/status":
            self._reply(status())
        elif u.path == "/journal":
            unit = q.get("unit", ["camsvc"])[0]
            lines = q.get("lines", ["300"])[0]
            if not unit.replace("-", "").replace(".", "").replace("@", "").isalnum():
                return self._reply({"error": "bad unit"}, 400)
            self._reply(
                run(["journalctl", "-b", "--no-pager", "-o", "short-monotonic", "-u", unit, "-n", str(int(lines))])
            )
        elif u.path == "/realpath":
            path = q["path"][0]
            if not path.startswith("/dev/"):
                return self._reply({"error": "not under /dev"}, 400)
            self._reply({"path": path, "realpath": os.path.realpath(path), "exists": os.path.exists(path)})
        elif u.path == "/image/mean":
            self._reply(image_mean(q["name"][0]))
        elif u.path == "/exists":
            self._reply({"exists": os.path.exists(q["path"][0])})
        elif u.path == "/unit":
            self._reply(unit_info())
        elif u.path == "/boot":
            self._reply(
                {"time": run(["systemd-analyze", "time"]), "blame": run(["systemd-analyze", "blame", "--no-pager"])}
            )
        elif u.path == "/mediamtx/paths":
            self._reply(standin_paths())
        elif u.path == "/ffprobe":
            self._reply(ffprobe(q["name"][0]))
        elif u.path == "/v4l2/nodes":
            self._reply(v4l2_nodes())
        elif u.path in ("/v4l2/ctrl", "/v4l2/ctrls"):
            dev = q.get("device", ["/dev/video0"])[0]
            if dev not in glob.glob("/dev/video*"):
                return self._reply({"error": "no such device"}, 404)
            if u.path == "/v4l2/ctrls":
                return self._reply(run(["v4l2-ctl", "-d", dev, "--list-ctrls-menus"]))
            name = q["name"][0]
            if not name.replace("_", "").isalnum():
                return self._reply({"error": "bad control name"}, 400)
            self._reply(run(["v4l2-ctl", "-d", dev, "-C", name]))
        elif u.path == "/v4l2":
            dev = q.get("device", ["/dev/video0"])[0]
            if dev not in glob.glob("/dev/video*"):
                return self._reply({"error": "no such device"}, 404)
            self._reply(
                {
                    "info": run(["v4l2-ctl", "-d", dev, "--info"]),
                    "formats": run(["v4l2-ctl", "-d", dev, "--list-formats-ext"]),
                }
            )
        else:
            self._reply({"error": "not found"}, 404)

    def do_POST(self):
        u = urlparse(self.path)
        path, q = u.path, parse_qs(u.query)
        if path == "/measure/latency":
            self._reply(
                measure_latency(
                    q["node"],
                    int(q.get("isolated", ["10"])[0]),
                    int(q.get("rapid", ["10"])[0]),
                    float(q.get("gap", ["0.1"])[0]),
                    quiet=q.get("quiet", ["0"])[0] == "1",
                )
            )
        elif path == "/probe/nice":
            self._reply(probe_nice())
        elif path == "/mediamtx/standin/start":
            self._reply(standin_start())
        elif path == "/mediamtx/standin/stop":
            self._reply(run(["systemctl", "stop", "mediamtx-standin"]))
        elif path == "/mediamtx/record":
            self._reply(mediamtx_record(q["name"][0]))
        elif path == "/vivid/replug-held":
            self._reply(replug_held(q["device"][0]))
        elif path == "/vivid/unbind":
            self._reply(sysfs_write("unbind"))
        elif path == "/vivid/bind":
            self._reply(sysfs_write("bind"))
        elif path == "/v4l2/ctrl":
            dev, name, value = q["device"][0], q["name"][0], q["value"][0]
            if (
                dev not in glob.glob("/dev/video*")
                or not name.replace("_", "").isalnum()
                or not value.lstrip("-").isdigit()
            ):
                return self._reply({"error": "bad request"}, 400)
            self._reply(run(["v4l2-ctl", "-d", dev, "-c", f"{name}={value}"]))
        elif path == "/camsvc/restart":
            self._reply(run(["systemctl", "restart", "camsvc"]))
        elif path == "/exec/ffmpeg-probe":
            self._reply(ffmpeg_probe())
        else:
            self._reply({"error": "not found"}, 404)

    def log_message(self, fmt, *args):  # keep the serial console for the service
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=8003)
    ap.add_argument("--listen-udev", action="store_true", help="child mode of /measure/latency")
    ap.add_argument("--listen-ws", nargs=2, metavar=("PORT", "KEY_FILE"), help="child mode of /measure/latency")
    args = ap.parse_args()
    if args.listen_udev or args.listen_ws:
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        # A measuring instrument: woken before the services it measures (it runs for
        # microseconds per event), so its stamps wait for no one's time slice.
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
        except OSError:
            pass
        return listen_udev() if args.listen_udev else listen_ws(int(args.listen_ws[0]), args.listen_ws[1])
    ThreadingHTTPServer(("0.0.0.0", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
