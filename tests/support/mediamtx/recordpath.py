"""recordPath rendering and parsing for the MediaMTX stand-in, as MediaMTX's internal/recordstore does it."""

from __future__ import annotations

import datetime as _dt
import re

# ---------------------------------------------------------------------------
# recordPath rendering / parsing (internal/recordstore)
# ---------------------------------------------------------------------------


def render_record_path(pattern: str, path_name: str, t: _dt.datetime) -> str:
    s = pattern.replace("%path", path_name)
    s = (
        s.replace("%Y", f"{t.year:04d}")
        .replace("%m", f"{t.month:02d}")
        .replace("%d", f"{t.day:02d}")
        .replace("%H", f"{t.hour:02d}")
        .replace("%M", f"{t.minute:02d}")
        .replace("%S", f"{t.second:02d}")
        .replace("%f", f"{t.microsecond:06d}")
        .replace("%s", str(int(t.timestamp())))
    )
    return s


def common_path(pattern: str) -> str:
    """The directory part of ``recordPath`` before its first ``%`` element."""
    parts = pattern.split("/")
    out = []
    for part in parts:
        if "%" in part:
            break
        out.append(part)
    return "/".join(out) or "."


_TOKENS = {
    "%path": r"(?P<path>.+?)",
    "%Y": r"(?P<Y>\d{4})",
    "%m": r"(?P<m>\d{2})",
    "%d": r"(?P<d>\d{2})",
    "%H": r"(?P<H>\d{2})",
    "%M": r"(?P<M>\d{2})",
    "%S": r"(?P<S>\d{2})",
    "%f": r"(?P<f>\d{6})",
    "%s": r"(?P<s>\d+)",
}


def _pattern_regex(pattern: str) -> re.Pattern:
    out = ""
    i = 0
    seen = set()
    while i < len(pattern):
        for tok, rx in _TOKENS.items():
            if pattern.startswith(tok, i):
                if tok in seen:  # repeated token: must repeat the same text
                    out += f"(?P={rx[4 : rx.index('>')]})"
                else:
                    out += rx
                    seen.add(tok)
                i += len(tok)
                break
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile("^" + out + "$")


def _decode_start(m: re.Match) -> _dt.datetime:
    g = m.groupdict()
    if g.get("s"):
        return _dt.datetime.fromtimestamp(int(g["s"])).astimezone()
    return _dt.datetime(
        int(g.get("Y") or 1),
        int(g.get("m") or 1),
        int(g.get("d") or 1),
        int(g.get("H") or 0),
        int(g.get("M") or 0),
        int(g.get("S") or 0),
        int(g.get("f") or 0),
    ).astimezone()
