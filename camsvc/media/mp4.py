"""Duration of an MP4 / fragmented-MP4 file, read from its box headers.

MediaMTX records fMP4: an init part (``ftyp`` + ``moov`` whose ``mvhd`` duration is 0)
followed by one ``moof`` + ``mdat`` pair per part.  The duration is therefore the span
of the fragments: from the first fragment's ``tfdt`` decode time to the last one's
decode time plus its samples' durations (``trun``, else ``tfhd``, else ``trex``
defaults), in the track's ``mdhd`` time scale.  When a ``mehd`` fragment duration or a
non-zero ``mvhd`` duration is present (regular MP4) that is used.

Cheap on purpose: only box headers are read to walk the file (one small read per
box), and only the ``moov``, the first and the last ``moof`` are parsed; an hour of
1-second parts is ~7200 header reads, a few milliseconds.  A file still being written
(a truncated last box) is measured up to its last complete fragment (``moof`` and its
``mdat``).  Spawning ``ffprobe`` instead costs a process (~50 ms) per file.
"""

from __future__ import annotations

import os
import struct
from typing import BinaryIO

#: Largest ``moov`` / ``moof`` this reader loads into memory.
MAX_BOX = 16 * 1024 * 1024
_CONTAINERS = {b"moov", b"trak", b"mdia", b"mvex", b"moof", b"traf", b"minf", b"edts"}


class _Box:
    __slots__ = ("type", "start", "size", "header")

    def __init__(self, typ: bytes, start: int, size: int, header: int) -> None:
        self.type = typ
        self.start = start
        self.size = size
        self.header = header


def _top_boxes(f: BinaryIO, file_size: int):
    pos = 0
    while pos + 8 <= file_size:
        f.seek(pos)
        head = f.read(16)
        if len(head) < 8:
            return
        size, typ = struct.unpack(">I4s", head[:8])
        header = 8
        if size == 1:
            if len(head) < 16:
                return
            size = struct.unpack(">Q", head[8:16])[0]
            header = 16
        elif size == 0:
            size = file_size - pos
        if size < header:
            return
        yield _Box(typ, pos, size, header)
        pos += size


def _children(data: bytes, start: int = 0, end: int | None = None):
    """(type, payload start, payload end) of the boxes in ``data[start:end]``."""
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, typ = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if pos + 16 > end:
                return
            size = struct.unpack_from(">Q", data, pos + 8)[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            return
        yield typ, pos + header, pos + size
        pos += size


def _walk(data: bytes, path: tuple[bytes, ...], start: int = 0, end: int | None = None):
    """Payload (start, end) of every box at ``path`` below ``data[start:end]``."""
    for typ, s, e in _children(data, start, end):
        if typ != path[0]:
            continue
        if len(path) == 1:
            yield s, e
        elif typ in _CONTAINERS:
            yield from _walk(data, path[1:], s, e)


class _Movie:
    """What the ``moov`` says: time scales, defaults, declared durations."""

    def __init__(self, moov: bytes) -> None:
        self.timescale = 0
        self.duration = 0
        self.fragment_duration = 0
        self.track_scales: dict[int, int] = {}
        self.track_defaults: dict[int, int] = {}
        for s, _e in _walk(moov, (b"mvhd",)):
            version = moov[s]
            if version == 1:
                self.timescale, self.duration = struct.unpack_from(">IQ", moov, s + 20)
            else:
                self.timescale, self.duration = struct.unpack_from(">II", moov, s + 12)
        for s, _e in _walk(moov, (b"mvex", b"mehd")):
            version = moov[s]
            fmt = ">Q" if version == 1 else ">I"
            self.fragment_duration = struct.unpack_from(fmt, moov, s + 4)[0]
        for s, _e in _walk(moov, (b"mvex", b"trex")):
            track_id, _desc, default_duration = struct.unpack_from(">III", moov, s + 4)
            self.track_defaults[track_id] = default_duration
        for ts, te in _walk(moov, (b"trak",)):
            track_id = None
            for s, _e in _walk(moov, (b"tkhd",), ts, te):
                version = moov[s]
                track_id = struct.unpack_from(">I", moov, s + (20 if version == 1 else 12))[0]
            for s, _e in _walk(moov, (b"mdia", b"mdhd"), ts, te):
                version = moov[s]
                scale = struct.unpack_from(">I", moov, s + (20 if version == 1 else 12))[0]
                if track_id is not None:
                    self.track_scales[track_id] = scale


def _fragment_spans(moof: bytes, movie: _Movie) -> dict[int, tuple[int, int]]:
    """Per track in one ``moof``: (base decode time, sum of sample durations)."""
    spans: dict[int, tuple[int, int]] = {}
    for ts, te in _walk(moof, (b"traf",)):
        track_id = None
        default_duration = None
        base = None
        total = 0
        for typ, s, _e in _children(moof, ts, te):
            if typ == b"tfhd":
                flags = int.from_bytes(moof[s + 1 : s + 4], "big")
                track_id = struct.unpack_from(">I", moof, s + 4)[0]
                off = s + 8
                if flags & 0x01:
                    off += 8
                if flags & 0x02:
                    off += 4
                if flags & 0x08:
                    default_duration = struct.unpack_from(">I", moof, off)[0]
            elif typ == b"tfdt":
                version = moof[s]
                base = struct.unpack_from(">Q" if version == 1 else ">I", moof, s + 4)[0]
            elif typ == b"trun":
                flags = int.from_bytes(moof[s + 1 : s + 4], "big")
                count = struct.unpack_from(">I", moof, s + 4)[0]
                off = s + 8
                if flags & 0x001:
                    off += 4
                if flags & 0x004:
                    off += 4
                per_sample = 4 * bin(flags & 0xF00).count("1")
                if flags & 0x100:
                    for i in range(count):
                        total += struct.unpack_from(">I", moof, off + i * per_sample)[0]
                else:
                    fallback = default_duration
                    if fallback is None and track_id is not None:
                        fallback = movie.track_defaults.get(track_id, 0)
                    total += count * (fallback or 0)
        if track_id is not None and base is not None:
            spans[track_id] = (base, total)
    return spans


def duration(path: str) -> float | None:
    """Seconds of media in the MP4 file at ``path``; None when it cannot be told (no
    ``moov``, no usable fragment, corrupt boxes).  ``OSError`` when it cannot be read."""
    with open(path, "rb") as f:
        file_size = os.fstat(f.fileno()).st_size
        moov = None
        moov_header = 8
        first_moof: _Box | None = None
        last_moof: _Box | None = None
        pending: _Box | None = None  # a moof whose mdat has not been seen complete yet
        for box in _top_boxes(f, file_size):
            complete = box.start + box.size <= file_size
            if box.type == b"moov" and complete and box.size <= MAX_BOX:
                f.seek(box.start)
                moov = f.read(box.size)
                moov_header = box.header
            elif box.type == b"moof" and complete and box.size <= MAX_BOX:
                pending = box
            elif box.type == b"mdat" and complete and pending is not None:
                if first_moof is None:
                    first_moof = pending
                last_moof, pending = pending, None
        if moov is None:
            return None
        try:
            movie = _Movie(moov[moov_header:])
            if movie.fragment_duration and movie.timescale:
                return movie.fragment_duration / movie.timescale
            if first_moof is not None and last_moof is not None:
                f.seek(first_moof.start)
                first = _fragment_spans(f.read(first_moof.size)[first_moof.header :], movie)
                f.seek(last_moof.start)
                last = _fragment_spans(f.read(last_moof.size)[last_moof.header :], movie)
                best = None
                for track_id, (start, _n) in first.items():
                    scale = movie.track_scales.get(track_id)
                    if not scale or track_id not in last:
                        continue
                    end = last[track_id][0] + last[track_id][1]
                    seconds = max(0, end - start) / scale
                    best = seconds if best is None else max(best, seconds)
                if best is not None:
                    return best
            if movie.duration and movie.timescale:
                return movie.duration / movie.timescale
        except (struct.error, IndexError):
            return None  # a box shorter than its fields: corrupt, the duration cannot be told
    return None
