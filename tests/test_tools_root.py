"""tools/as-root, tools/ensure-apt and tools/netns-qlen: the root steps of `make` for a user
who is not root (sudo) and for root (directly).  Nothing here needs root or asks sudo."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.support.server import ROOT

AS_ROOT = ROOT / "tools" / "as-root"
ENSURE_APT = ROOT / "tools" / "ensure-apt"
NETNS_QLEN = ROOT / "tools" / "netns-qlen"


def as_nobody() -> list[str]:
    """A prefix that runs a command as a user who is not root (nobody when we are root)."""
    return [shutil.which("setpriv"), "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []


@pytest.fixture
def tmp_path(tmp_path_factory):
    """A directory the unprivileged user of these tests can reach (pytest's own are root's 0700)."""
    d = Path(tempfile.mkdtemp(prefix="camsvc-tools-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def bin_without_sudo(tmp: Path) -> str:
    d = tmp / "bin"
    d.mkdir()
    for tool in ("sh", "id", "basename", "dirname", "env", "cat"):
        (d / tool).symlink_to(shutil.which(tool))
    return str(d)


def test_as_root_without_sudo_says_what_is_needed(tmp_path):
    r = subprocess.run(
        [*as_nobody(), str(AS_ROOT), "apt-get", "install", "x"],
        env={"PATH": bin_without_sudo(tmp_path)},
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1
    assert r.stderr.strip() == (
        "apt-get needs root: run it as root, or install sudo (apt-get install sudo) and allow this account to use it"
    )


def test_as_root_runs_directly_when_root_else_through_sudo(tmp_path):
    if os.geteuid() == 0:
        r = subprocess.run([str(AS_ROOT), "id", "-u"], capture_output=True, text=True, check=True)
        assert r.stdout.strip() == "0"
    # Not root: the command goes to sudo, with the variables the root steps read.
    fake = tmp_path / "fakebin"
    fake.mkdir()
    (fake / "sudo").write_text('#!/bin/sh\necho "sudo $*"\n')
    (fake / "sudo").chmod(0o755)
    r = subprocess.run(
        [*as_nobody(), str(AS_ROOT), "dpkg", "-i", "x.deb"],
        env={"PATH": f"{fake}:/usr/bin:/bin", "CAMSVC_SYSTEM_CACHE": "/srv/cache"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert r.stdout.strip() == (
        "sudo -- env DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 CAMSVC_SYSTEM_CACHE=/srv/cache dpkg -i x.deb"
    )


def test_ensure_apt_needs_nothing_when_everything_is_installed(tmp_path):
    r = subprocess.run(
        [*as_nobody(), str(ENSURE_APT), "dpkg", "coreutils"],
        env={"PATH": bin_without_sudo(tmp_path) + ":/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")


def test_netns_qlen_checks_its_argument_before_asking_for_root():
    # (That it sets the limit in a namespace of its own is checked by `make test-qlen512`
    # itself: it needs root, which the unit suite never asks for.)
    bad = subprocess.run([str(NETNS_QLEN), "lots", "true"], capture_output=True, text=True)
    assert bad.returncode == 2 and "N must be a number, got 'lots'" in bad.stderr
