"""Fast checks of the Debian packaging (debian/, mk/debian.mk) for the normal suite.

The slow, root-only checks (build, lintian, install, twistd3 smoke test, QEMU
guest) are `make test-deb` and `make test-system`; these catch the usual
regressions in seconds: the unit's contract and hardening, its systemd-analyze
verdicts, the production conffile, versions in sync, the plugin-cache trigger.
"""

import configparser
import os
import re
import runpy
import shutil
import subprocess

import pytest
import yaml

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEBIAN = os.path.join(TOP, "debian")
UNIT = os.path.join(DEBIAN, "camsvc.service")
MAX_EXPOSURE = 2.5


def read(*parts):
    with open(os.path.join(TOP, *parts), encoding="utf-8") as f:
        return f.read()


def unit_settings():
    """[Service] settings as {key: [values...]} (repeated keys accumulate)."""
    out = {}
    section = None
    for line in read("debian", "camsvc.service").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]":
            k, _, v = line.partition("=")
            out.setdefault(k, []).append(v)
    return out


def test_unit_runs_camsvc_under_twistds_runner_without_the_plugin_scan():
    # camsvc/__main__.py: twistd with camsvc as its only subcommand (tests/test_lean.py);
    # `twistd3 camsvc` keeps working (the plugin cache, tests/system/test_deb.sh).
    s = unit_settings()
    assert s["ExecStart"] == [
        "/usr/bin/python3 -I -B -m camsvc --nodaemon --pidfile= camsvc --config /etc/camsvc/camsvc.yaml"
    ]
    assert s["User"] == ["camsvc"]
    assert s["Restart"] == ["on-failure"]
    assert s["StateDirectory"] == ["camsvc"]
    assert "video" in s["SupplementaryGroups"][0].split()


def test_unit_speaks_sd_notify_and_reloads_with_sighup():
    # camsvc.ops.systemd sends READY=1, STATUS= and WATCHDOG=1 (tests/test_systemd.py);
    # SIGHUP reloads the configuration (tests/test_reload.py).
    s = unit_settings()
    assert s["Type"] == ["notify"]
    assert s["NotifyAccess"] == ["main"]
    assert s["WatchdogSec"] == ["30s"]
    assert s["ExecReload"] == ["/bin/kill -HUP $MAINPID"]


@pytest.mark.parametrize(
    "key,value",
    [
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("DevicePolicy", "closed"),
        ("DeviceAllow", "char-video4linux rw"),
        ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6 AF_NETLINK"),
        ("SystemCallFilter", "@system-service"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("ProtectControlGroups", "yes"),
        ("LockPersonality", "yes"),
        ("RestrictNamespaces", "yes"),
        ("RestrictSUIDSGID", "yes"),
    ],
)
def test_unit_hardening(key, value):
    assert value in unit_settings().get(key, []), f"{key}={value} missing"


def test_unit_keeps_camera_access():
    s = unit_settings()
    # PrivateDevices= would hide /dev/video*; ProcSubset=pid would blind the
    # prometheus process collector (it reads /proc/stat).
    assert s.get("PrivateDevices", ["no"]) == ["no"]
    assert "ProcSubset" not in s
    assert "PrivateUsers" not in s or s["PrivateUsers"] == ["no"]  # would unmap group video
    # pyOpenSSL's cffi callbacks need W+X memory: TLS contexts fail under it.
    assert "MemoryDenyWriteExecute" not in s


def test_unit_lets_the_probe_child_be_niced():
    """``~@resources`` denies setpriority, which ``nice -n 10`` (the probe child) needs;
    a later allow entry of the opposite kind takes it off the deny list (systemd.exec)."""
    filters = unit_settings()["SystemCallFilter"]
    deny = next(i for i, v in enumerate(filters) if v.startswith("~"))
    assert "@resources" in filters[deny].split()
    allowed_after = [name for v in filters[deny + 1 :] if not v.startswith("~") for name in v.split()]
    assert "setpriority" in allowed_after


def systemd_analyze():
    exe = shutil.which("systemd-analyze")
    if not exe:
        pytest.skip("systemd-analyze not installed")
    return exe


def test_systemd_analyze_verify():
    exe = systemd_analyze()
    p = subprocess.run(
        [exe, "verify", "--man=no", UNIT],
        capture_output=True,
        text=True,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"},
    )
    problems = [line for line in p.stderr.splitlines() if line.strip()]
    assert not problems, p.stderr


def test_systemd_analyze_security_exposure():
    exe = systemd_analyze()
    p = subprocess.run([exe, "security", "--offline=true", "--no-pager", UNIT], capture_output=True, text=True)
    m = re.search(r"Overall exposure level for camsvc\.service: ([0-9.]+)", p.stdout + p.stderr)
    if not m and "--offline" in p.stderr:
        pytest.skip("systemd-analyze too old for --offline (needs systemd >= 250)")
    assert m, p.stdout + p.stderr
    assert float(m.group(1)) <= MAX_EXPOSURE, p.stdout


def test_plugin_cache_trigger():
    lines = [
        line.split()
        for line in read("debian", "camsvc.triggers").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines == [["activate-noawait", "twisted-plugins-cache"]]
    assert "dropin.cache" in read("debian", "rules")  # never shipped


def test_sysusers_and_tmpfiles():
    sysusers = read("debian", "camsvc.sysusers")
    assert re.search(r"^u camsvc - .* /var/lib/camsvc /usr/sbin/nologin$", sysusers, re.M)
    assert re.search(r"^m camsvc video$", sysusers, re.M)
    tmpfiles = read("debian", "camsvc.tmpfiles")
    assert re.search(r"^d /var/lib/camsvc/recordings\s+2770 camsvc camsvc", tmpfiles, re.M)
    # dh_installsysusers is not in compat 13's sequence: rules must call it.
    assert "dh_installsysusers" in read("debian", "rules")


def test_control_depends_on_debian_libraries():
    control = read("debian", "control")
    assert "debhelper-compat (= 13)" in control
    for dep in (
        "python3-twisted",
        "python3-autobahn",
        "python3-treq",
        "python3-pyudev",
        "python3-yaml",
        "python3-jwt",
        "python3-prometheus-client",
        "python3-service-identity",
        "python3-paho-mqtt",
        "ffmpeg",
        "${python3:Depends}",
        "${misc:Depends}",
    ):
        assert dep in control, dep


# Programs the unit's Exec*= lines run, and the package that brings each (on
# Debian 12 and 13 and Ubuntu 22.04/24.04 alike).  A new program here needs its
# package in Depends: (procps is "important", not "essential": minimal images
# and containers lack it, and `systemctl reload` then fails).
UNIT_PROGRAMS = {"/usr/bin/python3": "${python3:Depends}", "/bin/kill": "procps"}


def test_every_program_the_unit_runs_is_declared():
    control = read("debian", "control")
    depends = control[control.index("\nDepends:") : control.index("\nRecommends:")]
    declared = {d.strip().rstrip(",") for d in depends.splitlines()[1:]}
    for key, values in unit_settings().items():
        if not key.startswith("Exec"):
            continue
        for value in values:
            program = value.lstrip("-@:+!").split()[0]
            assert program in UNIT_PROGRAMS, f"{key}={value}: which package brings {program}?"
            assert UNIT_PROGRAMS[program] in declared, f"{key} runs {program}: Depends: {UNIT_PROGRAMS[program]}"


def test_changelog_version_matches_setup_py():
    deb = re.match(r"camsvc \(([^)]+)\)", read("debian", "changelog")).group(1)
    upstream = re.search(r'version="([^"]+)"', read("setup.py")).group(1)
    assert deb.split("-")[0] == upstream


def setup_kwargs(monkeypatch):
    """The keyword arguments setup.py passes to setuptools.setup()."""
    import setuptools

    captured = {}
    monkeypatch.chdir(TOP)
    monkeypatch.setattr(setuptools, "setup", lambda **kw: captured.update(kw))
    runpy.run_path(os.path.join(TOP, "setup.py"), run_name="__main__")
    return captured


def test_setup_py_ships_every_package(monkeypatch):
    """The .deb installs what setup.py lists, not the source tree: a package
    missing there imports fine in the editable venv and is absent on Debian."""
    listed = set(setup_kwargs(monkeypatch)["packages"])
    on_disk = {
        os.path.relpath(d, TOP).replace(os.sep, ".")
        for d, _, files in os.walk(os.path.join(TOP, "camsvc"))
        if "__init__.py" in files
    }
    assert on_disk - listed == set(), "packages missing from setup.py"
    assert "twisted.plugins" in listed


def test_setup_py_ships_every_data_file(monkeypatch):
    import fnmatch

    package_data = setup_kwargs(monkeypatch).get("package_data", {})
    unshipped = []
    for d, dirs, files in os.walk(os.path.join(TOP, "camsvc")):
        dirs[:] = [x for x in dirs if x != "__pycache__"]
        for f in files:
            if f.endswith((".py", ".pyc")):
                continue
            rel = os.path.relpath(os.path.join(d, f), os.path.join(TOP, "camsvc"))
            if not any(fnmatch.fnmatch(rel, pat) for pat in package_data.get("camsvc", [])):
                unshipped.append(rel)
    assert not unshipped, "files under camsvc/ not in setup.py's package_data"


def test_plugin_directory_is_not_a_package():
    assert not os.path.exists(os.path.join(TOP, "twisted", "plugins", "__init__.py"))
    assert not os.path.exists(os.path.join(TOP, "twisted", "__init__.py"))


def flatten(d, prefix=""):
    out = {}
    for k, v in (d or {}).items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def conffile_source():
    """The file installed as /etc/camsvc/camsvc.yaml, per debian/camsvc.install."""
    for line in read("debian", "camsvc.install").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].rstrip("/") == "etc/camsvc":
            return parts[0]
    raise AssertionError("debian/camsvc.install installs nothing into /etc/camsvc")


def test_conffile_has_production_defaults():
    conf = flatten(yaml.safe_load(read(conffile_source())))
    assert conf["auth.required"] is True
    for key in ("storage.recordings_dir", "storage.snapshots_dir", "storage.state_dir"):
        if key in conf:
            # Inside StateDirectory=camsvc: the only place the unit may write.
            assert (str(conf[key]) + "/").startswith("/var/lib/camsvc/"), (key, conf[key])
    assert conf.get("server.port", 8002) == 8002


def test_make_targets_registered():
    mk = read("mk", "debian.mk")
    assert re.search(r"^TEST_STAGES \+= test-deb12-libs test-deb test-system$", mk, re.M)
    for target in ("deb:", "test-deb:", "test-system:", "test-deb12-libs:"):
        assert re.search(rf"^{target}", mk, re.M), target
    distros = read("mk", "distros.mk")
    assert re.search(r"^TEST_STAGES \+= test-distro-libs test-trixie$", distros, re.M)
    for target in ("test-distro-libs:", "test-jammy-libs:", "test-noble-libs:", "test-trixie-libs:", "test-trixie:"):
        assert re.search(rf"^{target}", distros, re.M), target


def test_unit_documentation_exists():
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.read(UNIT)
    doc = cp["Unit"]["Documentation"]
    assert doc == "file:///usr/share/doc/camsvc/deployment.md"
    assert os.path.exists(os.path.join(TOP, "docs", "deployment.md"))
    assert "docs/deployment.md" in read("debian", "camsvc.docs")


def console_scripts(monkeypatch):
    eps = setup_kwargs(monkeypatch).get("entry_points", {}).get("console_scripts", [])
    return dict((part.strip() for part in ep.split("=", 1)) for ep in eps)


def test_every_command_has_a_man_page(monkeypatch):
    """Debian wants a man page per /usr/bin program (lintian no-manual-page)."""
    shipped = read("debian", "camsvc.manpages").split()
    for name in console_scripts(monkeypatch):
        assert f"debian/man/{name}.1" in shipped, f"debian/man/{name}.1 missing from debian/camsvc.manpages"
        assert os.path.exists(os.path.join(DEBIAN, "man", f"{name}.1"))


def argparse_words(parser, prefix=()):
    """(command path, option) for every subcommand and option of an argparse parser."""
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from argparse_words(sub, (*prefix, name))
        elif action.option_strings:
            for opt in action.option_strings:
                yield prefix, opt
        elif prefix:
            yield prefix, None


def test_man_pages_describe_every_command_and_option(monkeypatch):
    import importlib

    for name, target in console_scripts(monkeypatch).items():
        module = importlib.import_module(target.split(":")[0])
        if not hasattr(module, "build_parser"):
            continue
        page = read("debian", "man", f"{name}.1").replace("\\-", "-").replace("\\fB", "").replace("\\fR", "")
        for path, opt in argparse_words(module.build_parser()):
            if path:
                assert " ".join(path) in page, f"{name} {' '.join(path)} not in debian/man/{name}.1"
            if opt and opt not in ("-h",):
                assert opt in page, f"{name} {' '.join(path)} {opt} not in debian/man/{name}.1"


def test_unit_raises_the_file_descriptor_limit():
    """The unit set no LimitNOFILE (1024 soft): a few hundred clients exhausted it."""
    (value,) = unit_settings()["LimitNOFILE"]
    assert int(value) >= 16384
