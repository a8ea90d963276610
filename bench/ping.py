"""JSON-RPC ``ping`` throughput and idle memory of camsvc, as ratios to the floor of its stack.

Owns one measurement, not a camsvc feature.  In one run it starts two servers with the same
interpreter and libraries, both run by twistd's runner (``twisted.scripts.twistd.runApp``,
``-n``) on loopback, neither paying twistd's plugin scan:

* **camsvc** (``tests.support.server.ServiceProcess``: ``python -m camsvc -n camsvc`` as the
  unit starts it, i.e. twistd with camsvc's plugin as its only subcommand; no auth, discovery
  and MediaMTX off, log level warn), unless ``--url`` points at one already running;
* **the floor** (``bench/floor.tac``, ``twistd -n -y``: a ``.tac`` file names no subcommand, so
  twistd scans no plugins): a minimal JSON-RPC ping server on the same Twisted + Autobahn
  (twisted.web ``Site`` + ``WebSocketResource``, ``json``, ``sendMessage``, Autobahn's defaults:
  in the venv that loads its NVX helpers, which camsvc does not), what camsvc is built from;
  ``--no-floor`` skips it.

and drives each with two clients, interleaved (floor, camsvc, floor, camsvc, ... ``--rounds``
times; the figure is the median, the ratio is camsvc's median over the floor's):

* **websockets** — the ``websockets`` library's asyncio client (masked frames, no compression),
  what a real client costs the server: ``--connections`` (50) connections x ``--requests`` (1,000)
  sequential pings each, all at once; then ``--sequential`` (5,000) pings on one connection;
* **raw** — plain asyncio protocols speaking RFC 6455 by hand (pre-built frames with mask key 0,
  replies counted from frame headers, every reply checked once), so cheap that the server is
  nearly all that is measured: one connection doing sequential round trips, then N connections
  each with one request in flight, ``--seconds`` each.

For every phase it reads the server's CPU time (``/proc/PID/stat``): CPU microseconds per request
and the requests per second that would make one core busy, steadier than req/s on a shared
machine.  ``VmRSS`` of each server is read after ``--idle`` seconds idle and after the load;
camsvc's modules are byte-compiled first, so it starts from byte code as installed
(:func:`byte_compile_tree`).

    .venv/bin/python bench/ping.py [--rounds 3] [--client websockets|raw|both] [--json]
    make bench-ping
    .venv/bin/python bench/ping.py --engine       # in-process engine and metrics-hook cost
    .venv/bin/python bench/ping.py --profile      # cProfile of camsvc under the websockets load
    .venv/bin/python bench/ping.py --memory 3 --idle 5   # only idle VmRSS, 3 starts each, medians
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

REQUEST = b'{"jsonrpc":"2.0","method":"ping","id":1}'
EXPECTED = b'{"jsonrpc":"2.0","result":"pong","id":1}'


def client_frame(payload: bytes) -> bytes:
    """A masked text frame (mask key 0: a valid frame whose payload needs no XOR)."""
    assert len(payload) < 126
    return bytes([0x81, 0x80 | len(payload)]) + b"\0\0\0\0" + payload


FRAME = client_frame(REQUEST)


class PingClient(asyncio.Protocol):
    """One WebSocket connection keeping ``window`` pings in flight."""

    def __init__(self, host: str, path: str, window: int, done: asyncio.Future) -> None:
        self.host, self.path, self.window = host, path, window
        self.open = done
        self.buf = bytearray()
        self.upgraded = False
        self.replies = 0
        self.running = False
        self.checked = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            (
                f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )

    def start(self) -> None:
        self.running = True
        self.transport.write(FRAME * self.window)

    def stop(self) -> None:
        self.running = False

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.open.set_exception(RuntimeError(bytes(buf[:200]).decode(errors="replace")))
                return
            del buf[: end + 4]
            self.upgraded = True
            self.open.set_result(self)
        count = 0
        pos = 0
        n = len(buf)
        while n - pos >= 2:
            length = buf[pos + 1] & 0x7F
            head = 2
            if length == 126:
                if n - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                head = 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                head = 10
            if n - pos < head + length:
                break
            if buf[pos] & 0x0F == 1:
                if not self.checked:
                    payload = bytes(buf[pos + head : pos + head + length])
                    if payload != EXPECTED:
                        raise SystemExit(f"unexpected reply: {payload!r}")
                    self.checked = True
                count += 1
            pos += head + length
        if pos:
            del buf[:pos]
        if count:
            self.replies += count
            if self.running:
                self.transport.write(FRAME * count)


async def connect(url: str, window: int) -> PingClient:
    parsed = urlparse(url)
    loop = asyncio.get_running_loop()
    opened: asyncio.Future = loop.create_future()
    await loop.create_connection(
        lambda: PingClient(parsed.netloc, parsed.path or "/", window, opened), parsed.hostname, parsed.port
    )
    return await asyncio.wait_for(opened, 10)


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (``/proc/PID/stat``), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_phase(url: str, connections: int, seconds: float, window: int = 1, pid: int | None = None) -> dict:
    clients = [await connect(url, window) for _ in range(connections)]
    for c in clients:  # warm-up
        c.start()
    await asyncio.sleep(min(1.0, seconds / 5))
    base = sum(c.replies for c in clients)
    cpu0 = cpu_seconds(pid) if pid else 0.0
    t0 = time.perf_counter()
    await asyncio.sleep(seconds)
    got = sum(c.replies for c in clients) - base
    elapsed = time.perf_counter() - t0
    cpu = (cpu_seconds(pid) - cpu0) if pid else None
    for c in clients:
        c.stop()
    await asyncio.sleep(0.2)
    for c in clients:
        c.transport.close()
    out = {
        "connections": connections,
        "window": window,
        "seconds": round(elapsed, 3),
        "replies": got,
        "per_second": round(got / elapsed),
    }
    if cpu is not None and got:
        # Server CPU per request, and what a core of its own would sustain: a figure
        # that other load on the machine does not distort as much as req/s does.
        out["server_cpu_us_per_request"] = round(cpu / got * 1e6, 1)
        out["server_cpu_share"] = round(cpu / elapsed, 2)
        out["per_second_per_server_core"] = round(got / cpu) if cpu else None
    return out


def engine_cost(rounds: int = 200_000) -> dict:
    """In-process: microseconds per ``ping`` through the JSON-RPC engine of a fully built App,
    with and without the metrics hook (best of 5, so other load on the machine matters less)."""
    import timeit

    from twisted.internet.testing import MemoryReactorClock

    from camsvc.config import parse_config_dict
    from camsvc.tap import build

    tmp = tempfile.mkdtemp(prefix="camsvc-bench-")
    config = parse_config_dict(
        {
            "server": {"host": "127.0.0.1"},
            "auth": {"required": False},
            "mediamtx": {"enabled": False},
            "discovery": {"enabled": False},
            "storage": {"state_dir": tmp, "recordings_dir": tmp, "snapshots_dir": tmp},
        }
    )
    app = build(config, MemoryReactorClock())
    session = app.make_session("c1", "bench", "127.0.0.1")
    payload = REQUEST
    handle = app.engine.handle
    hook = app.engine.observe

    def once() -> float:
        return timeit.timeit(lambda: handle(session, payload), number=rounds // 10) / (rounds // 10)

    timings: dict = {True: [], False: []}
    for _ in range(10):  # interleaved, best of each
        for on in (True, False):
            app.engine.observe = hook if on else None
            timings[on].append(once())
    app.engine.observe = hook
    with_hook, without = min(timings[True]), min(timings[False])
    # The hook alone (a counter and a histogram update), timed directly: far below the noise above.
    n = 200_000
    alone = min(timeit.repeat(lambda: hook("ping", "ok", 0.00012), number=n, repeat=5)) / n
    return {
        "engine_us_per_ping": round(with_hook * 1e6, 2),
        "engine_us_per_ping_without_metrics": round(without * 1e6, 2),
        "metrics_hook_us": round(alone * 1e6, 3),
    }


def vm_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def _ws_connect(url: str):
    """The websockets library's client: masked frames, no compression (the library's defaults
    otherwise).  websockets >= 13 has ``websockets.asyncio``; Debian 12's 10.4 the legacy client."""
    try:
        from websockets.asyncio.client import connect
    except ImportError:  # websockets < 13 (Debian 12)
        from websockets.client import connect
    return connect(url, compression=None, max_size=2**20, ping_interval=None)


async def ws_phase(url: str, connections: int, requests: int, pid: int | None = None) -> dict:
    """``connections`` websockets clients, each sending ``requests`` pings one after the other."""
    text = REQUEST.decode()
    expected = EXPECTED.decode()
    conns = [await _ws_connect(url) for _ in range(connections)]

    async def loop(ws, n: int) -> str:
        reply = ""
        for _ in range(n):
            await ws.send(text)
            reply = await ws.recv()
        return reply

    await asyncio.gather(*(loop(ws, max(20, requests // 20)) for ws in conns))  # warm-up
    cpu0 = cpu_seconds(pid) if pid else 0.0
    own0 = time.process_time()
    t0 = time.perf_counter()
    last = await asyncio.gather(*(loop(ws, requests) for ws in conns))
    elapsed = time.perf_counter() - t0
    own = time.process_time() - own0
    cpu = (cpu_seconds(pid) - cpu0) if pid else None
    await asyncio.gather(*(ws.close() for ws in conns))
    if any(r != expected for r in last):
        raise SystemExit(f"unexpected reply: {last[0]!r}")
    got = connections * requests
    out = {
        "connections": connections,
        "seconds": round(elapsed, 3),
        "replies": got,
        "per_second": round(got / elapsed),
        "client_cpu_share": round(own / elapsed, 2),
    }
    if cpu is not None:
        out["server_cpu_us_per_request"] = round(cpu / got * 1e6, 1)
        out["server_cpu_share"] = round(cpu / elapsed, 2)
        out["per_second_per_server_core"] = round(got / cpu) if cpu else None
    return out


#: Starts twistd the way camsvc's own start does without TLS: pyOpenSSL refused before the
#: reactor is imported (camsvc.ops.lean), so both servers load the same libraries.
FLOOR_TWISTD = (
    "import sys; from camsvc.ops.lean import _RefuseTLSStack; sys.meta_path.insert(0, _RefuseTLSStack()); "
    "from twisted.scripts.twistd import run; run()"
)


class FloorProcess:
    """``bench/floor.tac`` under ``twistd -n -y`` with this interpreter (no plugin scan: no subcommand)."""

    def __init__(self) -> None:
        import socket
        import subprocess

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        root = Path(__file__).resolve().parents[1]
        env = dict(os.environ, FLOOR_PORT=str(self.port), PYTHONPATH=str(root))
        self.tmp = tempfile.TemporaryDirectory(prefix="camsvc-floor-")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                FLOOR_TWISTD,
                "-n",
                "--pidfile=",
                "-l",
                "-",
                "-y",
                str(root / "bench" / "floor.tac"),
            ],
            cwd=self.tmp.name,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"ws://127.0.0.1:{self.port}/ws"
        import urllib.request

        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health/live", timeout=1).read()
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise SystemExit("the floor server did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)
        self.tmp.cleanup()


def profile(args: argparse.Namespace) -> None:
    """camsvc under ``twistd --profile`` (cProfile) through the websockets phases; prints the top."""
    import pstats
    import signal
    import subprocess
    import urllib.request

    from tests.support.server import TWISTD, ServiceProcess

    tmp = tempfile.TemporaryDirectory(prefix="camsvc-profile-")
    svc = ServiceProcess(Path(tmp.name), {"logging": {"level": "warn"}})
    stats = Path(tmp.name) / "camsvc.prof"
    proc = subprocess.Popen(
        [sys.executable, "-c", TWISTD, "-n", "--pidfile=", f"--profile={stats}", "--profiler=cprofile", "--savestats"]
        + ["camsvc", "--config", str(svc.config_path)],
        cwd=tmp.name,
        env=svc.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(svc.http + "/health/live", timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("camsvc did not start") from None
                time.sleep(0.05)
        for connections, requests in ((args.connections, args.requests), (1, args.sequential)):
            print(asyncio.run(ws_phase(svc.url, connections, requests, proc.pid)))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    pstats.Stats(str(stats)).sort_stats("tottime").print_stats(30)


def soak(servers: dict, seconds: float, connections: int) -> dict:
    """Sustained load on each server in turn, 10 s at a time: VmRSS after each (MiB) and requests."""
    out: dict = {}
    for name, (url, pid) in servers.items():
        if not pid:
            continue
        samples, total, t0 = [round(vm_rss_kib(pid) / 1024, 2)], 0, time.monotonic()
        while time.monotonic() - t0 < seconds:
            phase = asyncio.run(ws_phase(url, connections, 2000, pid))
            total += phase["replies"]
            samples.append(round(vm_rss_kib(pid) / 1024, 2))
        out[name] = {"rss_mib": samples, "requests": total, "seconds": round(time.monotonic() - t0, 1)}
    return out


def byte_compile_tree() -> None:
    """Byte-compile this tree's camsvc (and its twistd plugin) for this interpreter.

    Installed camsvc runs from byte code as its libraries do: the .deb's postinst compiles
    it (dh_python3's py3compile), pip compiles at install.  A tree run with
    ``PYTHONDONTWRITEBYTECODE`` (or ``-B`` without a ``__pycache__``) compiles its ~80
    modules from source at every start, and the compiler's freed memory stays in the heap
    (+0.3 MiB idle on Debian 12, 3 December): that is the benchmark's artefact, not camsvc's
    share, so both servers start from byte code."""
    import compileall

    root = Path(__file__).resolve().parents[1]
    for folder in (root / "camsvc", root / "twisted" / "plugins"):
        compileall.compile_dir(str(folder), quiet=1)


def idle_memory(args: argparse.Namespace) -> None:
    """The floor and camsvc started ``args.memory`` times each, one after the other; VmRSS,
    RssAnon and RssFile after ``args.idle`` seconds idle; medians and camsvc's own share."""
    from tests.support.server import ServiceProcess

    fields = ("VmRSS", "RssAnon", "RssFile")
    samples: dict = {"floor": [], "camsvc": []}
    load0 = os.getloadavg()[0]
    for _ in range(args.memory):
        for name in samples:
            tmp = tempfile.TemporaryDirectory(prefix="camsvc-bench-")
            server = (
                FloorProcess()
                if name == "floor"
                else ServiceProcess(Path(tmp.name), {"logging": {"level": "warn"}}).start()
            )
            try:
                time.sleep(args.idle)
                status = Path(f"/proc/{server.proc.pid}/status").read_text().splitlines()
                samples[name].append(
                    {k: int(v.split()[0]) for k, _, v in (line.partition(":") for line in status) if k in fields}
                )
            finally:
                server.stop()
                tmp.cleanup()
    median = {name: {k: _median([s[k] for s in runs]) / 1024 for k in fields} for name, runs in samples.items()}
    share = median["camsvc"]["VmRSS"] - median["floor"]["VmRSS"]
    if args.json:
        print(
            json.dumps(
                {"load": [load0, os.getloadavg()[0]], "median_mib": median, "share_mib": share, "samples_kib": samples}
            )
        )
        return
    print(
        f"{sys.executable}: median of {args.memory} starts each, {args.idle:g} s idle, load {load0:.1f} -> {os.getloadavg()[0]:.1f}"
    )
    for name, m in median.items():
        runs = ", ".join(f"{s['VmRSS'] / 1024:.2f}" for s in samples[name])
        print(f"{name:7s} " + "  ".join(f"{k} {v:.2f} MiB" for k, v in m.items()) + f"   (VmRSS: {runs})")
    print(f"camsvc's own idle share (camsvc - floor): {share:+.2f} MiB")


def _median(values: list) -> float:
    values = sorted(values)
    n = len(values)
    return values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2


def _load() -> str:
    return "load %.1f" % os.getloadavg()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="ws:// URL of a running camsvc (default: start one)")
    parser.add_argument("--no-floor", action="store_true", help="do not start the floor server")
    parser.add_argument("--client", choices=("websockets", "raw", "both"), default="both")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per phase and server (median)")
    parser.add_argument("--seconds", type=float, default=3.0, help="raw client: measurement time per phase")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--requests", type=int, default=1000, help="websockets client: pings per connection")
    parser.add_argument("--sequential", type=int, default=5000, help="websockets client: pings on one connection")
    parser.add_argument("--idle", type=float, default=3.0, help="seconds idle before reading VmRSS")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--engine", action="store_true", help="only the in-process engine cost per ping")
    parser.add_argument(
        "--soak",
        type=float,
        default=0.0,
        help="then this many seconds more of 50-connection websockets load, VmRSS every 10 s",
    )
    parser.add_argument("--profile", action="store_true", help="cProfile camsvc under the websockets client's load")
    parser.add_argument(
        "--memory",
        type=int,
        metavar="N",
        help="only idle memory: start the floor and camsvc N times (interleaved), VmRSS after --idle s, medians",
    )
    args = parser.parse_args()
    if not args.engine:
        byte_compile_tree()
    if args.memory:
        idle_memory(args)
        return
    if args.profile:
        profile(args)
        return
    if args.engine:
        print(json.dumps(engine_cost()) if args.json else engine_cost())
        return

    servers: dict = {}
    procs: list = []
    report: dict = {"load_before": os.getloadavg()[0]}
    try:
        if not args.no_floor:
            floor = FloorProcess()
            procs.append(floor)
            servers["floor"] = (floor.url, floor.proc.pid)
        if args.url is None:
            from tests.support.server import ServiceProcess

            tmp = tempfile.TemporaryDirectory(prefix="camsvc-bench-")
            camsvc = ServiceProcess(Path(tmp.name), {"logging": {"level": "warn"}}).start()
            procs.append(camsvc)
            servers["camsvc"] = (camsvc.url, camsvc.proc.pid)
        else:
            servers["camsvc"] = (args.url, None)
        time.sleep(args.idle)
        for name, (_, pid) in servers.items():
            if pid:
                report.setdefault(name, {})["idle_rss_kib"] = vm_rss_kib(pid)

        phases = []
        if args.client in ("websockets", "both"):
            phases += [
                ("websockets_many", lambda url, pid: ws_phase(url, args.connections, args.requests, pid)),
                ("websockets_one", lambda url, pid: ws_phase(url, 1, args.sequential, pid)),
            ]
        if args.client in ("raw", "both"):
            phases += [
                ("raw_many", lambda url, pid: run_phase(url, args.connections, args.seconds, pid=pid)),
                ("raw_one", lambda url, pid: run_phase(url, 1, args.seconds, pid=pid)),
            ]
        for phase, run in phases:
            for _ in range(args.rounds):
                for name, (url, pid) in servers.items():
                    result = asyncio.run(run(url, pid))
                    result["load"] = os.getloadavg()[0]
                    report.setdefault(name, {}).setdefault(phase, []).append(result)
        for name, (_, pid) in servers.items():
            if pid:
                report[name]["rss_after_load_kib"] = vm_rss_kib(pid)
        if args.soak:
            report["soak"] = soak(servers, args.soak, args.connections)
    finally:
        for proc in procs:
            proc.stop()
    report["load_after"] = os.getloadavg()[0]

    for name in servers:
        for phase, _ in phases:
            runs = report[name][phase]
            report[name][phase + "_median"] = {
                key: _median([r[key] for r in runs])
                for key in ("per_second", "server_cpu_us_per_request")
                if all(r.get(key) is not None for r in runs)
            }
    if "floor" in servers and "camsvc" in servers:
        ratios = report["ratio"] = {}
        for phase, _ in phases:
            c, f = report["camsvc"][phase + "_median"], report["floor"][phase + "_median"]
            ratios[phase] = round(c["per_second"] / f["per_second"], 3)
            if "server_cpu_us_per_request" in c and "server_cpu_us_per_request" in f:
                ratios[phase + "_cpu"] = round(f["server_cpu_us_per_request"] / c["server_cpu_us_per_request"], 3)
        if "idle_rss_kib" in report["camsvc"]:
            ratios["idle_share_mib"] = round(
                (report["camsvc"]["idle_rss_kib"] - report["floor"]["idle_rss_kib"]) / 1024, 2
            )
    if args.json:
        print(json.dumps(report))
        return

    print(
        f"load average {report['load_before']:.1f} before, {report['load_after']:.1f} after; "
        f"median of {args.rounds}, servers interleaved"
    )
    labels = {
        "websockets_many": f"websockets, {args.connections} conns",
        "websockets_one": "websockets, 1 conn",
        "raw_many": f"raw, {args.connections} conns",
        "raw_one": "raw, 1 conn",
    }
    for phase, _ in phases:
        cells = []
        for name in servers:
            m = report[name][phase + "_median"]
            cell = f"{name} {m['per_second']:>6.0f}/s"
            if "server_cpu_us_per_request" in m:
                cell += f" ({m['server_cpu_us_per_request']:.1f} us CPU)"
            if "client_cpu_share" in report[name][phase][0]:
                share = _median([r["client_cpu_share"] for r in report[name][phase]])
                cell += f" [client {share:.0%} of a core]"
            cells.append(cell)
        line = f"{labels[phase] + ':':<24} " + "  ".join(cells)
        if "ratio" in report:
            line += f"  camsvc/floor {report['ratio'][phase]:.2f}"
            if phase + "_cpu" in report["ratio"]:
                line += f" (CPU {report['ratio'][phase + '_cpu']:.2f})"
        print(line)
    for name in servers:
        if "idle_rss_kib" in report[name]:
            print(
                f"{name} VmRSS: {report[name]['idle_rss_kib'] / 1024:.1f} MiB idle, "
                f"{report[name]['rss_after_load_kib'] / 1024:.1f} MiB after the load"
            )
    for name, run in report.get("soak", {}).items():
        print(f"{name} soak: {run['requests']} requests in {run['seconds']} s, VmRSS MiB: {run['rss_mib']}")
    if "ratio" in report and "idle_share_mib" in report["ratio"]:
        print(f"camsvc's own idle share (camsvc - floor): {report['ratio']['idle_share_mib']:+.2f} MiB")


if __name__ == "__main__":
    main()
