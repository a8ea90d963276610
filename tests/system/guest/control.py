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
  POST /exec/ffmpeg-probe run ffmpeg as camsvc inside the unit's sandbox (see below)

Replies are JSON with guest-side CLOCK_MONOTONIC timings of the action itself.
No arbitrary command execution: every action is a fixed argv.
"""

import argparse
import glob
import json
import os
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
    show = run(["systemctl", "show", "camsvc", "-p",
                "ActiveState,SubState,MainPID,NRestarts,User,ExecMainStartTimestampMonotonic"])
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
    skip = {"Type", "ExecStart", "Restart", "RestartSec", "SyslogIdentifier", "WatchdogSec",
            "NotifyAccess"}
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
    return run(["systemd-run", "--quiet", "--wait", "--pipe", "--collect",
                *sandbox_properties(), "--", *argv], timeout=timeout, binary=binary)


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


def ffmpeg_probe():
    # ffmpeg grabbing a JPEG from the camera and Python importing camsvc's
    # dependencies, both under the service's user, seccomp filter, device ACL
    # and MemoryDenyWriteExecute: what take_snapshot will do.
    nodes = sorted(glob.glob("/dev/video*"))
    grab = sandboxed(["/usr/bin/ffmpeg", "-hide_banner", "-loglevel", "error",
                      "-f", "v4l2", "-i", nodes[0] if nodes else "/dev/video0",
                      "-frames:v", "1", "-f", "mjpeg", "pipe:1"], binary=True)
    py = sandboxed(["/usr/bin/python3", "-c", PY_PROBE])
    return {"ffmpeg": grab, "python": py}


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
            self._reply(run(["journalctl", "-b", "--no-pager", "-o", "short-monotonic",
                             "-u", unit, "-n", str(int(lines))]))
        elif u.path == "/unit":
            self._reply(unit_info())
        elif u.path == "/boot":
            self._reply({"time": run(["systemd-analyze", "time"]),
                         "blame": run(["systemd-analyze", "blame", "--no-pager"])})
        elif u.path == "/v4l2":
            dev = q.get("device", ["/dev/video0"])[0]
            if dev not in glob.glob("/dev/video*"):
                return self._reply({"error": "no such device"}, 404)
            self._reply({"info": run(["v4l2-ctl", "-d", dev, "--info"]),
                         "formats": run(["v4l2-ctl", "-d", dev, "--list-formats-ext"])})
        else:
            self._reply({"error": "not found"}, 404)

    def do_POST(self):
        path = urlparse(self.path).path
        if path == "/vivid/unbind":
            self._reply(sysfs_write("unbind"))
        elif path == "/vivid/bind":
            self._reply(sysfs_write("bind"))
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
