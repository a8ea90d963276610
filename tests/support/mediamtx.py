"""A faithful stand-in for MediaMTX v1.20.1's control API (test support).

Owns everything camsvc's tests need from a MediaMTX they cannot install:

* the ``/v3`` control API on a real loopback port (twisted.web), with the real
  server's routes, status codes, bodies and traps, taken from MediaMTX's source
  (``internal/api``, ``internal/conf``): ``{"status":"ok"}`` on success,
  ``{"status":"error","error":...}`` on failure, duplicate add -> 400
  ``path already exists``, missing patch/delete -> 404 ``path not found``,
  missing config get -> 404 ``path configuration not found``, replace upserts,
  strict Go-style body decoding (unknown field, wrong type, bad duration),
  path-name rules, 0-based pagination, gin's plain-text ``404 page not found``
  for unknown routes *and* for a known route with the wrong method, gin's
  trailing-slash redirects, Basic auth (``authInternalUsers`` / ``api``);
* an in-memory configuration (``pathDefaults`` and global settings derived from
  MediaMTX's default ``mediamtx.yml``), forgotten on :meth:`MediaMTXStandIn.restart`
  like the real process forgets API-made paths;
* simulated streams: a path with ``source: publisher`` and ``runOnDemand``
  becomes ready while a reader is attached, through a fake RTSP port or the
  Python API, and stops ``runOnDemandCloseAfter`` after the last one leaves;
* recording: real fMP4 segment files named by ``recordPath`` while a recording
  path is ready, built from a small H.264 clip that ffmpeg generates once per
  process (:func:`ensure_clip`), and ``/v3/recordings/*`` reading them back;
* a log of every request received (:attr:`MediaMTXStandIn.requests`) and the
  list of requests the OpenAPI document does not allow
  (:attr:`MediaMTXStandIn.violations`, see :mod:`tests.support.openapi`).

Run it on its own::

    python -m tests.support.mediamtx --port 9997 --rtsp-port 8554 \
        [--record-root DIR] [--user U --password P] [--delay 0.2] [--config mediamtx.yml]

It prints ``READY <port>`` (plus `` rtsp=<port>`` when RTSP is on) once listening.
"""

from __future__ import annotations

import atexit
import base64
import copy
import datetime as _dt
import hmac
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml
from twisted.internet import defer
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.protocols.policies import WrappingFactory
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from tests.support.openapi import DATA_DIR, OpenAPISpec

log = Logger()

VERSION = "v1.20.1"
DEFAULTS_PATH = DATA_DIR / "mediamtx.yml"

# internal/auth: a wrong password is answered only after this pause.
AUTH_PAUSE_AFTER_ERROR = 2.0

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


# ---------------------------------------------------------------------------
# Configuration model (derived from the spec + mediamtx.yml)
# ---------------------------------------------------------------------------

_DURATION_KEY = re.compile(r"(Timeout|CloseAfter|Duration|DeleteAfter)$")
_SIZE_KEYS = {"recordMaxPartSize", "hlsSegmentMaxSize"}


@dataclass
class _Field:
    kind: str  # string bool int uint float64 duration size enum array object
    go_type: str
    enum: tuple = ()
    item: _Field | None = None
    props: dict[str, _Field] | None = None
    deprecated: bool = False


class _Schema:
    """Field types of one Go config struct, read from its OpenAPI schema."""

    def __init__(self, spec: OpenAPISpec, name: str):
        node = spec.document["components"]["schemas"][name]
        self.spec = spec
        self.fields = {k: self._field(k, v) for k, v in node["properties"].items()}

    def _field(self, key: str, node: dict) -> _Field:
        spec = self.spec
        deprecated = bool(node.get("deprecated"))
        if "$ref" in node:
            target = spec._resolve(node["$ref"])
            if "enum" in target:
                return _Field("enum", "string", tuple(target["enum"]), deprecated=deprecated)
            if "properties" in target:
                return _Field(
                    "object",
                    "struct",
                    props={k: self._field(k, v) for k, v in target["properties"].items()},
                    deprecated=deprecated,
                )
            node = target
        for sub in node.get("allOf", []):
            target = spec._resolve(sub["$ref"]) if "$ref" in sub else sub
            if "enum" in target:
                return _Field("enum", "string", tuple(target["enum"]), deprecated=deprecated)
        typ = node.get("type")
        if typ == "string":
            if "enum" in node:
                return _Field("enum", "string", tuple(node["enum"]), deprecated=deprecated)
            if _DURATION_KEY.search(key):
                return _Field("duration", "string", deprecated=deprecated)
            if key in _SIZE_KEYS:
                return _Field("size", "string", deprecated=deprecated)
            return _Field("string", "string", deprecated=deprecated)
        if typ == "boolean":
            return _Field("bool", "bool", deprecated=deprecated)
        if typ == "integer":
            if str(node.get("format", "")).startswith("uint"):
                return _Field("uint", "uint", deprecated=deprecated)
            return _Field("int", "int", deprecated=deprecated)
        if typ == "number":
            return _Field("float64", "float64", deprecated=deprecated)
        if typ == "array":
            item = self._field(key, node.get("items", {}))
            return _Field("array", "[]" + item.go_type, item=item, deprecated=deprecated)
        if typ == "object" and "properties" in node:
            return _Field(
                "object",
                "struct",
                props={k: self._field(k, v) for k, v in node["properties"].items()},
                deprecated=deprecated,
            )
        return _Field("any", "interface {}", deprecated=deprecated)

    # -- decoding ---------------------------------------------------------

    def decode(self, body: bytes) -> dict:
        """Decode a request body like MediaMTX's ``jsonwrapper.Decode`` into
        an ``Optional*`` struct: returns the keys that were set, normalised."""
        raw = go_json_loads(body)
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            raise GoError(f"json: cannot unmarshal {_json_kind(raw)} into Go value of type struct {{ ... }}")
        return self._decode_object(raw, self.fields, "")

    def _decode_object(self, raw: dict, fields: dict, prefix: str) -> dict:
        out: dict = {}
        saved: GoError | None = None
        lower = {k.lower(): k for k in fields}
        for key, value in raw.items():
            name = key if key in fields else lower.get(key.lower())
            if name is None:
                saved = saved or GoError(f"json: unknown field {_go_quote(key)}")
                continue
            if value is None:
                continue
            try:
                out[name] = self._decode_value(value, fields[name], prefix + name)
            except _AbortError:
                raise
            except GoError as e:
                saved = saved or e
        if saved:
            raise saved
        return out

    def _type_error(self, value, f: _Field, path: str) -> GoError:
        kind = _json_kind(value)
        if kind == "number" and f.kind in ("int", "uint") and isinstance(value, (int, float)):
            lit = value.literal if isinstance(value, _GoFloat) else str(value)
            kind = f"number {lit}"
        return GoError(f"json: cannot unmarshal {kind} into Go struct field .{path} of type {f.go_type}")

    def _decode_value(self, value, f: _Field, path: str):
        k = f.kind
        if k == "string":
            if not isinstance(value, str):
                raise self._type_error(value, f, path)
            return value
        if k == "bool":
            if not isinstance(value, bool):
                raise self._type_error(value, f, path)
            return value
        if k in ("int", "uint"):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self._type_error(value, f, path)
            if isinstance(value, float) or (k == "uint" and value < 0):
                raise self._type_error(value, f, path)
            return int(value)
        if k == "float64":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self._type_error(value, f, path)
            return float(value)
        if k == "duration":
            if not isinstance(value, str):
                raise _AbortError(f"json: cannot unmarshal {_json_kind(value)} into Go value of type string")
            return format_mediamtx_duration(parse_go_duration(value))
        if k == "size":
            if not isinstance(value, str):
                raise _AbortError(f"json: cannot unmarshal {_json_kind(value)} into Go value of type string")
            return _format_size(_parse_size(value))
        if k == "enum":
            if not isinstance(value, str):
                raise _AbortError(f"json: cannot unmarshal {_json_kind(value)} into Go value of type string")
            if value not in f.enum:
                if path == "recordFormat":
                    raise _AbortError(f"invalid record format '{value}'")
                raise _AbortError(f"invalid value '{value}'")
            return value
        if k == "array":
            if not isinstance(value, list):
                raise self._type_error(value, f, path)
            return [self._decode_value(v, f.item, path) for v in value]
        if k == "object":
            if not isinstance(value, dict):
                raise self._type_error(value, f, path)
            return self._decode_object(value, f.props or {}, path + ".")
        return value


def _zero(f: _Field):
    return {
        "string": "",
        "bool": False,
        "int": 0,
        "uint": 0,
        "float64": 0,
        "duration": "",
        "size": "0B",
        "enum": "",
        "array": [],
        "object": {},
    }.get(f.kind)


def _fill(f: _Field, v: Any) -> Any:
    """A YAML default as the server marshals it (None -> zero value, durations canonical)."""
    if v is None:
        return _zero(f)
    if f.kind == "duration":
        return format_mediamtx_duration(parse_go_duration(str(v)))
    if f.kind in ("string", "enum", "size"):
        return str(v)
    if f.kind == "array" and f.item is not None:
        return [_fill(f.item, x) for x in v]
    if f.kind == "object" and f.props is not None:
        return {k: _fill(pf, v.get(k)) for k, pf in f.props.items() if k in v or not pf.deprecated}
    return copy.deepcopy(v)


def _normalise_defaults(schema: _Schema, values: dict) -> dict:
    """Defaults from mediamtx.yml, as the server would marshal them (non-deprecated fields)."""
    return {k: _fill(f, values.get(k)) for k, f in schema.fields.items() if not f.deprecated}


_RE_PATH_NAME = re.compile(r"^[0-9a-zA-Z_\-/.~]+$")


def path_name_error(name: str) -> str | None:
    """``conf.isValidPathName``."""
    if name == "":
        return "cannot be empty"
    if name[0] == "/":
        return "can't begin with a slash"
    if name[-1] == "/":
        return "can't end with a slash"
    if not _RE_PATH_NAME.match(name):
        return "can contain only alphanumeric characters, underscore, dot, tilde, minus or slash"
    return None


_SOURCE_PREFIXES = (
    "rtsp://",
    "rtsps://",
    "rtmp://",
    "rtmps://",
    "http://",
    "https://",
    "udp://",
    "udp+mpegts://",
    "udp+rtp://",
    "unix+mpegts://",
    "unix+rtp://",
    "srt://",
    "whep://",
    "wheps://",
    "moq://",
    "moqs://",
)


def _is_regexp_conf(name: str) -> bool:
    return name in ("all", "all_others") or name.startswith("~")


def validate_path_conf(name: str, p: dict) -> None:
    """The checks of ``conf.Path.validate`` that an API client can trip."""
    regexp = None
    if name in ("all", "all_others"):
        regexp = ".*"
    elif name == "" or name[0] != "~":
        err = path_name_error(name)
        if err:
            raise GoError(f"invalid path name '{name}': {err}")
    else:
        try:
            regexp = re.compile(name[1:])
        except re.error:
            raise GoError(f"invalid regular expression: {name[1:]}") from None
    source = p["source"]
    if source not in ("publisher", "redirect") and regexp is not None and not p["sourceOnDemand"]:
        raise GoError(
            "a path with a regular expression (or path 'all') and a static source"
            " must have 'sourceOnDemand' set to true"
        )
    if not (source in ("publisher", "redirect", "rpiCamera") or source.startswith(_SOURCE_PREFIXES)):
        raise GoError(f"invalid source: '{source}'")
    if p["sourceOnDemand"] and source == "publisher":
        raise GoError("'sourceOnDemand' is useless when source is 'publisher'")
    if source == "redirect" and not p["sourceRedirect"]:
        raise GoError("source redirect must be filled")
    if p["runOnInit"] and regexp is not None:
        raise GoError(
            "a path with a regular expression (or path 'all') does not support option 'runOnInit'; use another path"
        )
    if (p["runOnDemand"] or p["runOnUnDemand"]) and source != "publisher":
        raise GoError("'runOnDemand' and 'runOnUnDemand' can be used only when source is 'publisher'")


# Fields whose change MediaMTX applies to a running path without closing it.
_HOT_FIELDS = re.compile(
    r"^(record.*|runOnDemandCloseAfter|runOnDemandStartTimeout|runOnRead.*|"
    r"runOnUnread|runOnRecord.*|maxReaders|overridePublisher|rpiCamera.*|name)$"
)


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


# ---------------------------------------------------------------------------
# Runtime: readers, on-demand publisher, recorder
# ---------------------------------------------------------------------------


class PathNotServed(Exception):
    """A reader asked for a path that cannot be read (RTSP 404)."""


@dataclass(eq=False)
class Reader:
    """One reader of a path (an RTSP connection or a Python-API handle)."""

    path: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    active: bool = False
    kick: Callable[[], None] | None = None
    _outcome: Exception | bool | None = None
    _waiters: list = field(default_factory=list)

    def when_ready(self) -> defer.Deferred:
        """Fires (with the reader) once the path serves it; fails with
        :class:`PathNotServed` if it never will (closed, detached)."""
        if self._outcome is True:
            return defer.succeed(self)
        if isinstance(self._outcome, Exception):
            return defer.fail(self._outcome)
        d = defer.Deferred()
        self._waiters.append(d)
        return d

    def _settle(self, outcome: Exception | bool) -> None:
        if self._outcome is not None:
            return
        self._outcome = outcome
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.errback(outcome) if isinstance(outcome, Exception) else d.callback(self)


class _Recorder:
    """Writes fMP4 segments for one ready path whose config says ``record: true``."""

    def __init__(self, standin: MediaMTXStandIn, runtime: _PathRuntime):
        self.standin = standin
        self.runtime = runtime
        self.segments: list[Path] = []
        self._file: Path | None = None
        self._seg_start = 0.0
        self._next_frag = 0
        self._loop: LoopingCall | None = None
        init_frags = standin._clip_parts()
        self._init, self._frags = init_frags

    def _conf(self) -> dict:
        return self.runtime.conf

    def start(self) -> None:
        self._new_segment()
        part = parse_go_duration(self._conf()["recordPartDuration"] or "1s") / 1e9
        self._loop = LoopingCall(self._tick)
        self._loop.clock = self.standin.reactor
        self._loop.start(min(max(part, 0.05), 1.0), now=False)

    def _new_segment(self) -> None:
        now = self.standin.reactor.seconds()
        conf = self._conf()
        t = _dt.datetime.fromtimestamp(now).astimezone()
        pattern = conf["recordPath"] + (".mp4" if conf["recordFormat"] == "fmp4" else ".ts")
        target = self.standin._abs_record_path(render_record_path(pattern, self.runtime.name, t))
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as f:
            f.write(self._init)
            if self._frags:
                f.write(self._frags[0])
        self._file = target
        self._seg_start = now
        self._next_frag = 1
        self.segments.append(target)
        log.info(
            "recording segment {file} of {path}",
            file=str(target),
            path=self.runtime.name,
        )

    def _tick(self) -> None:
        seg = parse_go_duration(self._conf()["recordSegmentDuration"] or "1h") / 1e9
        if self.standin.reactor.seconds() - self._seg_start >= seg:
            self._new_segment()
            return
        if self._file is not None and self._next_frag < len(self._frags):
            with open(self._file, "ab") as f:
                f.write(self._frags[self._next_frag])
            self._next_frag += 1

    def stop(self) -> None:
        """Finalise: the segment on disk is a complete fMP4 file; stop growing it."""
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        self._file = None


class _PathRuntime:
    """Run-time state of one configured path (what ``/v3/paths`` shows)."""

    BYTES_PER_SECOND = 250_000

    def __init__(self, standin: MediaMTXStandIn, name: str, conf: dict):
        self.standin = standin
        self.name = name
        self.conf = conf
        self.readers: list[Reader] = []  # everyone who asked, active or waiting
        self.ready = False
        self.on_demand = False
        self.ready_time: _dt.datetime | None = None
        self.source_id = ""
        self._bytes_in = 0.0
        self._bytes_out = 0.0
        self._counted_until = standin.reactor.seconds()
        self._start_call = None
        self._close_call = None
        self.recorder: _Recorder | None = None

    def _advance(self) -> None:
        """Bring the byte counters up to now (they grow while the path is ready)."""
        now = self.standin.reactor.seconds()
        elapsed = max(0.0, now - self._counted_until)
        self._counted_until = now
        if self.ready:
            self._bytes_in += elapsed * self.BYTES_PER_SECOND
            self._bytes_out += elapsed * self.BYTES_PER_SECOND * len(self.active_readers())

    def active_readers(self) -> list[Reader]:
        return [r for r in self.readers if r.active]

    def api_item(self) -> dict:
        self._advance()
        rt = go_time(self.ready_time) if self.ready and self.ready_time else None
        return {
            "name": self.name,
            "confName": self.name,
            "source": {"type": "rtspSession", "id": self.source_id} if self.ready else None,
            "ready": self.ready,
            "readyTime": rt,
            "available": self.ready,
            "availableTime": rt,
            "online": self.ready,
            "onlineTime": rt,
            "tracks": ["H264"] if self.ready else [],
            "tracks2": (
                [
                    {
                        "codec": "H264",
                        "codecProps": {
                            "width": 320,
                            "height": 240,
                            "profile": "Constrained Baseline",
                            "level": "1.3",
                        },
                    }
                ]
                if self.ready
                else []
            ),
            "bytesReceived": int(self._bytes_in),
            "bytesSent": int(self._bytes_out),
            "inboundBytes": int(self._bytes_in),
            "inboundFramesInError": 0,
            "outboundBytes": int(self._bytes_out),
            "readers": [{"type": "rtspSession", "id": r.id} for r in self.active_readers()],
        }

    # -- readers / publisher -------------------------------------------------

    def add_reader(self, reader: Reader) -> None:
        self._advance()
        if not self.ready and not self.conf["runOnDemand"]:
            raise PathNotServed(f"no one is publishing to path '{self.name}'")
        self.readers.append(reader)
        self._cancel_close()
        if self.ready:
            self._activate(reader)
        elif self._start_call is None:
            log.info(
                "runOnDemand of {path}: starting {cmd!r}",
                path=self.name,
                cmd=self.conf["runOnDemand"],
            )
            self._start_call = self.standin.reactor.callLater(self.standin.publish_delay, self._on_demand_ready)

    def _activate(self, reader: Reader) -> None:
        reader.active = True
        reader._settle(True)

    def _on_demand_ready(self) -> None:
        self._start_call = None
        self.on_demand = True
        self.set_ready()

    def set_ready(self) -> None:
        self._advance()
        if not self.ready:
            self.ready = True
            self.source_id = str(uuid.uuid4())
            self.ready_time = _dt.datetime.fromtimestamp(self.standin.reactor.seconds()).astimezone()
        for r in self.readers:
            self._activate(r)
        self.update_recording()

    def set_not_ready(self) -> None:
        self._advance()
        self.ready = False
        self.on_demand = False
        self.ready_time = None
        for r in self.readers:
            r.active = False
        self.update_recording()

    def remove_reader(self, reader: Reader) -> None:
        self._advance()
        if reader in self.readers:
            self.readers.remove(reader)
        reader.active = False
        reader._settle(PathNotServed("reader left"))
        if self.readers:
            return
        if self._start_call is not None:
            self._start_call.cancel()
            self._start_call = None
        elif self.on_demand and self.ready and self._close_call is None:
            after = parse_go_duration(self.conf["runOnDemandCloseAfter"] or "0s") / 1e9
            self._close_call = self.standin.reactor.callLater(after, self._close_on_demand)

    def _cancel_close(self) -> None:
        if self._close_call is not None:
            self._close_call.cancel()
            self._close_call = None

    def _close_on_demand(self) -> None:
        self._close_call = None
        log.info("runOnDemand of {path}: stopping (no readers)", path=self.name)
        self.set_not_ready()

    def update_recording(self) -> None:
        want = self.ready and bool(self.conf["record"])
        if want and self.recorder is None:
            self.recorder = _Recorder(self.standin, self)
            self.standin._recorders_seen.setdefault(self.name, []).append(self.recorder)
            self.recorder.start()
        elif not want and self.recorder is not None:
            self.recorder.stop()
            self.recorder = None

    def close(self) -> None:
        """The path is removed or re-created: kick readers, stop everything."""
        for c in (self._start_call, self._close_call):
            if c is not None and c.active():
                c.cancel()
        self._start_call = self._close_call = None
        self.set_not_ready()
        for r in list(self.readers):
            self.readers.remove(r)
            r._settle(PathNotServed("path closed"))
            if r.kick:
                r.kick()


# ---------------------------------------------------------------------------
# RTSP: just enough for "a reader is attached"
# ---------------------------------------------------------------------------


class _RTSPReaderProtocol(Protocol):
    """A TCP connection that asks for a path counts as one reader of it."""

    def __init__(self, standin: MediaMTXStandIn):
        self.standin = standin
        self.buffer = b""
        self.reader: Reader | None = None
        self.lost = defer.Deferred()

    def connectionMade(self):
        self.standin._rtsp_conns.add(self)

    def dataReceived(self, data):
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, _, rest = self.buffer.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            length = int(headers.get("content-length", "0") or 0)
            if len(rest) < length:
                return
            self.buffer = rest[length:]
            self._request(lines[0], headers)

    def _reply(self, status: str, cseq: str, extra: str = "", body: bytes = b""):
        if self.transport is None or not self.transport.connected:
            return
        head = f"RTSP/1.0 {status}\r\nCSeq: {cseq}\r\nServer: gortsplib\r\n{extra}"
        if body:
            head += f"Content-Length: {len(body)}\r\n"
        self.transport.write(head.encode("latin-1") + b"\r\n" + body)

    def _request(self, line: str, headers: dict):
        cseq = headers.get("cseq", "0")
        parts = line.split()
        if len(parts) != 3 or not parts[2].startswith("RTSP/"):
            self._reply("400 Bad Request", cseq)
            return
        method, url = parts[0].upper(), parts[1]
        if method == "OPTIONS":
            self._reply(
                "200 OK",
                cseq,
                "Public: DESCRIBE, ANNOUNCE, SETUP, PLAY, RECORD, PAUSE, GET_PARAMETER, TEARDOWN\r\n",
            )
            return
        if self.reader is not None:
            self._reply("200 OK", cseq, "Session: 12345678;timeout=60\r\n")
            return
        name = unquote(urlsplit(url).path).strip("/")
        if method == "SETUP" and "/" in name:
            name = name.rsplit("/", 1)[0]
        try:
            self.reader = self.standin._attach(name, kick=self.transport.loseConnection)
        except PathNotServed as e:
            log.info("RTSP reader of {path} refused: {err}", path=name, err=str(e))
            self._reply("404 Not Found", cseq)
            return
        sdp = (
            b"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=Stream\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"
            b"m=video 0 RTP/AVP 96\r\na=control:trackID=0\r\na=rtpmap:96 H264/90000\r\n"
        )
        self.reader.when_ready().addCallbacks(
            lambda _: self._reply(
                "200 OK",
                cseq,
                f"Content-Base: {url}/\r\nContent-Type: application/sdp\r\n",
                sdp,
            ),
            lambda f: (self._reply("404 Not Found", cseq), None)[1],
        )

    def connectionLost(self, reason):
        self.standin._rtsp_conns.discard(self)
        if self.reader is not None:
            reader, self.reader = self.reader, None
            self.standin.detach_reader(reader)
        self.lost.callback(None)


class _RTSPFactory(Factory):
    def __init__(self, standin):
        self.standin = standin

    def buildProtocol(self, addr):
        return _RTSPReaderProtocol(self.standin)


# ---------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    """One request as the stand-in received it."""

    method: str
    target: str  # raw request target (path + query) as sent
    path: str  # percent-decoded path
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    spec_errors: list[str] = field(default_factory=list)
    status: int | None = None
    response_body: bytes = b""

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body.strip() else None


@dataclass
class _Reply:
    status: int
    body: bytes = b""
    content_type: str | None = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    pause: float = 0.0


class _APIResource(Resource):
    isLeaf = True

    def __init__(self, standin: MediaMTXStandIn):
        super().__init__()
        self.standin = standin

    def render(self, request):
        return self.standin._render(request)


# Routes registered by internal/api/api.go that do not depend on optional servers.
_ROUTES: list[tuple[str, str, bool, str]] = [
    # (method, path or wildcard prefix, is_wildcard, handler)
    ("GET", "/v3/info", False, "info"),
    ("POST", "/v3/auth/jwks/refresh", False, "jwks_refresh"),
    ("GET", "/v3/config/global/get", False, "global_get"),
    ("PATCH", "/v3/config/global/patch", False, "global_patch"),
    ("GET", "/v3/config/pathdefaults/get", False, "pathdefaults_get"),
    ("PATCH", "/v3/config/pathdefaults/patch", False, "pathdefaults_patch"),
    ("GET", "/v3/config/paths/list", False, "config_paths_list"),
    ("GET", "/v3/config/paths/get", True, "config_paths_get"),
    ("POST", "/v3/config/paths/add", True, "config_paths_add"),
    ("PATCH", "/v3/config/paths/patch", True, "config_paths_patch"),
    ("POST", "/v3/config/paths/replace", True, "config_paths_replace"),
    ("DELETE", "/v3/config/paths/delete", True, "config_paths_delete"),
    ("GET", "/v3/paths/list", False, "paths_list"),
    ("GET", "/v3/paths/get", True, "paths_get"),
    ("GET", "/v3/recordings/list", False, "recordings_list"),
    ("GET", "/v3/recordings/get", True, "recordings_get"),
    ("DELETE", "/v3/recordings/deletesegment", False, "recordings_deletesegment"),
]


def _paginate(items: list, query: dict) -> tuple[list, int]:
    """``internal/api/paginate.go``."""

    def parse(name: str, default: int) -> int:
        raw = query.get(name, [""])[0]
        if raw == "":
            return default
        if not re.fullmatch(r"[0-9]+", raw):
            raise GoError(f"strconv.ParseUint: parsing {_go_quote(raw)}: invalid syntax")
        v = int(raw)
        if v >= 2**31:
            raise GoError(f"strconv.ParseUint: parsing {_go_quote(raw)}: value out of range")
        return v

    per_page = parse("itemsPerPage", 100)
    if "itemsPerPage" in query and query["itemsPerPage"][0] != "" and per_page == 0:
        raise GoError("invalid items per page")
    page = parse("page", 0)
    if not items:
        return [], 0
    page_count = -(-len(items) // per_page)
    lo = min(page * per_page, len(items))
    hi = min((page + 1) * per_page, len(items))
    return items[lo:hi], page_count


class MediaMTXStandIn:
    """A MediaMTX v1.20.1 stand-in: control API, fake RTSP readers, recordings.

    Collaborators: a reactor (``IReactorTCP`` + ``IReactorTime``; the global
    one by default), :class:`tests.support.openapi.OpenAPISpec` for the
    contract check, ffmpeg (once, via :func:`ensure_clip`) for recordings.

    Test-control API: :meth:`start`, :meth:`stop`, :meth:`restart`,
    :meth:`set_delay`, :meth:`attach_reader`, :meth:`detach_reader`,
    :meth:`start_publisher` / :meth:`stop_publisher`, :meth:`path_state`,
    :meth:`take_violations`, :meth:`clear_requests`, plus the
    :attr:`requests`, :attr:`violations` and :attr:`response_violations` lists.
    """

    def __init__(
        self,
        reactor=None,
        *,
        port: int = 0,
        interface: str = "127.0.0.1",
        rtsp_port: int | None = 0,
        record_root: str | Path | None = None,
        user: str | None = None,
        password: str | None = None,
        delay: float = 0.0,
        static_paths: dict[str, dict] | None = None,
        legacy_replies: bool = False,
        auth_pause: float = AUTH_PAUSE_AFTER_ERROR,
        publish_delay: float = 0.05,
        clip_path: str | Path | None = None,
        spec: OpenAPISpec | None = None,
        validate_responses: bool = True,
    ):
        if reactor is None:
            from twisted.internet import reactor as _reactor

            reactor = _reactor
        self.reactor = reactor
        self.interface = interface
        self.api_port = port
        self.rtsp_port = rtsp_port
        self.record_root = Path(record_root) if record_root else Path.cwd()
        self.user = user
        self.password = password
        self.delay = delay
        self.legacy_replies = legacy_replies
        self.auth_pause = auth_pause
        self.publish_delay = publish_delay
        self.clip_path = Path(clip_path) if clip_path else None
        self.spec = spec or OpenAPISpec()
        self.validate_responses = validate_responses

        self._path_schema = _Schema(self.spec, "PathConf")
        self._global_schema = _Schema(self.spec, "GlobalConf")
        with open(DEFAULTS_PATH, encoding="utf-8") as f:
            yml = yaml.safe_load(f)
        self._yml_path_defaults = _normalise_defaults(self._path_schema, yml["pathDefaults"])
        self._yml_global = _normalise_defaults(
            self._global_schema,
            {k: v for k, v in yml.items() if k not in ("pathDefaults", "paths")},
        )
        if static_paths is None:
            static_paths = {k: (v or {}) for k, v in (yml.get("paths") or {}).items()}
        self.static_paths: dict[str, dict] = {}
        for name, raw in static_paths.items():
            self.static_paths[name] = self._path_schema.decode(json.dumps(raw or {}).encode())

        self.requests: list[RecordedRequest] = []
        self.violations: list[str] = []
        self.response_violations: list[str] = []
        self.started: _dt.datetime | None = None
        self.running = False

        self._optional_paths: dict[str, dict] = {}
        self._path_defaults: dict = {}
        self._global: dict = {}
        self._runtimes: dict[str, _PathRuntime] = {}
        self._api_listener = None
        self._rtsp_listener = None
        self._http_factory: WrappingFactory | None = None
        self._rtsp_conns: set[_RTSPReaderProtocol] = set()
        self._pending: set = set()
        self._clip: tuple[bytes, list[bytes]] | None = None
        self._recorders_seen: dict[str, list[_Recorder]] = {}

    # -- lifecycle -------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL of the control API, e.g. ``http://127.0.0.1:9997``."""
        return f"http://{self.interface}:{self.api_port}"

    def start(self) -> defer.Deferred:
        """Listen (again, on the same ports after the first start) with a fresh
        configuration from the static config and a new ``started`` time."""
        if self.running:
            return defer.succeed(self)
        self._http_factory = WrappingFactory(Site(_APIResource(self)))
        self._api_listener = self.reactor.listenTCP(self.api_port, self._http_factory, interface=self.interface)
        self.api_port = self._api_listener.getHost().port
        if self.rtsp_port is not None:
            self._rtsp_listener = self.reactor.listenTCP(self.rtsp_port, _RTSPFactory(self), interface=self.interface)
            self.rtsp_port = self._rtsp_listener.getHost().port
        self._reset_config()
        self.started = _dt.datetime.fromtimestamp(self.reactor.seconds()).astimezone()
        self.running = True
        log.info(
            "MediaMTX stand-in {version} listening: API {port}, RTSP {rtsp}",
            version=VERSION,
            port=self.api_port,
            rtsp=self.rtsp_port,
        )
        return defer.succeed(self)

    def stop(self) -> defer.Deferred:
        """Die like the process: close ports and every connection (clients then
        get "connection refused"), stop publishers and recordings, forget the
        API-made configuration."""
        if not self.running:
            return defer.succeed(None)
        self.running = False
        waits = []
        for call in list(self._pending):
            if call.active():
                call.cancel()
        self._pending.clear()
        for rt in list(self._runtimes.values()):
            rt.close()
        self._runtimes.clear()
        if self._api_listener is not None:
            waits.append(defer.maybeDeferred(self._api_listener.stopListening))
            self._api_listener = None
        if self._rtsp_listener is not None:
            waits.append(defer.maybeDeferred(self._rtsp_listener.stopListening))
            self._rtsp_listener = None
        if self._http_factory is not None:
            for proto in list(self._http_factory.protocols):
                waits.append(self._connection_lost(proto))
                proto.transport.abortConnection()
        for conn in list(self._rtsp_conns):
            waits.append(conn.lost)
            conn.transport.abortConnection()
        return defer.gatherResults(waits, consumeErrors=True).addCallback(lambda _: None)

    @staticmethod
    def _connection_lost(wrapper) -> defer.Deferred:
        d = defer.Deferred()
        original = wrapper.connectionLost

        def lost(reason):
            try:
                original(reason)
            finally:
                if not d.called:
                    d.callback(None)

        wrapper.connectionLost = lost
        return d

    @defer.inlineCallbacks
    def restart(self):
        """Stop then start: API-made paths are gone and ``started`` changes."""
        yield self.stop()
        # ``started`` must differ even on a coarse clock.
        yield self.start()
        return self

    def set_delay(self, seconds: float) -> None:
        """Delay every later reply by ``seconds`` (0 disables)."""
        self.delay = seconds

    # -- test helpers -------------------------------------------------------------

    def take_violations(self) -> list[str]:
        """Return and clear the spec violations (for tests that send bad requests on purpose)."""
        out, self.violations = self.violations, []
        return out

    def clear_requests(self) -> None:
        self.requests.clear()

    def requests_to(self, method: str | None = None, prefix: str = "") -> list[RecordedRequest]:
        return [r for r in self.requests if (method is None or r.method == method) and r.path.startswith(prefix)]

    @property
    def config_paths(self) -> dict[str, dict]:
        """Effective configuration of every configured path."""
        return {n: self._effective(n) for n in sorted(self._optional_paths)}

    def path_state(self, name: str) -> dict | None:
        """The ``/v3/paths/get`` item of ``name`` (None when there is no such path)."""
        rt = self._runtimes.get(name)
        return rt.api_item() if rt else None

    def attach_reader(self, path: str) -> Reader:
        """Attach a reader as an RTSP client would; raises :class:`PathNotServed`."""
        return self._attach(path, kick=None)

    def detach_reader(self, reader: Reader) -> None:
        rt = self._runtimes.get(reader.path)
        if rt is not None:
            rt.remove_reader(reader)
        reader._settle(PathNotServed("reader left"))

    def start_publisher(self, path: str) -> None:
        """Simulate a (non on-demand) publisher pushing to ``path``."""
        self._runtimes[path].set_ready()

    def stop_publisher(self, path: str) -> None:
        rt = self._runtimes[path]
        rt.set_not_ready()

    def recorded_segments(self, path: str) -> list[Path]:
        """Files the stand-in wrote for ``path`` since it started."""
        return [seg for rec in self._recorders_seen.get(path, []) for seg in rec.segments]

    # -- configuration -------------------------------------------------------------

    def _reset_config(self) -> None:
        self._path_defaults = copy.deepcopy(self._yml_path_defaults)
        self._global = copy.deepcopy(self._yml_global)
        self._global.update(
            {
                "api": True,
                "apiAddress": f":{self.api_port}",
                "rtsp": self.rtsp_port is not None,
            }
        )
        if self.rtsp_port is not None:
            self._global["rtspAddress"] = f":{self.rtsp_port}"
        if self.user is not None:
            self._global["authInternalUsers"] = [
                {
                    "user": "any",
                    "pass": "",
                    "ips": [],
                    "permissions": [
                        {"action": "publish", "path": ""},
                        {"action": "read", "path": ""},
                        {"action": "playback", "path": ""},
                    ],
                },
                {
                    "user": self.user,
                    "pass": self.password or "",
                    "ips": [],
                    "permissions": [
                        {"action": "api", "path": ""},
                        {"action": "metrics", "path": ""},
                        {"action": "pprof", "path": ""},
                    ],
                },
            ]
        self._optional_paths = copy.deepcopy(self.static_paths)
        self._sync_runtimes()

    def _effective(self, name: str, optional: dict | None = None, defaults: dict | None = None) -> dict:
        out = copy.deepcopy(defaults if defaults is not None else self._path_defaults)
        out.update(copy.deepcopy(optional if optional is not None else self._optional_paths[name]))
        out["name"] = name
        return out

    def _validate_all(self, optional_paths: dict, defaults: dict) -> None:
        for name in sorted(optional_paths):
            validate_path_conf(name, self._effective(name, optional_paths[name], defaults))

    def _commit(self, optional_paths: dict, defaults: dict | None = None) -> None:
        defaults = defaults if defaults is not None else self._path_defaults
        self._validate_all(optional_paths, defaults)
        self._optional_paths = optional_paths
        self._path_defaults = defaults
        self._sync_runtimes()

    def _sync_runtimes(self) -> None:
        wanted = {n for n in self._optional_paths if not _is_regexp_conf(n)}
        for name in list(self._runtimes):
            if name not in wanted:
                self._runtimes.pop(name).close()
        for name in sorted(wanted):
            conf = self._effective(name)
            rt = self._runtimes.get(name)
            if rt is None:
                self._runtimes[name] = _PathRuntime(self, name, conf)
                continue
            changed = {k for k in conf if conf[k] != rt.conf.get(k)}
            if not changed:
                continue
            if all(_HOT_FIELDS.match(k) for k in changed):
                rt.conf = conf
                if rt.recorder is not None and changed & {"recordPath", "recordFormat"}:
                    rt.recorder.stop()
                    rt.recorder = None
                rt.update_recording()
            else:
                rt.close()
                self._runtimes[name] = _PathRuntime(self, name, conf)

    def _find_path_conf(self, name: str) -> dict:
        """``conf.FindPathConf``."""
        err = path_name_error(name)
        if err:
            raise GoError(f"invalid path name: {err} ({name})")
        if name in self._optional_paths and not _is_regexp_conf(name):
            return self._effective(name)
        for conf_name in self._optional_paths:
            if conf_name.startswith("~") and re.search(conf_name[1:], name):
                return self._effective(conf_name)
        for conf_name in ("all", "all_others"):
            if conf_name in self._optional_paths:
                return self._effective(conf_name)
        raise GoError(f"path '{name}' is not configured")

    # -- readers -------------------------------------------------------------

    def _attach(self, path: str, kick) -> Reader:
        if not self.running:
            raise PathNotServed("server is stopped")
        rt = self._runtimes.get(path)
        if rt is None:
            raise PathNotServed(f"path '{path}' is not configured")
        reader = Reader(path=path, kick=kick)
        rt.add_reader(reader)
        return reader

    # -- recordings -------------------------------------------------------------

    def _clip_parts(self) -> tuple[bytes, list[bytes]]:
        if self._clip is None:
            clip = self.clip_path or ensure_clip()
            self._clip = split_fmp4(Path(clip).read_bytes())
        return self._clip

    def _abs_record_path(self, p: str) -> Path:
        return Path(os.path.normpath(os.path.join(self.record_root, p)))

    def _segments_of(self, conf: dict, path_name: str) -> list[tuple[_dt.datetime, Path]]:
        ext = ".mp4" if conf["recordFormat"] == "fmp4" else ".ts"
        pattern = str(self._abs_record_path(conf["recordPath"].replace("%path", path_name) + ext))
        base = self._abs_record_path(common_path(conf["recordPath"]))
        rx = _pattern_regex(pattern)
        out = []
        if base.is_dir():
            for dirpath, _, files in os.walk(base):
                for fn in files:
                    full = os.path.join(dirpath, fn)
                    m = rx.match(full)
                    if m:
                        out.append((_decode_start(m), Path(full)))
        out.sort()
        return out

    def _all_paths_with_segments(self) -> list[str]:
        names = set()
        for conf_name in self._optional_paths:
            conf = self._effective(conf_name)
            ext = ".mp4" if conf["recordFormat"] == "fmp4" else ".ts"
            rx = _pattern_regex(str(self._abs_record_path(conf["recordPath"] + ext)))
            base = self._abs_record_path(common_path(conf["recordPath"]))
            if not base.is_dir():
                continue
            for dirpath, _, files in os.walk(base):
                for fn in files:
                    m = rx.match(os.path.join(dirpath, fn))
                    if m and "path" in m.groupdict():
                        name = m.group("path")
                        try:
                            if self._find_path_conf(name)["name"] == conf_name:
                                names.add(name)
                        except GoError:
                            pass
        return sorted(names)

    # -- HTTP plumbing ----------------------------------------------------------

    def _render(self, request):
        body = request.content.read() if request.content is not None else b""
        target = request.uri.decode("latin-1")
        split = urlsplit(target)
        rec = RecordedRequest(
            method=request.method.decode("ascii"),
            target=target,
            path=unquote(split.path),
            query=parse_qs(split.query, keep_blank_values=True),
            headers={
                k.decode("latin-1").lower(): b", ".join(v).decode("latin-1")
                for k, v in request.requestHeaders.getAllRawHeaders()
            },
            body=body,
        )
        rec.spec_errors = self.spec.request_errors(rec.method, target, body, rec.headers)
        if rec.spec_errors:
            msg = f"{rec.method} {target}: " + "; ".join(rec.spec_errors)
            log.warn(  # noqa: G010 - twisted.logger has no .warning
                "request not allowed by the MediaMTX spec: {msg}", msg=msg
            )
            self.violations.append(msg)
        self.requests.append(rec)
        request.responseHeaders.removeHeader(b"server")

        try:
            reply = self._dispatch(rec)
        except Exception:  # noqa: BLE001 - reported as a 500, like a Go handler panic
            log.failure("stand-in handler failed")
            reply = self._error(500, "internal stand-in error")
        rec.status = reply.status
        rec.response_body = reply.body
        # 401 comes from the auth middleware and is undocumented in the spec for every route.
        if (
            self.validate_responses
            and reply.status != 401
            and self.spec.match(rec.method, rec.path)
            and reply.content_type
            and reply.content_type.startswith("application/json")
        ):
            errs = self.spec.response_errors(rec.method, target, reply.status, reply.body)
            if errs:
                self.response_violations.append(f"{rec.method} {target} -> {reply.status}: " + "; ".join(errs))

        wait = reply.pause + self.delay
        if wait <= 0:
            return self._write(request, reply)

        def later():
            self._pending.discard(call)
            if not finished.called:
                body = self._write(request, reply)
                if body:
                    request.write(body)
                request.finish()

        finished = request.notifyFinish()
        call = self.reactor.callLater(wait, later)
        self._pending.add(call)

        def gone(_):
            if call.active():
                call.cancel()
            self._pending.discard(call)

        finished.addErrback(gone)
        return NOT_DONE_YET

    @staticmethod
    def _write(request, reply: _Reply) -> bytes:
        request.setResponseCode(reply.status)
        if reply.content_type:
            request.setHeader(b"content-type", reply.content_type.encode())
        for k, v in reply.headers.items():
            request.setHeader(k.encode(), v.encode())
        return reply.body

    def _ok(self) -> _Reply:
        if self.legacy_replies:
            return _Reply(200, b"", content_type=None)
        return _Reply(200, go_json({"status": "ok"}))

    def _json(self, obj: Any, status: int = 200) -> _Reply:
        return _Reply(status, go_json(obj))

    def _error(self, status: int, message: str) -> _Reply:
        log.info("[API] {message}", message=message)
        if self.legacy_replies:
            return _Reply(status, go_json({"error": message}))
        return _Reply(status, go_json({"status": "error", "error": message}))

    def _not_found_text(self) -> _Reply:
        return _Reply(404, b"404 page not found", content_type="text/plain")

    def _auth(self, rec: RecordedRequest) -> _Reply | None:
        if self.user is None:
            return None
        user = password = ""
        auth = rec.headers.get("authorization", "")
        if auth[:6].lower() == "basic ":
            try:
                user, _, password = base64.b64decode(auth[6:].strip()).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                user = password = ""
        if hmac.compare_digest(user.encode(), self.user.encode()) and hmac.compare_digest(
            password.encode(), (self.password or "").encode()
        ):
            return None
        body = {"status": "error", "error": "authentication error"}
        if not user and not password:
            # internal/auth: no credentials -> AskCredentials -> challenge, no pause.
            return _Reply(
                401,
                go_json(body),
                headers={"WWW-Authenticate": 'Basic realm="mediamtx"'},
            )
        log.info("[API] connection failed to authenticate: invalid credentials")
        return _Reply(401, go_json(body), pause=self.auth_pause)

    def _route(self, method: str, path: str) -> tuple[str, str] | _Reply | None:
        for m, p, wildcard, handler in _ROUTES:
            if m != method:
                continue
            if wildcard and path.startswith(p + "/"):
                return handler, path[len(p) :]
            if not wildcard and path == p:
                return handler, ""
        # gin's RedirectTrailingSlash (before any middleware).
        for m, p, wildcard, _ in _ROUTES:
            if m != method:
                continue
            alt = None
            if wildcard and path == p:
                alt = p + "/"
            elif not wildcard and path == p + "/":
                alt = p
            if alt is not None:
                code = 301 if method == "GET" else 307
                body = b""
                ctype = None
                if method in ("GET", "HEAD"):
                    text = "Moved Permanently" if code == 301 else "Temporary Redirect"
                    body = f'<a href="{alt}">{text}</a>.\n\n'.encode()
                    ctype = "text/html; charset=utf-8"
                return _Reply(code, body, content_type=ctype, headers={"Location": alt})
        return None

    def _dispatch(self, rec: RecordedRequest) -> _Reply:
        if rec.method == "OPTIONS" and rec.headers.get("access-control-request-method"):
            return _Reply(
                204,
                b"",
                content_type=None,
                headers={
                    "Access-Control-Allow-Methods": "OPTIONS, GET, POST, PATCH, DELETE",
                    "Access-Control-Allow-Headers": "Authorization, Content-Type",
                },
            )
        routed = self._route(rec.method, rec.path)
        if isinstance(routed, _Reply):
            return routed
        denied = self._auth(rec)
        if denied is not None:
            return denied
        if routed is None:
            return self._not_found_text()
        handler, param = routed
        try:
            return getattr(self, "_on_" + handler)(rec, param)
        except GoError as e:
            return self._error(400, str(e))

    @staticmethod
    def _param_name(param: str) -> str | None:
        """``paramName``: gin's ``*name`` includes the leading slash."""
        if len(param) < 2 or param[0] != "/":
            return None
        return param[1:]

    # -- handlers ------------------------------------------------------------------

    def _on_info(self, rec, _):
        return self._json({"started": go_time(self.started), "version": VERSION})

    def _on_jwks_refresh(self, rec, _):
        return self._ok()

    def _on_global_get(self, rec, _):
        return self._json(self._global)

    def _on_global_patch(self, rec, _):
        values = self._global_schema.decode(rec.body)
        self._global.update({k: v for k, v in values.items() if not self._global_schema.fields[k].deprecated})
        return self._ok()

    def _on_pathdefaults_get(self, rec, _):
        return self._json({**self._path_defaults, "name": ""})

    def _on_pathdefaults_patch(self, rec, _):
        values = self._path_schema.decode(rec.body)
        defaults = copy.deepcopy(self._path_defaults)
        defaults.update({k: v for k, v in values.items() if k in defaults})
        self._commit(copy.deepcopy(self._optional_paths), defaults)
        return self._ok()

    def _on_config_paths_list(self, rec, _):
        items = [self._effective(n) for n in sorted(self._optional_paths)]
        total = len(items)
        page, count = _paginate(items, rec.query)
        return self._json({"itemCount": total, "pageCount": count, "items": page})

    def _on_config_paths_get(self, rec, param):
        name = self._param_name(param)
        if name is None:
            return self._error(400, "invalid name")
        if name not in self._optional_paths:
            return self._error(404, "path configuration not found")
        return self._json(self._effective(name))

    def _on_config_paths_add(self, rec, param):
        name = self._param_name(param)
        if name is None:
            return self._error(400, "invalid name")
        values = self._path_schema.decode(rec.body)
        if name in self._optional_paths:
            return self._error(400, "path already exists")
        paths = copy.deepcopy(self._optional_paths)
        paths[name] = values
        self._commit(paths)
        return self._ok()

    def _on_config_paths_patch(self, rec, param):
        name = self._param_name(param)
        if name is None:
            return self._error(400, "invalid name")
        values = self._path_schema.decode(rec.body)
        if name not in self._optional_paths:
            return self._error(404, "path not found")
        paths = copy.deepcopy(self._optional_paths)
        paths[name].update(values)
        self._commit(paths)
        return self._ok()

    def _on_config_paths_replace(self, rec, param):
        name = self._param_name(param)
        if name is None:
            return self._error(400, "invalid name")
        values = self._path_schema.decode(rec.body)
        paths = copy.deepcopy(self._optional_paths)
        paths[name] = values
        self._commit(paths)
        return self._ok()

    def _on_config_paths_delete(self, rec, param):
        name = self._param_name(param)
        if name is None:
            return self._error(400, "invalid name")
        if name not in self._optional_paths:
            return self._error(404, "path not found")
        paths = copy.deepcopy(self._optional_paths)
        del paths[name]
        self._commit(paths)
        return self._ok()

    def _on_paths_list(self, rec, _):
        items = [self._runtimes[n].api_item() for n in sorted(self._runtimes)]
        total = len(items)
        page, count = _paginate(items, rec.query)
        return self._json({"itemCount": total, "pageCount": count, "items": page})

    def _on_paths_get(self, rec, param):
        name = self._param_name(param)
        if name is None:
            return self._error(400, "invalid name")
        rt = self._runtimes.get(name)
        if rt is None:
            return self._error(404, "path not found")
        return self._json(rt.api_item())

    def _recording(self, name: str, conf: dict) -> dict:
        return {
            "name": name,
            "segments": [{"start": go_time(t)} for t, _ in self._segments_of(conf, name)],
        }

    def _on_recordings_list(self, rec, _):
        names = self._all_paths_with_segments()
        total = len(names)
        page, count = _paginate(names, rec.query)
        items = [self._recording(n, self._find_path_conf(n)) for n in page]
        return self._json({"itemCount": total, "pageCount": count, "items": items})

    def _on_recordings_get(self, rec, param):
        name = self._param_name(param)
        if name is None:
            return self._error(400, "invalid name")
        conf = self._find_path_conf(name)
        return self._json(self._recording(name, conf))

    def _on_recordings_deletesegment(self, rec, _):
        path_name = rec.query.get("path", [""])[0]
        raw_start = rec.query.get("start", [""])[0]
        try:
            # RFC 3339 as Go parses it; Python 3.10's fromisoformat takes no "Z".
            start = _dt.datetime.fromisoformat(re.sub(r"Z$", "+00:00", raw_start))
            if start.tzinfo is None or not re.match(r"^\d{4}-\d{2}-\d{2}T", raw_start):
                raise ValueError
        except ValueError:
            return self._error(
                400,
                f"invalid 'start' parameter: parsing time {_go_quote(raw_start)} "
                f'as "2006-01-02T15:04:05Z07:00": cannot parse '
                f'{_go_quote(raw_start)} as "2006"',
            )
        conf = self._find_path_conf(path_name)
        ext = ".mp4" if conf["recordFormat"] == "fmp4" else ".ts"
        target = self._abs_record_path(render_record_path(conf["recordPath"] + ext, path_name, start.astimezone()))
        try:
            os.remove(target)
        except OSError as e:
            return self._error(400, f"remove {target}: {(e.strerror or str(e)).lower()}")
        return self._ok()


# ---------------------------------------------------------------------------
# standalone
# ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    import argparse

    from twisted.internet import reactor
    from twisted.logger import globalLogBeginner, textFileLogObserver

    ap = argparse.ArgumentParser(prog="python -m tests.support.mediamtx", description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=None, help="API port (default: the --config's apiAddress, else 9997)")
    ap.add_argument("--interface", default="127.0.0.1")
    ap.add_argument(
        "--rtsp-port",
        type=int,
        default=None,
        help="fake RTSP port for readers (0 = any)",
    )
    ap.add_argument(
        "--record-root",
        default=None,
        help="directory relative recordPaths resolve against",
    )
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--delay", type=float, default=0.0, help="seconds to wait before every reply")
    ap.add_argument("--auth-pause", type=float, default=AUTH_PAUSE_AFTER_ERROR)
    ap.add_argument(
        "--config",
        help="a mediamtx.yml: its 'paths' are the static configuration; apiAddress and the api user apply too",
    )
    ap.add_argument(
        "--legacy-replies",
        action="store_true",
        help="empty OK bodies, errors without 'status'",
    )
    args = ap.parse_args(argv)

    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stderr)], redirectStandardIO=False)
    static = None
    if args.config:
        # Read like MediaMTX reads its mediamtx.yml: the static paths, and (unless given
        # on the command line) the API address and the user holding the api permission.
        with open(args.config, encoding="utf-8") as f:
            conf = yaml.safe_load(f) or {}
        static = {k: (v or {}) for k, v in (conf.get("paths") or {}).items()}
        host, _, port = str(conf.get("apiAddress") or "").rpartition(":")
        if args.port is None and port:
            args.port = int(port)
            args.interface = host.strip("[]") or "0.0.0.0"
        for u in conf.get("authInternalUsers") or []:
            if u.get("user") != "any" and any(p.get("action") == "api" for p in u.get("permissions") or []):
                if args.user is None:
                    args.user, args.password = u["user"], u.get("pass") or ""
                break
    if args.port is None:
        args.port = 9997
    standin = MediaMTXStandIn(
        reactor,
        port=args.port,
        interface=args.interface,
        rtsp_port=args.rtsp_port,
        record_root=args.record_root,
        user=args.user,
        password=args.password,
        delay=args.delay,
        static_paths=static,
        legacy_replies=args.legacy_replies,
        auth_pause=args.auth_pause,
    )

    def ready(_):
        line = f"READY {standin.api_port}"
        if standin.rtsp_port is not None:
            line += f" rtsp={standin.rtsp_port}"
        print(line, flush=True)

    def failed(f):
        log.failure("stand-in failed to start", f)
        reactor.stop()

    reactor.callWhenRunning(lambda: standin.start().addCallbacks(ready, failed))
    reactor.addSystemEventTrigger("before", "shutdown", standin.stop)
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
