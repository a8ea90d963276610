"""Boot and drive the e2e guest (Debian 12 + vivid + the camsvc .deb) in QEMU.

Used by the pytest fixture in conftest.py and runnable by hand:

    python3 tests/system/vm.py [--env tests/system/cache/current.env] [--keep]
    python3 tests/system/vm.py --bench [--isolated 20 --rapid 20 --gap 0.1]

boots the image built by build_image.sh, waits for the guest's control
listener and for camsvc's WebSocket, prints the forwarded URLs and (with
--keep) stays up until Ctrl-C.

QEMU runs with software emulation only (`-accel tcg`: no KVM on the CI
machines), always under `timeout`, the disk in snapshot mode (the image is never
modified), user-mode networking with `restrict=on` (the guest reaches nothing)
and two forwards bound to the host's 127.0.0.1 only: camsvc's port 8002 and the
control listener's 8003.  The serial console (kernel, systemd and, through
journald's ForwardToConsole, camsvc's own log) goes to a log file.
"""

import argparse
import json
import math
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

GUEST_API_PORT = 8002
GUEST_CONTROL_PORT = 8003


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_env(path):
    env = {}
    with open(path) as f:
        for line in f:
            k, sep, v = line.strip().partition("=")
            if sep:
                env[k] = v
    return env


class GuestVM:
    """One QEMU guest.  Collaborators: the artefacts named in current.env."""

    def __init__(self, env_file, log_path, max_runtime=1500, smp=2, memory_mb=1024):
        self.env = read_env(env_file)
        self.log_path = log_path
        self.max_runtime = max_runtime
        self.smp = smp
        self.memory_mb = memory_mb
        self.api_port = free_port()
        self.control_port = free_port()
        self.proc = None
        self.boot_started = None
        self.timings = {}
        token_file = self.env.get("TOKEN")
        self.token = open(token_file).read().strip() if token_file and os.path.exists(token_file) else None

    @property
    def ws_url(self):
        return f"ws://127.0.0.1:{self.api_port}/ws"

    @property
    def http_base(self):
        return f"http://127.0.0.1:{self.api_port}"

    def start(self):
        fwd = (
            f"hostfwd=tcp:127.0.0.1:{self.api_port}-:{GUEST_API_PORT},"
            f"hostfwd=tcp:127.0.0.1:{self.control_port}-:{GUEST_CONTROL_PORT}"
        )
        argv = [
            "timeout",
            "--signal=KILL",
            str(self.max_runtime),
            "qemu-system-x86_64",
            "-accel",
            "tcg,thread=multi",
            "-cpu",
            "max",
            "-smp",
            str(self.smp),
            "-m",
            str(self.memory_mb),
            "-kernel",
            self.env["KERNEL"],
            "-initrd",
            self.env["INITRD"],
            "-append",
            "console=ttyS0 root=/dev/vda rw quiet systemd.show_status=error net.ifnames=1 mitigations=off",
            "-drive",
            f"file={self.env['IMAGE']},if=virtio,format=raw,snapshot=on",
            "-netdev",
            f"user,id=n0,restrict=on,{fwd}",
            "-device",
            "virtio-net-pci,netdev=n0",
            "-device",
            "virtio-rng-pci",
            "-display",
            "none",
            "-monitor",
            "none",
            "-no-reboot",
            "-serial",
            f"file:{self.log_path}",
        ]
        open(self.log_path, "w").close()  # never read a previous boot's console
        self.boot_started = time.monotonic()
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )

    def stop(self):
        if self.proc and self.proc.poll() is None:
            # snapshot=on: nothing to flush, no orderly shutdown needed.
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def control(self, method, path, timeout=120):
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.control_port}{path}", method=method, data=b"" if method == "POST" else None
        )
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read())

    def serial_tail(self, n=80):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def wait_ready(self, timeout=240):
        """Until the control listener answers and camsvc accepts WebSockets."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive():
                raise RuntimeError(
                    "qemu exited: "
                    + self.proc.stderr.read().decode(errors="replace")
                    + "\n--- serial ---\n"
                    + self.serial_tail()
                )
            try:
                st = self.control("GET", "/status", timeout=5)
                if "control" not in self.timings:
                    self.timings["control"] = time.monotonic() - self.boot_started
                if st["camsvc"] == "active" and self._api_accepts():
                    self.timings["api"] = time.monotonic() - self.boot_started
                    return st
            except (OSError, urllib.error.URLError, ValueError):
                pass
            tail = self.serial_tail(20)
            if "initramfs: cannot mount" in tail or "Kernel panic" in tail:
                raise RuntimeError("guest failed to boot\n--- serial ---\n" + self.serial_tail())
            if time.monotonic() > deadline:
                raise TimeoutError(f"guest not ready after {timeout}s\n--- serial ---\n" + self.serial_tail())
            time.sleep(0.5)

    def _api_accepts(self):
        try:
            with urllib.request.urlopen(self.http_base + "/health/live", timeout=5) as r:
                return r.status == 200
        except urllib.error.HTTPError as e:
            return e.code < 500
        except (OSError, urllib.error.URLError):
            return False


def _pct(xs, q):
    """Nearest-rank percentile (as bench/stats.py)."""
    xs = sorted(xs)
    return xs[max(0, min(len(xs) - 1, int(math.ceil(q / 100 * len(xs))) - 1))]


#: How much later than a notification its udev event may be stamped when _match has to
#: pair them by time (a stamping process can wait ~15 ms for a vCPU under TCG).
STAMP_SLACK = 0.05


def _match(udev, seen, client, node):
    """Pairs (udev change, notification) of one node at one client, and the plugs
    the client never announced.

    All of them notified: matched one to one.  Else each notified change is matched
    with the latest udev change of the same presence that came before it (within
    :data:`STAMP_SLACK`), after the previous match.  The udev changes it
    skips must be whole plug + unplug pairs: a plug whose node was gone before the
    service could read it (camsvc decides from QUERYCAP whether a node is a camera
    before announcing it) and the unplug that followed.  An unannounced unplug, a
    change out of order or one that was never notified fails.
    """
    if [p for _, p in seen] == [p for _, p in udev]:  # all of them: matched one to one
        return [(u, tc) for u, (tc, _) in zip(udev, seen, strict=True)], 0
    pairs, dropped, j = [], 0, 0
    for tc, present in seen:
        # STAMP_SLACK: the udev stamp itself can come late (its process waits for a CPU)
        candidates = [k for k in range(j, len(udev)) if udev[k][1] == present and udev[k][0] <= tc + STAMP_SLACK]
        assert candidates, f"{client} notified {node} {'present' if present else 'gone'} at {tc} with no udev change"
        k = candidates[-1]
        skipped = udev[j:k]
        assert all(p == (i % 2 == 0) for i, (_, p) in enumerate(skipped)), (
            f"{client} missed an unplug of {node}: udev {udev[j : k + 1]}, notified {present} at {tc}"
        )
        dropped += len(skipped) // 2
        pairs.append((udev[k], tc))
        j = k + 1
    assert j == len(udev), f"{client} was not notified of udev's last {len(udev) - j} change(s) of {node}"
    return pairs, dropped


def latency_figures(m):
    """The guest's /measure/latency reply -> figures, raising AssertionError when a
    client missed a transition or saw them out of order.

    A client's share of one change is notification time - udev event time (both
    CLOCK_MONOTONIC in the guest).  Isolated cycles: every udev presence change is
    notified, in order.  Rapid cycles (each write ``gap`` s after udev reported the
    previous one): the same, except that a plug whose node was gone before the
    service read it may be missing with its unplug (see :func:`_match`; counted as
    ``unannounced_plugs``).  An add udev itself could not identify as a capture node
    (``unidentified_adds``) is no presence change, nor is the remove after it.
    Returns ``{client: {phase: {unplug|plug: {p50, p90, max, n}}}, "ratio_p50": ...}``
    in ms, phases ``isolated`` and ``rapid``.
    """
    tr, start = m["transitions"], m["rapid_start"]
    shares, unannounced = {}, {}
    for node in m["nodes"]:
        udev = tr["udev"][node]
        want = [p for _, p in udev]
        assert want == [i % 2 == 1 for i in range(len(want))], f"udev's changes of {node} do not alternate: {want}"
        iso = [u for u in udev if u[0] < start]
        assert len(iso) == 2 * m["isolated"], f"udev saw {len(iso)} isolated changes of {node}"
        for client in ("camsvc", "broadcaster"):
            seen = tr[client][node]
            iso_seen = [c for c in seen if c[0] < start]
            assert [p for _, p in iso_seen] == [p for _, p in iso], (
                f"{client} notified {len(iso_seen)} of udev's {len(iso)} isolated changes of {node}, in order"
            )
            pairs, dropped = _match(udev, seen, client, node)
            unannounced[client] = unannounced.get(client, 0) + dropped
            for (tu, present), tc in pairs:
                phase = "isolated" if tu < start else "rapid"
                kind = "plug" if present else "unplug"
                shares.setdefault(client, {}).setdefault(phase, {}).setdefault(kind, []).append((tc - tu) * 1000)
    out = {}
    for client, phases in shares.items():
        out[client] = {
            phase: {
                kind: {
                    "p50": round(_pct(xs, 50), 1),
                    "p90": round(_pct(xs, 90), 1),
                    "max": round(max(xs), 1),
                    "n": len(xs),
                }
                for kind, xs in kinds.items()
            }
            for phase, kinds in phases.items()
        }
    out["ratio_p50"] = {
        f"{phase}_{kind}": round(
            out["camsvc"][phase][kind]["p50"] / max(out["broadcaster"][phase][kind]["p50"], 0.1), 1
        )
        for phase in out["camsvc"]
        for kind in out["camsvc"][phase]
        if kind in out["broadcaster"].get(phase, {})
    }
    out["unannounced_plugs"] = unannounced
    out["unidentified_adds"] = m.get("unidentified_adds")
    rapid = [w for w in m.get("writes", []) if w[0] >= start]
    if len(rapid) > 1:
        gaps = [(b[0] - a[0]) * 1000 for a, b in zip(rapid, rapid[1:], strict=False)]
        out["rapid_write_interval_ms_p50"] = round(_pct(gaps, 50), 1)
    return out


def bench(vm, isolated, rapid, gap, quiet=True):
    """Both services' share of udev -> notification, in one guest run (``quiet``:
    each isolated change once camsvc's capability probes of the last are done)."""
    nodes = vm.control("GET", "/v4l2/nodes")
    capture = sorted(
        n
        for n, caps in nodes.items()
        if any(c.startswith("Video Capture") for c in caps) and "Touch Device" not in caps
    )
    q = urllib.parse.urlencode(
        [("node", n) for n in capture] + [("isolated", isolated), ("rapid", rapid), ("gap", gap), ("quiet", int(quiet))]
    )
    m = vm.control("POST", "/measure/latency?" + q, timeout=1200)
    raw = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cache", "latency-bench.json")
    with open(raw, "w") as f:
        json.dump(m, f)  # the raw stamps, for a failure's diagnosis
    if m["error"]:
        raise RuntimeError(f"{m['error']} (raw stamps in {raw})")
    return latency_figures(m)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--env", default=os.path.join(here, "cache", "current.env"))
    ap.add_argument("--log", default=os.path.join(here, "cache", "serial.log"))
    ap.add_argument("--keep", action="store_true")
    ap.add_argument(
        "--bench",
        action="store_true",
        help="measure udev event -> notification, camsvc vs bench/broadcaster.py, in the guest; print the figures",
    )
    ap.add_argument("--isolated", type=int, default=20, help="--bench: isolated unplug/plug cycles")
    ap.add_argument("--rapid", type=int, default=20, help="--bench: cycles with sysfs writes --gap s apart")
    ap.add_argument("--gap", type=float, default=0.1)
    args = ap.parse_args()
    vm = GuestVM(args.env, args.log)
    vm.start()
    try:
        st = vm.wait_ready()
        print(
            json.dumps(
                {
                    "status": st,
                    "timings": vm.timings,
                    "ws": vm.ws_url,
                    "control": f"http://127.0.0.1:{vm.control_port}",
                },
                indent=2,
            )
        )
        if args.bench:
            t0 = time.monotonic()
            figures = bench(vm, args.isolated, args.rapid, args.gap)
            figures["duration_s"] = round(time.monotonic() - t0, 1)
            figures["load_average"] = os.getloadavg()
            print(json.dumps(figures, indent=2))
        if args.keep:
            print("Ctrl-C stops the guest")
            while vm.alive():
                time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        vm.stop()


if __name__ == "__main__":
    main()
