"""The JSON-RPC 2.0 engine: method registry, params validation, dispatch.

This module owns the protocol rules of JSON-RPC 2.0 and nothing else: it never
imports Autobahn and never sees a WebSocket.  A transport hands it a text
payload and a :class:`~camsvc.server.session.Session`; it hands back the response text
(or ``None`` when nothing must be sent), synchronously when every method
answered synchronously, else as a Deferred.

The dispatch table is data: :class:`Registry` maps a method name to a
:class:`Method` (handler, params schema, required role, documentation).
Handlers are ``handler(session, params) -> value | Deferred | coroutine``.
Exceptions are mapped to error objects in exactly one place,
:meth:`Engine._error_for`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred, gatherResults
from twisted.logger import Logger
from twisted.python.failure import Failure

from camsvc.common.errors import InternalError, InvalidParams, InvalidRequest, MethodNotFound, ParseError, RpcError
from camsvc.common.roles import Role

log = Logger()


def _make_dumps() -> Callable[[Any], str]:
    """A compact encoder that reuses one C encoder object (json.dumps builds one per call).

    Without circular-reference markers: results are built by our own code, and
    a cycle still ends in RecursionError, which the engine maps like any
    unencodable value.
    """
    from json import encoder as _encoder

    slow = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    make = getattr(_encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython always has the C accelerator
        return slow.encode

    def default(value: Any) -> Any:
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")

    fast = make(None, default, _encoder.encode_basestring, None, ":", ",", False, False, False)
    ascii_only = make(None, default, _encoder.encode_basestring_ascii, None, ":", ",", False, False, False)

    def dumps(value: Any) -> str:
        text = _encoder.encode_basestring(value) if type(value) is str else "".join(fast(value, 0))
        if text.isascii():  # O(1) in CPython: the common case costs nothing
            return text
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            # A lone surrogate (a client's "\ud800" echoed, a surrogate-escaped
            # file name): not encodable as UTF-8, so this answer escapes every
            # non-ASCII character instead, which JSON allows.
            return "".join(ascii_only(value, 0))
        return text

    return dumps


_dumps = _make_dumps()


def _no_constants(name: str) -> Any:
    # Python's json accepts NaN and Infinity; JSON does not, and they cannot be
    # echoed back (an id of Infinity made the answer unencodable).
    raise ValueError(f"{name} is not JSON")


class RawJSON(str):
    """A handler result that is already JSON text (a cached document): embedded as is, not re-encoded."""


class _Encoded(str):
    """A whole response already encoded (built around a :class:`RawJSON` result)."""


_decode = json.JSONDecoder(parse_constant=_no_constants).decode
_PLAIN = frozenset((str, int, float, bool, dict, list, type(None)))


@dataclass(frozen=True)
class Method:
    """One API method: how to call it, who may, and how it is documented."""

    name: str
    handler: Callable[[Any, dict], Any]
    role: Role
    params: dict = field(default_factory=dict)  # name -> JSON Schema
    required: tuple = ()
    result: dict = field(default_factory=dict)  # JSON Schema of the result
    summary: str = ""
    description: str = ""
    errors: tuple = ()  # RpcError subclasses this method may raise

    def validate(self, params: Any) -> dict:
        """Return the params as a dict, or raise InvalidParams naming the bad one."""
        if params is None:
            params = {}
        elif isinstance(params, list):
            if params:
                raise InvalidParams(
                    "Invalid params: parameters must be given by name (a JSON object), not by position",
                    data={"expected": sorted(self.params)},
                )
            params = {}
        for name in params:
            if name not in self.params:
                raise InvalidParams(
                    f"Invalid params: unknown parameter {name!r}",
                    data={"param": name, "expected": sorted(self.params)},
                )
        for name in self.required:
            if name not in params:
                raise InvalidParams(f"Invalid params: missing required parameter {name!r}", data={"param": name})
        for name, value in params.items():
            problem = check_schema(self.params[name], value)
            if problem:
                raise InvalidParams(f"Invalid params: {name!r} {problem}", data={"param": name})
        return params


class Registry:
    """Method name -> :class:`Method`.  Registration order is documentation order."""

    def __init__(self) -> None:
        self._methods: dict[str, Method] = {}
        #: Bumped by every add(): documents built from the registry know when they are stale.
        self.version = 0

    def add(
        self,
        name: str,
        handler: Callable[[Any, dict], Any],
        *,
        role: Role,
        params: dict | None = None,
        required: tuple = (),
        result: dict | None = None,
        summary: str = "",
        description: str = "",
        errors: tuple = (),
    ) -> Method:
        if name in self._methods:
            raise ValueError(f"method {name!r} registered twice")
        for req in required:
            if req not in (params or {}):
                raise ValueError(f"{name}: required param {req!r} has no schema")
        method = Method(
            name=name,
            handler=handler,
            role=Role(role),
            params=dict(params or {}),
            required=tuple(required),
            result=dict(result or {}),
            summary=summary,
            description=description,
            errors=tuple(errors),
        )
        self._methods[name] = method
        self.version += 1
        return method

    def get(self, name: str) -> Method | None:
        return self._methods.get(name)

    def __iter__(self) -> Iterator[Method]:
        return iter(self._methods.values())

    def __len__(self) -> int:
        return len(self._methods)

    def __contains__(self, name: object) -> bool:
        return name in self._methods


# -- params validation: the JSON Schema subset our methods use ---------------

_JSON_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "null": lambda v: v is None,
}
_ARTICLES = {"integer": "an integer", "object": "an object", "array": "an array", "null": "null"}


def check_schema(schema: dict, value: Any) -> str | None:
    """Check ``value`` against a small JSON Schema subset; return a problem or None.

    Supported: type (string or list), enum, minimum, maximum,
    exclusiveMinimum, minLength, maxLength, pattern, items.
    """
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else list(types)
        if not any(_JSON_TYPES[t](value) for t in names):
            wanted = " or ".join(_ARTICLES.get(t, f"a {t}") for t in names)
            return f"must be {wanted}, got {_describe(value)}"
    if "enum" in schema and value not in schema["enum"]:
        return "must be one of " + ", ".join(json.dumps(v) for v in schema["enum"]) + f", got {_describe(value)}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        low, high = schema.get("minimum"), schema.get("maximum")
        if low is not None and value < low or high is not None and value > high:
            if low is not None and high is not None:
                return f"must be between {low} and {high}, got {value}"
            if low is not None:
                return f"must be at least {low}, got {value}"
            return f"must be at most {high}, got {value}"
        xlow = schema.get("exclusiveMinimum")
        if xlow is not None and value <= xlow:
            return f"must be greater than {xlow}, got {value}"
        if value != value or value in (float("inf"), float("-inf")):
            return "must be a finite number"
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            return (
                "must not be empty"
                if schema["minLength"] == 1
                else f"must be at least {schema['minLength']} characters"
            )
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            return f"must be at most {schema['maxLength']} characters long"
        if "pattern" in schema and not re.search(schema["pattern"], value):
            return f"has an invalid format (expected {schema['pattern']})"
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            problem = check_schema(schema["items"], item)
            if problem:
                return f"item {i} {problem}"
    return None


def _describe(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, (bytes, bytearray)) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# -- the engine ---------------------------------------------------------------

_NO_RESPONSE = object()


class Engine:
    """Turns request text into response text.

    Collaborators: a :class:`Registry`; ``guards``, callables
    ``guard(session, method)`` run before every call (authorisation, rate
    limits) that raise :class:`RpcError` to refuse it; ``observe``, an
    optional ``observe(method_name, outcome, seconds)`` for metrics; ``clock``
    (``seconds()``), used only for timing.
    """

    def __init__(
        self,
        registry: Registry,
        *,
        guards: list | None = None,
        max_batch_size: int = 100,
        observe: Callable[[str, str, float], None] | None = None,
        clock: Any = None,
    ) -> None:
        self.registry = registry
        self.guards = list(guards or [])
        self.max_batch_size = max_batch_size
        self.observe = observe
        self.clock = clock

    # The public entry point.
    def handle(self, session: Any, payload: str | bytes) -> "str | None | Deferred":
        """Answer one WebSocket text message.

        Returns the response text, ``None`` when nothing is to be sent, or a
        Deferred firing with one of those.  Never raises, never fails.
        """
        try:
            text = payload.decode("utf-8") if isinstance(payload, (bytes, bytearray)) else payload
            message = _decode(text)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return _dumps(_error_response(None, ParseError("Parse error: the message is not valid JSON")))
        if isinstance(message, list):
            return self._batch(session, message)
        result = self._one(session, message)
        if isinstance(result, Deferred):
            return result.addCallback(self._encode_single, session)
        return self._encode_single(result, session)

    def _encode_single(self, response: Any, session: Any) -> str | None:
        if response is _NO_RESPONSE:
            return None
        return self._encode(response, session)

    def _encode(self, response: Any, session: Any) -> str:
        if type(response) is _Encoded:
            return response
        try:
            return _dumps(response)
        except (TypeError, ValueError, RecursionError):
            log.failure(
                "A result for connection {conn_id} could not be encoded as JSON",
                Failure(),
                conn_id=getattr(session, "id", "?"),
            )
            req_id = response.get("id")
            return _dumps(_error_response(req_id if _valid_id(req_id) else None, InternalError()))

    def _batch(self, session: Any, messages: list) -> "str | None | Deferred":
        if not messages:
            return _dumps(_error_response(None, InvalidRequest("Invalid Request: empty batch")))
        if len(messages) > self.max_batch_size:
            return _dumps(
                _error_response(
                    None,
                    InvalidRequest(
                        f"Invalid Request: batch of {len(messages)} exceeds the limit of {self.max_batch_size}"
                    ),
                )
            )
        results = [self._one(session, m) for m in messages]
        if any(isinstance(r, Deferred) for r in results):
            return gatherResults([r if isinstance(r, Deferred) else _succeed(r) for r in results]).addCallback(
                self._encode_batch, session
            )
        return self._encode_batch(results, session)

    def _encode_batch(self, results: list, session: Any) -> str | None:
        responses = [r for r in results if r is not _NO_RESPONSE]
        if not responses:
            return None
        return "[" + ",".join(self._encode(r, session) for r in responses) + "]"

    def _one(self, session: Any, request: Any) -> Any:
        """Run one request object; return the response dict, _NO_RESPONSE or a Deferred of those."""
        if type(request) is not dict:
            return _error_response(None, InvalidRequest("Invalid Request: expected a JSON object"))
        has_id = "id" in request
        req_id = request.get("id")
        if has_id and (type(req_id) not in _ID_TYPES or (type(req_id) is float and not math.isfinite(req_id))):
            return _error_response(None, InvalidRequest("Invalid Request: id must be a string, a number or null"))
        if request.get("jsonrpc") != "2.0":
            return _error_response(req_id, InvalidRequest('Invalid Request: "jsonrpc" must be exactly "2.0"'))
        name = request.get("method")
        if type(name) is not str:
            return _error_response(req_id, InvalidRequest('Invalid Request: "method" must be a string'))
        params = request.get("params")
        if params is not None and type(params) is not dict and type(params) is not list:
            return _error_response(req_id, InvalidRequest('Invalid Request: "params" must be an object or an array'))
        if params is None and "params" in request:
            return _error_response(req_id, InvalidRequest('Invalid Request: "params" must be an object or an array'))

        observe = self.observe
        start = self.clock.seconds() if (observe is not None and self.clock is not None) else 0.0
        method = self.registry.get(name)
        try:
            if method is None:
                raise MethodNotFound(f"Method not found: {name}")
            for guard in self.guards:
                guard(session, method)
            if params or method.params:
                params = method.validate(params)
            else:
                params = {}
            result = method.handler(session, params)
        except Exception as exc:  # noqa: BLE001 - the engine is the one place that maps errors
            return self._finish(method, name, start, has_id, req_id, None, self._error_for(exc, name, session))

        if type(result) not in _PLAIN and (isinstance(result, Deferred) or hasattr(result, "__await__")):
            d = result if isinstance(result, Deferred) else Deferred.fromCoroutine(result)
            return d.addCallbacks(
                lambda value: self._finish(method, name, start, has_id, req_id, value, None),
                lambda failure: self._finish(
                    method, name, start, has_id, req_id, None, self._error_for(failure.value, name, session, failure)
                ),
            )
        return self._finish(method, name, start, has_id, req_id, result, None)

    def _finish(
        self, method: Any, name: str, start: float, has_id: bool, req_id: Any, result: Any, error: RpcError | None
    ) -> Any:
        observe = self.observe
        if observe is not None:
            try:
                observe(
                    name if method is not None else "unknown",
                    "ok" if error is None else str(error.code),
                    (self.clock.seconds() - start) if self.clock is not None else 0.0,
                )
            except Exception:
                log.failure("metrics observer failed")
        if not has_id:
            return _NO_RESPONSE
        if error is not None:
            return _error_response(req_id, error)
        if type(result) is RawJSON:
            return _Encoded('{"jsonrpc":"2.0","result":' + result + ',"id":' + _dumps(req_id) + "}")
        return {"jsonrpc": "2.0", "result": result, "id": req_id}

    def _error_for(self, exc: BaseException, name: str, session: Any, failure: Failure | None = None) -> RpcError:
        if isinstance(exc, RpcError):
            return exc
        log.failure(
            "Method {method} failed on connection {conn_id}",
            failure or Failure(exc),
            method=name,
            conn_id=getattr(session, "id", "?"),
        )
        return InternalError("Internal error: the server could not complete the request")


#: JSON types an id may have (bool is excluded: type(True) is bool, not int).
_ID_TYPES = frozenset((str, int, float, type(None)))


def _valid_id(value: Any) -> bool:
    """A JSON-RPC id we can echo: string, number (finite: 1e999 parses as inf) or null."""
    return type(value) in _ID_TYPES and not (type(value) is float and not math.isfinite(value))


def _error_response(req_id: Any, error: RpcError) -> dict:
    return {"jsonrpc": "2.0", "error": error.to_dict(), "id": req_id}


def _succeed(value: Any) -> Deferred:
    d: Deferred = Deferred()
    d.callback(value)
    return d


def notification(method: str, params: Any) -> str:
    """Encode a server -> client notification."""
    return _dumps({"jsonrpc": "2.0", "method": method, "params": params})


def dumps(value: Any) -> str:
    """The engine's compact JSON encoder, for other modules that write JSON."""
    return _dumps(value)
