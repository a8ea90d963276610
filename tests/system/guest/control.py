"""Command channel of the e2e guest (test image only, never in the package).

A few fixed actions the host-side test needs inside the guest, over plain HTTP
on a port the host reaches only through QEMU's loopback-bound forward:

  GET  /status            vivid bound?, /dev/video* nodes, camsvc unit state
  POST /vivid/unbind      simulated unplug (write vivid.0 to the driver's unbind)
  POST /vivid/bind        simulated plug
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
  POST /mediamtx/record?name=N
                          a recording written as MediaMTX's user would
  POST /measure/cycles?camera_id=C&n=N
                          N unplug/plug cycles timed in the guest by a local
                          WebSocket client: sysfs write -> camera_status_update

Replies are JSON with guest-side CLOCK_MONOTONIC timings of the action itself.
No arbitrary command execution: every action is a fixed argv.  Stdlib only
(the guest has Debian's python3 and camsvc's dependencies, nothing else).
"""

import argparse
import base64
import glob
import json
import os
import socket
import struct
import subprocess
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


def measure_cycles(camera_id, n, timeout=30):
    """n unplug/plug cycles timed in the guest: sysfs write -> notification."""
    ws = WsClient()
    try:
        if os.path.exists(TOKEN_FILE):
            reply = ws.call("authenticate", auth_token=open(TOKEN_FILE).read().strip())
            if "error" in reply:
                return {"error": reply["error"]}
        ws.call("get_camera_list")
        unplug, plug = [], []
        for _ in range(n):
            t0 = time.monotonic()
            w = sysfs_write("unbind")
            if w["error"]:
                return {"error": w, "unplug": unplug, "plug": plug}
            unplug.append(ws.wait_status(camera_id, "DISCONNECTED", timeout) - t0)
            t0 = time.monotonic()
            w = sysfs_write("bind")
            if w["error"]:
                return {"error": w, "unplug": unplug, "plug": plug}
            plug.append(ws.wait_status(camera_id, "CONNECTED", timeout) - t0)
        return {"error": None, "unplug": unplug, "plug": plug}
    except (TimeoutError, ConnectionError, OSError) as e:
        return {"error": f"{type(e).__name__}: {e}", "unplug": unplug, "plug": plug}
    finally:
        ws.close()


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
        elif u.path == "/exists":
            self._reply({"exists": os.path.exists(q["path"][0])})
        elif u.path == "/unit":
            self._reply(unit_info())
        elif u.path == "/boot":
            self._reply(
                {"time": run(["systemd-analyze", "time"]), "blame": run(["systemd-analyze", "blame", "--no-pager"])}
            )
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
        if path == "/measure/cycles":
            self._reply(measure_cycles(q["camera_id"][0], int(q.get("n", ["1"])[0])))
        elif path == "/mediamtx/record":
            self._reply(mediamtx_record(q["name"][0]))
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
    args = ap.parse_args()
    ThreadingHTTPServer(("0.0.0.0", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
