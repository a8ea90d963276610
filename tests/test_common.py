"""camsvc.common: atomic writes when the I/O fails, Host headers and client addresses from bad input."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from camsvc.common import fileio
from camsvc.common.addresses import client_address, parse_networks, peer_address
from camsvc.common.fileio import atomic_write, fsync_directory
from camsvc.common.hosts import host_of, valid_host_header
from tests.support.server import ROOT

# -- atomic_write when the disk says no ------------------------------------------------------

# A child whose file-size limit is 16 bytes: the write of the temporary file fails with
# EFBIG, as on a full disk (SIGXFSZ ignored so the write returns the error).
FULL_DISK = """
import errno, os, resource, signal, sys
from camsvc.common.fileio import atomic_write
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (16, 16))
try:
    atomic_write(sys.argv[1], b"x" * 4096)
except OSError as e:
    print(errno.errorcode[e.errno])
"""


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "state.json"
    target.write_bytes(b"old")
    out = subprocess.run(
        [sys.executable, "-c", FULL_DISK, str(target)],
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["EFBIG"]
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_exclusive_create_loses_to_an_existing_file(tmp_path):
    target = tmp_path / "jwt_secret"
    atomic_write(str(target), b"first", exclusive=True)
    with pytest.raises(FileExistsError):
        atomic_write(str(target), b"second", exclusive=True)
    assert target.read_bytes() == b"first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jwt_secret"]
    assert oct(target.stat().st_mode & 0o777) == "0o600"


def test_the_original_error_wins_when_the_temporary_cannot_be_removed(tmp_path, monkeypatch):
    def no_rename(src, dst):
        raise OSError(30, "Read-only file system")

    def no_unlink(path):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(fileio.os, "replace", no_rename)
    monkeypatch.setattr(fileio.os, "unlink", no_unlink)
    with pytest.raises(OSError, match="Read-only file system"):
        atomic_write(str(tmp_path / "f"), b"data")


def test_missing_parents_are_created_with_their_mode(tmp_path):
    target = tmp_path / "a" / "b" / "f"
    atomic_write(str(target), b"x", mode=0o644, dir_mode=0o750, chown_to_directory=True)
    assert target.read_bytes() == b"x" and oct(target.stat().st_mode & 0o777) == "0o644"
    assert oct((tmp_path / "a" / "b").stat().st_mode & 0o777) == "0o750"


def test_directory_fsync_is_best_effort(tmp_path):
    fsync_directory(str(tmp_path / "missing"))  # cannot open it: nothing to do
    fsync_directory("/proc")  # procfs refuses fsync (EINVAL): ignored
    fsync_directory(str(tmp_path))


# -- Host headers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header, host",
    [
        ("box:8002", "box"),
        (" box ", "box"),
        ("[::1]:8002", "[::1]"),
        ("[::1", "[::1"),  # no closing bracket: kept as given, never a crash
        ("::1", "[::1]"),  # a bare IPv6 address gets its brackets
        ("", ""),
    ],
)
def test_host_of(header, host):
    assert host_of(header) == host


@pytest.mark.parametrize(
    "header, ok",
    [
        ("box:8002", True),
        ("10.0.0.2", True),
        ("[fe80::1]:443", True),
        ("box:8002/evil", False),
        ("box:123456", False),
        ("user@box", False),
        ("box\r\nX: y", False),
        ("", False),
    ],
)
def test_valid_host_header(header, ok):
    assert valid_host_header(header) is ok


# -- client addresses -----------------------------------------------------------------------


def test_peer_address():
    assert peer_address("tcp4:10.0.0.5:40000") == "10.0.0.5"
    assert peer_address("tcp6:::1:40000") == "::1"
    assert peer_address("unix") == "unix"
    assert peer_address("tcp4:") == "tcp4"


def test_forwarded_for_is_believed_only_from_trusted_proxies():
    proxies = parse_networks(["10.0.0.0/8"])
    assert client_address("10.0.0.1", "203.0.113.9", proxies) == "203.0.113.9"
    assert client_address("198.51.100.7", "203.0.113.9", proxies) == "198.51.100.7"  # not a proxy
    assert client_address("10.0.0.1", None, proxies) == "10.0.0.1"
    assert client_address("10.0.0.1", "203.0.113.9", []) == "10.0.0.1"
    # a chain: the right-most address that is not a proxy; what the client claimed is ignored
    assert client_address("10.0.0.1", "1.1.1.1, 203.0.113.9, 10.0.0.2", proxies) == "203.0.113.9"
    # every hop a proxy: the left-most; no hops at all: the peer
    assert client_address("10.0.0.1", "10.0.0.3, 10.0.0.2", proxies) == "10.0.0.3"
    assert client_address("10.0.0.1", " , ", proxies) == "10.0.0.1"
    # garbage is not an address of a proxy: it is taken as the client, truncated
    assert client_address("10.0.0.1", "x" * 500, proxies) == "x" * 64


def test_lazy_import_runs_the_module_body_at_its_first_attribute_access(tmp_path, monkeypatch):
    from unittest import mock

    from camsvc.common.lazy import lazy_import

    package = tmp_path / "lazypkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "heavy.py").write_text("import sys\nsys.modules['lazypkg'].ran += 1\nVALUE = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("lazypkg", "lazypkg.heavy"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    import lazypkg

    lazypkg.ran = 0
    heavy = lazy_import("lazypkg.heavy")
    assert lazypkg.ran == 0 and sys.modules["lazypkg.heavy"] is heavy
    import lazypkg.heavy as again  # the same module (3.12+ runs its body here, 3.10 at first use)

    assert again is heavy
    assert heavy.VALUE == 42 and lazypkg.ran == 1  # the body ran once
    assert lazy_import("lazypkg.heavy") is heavy and lazypkg.ran == 1
    with mock.patch("lazypkg.heavy.VALUE", 7):
        assert heavy.VALUE == 7
    with pytest.raises(ModuleNotFoundError):
        lazy_import("lazypkg.missing")
