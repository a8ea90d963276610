"""Helpers for the tests of `make run` (tools/devrun.py) and the README's quick tour:
polling HTTP, looking at the supervised processes, a PATH without an installed
MediaMTX, and an executable that runs the MediaMTX stand-in as ``mediamtx <config>``."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def http_get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def wait_for(predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except (OSError, urllib.error.URLError, ValueError):
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []


def hermetic_path(tmp: Path) -> str:
    """A PATH with the venv and ffmpeg, and no installed mediamtx."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in ("ffmpeg", "ffprobe"):
        found = shutil.which(tool)
        if found and not (bin_dir / tool).exists():
            (bin_dir / tool).symlink_to(found)
    return f"{Path(sys.executable).parent}{os.pathsep}{bin_dir}"


def standin_mediamtx(tmp: Path) -> Path:
    """An executable that is started as ``mediamtx <config>`` and runs the stand-in on that config."""
    exe = tmp / "mediamtx-standin"
    exe.write_text(f'#!/bin/sh\nexec {sys.executable} -m tests.support.mediamtx --config "$1"\n')
    exe.chmod(0o755)
    return exe
