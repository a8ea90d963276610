"""pyOpenSSL stays unloaded when nothing needs TLS (a memory optimisation), and loads when something does."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from camsvc.config import parse_config_dict
from camsvc.ops.lean import tls_needed
from tests.support.server import ROOT


def run_probe(*args: str, cwd=None) -> str:
    """``python -c``/``-m`` ``args`` in a fresh interpreter with camsvc importable: its stdout
    (the probes print their finding last); a failed probe fails the test with its stderr."""
    out = subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def last_line(stdout: str) -> str:
    return stdout.strip().splitlines()[-1]


def service_config(tmp_path, server: str, extra: str = "discovery: {enabled: false}\nmediamtx: {enabled: false}\n"):
    """A camsvc configuration in ``tmp_path`` (no auth, storage in ``tmp_path``)."""
    config = tmp_path / "c.yaml"
    config.write_text(
        f"server: {{{server}}}\nauth: {{required: false}}\n"
        f"storage: {{state_dir: {tmp_path}, recordings_dir: {tmp_path}/r, snapshots_dir: {tmp_path}/s}}\n" + extra
    )
    return config


# The service's own start path (``python3 -m camsvc``): twistd's plugin scan would regenerate
# dropin.cache on a fresh tree and import every plugin, pyOpenSSL's users among them.
PROBE = """
import sys
from camsvc.__main__ import ServerOptions
options = ServerOptions()
options.parseOptions(["-n", "--pidfile=", "camsvc", "--config", sys.argv[1]])
from twisted.internet import reactor
from camsvc.tap import makeService
makeService(options.subOptions)
import twisted.internet.tcp, twisted.web.client
print("OpenSSL" in sys.modules)
"""


@pytest.mark.parametrize(
    "extra, loaded",
    [
        ("", False),
        ("mediamtx: {api_url: 'https://mtx.example:9997'}\n", True),
    ],
)
def test_tls_stack_loaded_only_when_needed(tmp_path, extra, loaded):
    config = service_config(tmp_path, "host: 127.0.0.1, port: 8002", "discovery: {enabled: false}\n" + extra)
    stdout = run_probe("-c", PROBE, str(config), cwd=tmp_path)
    assert last_line(stdout) == str(loaded)


def test_tls_needed():
    assert not tls_needed(parse_config_dict({}))
    assert tls_needed(parse_config_dict({"server": {"tls": {"cert": "/c", "key": "/k"}}}))
    assert tls_needed(parse_config_dict({"mediamtx": {"api_url": "https://x:9997"}}))


def test_trim_heap_returns_freed_heap_to_the_kernel():
    """malloc_trim after freeing a few MB of small blocks: the process's RSS drops."""
    script = (
        "import sys\n"
        "from camsvc.ops.lean import trim_heap\n"
        "def rss():\n"
        "    return int([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1])\n"
        "blocks = [bytearray(1000) for _ in range(20000)]  # ~20 MB of glibc heap (not pymalloc)\n"
        "keep = bytearray(1000)  # something allocated after them, so the heap top is not free\n"
        "del blocks\n"
        "before = rss()\n"
        "assert trim_heap()\n"
        "print(before - rss())\n"
    )
    stdout = run_probe("-c", script)
    assert int(stdout) > 5000, stdout  # KiB given back


NVX_PROBE = """
import sys
from camsvc.__main__ import ServerOptions
options = ServerOptions()
options.parseOptions(["-n", "--pidfile=", "camsvc", "--config", sys.argv[1]])
from twisted.internet import reactor
from camsvc.tap import makeService
makeService(options.subOptions)
import autobahn.websocket.protocol as p
import autobahn.websocket
HAS_NVX = getattr(autobahn.websocket, "HAS_NVX", False)  # Autobahn < 22.10 (Debian 12) has no NVX
print(HAS_NVX, "pycparser" in sys.modules, p.create_xor_masker.__name__, "treq" in sys.modules)
"""


def test_autobahn_native_helpers_not_loaded_and_camsvc_masker_in_their_place(tmp_path):
    """Started as the unit starts it (``python3 -m camsvc``), Autobahn's NVX (CFFI, pycparser at import) stays unloaded, and where
    Autobahn would fall back to its pure-Python masker it gets camsvc's; without the MediaMTX
    integration treq is not loaded."""
    config = service_config(tmp_path, "host: 127.0.0.1, port: 8003")
    stdout = run_probe("-c", NVX_PROBE, str(config), cwd=tmp_path)
    has_nvx, pycparser, masker, treq = last_line(stdout).split()
    assert has_nvx == "False" and pycparser == "False"
    assert treq == "False"  # mediamtx.enabled: false, so no HTTP client stack either
    import autobahn.websocket.xormasker as xm

    native = getattr(xm.create_xor_masker, "__module__", "") != "autobahn.websocket.xormasker"
    # Debian's Autobahn masks with wsaccel (native, kept); the venv's would fall back to pure Python.
    assert masker == ("createXorMasker" if native and "wsaccel" in xm.create_xor_masker.__module__ else "_Masker")


def test_schedule_trims_runs_first_then_every_period(monkeypatch):
    from twisted.internet.task import Clock

    from camsvc.ops import lean

    calls = []
    monkeypatch.setattr(lean, "trim_heap", lambda: calls.append(1) or True)
    clock = Clock()
    loop = lean.schedule_trims(clock, first=2.0, every=60.0)
    clock.advance(1.9)
    assert calls == []
    clock.advance(0.1)
    assert len(calls) == 1
    clock.advance(60)
    clock.advance(60)
    assert len(calls) == 3
    loop.stop()


IDLE_PROBE = """
import json, sys
from camsvc.__main__ import ServerOptions
import twisted.plugin

def no_scan(*args, **kwargs):
    raise AssertionError("twistd's plugin scan ran")

twisted.plugin.getPlugins = no_scan
options = ServerOptions()
options.parseOptions(["-n", "--pidfile=", "camsvc", "--config", sys.argv[1]])
assert list(options.loadedPlugins) == ["camsvc"], options.loadedPlugins
from twisted.internet import reactor
from camsvc.tap import makeService
service = makeService(options.subOptions)
reactor.callWhenRunning(service.startService)
reactor.callLater(0.5, reactor.stop)
reactor.run()
# A module camsvc.common.lazy deferred is in sys.modules before its body runs: not loaded yet.
print(json.dumps(sorted(m for m, mod in sys.modules.items() if type(mod).__name__ != "_LazyModule")))
"""

#: What an idle camsvc started as the unit starts it does not load (docs/performance.md,
#: "Memory: camsvc's own idle share"): twistd's plugin scan (every dropin's interfaces),
#: PyYAML after the configuration is parsed, twisted.web.static (the system's MIME types)
#: before a page or a download is asked for; with discovery.enabled false the discovery chain
#: (camsvc.cameras.component's null object instead); camera controls and the V4L2 bindings
#: before the first camera (camsvc.cameras.component.ControlsOnFirstUse); the snapshot code
#: and the MP4 reader before the first snapshot or recording listing (camsvc.media.component).
NOT_AT_IDLE = (
    "yaml",
    "_yaml",
    "twisted.trial",
    "unittest",
    "twisted.words",
    "twisted.cred.strcred",
    "twisted.web.static",
    "mimetypes",
    "twisted.internet.utils",
    "camsvc.cameras.discovery",
    "camsvc.cameras.udev",
    "camsvc.cameras.probing",
    "camsvc.cameras.selection",
    "camsvc.cameras.presence",
    "camsvc.cameras.scheduling",
    "camsvc.cameras.identity",
    "camsvc.cameras.v4l2",
    "camsvc.cameras.v4l2_controls",
    "camsvc.cameras.controls",
    "camsvc.media.snapshots",
    "camsvc.media.mp4",
    "pyudev",
)


def test_idle_service_started_like_the_unit_loads_none_of_what_idle_never_needs(tmp_path):
    from tests.support.server import free_port

    config = service_config(tmp_path, f"host: 127.0.0.1, port: {free_port()}")
    stdout = run_probe("-c", IDLE_PROBE, str(config), cwd=tmp_path)
    modules = set(json.loads(last_line(stdout)))
    assert "camsvc.server.ws" in modules  # the probe did build and start the service
    loaded = sorted(m for m in modules if m in NOT_AT_IDLE or m.startswith(tuple(n + "." for n in NOT_AT_IDLE)))
    assert loaded == []
    plugins = sorted(m for m in modules if m.startswith("twisted.plugins."))
    assert plugins == ["twisted.plugins.camsvc_plugin"]


def test_python_m_camsvc_is_twistd_with_camsvc_as_its_only_and_default_subcommand():
    from camsvc.__main__ import ServerOptions

    options = ServerOptions()
    assert [name for name, *_ in options.subCommands] == ["camsvc"]
    assert options.defaultSubCommand == "camsvc"
    stdout = run_probe("-m", "camsvc", "--help")
    assert "--nodaemon" in stdout and "--pidfile" in stdout  # twistd's own options
    commands = stdout.split("Commands:", 1)[1].split()
    assert commands[0] == "camsvc" and "web" not in commands and "conch" not in commands, stdout


YAML_PROBE = """
import sys
if sys.argv[2] == "preloaded":
    import yaml
    before = sys.modules["yaml"]
from camsvc.config import ConfigError, load_config
try:
    config = load_config(sys.argv[1])
    print(config.server.port, "yaml" in sys.modules, [m for m in sys.modules if m.endswith("_yaml")])
except ConfigError as exc:
    print("error", exc, "yaml" in sys.modules)
if sys.argv[2] == "preloaded":
    assert sys.modules["yaml"] is before
"""


@pytest.mark.parametrize(
    "text, preloaded, expected",
    [
        ("server: {port: 8123}\n", "no", "8123 False []"),
        ("server: {port: 8123}\n", "preloaded", "8123 True"),
        ("server: {port: [8123\n", "no", "is not valid YAML at line 2, column 1"),
    ],
)
def test_pyyaml_is_unloaded_after_parsing_unless_something_else_loaded_it(tmp_path, text, preloaded, expected):
    config = tmp_path / "c.yaml"
    config.write_text(text)
    stdout = run_probe("-c", YAML_PROBE, str(config), preloaded)
    assert expected in stdout, stdout
    if "error" in stdout:
        assert stdout.strip().endswith("False")


DISCOVERY_PROBE = """
import sys
from twisted.internet.testing import MemoryReactorClock
from camsvc.cameras.discovery import DiscoveryService
from camsvc.cameras.identity import IdentityStore
from camsvc.cameras.registry import CameraRegistry
from camsvc.config import parse_config_dict
from camsvc.testing import FakeProber, FakeUdev, usb_camera

reactor = MemoryReactorClock()
registry = CameraRegistry(reactor)
udev = FakeUdev([usb_camera(0, serial="A")] if sys.argv[2] == "camera" else [])
svc = DiscoveryService(
    registry, parse_config_dict({}).discovery, IdentityStore(sys.argv[1]), reactor, udev_factory=udev, prober=FakeProber()
)
svc.startService()
module = sys.modules.get("camsvc.cameras.v4l2")
print(svc.started, len(registry.cameras()), module is not None and type(module).__name__ != "_LazyModule")
"""


@pytest.mark.parametrize("devices, expected", [("none", "True 0 False"), ("camera", "True 1 True")])
def test_discovery_loads_the_v4l2_binding_with_the_first_device(tmp_path, devices, expected):
    """A camera box with nothing plugged does not load camsvc.cameras.v4l2 (0.2 MiB); the first
    device's QUERYCAP does."""
    stdout = run_probe("-c", DISCOVERY_PROBE, str(tmp_path / "ids.json"), devices)
    assert last_line(stdout) == expected
