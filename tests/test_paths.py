"""Path traversal: every method that takes a ``filename``, and the download URLs.

The methods are found in the live registry (any param named ``filename``), so
a method added later is covered the day it is registered.  Each gets hostile
names as an admin; the answer must be an error (-32602 bad name, -32009 no
such file, or for take_snapshot -32004/-32603 when the camera cannot deliver),
never a result about a file outside the storage directories, and afterwards
every file outside them is untouched and no file appeared outside them.
Downloads go through the real resource tree (Protected + the files resource)
with an admin credential.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from urllib.parse import quote

import pytest
from treq.testing import StubTreq

from camsvc.cameras.registry import Camera
from camsvc.server.rpc import Role
from camsvc.tap import full_registry
from tests.support.processes import FakeProcessReactor
from tests.support.security import build_app, call, login

FILENAME_METHODS = sorted(m.name for m in full_registry() if "filename" in m.params)

HOSTILE = [
    "../outside.mp4",
    "../outside.jpg",
    "../../etc/passwd",
    "/etc/passwd",
    "/tmp",
    "..",
    ".",
    "...",
    "a/../../outside.mp4",
    "..\\..\\outside.mp4",
    "..%2Foutside.mp4",
    "%2e%2e%2foutside.jpg",
    "\x00",
    "camera0.mp4\x00.jpg",
    "state/jwt_secret",
    "../state/jwt_secret",
    "../state/api_keys.json",
    "escape.mp4",  # a symbolic link in recordings/ pointing outside
    "escape.jpg",  # same in snapshots/
    "dirlink.mp4",  # a symbolic link to a directory
    "~/.ssh/id_rsa",
    "x" * 300 + ".mp4",
    "\u2025/outside.mp4",  # two-dot leader
    "..\u2215outside.mp4",  # division slash
    " ../outside.mp4",
    "camera0\n.mp4",
    "recordings",
    "",
]
ALLOWED_CODES = {-32602, -32009, -32004, -32603, -32005}


def tree(root: Path) -> dict[str, str]:
    """Every file under root (not following links) -> digest of its content or link target."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + dirnames:
            path = Path(dirpath) / name
            if path.is_symlink():
                out[str(path)] = "link:" + os.readlink(path)
            elif path.is_file():
                out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture
def bed(tmp_path):
    app = build_app(tmp_path)
    app.media.store.ensure_dirs()
    app.media.processes.reactor = FakeProcessReactor()
    app.cameras.put(
        Camera(
            camera_id="camera0",
            device="/dev/video0",
            default={"format": "MJPG", "width": 640, "height": 480, "fps": 30},
        )
    )
    (tmp_path / "outside.mp4").write_bytes(b"SECRET-MP4")
    (tmp_path / "outside.jpg").write_bytes(b"SECRET-JPG")
    (tmp_path / "state" / "jwt_secret").write_text("s" * 64 + "\n")
    os.symlink(tmp_path / "outside.mp4", tmp_path / "recordings" / "escape.mp4")
    os.symlink(tmp_path / "outside.jpg", tmp_path / "snapshots" / "escape.jpg")
    os.symlink(tmp_path / "state", tmp_path / "recordings" / "dirlink.mp4")
    (tmp_path / "recordings" / "camera0_2024-01-01_00-00-00-000000.mp4").write_bytes(b"inside")
    return app, tmp_path


def outside(snapshot: dict, root: Path) -> dict:
    storage = (str(root / "recordings") + os.sep, str(root / "snapshots") + os.sep)
    return {k: v for k, v in snapshot.items() if not k.startswith(storage)}


def test_filename_methods_exist():
    # The media methods are on main: if this fails, a method lost its filename param.
    assert {"get_recording_info", "get_snapshot_info", "delete_recording", "delete_snapshot", "take_snapshot"} <= set(
        FILENAME_METHODS
    )


@pytest.mark.parametrize("method", FILENAME_METHODS)
def test_hostile_filenames_are_refused(bed, method):
    app, root = bed
    before = tree(root)
    params = {"device": "camera0"} if "device" in full_registry().get(method).params else {}
    for name in HOSTILE:
        admin = login(app, Role.ADMIN)  # afresh: a snapshot timing out moves the clock on
        reply = call(app, admin, method, {**params, "filename": name})
        if not isinstance(reply, dict):  # still working (a snapshot waits for ffmpeg): let it time out
            for _ in range(10):
                app.clock.advance(30)
            results: list = []
            reply.addBoth(results.append)
            reply = json.loads(results[0]) if results else None
            assert reply is not None, f"{method}({name!r}) never answered"
        if "result" in reply:
            # Only take_snapshot may succeed, and only inside snapshots/ under a plain name.
            assert method == "take_snapshot", (name, reply)
            made = reply["result"]["filename"]
            assert "/" not in made and "\\" not in made and not made.startswith("."), reply
            continue
        assert reply["error"]["code"] in ALLOWED_CODES, (method, name, reply)
        assert "SECRET" not in str(reply), reply
    after = tree(root)
    assert outside(after, root) == outside(before, root), "a file outside the storage directories changed"
    assert after.get(str(root / "recordings" / "escape.mp4")) == before[str(root / "recordings" / "escape.mp4")]


def fetch(client, path, headers=None) -> tuple[int, bytes]:
    results: list = []
    d = client.get("http://127.0.0.1" + path, headers=headers or {})
    d.addCallback(lambda r: r.content().addCallback(lambda body: results.append((r.code, body))))
    client.flush()
    assert results, path
    return results[0]


@pytest.mark.parametrize("kind", ["recordings", "snapshots"])
def test_download_urls_do_not_escape(bed, kind):
    app, root = bed
    client = StubTreq(app.listener.site.resource)
    token = app.auth.mint_token(Role.ADMIN, "a", 60)
    headers = {"Authorization": f"Bearer {token}"}
    raw_paths = [f"/files/{kind}/{quote(name, safe='')}" for name in HOSTILE if name]
    raw_paths += [
        f"/files/{kind}/../../outside.mp4",
        f"/files/{kind}/..%2F..%2Foutside.mp4",
        f"/files/{kind}/%2e%2e/%2e%2e/outside.jpg",
        f"/files/{kind}/..%5C..%5Coutside.mp4",
        "/files/../outside.mp4",
        "/files/state/jwt_secret",
        "/files/%2e%2e/outside.mp4",
        f"/files/{kind}/escape.mp4/..",
    ]
    for path in raw_paths:
        code, body = fetch(client, path, headers)
        assert code in (400, 404), (path, code, body[:200])
        assert b"SECRET" not in body and b"s" * 64 not in body, path
    # And a download token for a hostile name opens nothing.
    for name in ("../outside.mp4", "escape.mp4", "escape.jpg"):
        code, body = fetch(client, app.auth.download_path(kind, name))
        assert code in (400, 401, 404) and b"SECRET" not in body, (name, code, body)


def test_state_files_are_written_inside_the_state_dir_only(bed):
    """Retention policy and key/secret files land where the config says, nowhere else."""
    app, root = bed
    admin = login(app, Role.ADMIN)
    before = tree(root)
    assert "result" in call(app, admin, "set_retention_policy", {"enabled": True, "max_age_days": 1})
    app.auth.keys.create(Role.VIEWER, "x", 0)
    after = tree(root)
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    assert changed and all(k.startswith(str(root / "state") + os.sep) for k in changed), changed
