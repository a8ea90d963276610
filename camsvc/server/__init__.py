"""The server layer: how clients reach camsvc, independent of what camsvc serves.

Owns the twisted.web site and its fixed resources (:mod:`.web`: health, OpenRPC,
the dashboard's static files in ``static/``), the WebSocket transport
(:mod:`.ws`), the JSON-RPC 2.0 engine and method registry (:mod:`.rpc`), the
connection hub that fans notifications out (:mod:`.hub`), per-connection
sessions and the role guard (:mod:`.session`), request-rate limits
(:mod:`.limits`) and the OpenRPC document (:mod:`.openrpc`).

May import: :mod:`camsvc.common`, :mod:`camsvc.config`, :mod:`camsvc.ops`.
Knows nothing of cameras, MediaMTX or media: those reach it as registered
methods and HTTP children.
"""
