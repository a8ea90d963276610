"""The distribution pins (tests/distros/*.txt) and setup.py agree.

`make test-distro-libs` runs the suite on each pin file; these checks keep the
files themselves honest: every runtime dependency of setup.py is pinned for
every distribution, setup.py's lower bounds are the oldest pinned versions (so
pip never accepts a version no stage has run on), and check_pins.py fails on a
wrong interpreter or version.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parent.parent
DISTROS = TOP / "tests" / "distros"
PIN_FILES = sorted(DISTROS.glob("*.txt"))


def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def version_tuple(v):
    return tuple(int(x) for x in re.findall(r"\d+", v))


def install_requires():
    text = (TOP / "setup.py").read_text(encoding="utf-8")
    block = text[text.index("install_requires=[") : text.index("],", text.index("install_requires=["))]
    return {norm(m.group(1)): m.group(2) for m in re.finditer(r'"([A-Za-z0-9_.-]+)>=([0-9.]+)"', block)}


def pins(path):
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            out[norm(name)] = version
    return out


def test_there_are_pin_files_for_jammy_noble_and_trixie():
    assert {p.name for p in PIN_FILES} >= {"ubuntu-22.04.txt", "ubuntu-24.04.txt", "debian-13.txt"}


@pytest.mark.parametrize("path", PIN_FILES, ids=lambda p: p.stem)
def test_every_runtime_dependency_is_pinned(path):
    missing = set(install_requires()) - set(pins(path))
    assert not missing, f"{path.name} does not pin {sorted(missing)}"


def test_lower_bounds_are_the_oldest_pinned_versions():
    lower = install_requires()
    assert lower, "no install_requires parsed from setup.py"
    for name, bound in lower.items():
        oldest = min((pins(p)[name] for p in PIN_FILES), key=version_tuple)
        # setup.py names major.minor; the oldest pin must be of that release line.
        assert version_tuple(oldest)[: len(version_tuple(bound))] == version_tuple(bound), (name, bound, oldest)


def test_check_pins_fails_on_a_wrong_version(tmp_path):
    ok = tmp_path / "ok.txt"
    have = "%d.%d" % sys.version_info[:2]

    ok.write_text(f"# python={have}\npytest=={pytest.__version__}\nCython<3  # build-only\n")
    run = [sys.executable, str(DISTROS / "check_pins.py")]
    assert subprocess.run(run + [str(ok)], capture_output=True).returncode == 0
    bad = tmp_path / "bad.txt"
    bad.write_text(f"# python={have}\npytest==0.0.1\n")
    r = subprocess.run(run + [str(bad)], capture_output=True, text=True)
    assert r.returncode != 0 and "pytest" in r.stderr
    wrong_python = tmp_path / "py.txt"
    wrong_python.write_text("# python=2.7\n")
    r = subprocess.run(run + [str(wrong_python)], capture_output=True, text=True)
    assert r.returncode != 0 and "python" in r.stderr
