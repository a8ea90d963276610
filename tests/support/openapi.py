"""Contract checks against MediaMTX's OpenAPI document (test support).

Owns: loading ``tests/data/mediamtx-openapi.yaml`` (a verbatim copy of MediaMTX
v1.20.1's ``apidocs/openapi.yaml``), turning its OpenAPI 3.0 schemas into JSON
Schema (``$ref`` inlined, ``nullable`` honoured), and answering two questions:

* is this *request* allowed by the spec?  (route exists with that HTTP method,
  path and query parameters are present and well typed, the JSON body is valid
  against the ``requestBody`` schema);
* is this *response* what the spec documents?  (status listed for the
  operation, JSON body valid against that status' schema).

Strictness.  The spec itself never says ``additionalProperties: false``, but the
real server decodes request bodies with Go's ``DisallowUnknownFields`` and
rejects unknown keys, so request bodies are validated with
``additionalProperties: false`` on every object schema that lists properties.
Responses are validated the same way (so the stand-in cannot drift from the
spec), except that ``oneOf`` becomes ``anyOf``: ``PathTrackCodecProps`` is a
``oneOf`` of property-only schemas that overlap, so no real body could satisfy
it literally.  Unknown query parameters are reported too: camsvc has no reason
to send any.

Used by :mod:`tests.support.mediamtx` on every request it receives, and usable
directly by client tests::

    spec = OpenAPISpec()
    assert spec.request_errors("POST", "/v3/config/paths/add/cam0", b'{"record": true}') == []
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
DEFAULT_SPEC_PATH = DATA_DIR / "mediamtx-openapi.yaml"

_HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


class SpecViolation(AssertionError):
    """A request or response that the OpenAPI document does not allow."""


@dataclass(frozen=True)
class Route:
    """One (method, path template) pair of the spec."""

    method: str
    template: str
    regex: re.Pattern
    operation: dict

    @property
    def operation_id(self) -> str:
        return self.operation.get("operationId", "")


def _template_regex(template: str) -> re.Pattern:
    # MediaMTX registers ``{name}`` routes as gin catch-alls (``*name``): path
    # names may contain slashes.  Other parameters (``{id}``) are one segment.
    out = ""
    pos = 0
    for m in re.finditer(r"\{(\w+)\}", template):
        out += re.escape(template[pos : m.start()])
        param = m.group(1)
        out += f"(?P<{param}>.+)" if param == "name" else f"(?P<{param}>[^/]+)"
        pos = m.end()
    out += re.escape(template[pos:])
    return re.compile("^" + out + "$")


class OpenAPISpec:
    """The MediaMTX control API as documented by its OpenAPI file.

    Collaborators: PyYAML (loading) and ``jsonschema`` (instance validation).
    ``forbid_deprecated`` additionally reports request-body keys marked
    ``deprecated: true``.
    """

    def __init__(self, path: str | Path = DEFAULT_SPEC_PATH, *, forbid_deprecated: bool = False):
        with open(path, encoding="utf-8") as f:
            self.document = yaml.safe_load(f)
        self.forbid_deprecated = forbid_deprecated
        self.routes: list[Route] = []
        for template, item in self.document["paths"].items():
            for method, operation in item.items():
                if method in _HTTP_METHODS:
                    self.routes.append(
                        Route(
                            method.upper(),
                            template,
                            _template_regex(template),
                            operation,
                        )
                    )
        # Literal routes win over templated ones, as in any router.
        self.routes.sort(key=lambda r: "{" in r.template)
        self._validators: dict[tuple[str, bool], Any] = {}

    # -- schema conversion -------------------------------------------------

    def _resolve(self, ref: str) -> dict:
        if not ref.startswith("#/"):
            raise ValueError(f"only local $refs are supported: {ref}")
        node: Any = self.document
        for part in ref[2:].split("/"):
            node = node[part]
        return node

    def to_jsonschema(self, node: dict, *, response: bool = False) -> dict:
        """Convert one OpenAPI 3.0 schema object into a self-contained JSON Schema."""
        if "$ref" in node:
            return self.to_jsonschema(self._resolve(node["$ref"]), response=response)
        out: dict[str, Any] = {}
        if "type" in node:
            out["type"] = node["type"]
        if "enum" in node:
            out["enum"] = list(node["enum"])
        if node.get("type") == "integer" and str(node.get("format", "")).startswith("uint"):
            out["minimum"] = 0
        if "properties" in node:
            out["properties"] = {k: self.to_jsonschema(v, response=response) for k, v in node["properties"].items()}
            out["additionalProperties"] = False
        elif isinstance(node.get("additionalProperties"), dict):
            out["additionalProperties"] = self.to_jsonschema(node["additionalProperties"], response=response)
        if "items" in node:
            out["items"] = self.to_jsonschema(node["items"], response=response)
        for comb in ("allOf", "anyOf", "oneOf"):
            if comb in node:
                key = "anyOf" if (comb == "oneOf" and response) else comb
                out[key] = [self.to_jsonschema(s, response=response) for s in node[comb]]
        if "required" in node and isinstance(node["required"], list):
            out["required"] = list(node["required"])
        if node.get("nullable"):
            return {"anyOf": [{"type": "null"}, out]}
        return out

    def _validator(self, schema_node: dict, response: bool) -> Any:
        key = (json.dumps(schema_node, sort_keys=True), response)
        v = self._validators.get(key)
        if v is None:
            import jsonschema  # here: the QEMU guest runs the stand-in with --no-spec-check, without it

            v = jsonschema.Draft7Validator(self.to_jsonschema(schema_node, response=response))
            self._validators[key] = v
        return v

    def schema_errors(self, schema_node: dict, instance: Any, *, response: bool = False) -> list[str]:
        """Validation errors of ``instance`` against an OpenAPI schema node."""
        errors = []
        for e in sorted(self._validator(schema_node, response).iter_errors(instance), key=str):
            where = "/".join(str(p) for p in e.absolute_path) or "<body>"
            errors.append(f"{where}: {e.message}")
        return errors

    def component(self, name: str) -> dict:
        return {"$ref": f"#/components/schemas/{name}"}

    # -- routing -------------------------------------------------------------

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The route that serves ``method path`` (path percent-decoded), or None."""
        for route in self.routes:
            if route.method != method.upper():
                continue
            m = route.regex.match(path)
            if m:
                return route, m.groupdict()
        return None

    def routes_for(self, path: str) -> list[Route]:
        return [r for r in self.routes if r.regex.match(path)]

    # -- requests --------------------------------------------------------------

    def request_errors(
        self,
        method: str,
        target: str,
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
    ) -> list[str]:
        """Everything the spec does not allow about this request ([] if valid).

        ``target`` is the request target (path plus optional ``?query``);
        ``body`` the raw body bytes (None or empty when there is none).
        """
        split = urlsplit(target)
        path = unquote(split.path)
        found = self.match(method, path)
        if found is None:
            others = sorted({r.method for r in self.routes_for(path)})
            if others:
                return [f"{method} {path}: method not allowed by the spec (allowed: {', '.join(others)})"]
            return [f"{method} {path}: no such route in the spec"]
        route, path_params = found
        op = route.operation
        errors: list[str] = []

        query = parse_qs(split.query, keep_blank_values=True)
        declared = {}
        for p in op.get("parameters", []):
            if "$ref" in p:
                p = self._resolve(p["$ref"])
            declared[(p["in"], p["name"])] = p
        for (where, name), p in declared.items():
            schema = p.get("schema", {})
            if where == "path":
                value = path_params.get(name, "")
                if not value:
                    errors.append(f"path parameter '{name}' is empty")
                continue
            if where != "query":
                continue
            if name not in query:
                if p.get("required"):
                    errors.append(f"required query parameter '{name}' is missing")
                continue
            values = query[name]
            if len(values) > 1:
                errors.append(f"query parameter '{name}' given {len(values)} times")
            if schema.get("type") == "integer" and not re.fullmatch(r"-?\d+", values[0]):
                errors.append(f"query parameter '{name}' is not an integer: {values[0]!r}")
        for name in query:
            if ("query", name) not in declared:
                errors.append(f"unknown query parameter '{name}'")

        if isinstance(body, str):
            body = body.encode("utf-8")
        has_body = bool(body and body.strip())
        rb = op.get("requestBody")
        if rb is None:
            if has_body:
                errors.append(f"{op.get('operationId')} takes no request body")
            return errors
        if not has_body:
            if rb.get("required"):
                errors.append(f"{op.get('operationId')} requires a JSON request body")
            return errors
        if headers is not None:
            ctype = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
            if ctype.split(";")[0].strip().lower() != "application/json":
                errors.append(f"request body Content-Type is {ctype!r}, the spec says application/json")
        try:
            instance = json.loads(body)
        except ValueError as e:
            errors.append(f"request body is not JSON: {e}")
            return errors
        schema_node = rb["content"]["application/json"]["schema"]
        errors.extend("body " + e for e in self.schema_errors(schema_node, instance))
        if self.forbid_deprecated and isinstance(instance, dict):
            target_schema = self._resolve(schema_node["$ref"]) if "$ref" in schema_node else schema_node
            props = target_schema.get("properties", {})
            for key in instance:
                if props.get(key, {}).get("deprecated"):
                    errors.append(f"body {key}: deprecated field")
        return errors

    def check_request(self, method, target, body=None, headers=None) -> None:
        errors = self.request_errors(method, target, body, headers)
        if errors:
            raise SpecViolation(f"{method} {target}: " + "; ".join(errors))

    # -- responses -------------------------------------------------------------

    def response_errors(self, method: str, target: str, status: int, body: bytes | str | None) -> list[str]:
        """Everything about this response that the spec does not document."""
        path = unquote(urlsplit(target).path)
        found = self.match(method, path)
        if found is None:
            return [f"{method} {path}: no such route in the spec"]
        op = found[0].operation
        resp = op.get("responses", {}).get(str(status))
        if resp is None:
            return [f"{op.get('operationId')}: status {status} is not documented"]
        content = resp.get("content", {}).get("application/json")
        if content is None:
            return []
        if isinstance(body, str):
            body = body.encode("utf-8")
        try:
            instance = json.loads(body or b"")
        except ValueError as e:
            return [f"{op.get('operationId')} {status}: body is not JSON: {e}"]
        return [
            f"{op.get('operationId')} {status}: " + e
            for e in self.schema_errors(content["schema"], instance, response=True)
        ]

    def check_response(self, method, target, status, body) -> None:
        errors = self.response_errors(method, target, status, body)
        if errors:
            raise SpecViolation(f"{method} {target} -> {status}: " + "; ".join(errors))
