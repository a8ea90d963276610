"""JSON-RPC error types: the one place that gives every failure its code.

API methods and the core raise these; the JSON-RPC engine turns them into
error objects.  Anything else raised by a method becomes -32603 with a generic
message (the traceback goes to the log, never to the client).
"""

from __future__ import annotations

from typing import Any


class RpcError(Exception):
    """Base class: ``code``, a clear ``message`` and optional ``data``."""

    code = -32603
    default_message = "Internal error"

    def __init__(self, message: str | None = None, data: Any = None):
        self.message = message or self.default_message
        self.data = data
        super().__init__(self.message)

    def to_dict(self) -> dict:
        err: dict = {"code": self.code, "message": self.message}
        if self.data is not None:
            err["data"] = self.data
        return err


class ParseError(RpcError):
    code = -32700
    default_message = "Parse error"


class InvalidRequest(RpcError):
    code = -32600
    default_message = "Invalid Request"


class MethodNotFound(RpcError):
    code = -32601
    default_message = "Method not found"


class InvalidParams(RpcError):
    code = -32602
    default_message = "Invalid params"


class InternalError(RpcError):
    code = -32603
    default_message = "Internal error"


class AuthenticationRequired(RpcError):
    code = -32001
    default_message = "Authentication required"


class RateLimitExceeded(RpcError):
    code = -32002
    default_message = "Rate limit exceeded"


class PermissionDenied(RpcError):
    code = -32003
    default_message = "Permission denied"


class CameraNotFound(RpcError):
    code = -32004
    default_message = "Camera not found"


class InvalidState(RpcError):
    code = -32005
    default_message = "Invalid state"


class MediaMTXUnavailable(RpcError):
    code = -32006
    default_message = "MediaMTX unavailable"


class InsufficientStorage(RpcError):
    code = -32007
    default_message = "Insufficient storage"


class NotSupported(RpcError):
    code = -32008
    default_message = "Not supported"


class FileNotFound(RpcError):
    code = -32009
    default_message = "File not found"


#: Every error class by code, for documentation (OpenRPC) and clients.
ALL_ERRORS: tuple[type[RpcError], ...] = (
    ParseError,
    InvalidRequest,
    MethodNotFound,
    InvalidParams,
    InternalError,
    AuthenticationRequired,
    RateLimitExceeded,
    PermissionDenied,
    CameraNotFound,
    InvalidState,
    MediaMTXUnavailable,
    InsufficientStorage,
    NotSupported,
    FileNotFound,
)
