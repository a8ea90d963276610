"""Go compatibility for the MediaMTX stand-in: JSON encoding and strict decoding, time, duration and size formats as the real server writes them."""

from __future__ import annotations

import datetime as _dt
import json
import re
from typing import Any

# ---------------------------------------------------------------------------
# Go compatibility helpers
# ---------------------------------------------------------------------------


class GoError(Exception):
    """An error whose text is what the Go server would put in ``error``."""


class _AbortError(GoError):
    """A decode error that stops Go's decoder at once (custom UnmarshalJSON)."""


def go_json(obj: Any) -> bytes:
    """``encoding/json``'s compact output, HTML-escaped like Go's Marshal."""

    def norm(o):
        if isinstance(o, float) and o.is_integer():
            return int(o)
        if isinstance(o, dict):
            return {k: norm(v) for k, v in o.items()}
        if isinstance(o, list):
            return [norm(v) for v in o]
        return o

    text = json.dumps(norm(obj), separators=(",", ":"), ensure_ascii=False)
    for ch, esc in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(ch, esc)
    return text.encode("utf-8")


def go_time(t: _dt.datetime) -> str:
    """A ``time.Time`` as Go marshals it (RFC 3339, nanoseconds trimmed)."""
    t = t if t.tzinfo else t.astimezone()
    s = t.strftime("%Y-%m-%dT%H:%M:%S")
    if t.microsecond:
        s += ("." + f"{t.microsecond:06d}").rstrip("0")
    off = t.utcoffset() or _dt.timedelta(0)
    if off == _dt.timedelta(0):
        return s + "Z"
    mins = int(off.total_seconds() // 60)
    sign = "+" if mins >= 0 else "-"
    mins = abs(mins)
    return f"{s}{sign}{mins // 60:02d}:{mins % 60:02d}"


def _go_quote(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


_UNITS_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}


def _parse_std_duration(text: str) -> int:
    """``time.ParseDuration`` (nanoseconds)."""
    s = text
    neg = False
    if s and s[0] in "+-":
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise _AbortError(f"time: invalid duration {_go_quote(text)}")
    total = 0
    while s:
        nm = re.match(r"^([0-9]*)(\.[0-9]*)?", s)
        if nm.group(0) in ("", "."):
            raise _AbortError(f"time: invalid duration {_go_quote(text)}")
        num = nm.group(0)
        s = s[nm.end() :]
        um = re.match(r"^[^0-9.]+", s)
        if not um:
            raise _AbortError(f"time: missing unit in duration {_go_quote(text)}")
        unit = um.group(0)
        if unit not in _UNITS_NS:
            raise _AbortError(f"time: unknown unit {_go_quote(unit)} in duration {_go_quote(text)}")
        s = s[um.end() :]
        whole, _, frac = num.partition(".")
        total += int(whole or 0) * _UNITS_NS[unit]
        if frac:
            total += int(frac) * _UNITS_NS[unit] // (10 ** len(frac))
    return -total if neg else total


def parse_go_duration(text: str) -> int:
    """``conf.Duration``: ``time.ParseDuration`` plus a leading ``<N>d``; nanoseconds."""
    days = 0
    negative = False
    m = re.match(r"^(-?[0-9]+)d", text)
    if m:
        days = int(m.group(1))
        if days < 0:
            negative, days = True, -days
        text = text[m.end() :]
    total = _parse_std_duration(text) if text else 0
    total += days * 86_400_000_000_000
    return -total if negative else total


def _fmt_frac(v: int, prec: int) -> str:
    whole, frac = divmod(v, 10**prec)
    fs = f"{frac:0{prec}d}".rstrip("0")
    return f"{whole}.{fs}" if fs else str(whole)


def format_go_std_duration(ns: int) -> str:
    """``time.Duration.String()``."""
    if ns == 0:
        return "0s"
    neg = ns < 0
    u = abs(ns)
    if u < 1_000_000_000:
        if u < 1_000:
            out = f"{u}ns"
        elif u < 1_000_000:
            out = _fmt_frac(u, 3) + "µs"
        else:
            out = _fmt_frac(u, 6) + "ms"
    else:
        secs = _fmt_frac(u % 60_000_000_000, 9) + "s"
        mins_total = u // 60_000_000_000
        if mins_total == 0:
            out = secs
        else:
            hours, mins = divmod(mins_total, 60)
            out = (f"{hours}h" if hours else "") + f"{mins}m" + secs
    return ("-" if neg else "") + out


def format_mediamtx_duration(ns: int) -> str:
    """``conf.Duration.MarshalJSON``: days, then Go's form of the rest; 0 is ``""``."""
    neg = ns < 0
    ns = abs(ns)
    days, rest = divmod(ns, 86_400_000_000_000)
    out = "-" if neg else ""
    if days:
        out += f"{days}d"
    if rest:
        out += format_go_std_duration(rest)
    return out


_SIZE_UNITS = {
    "": 1,
    "B": 1,
    "K": 1024,
    "KB": 1024,
    "KIB": 1024,
    "M": 1024**2,
    "MB": 1024**2,
    "MIB": 1024**2,
    "G": 1024**3,
    "GB": 1024**3,
    "GIB": 1024**3,
    "T": 1024**4,
    "TB": 1024**4,
    "TIB": 1024**4,
}


def _parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", text)
    if not m or not m.group(2) or m.group(2).upper() not in _SIZE_UNITS:
        raise _AbortError(
            "byte quantity must be a positive integer with a unit of measurement like M, MB, MiB, G, GiB, or GB"
        )
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).upper()])


def _format_size(n: int) -> str:
    for unit, mult in (("T", 1024**4), ("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if n >= mult:
            v = n / mult
            return (f"{v:.1f}".rstrip("0").rstrip(".")) + unit
    return f"{n}B"


def _json_kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return "null"


class _GoFloat(float):
    """A JSON number literal that keeps its source text (for Go's messages)."""

    literal: str

    def __new__(cls, text):
        obj = super().__new__(cls, text)
        obj.literal = text
        return obj


def _reject_constant(name):
    raise ValueError(f"invalid character '{name[0]}' looking for beginning of value")


def go_json_loads(body: bytes) -> Any:
    """Parse JSON like ``encoding/json`` (messages approximated)."""
    text = body.decode("utf-8", errors="replace")
    if not text.strip():
        raise GoError("unexpected end of JSON input")
    try:
        return json.loads(text, parse_float=_GoFloat, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        if e.pos >= len(text.rstrip()):
            raise GoError("unexpected end of JSON input") from None
        ch = text[e.pos]
        raise GoError(f"invalid character {ch!r} looking for beginning of value") from None
    except ValueError as e:
        raise GoError(str(e)) from None
