"""The small H.264 fMP4 clip the MediaMTX stand-in records from (made once per process with ffmpeg) and the fragment splitter."""

from __future__ import annotations

import atexit
import shutil
import subprocess
import tempfile
from pathlib import Path

# ---------------------------------------------------------------------------
# fMP4 clip
# ---------------------------------------------------------------------------

_clip_cache: dict[str, Path] = {}


def ensure_clip(directory: str | Path | None = None) -> Path:
    """A short H.264 fragmented-MP4 clip (one fragment per second), generated
    once per process with ffmpeg and reused; blocking, but runs once."""
    key = str(directory or "")
    if key in _clip_cache and _clip_cache[key].exists():
        return _clip_cache[key]
    if directory is None:
        directory = tempfile.mkdtemp(prefix="mediamtx-standin-clip-")
        atexit.register(shutil.rmtree, directory, True)
    out = Path(directory) / "clip.mp4"
    if not out.exists():
        subprocess.run(
            [
                "ffmpeg",
                "-nostdin",
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                "testsrc=size=320x240:rate=15",
                "-t",
                "6",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv420p",
                "-g",
                "15",
                "-movflags",
                "frag_keyframe+empty_moov+default_base_moof",
                "-f",
                "mp4",
                str(out),
            ],
            check=True,
            timeout=60,
        )
    _clip_cache[key] = out
    return out


def split_fmp4(data: bytes) -> tuple[bytes, list[bytes]]:
    """(init = ftyp+moov, [moof+mdat, ...]) of a fragmented MP4."""
    boxes = []
    pos = 0
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos : pos + 4], "big")
        typ = data[pos + 4 : pos + 8]
        if size == 1:
            size = int.from_bytes(data[pos + 8 : pos + 16], "big")
        if size < 8:
            break
        boxes.append((typ, data[pos : pos + size]))
        pos += size
    init = b"".join(b for t, b in boxes if t in (b"ftyp", b"moov"))
    frags: list[bytes] = []
    cur = b""
    for t, b in boxes:
        if t == b"moof":
            if cur:
                frags.append(cur)
            cur = b
        elif t == b"mdat" and cur:
            cur += b
    if cur:
        frags.append(cur)
    return init, frags
