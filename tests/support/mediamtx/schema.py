"""Configuration model of the MediaMTX stand-in, derived from MediaMTX's OpenAPI document and default mediamtx.yml: field kinds, defaults, path-name and path-configuration rules."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from tests.support.mediamtx.gojson import (
    GoError,
    _AbortError,
    _format_size,
    _go_quote,
    _GoFloat,
    _json_kind,
    _parse_size,
    format_mediamtx_duration,
    go_json_loads,
    parse_go_duration,
)
from tests.support.openapi import DATA_DIR, OpenAPISpec

VERSION = "v1.20.1"
DEFAULTS_PATH = DATA_DIR / "mediamtx.yml"

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
