"""The OpenRPC document, generated from the method registry.

The registry is the single source: each method's params schemas, required
role, result schema, summary and errors become an OpenRPC 1.2 method entry.
``docs/openrpc.json`` is this document committed; a test keeps it in sync.
:class:`DocumentCache` builds it once (again only when the registry changes)
and keeps the encoded text and its ETag: ``rpc.discover`` and
``/openrpc.json`` are open to anyone, so they must cost next to nothing.
"""

from __future__ import annotations

import hashlib
from typing import Any

from camsvc import __version__
from camsvc.common.errors import ALL_ERRORS
from camsvc.server.rpc import RawJSON, Registry, dumps

OPENRPC_VERSION = "1.2.6"

#: Server -> client notifications (OpenRPC has no notion of them; documented as an extension).
NOTIFICATIONS: dict[str, dict] = {
    "camera_status_update": {
        "summary": "A camera was added, removed or changed state.",
        "params": {"$ref": "#/components/schemas/Camera"},
    },
    "camera_controls_update": {
        "summary": "V4L2 control values or flags of a camera changed (through the API or outside camsvc).",
        "params": {
            "type": "object",
            "properties": {
                "device": {"type": "string"},
                "camera_id": {"type": "string"},
                "controls": {
                    "type": "array",
                    "items": {"type": "object"},
                    "description": "the changed controls, each as in get_camera_controls",
                },
            },
        },
    },
    "recording_status_update": {
        "summary": "A recording started, stopped, was auto-stopped or failed.",
        "params": {
            "type": "object",
            "properties": {
                "device": {"type": "string"},
                "camera_id": {"type": "string"},
                "status": {"type": "string", "enum": ["STARTED", "STOPPED", "FAILED"]},
                "filename": {"type": "string"},
                "duration": {"type": ["number", "null"]},
                "session_id": {"type": "string"},
                "reason": {"type": "string"},
            },
        },
    },
    "system_status_update": {
        "summary": "A system condition changed: MediaMTX reachable or not, storage low.",
        "params": {
            "type": "object",
            "properties": {
                "component": {"type": "string"},
                "status": {"type": "string"},
                "message": {"type": "string"},
            },
        },
    },
}

SCHEMAS: dict[str, Any] = {
    "Camera": {
        "type": "object",
        "required": ["device", "camera_id", "status", "name", "resolution", "fps", "streams", "recording"],
        "properties": {
            "device": {"type": "string", "description": "Current device node, e.g. /dev/video0"},
            "camera_id": {"type": "string", "description": "Stable id, e.g. camera0"},
            "status": {"type": "string", "enum": ["CONNECTED", "DISCONNECTED", "ERROR"]},
            "name": {"type": "string"},
            "resolution": {"type": "string", "description": "WIDTHxHEIGHT"},
            "fps": {"type": "integer"},
            "streams": {
                "type": "object",
                "properties": {"rtsp": {"type": "string"}, "webrtc": {"type": "string"}, "hls": {"type": "string"}},
            },
            "recording": {"type": "boolean"},
            "last_seen": {
                "type": ["string", "null"],
                "format": "date-time",
                "description": "When a DISCONNECTED camera was last present; null while present",
            },
            "mode": {
                "type": ["object", "null"],
                "description": "the active mode: {format, width, height, fps, encoder, bitrate, gop, custom}"
                " (stream settings applied; custom: stored settings apply); null until probed",
            },
        },
    },
    "CameraCapabilities": {
        "type": "object",
        "required": ["driver", "card", "bus_info", "formats", "default", "resolutions", "fps_options"],
        "properties": {
            "driver": {"type": "string", "description": "V4L2 driver, e.g. uvcvideo"},
            "card": {"type": "string", "description": "V4L2 card name"},
            "bus_info": {"type": "string"},
            "formats": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "format": {"type": "string", "description": "FourCC, e.g. MJPG, YUYV, H264"},
                        "description": {"type": "string"},
                        "compressed": {"type": "boolean"},
                        "sizes": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "width": {"type": "integer"},
                                    "height": {"type": "integer"},
                                    "fps": {"type": "array", "items": {"type": "number"}},
                                    "fps_range": {
                                        "type": "object",
                                        "properties": {"min": {"type": "number"}, "max": {"type": "number"}},
                                    },
                                },
                            },
                        },
                        "size_range": {"type": "object"},
                    },
                },
            },
            "default": {
                "type": ["object", "null"],
                "properties": {
                    "format": {"type": "string"},
                    "width": {"type": "integer"},
                    "height": {"type": "integer"},
                    "fps": {"type": ["number", "null"]},
                },
            },
            "resolutions": {"type": "array", "items": {"type": "string"}, "description": "WIDTHxHEIGHT, largest first"},
            "fps_options": {"type": "array", "items": {"type": "number"}, "description": "highest first"},
            "published": {
                "type": ["object", "null"],
                "description": "The mode the MediaMTX publish command uses and why (null: no usable mode)",
                "properties": {
                    "format": {"type": "string"},
                    "width": {"type": "integer"},
                    "height": {"type": "integer"},
                    "fps": {"type": "number"},
                    "input_format": {"type": "string", "description": "ffmpeg -input_format"},
                    "copy": {"type": "boolean", "description": "sent without re-encoding"},
                    "why": {"type": "string"},
                },
            },
        },
    },
}


def build_document(registry: Registry, *, version: str = __version__) -> dict:
    methods = []
    for m in registry:
        params = [
            {
                "name": name,
                "required": name in m.required,
                "schema": {k: v for k, v in schema.items() if k != "description"},
                **({"description": schema["description"]} if "description" in schema else {}),
            }
            for name, schema in m.params.items()
        ]
        entry: dict[str, Any] = {
            "name": m.name,
            "summary": m.summary,
            "paramStructure": "by-name",
            "params": params,
            "result": {"name": "result", "schema": m.result or {}},
            "x-required-role": m.role.label,
        }
        if m.description:
            entry["description"] = m.description
        if m.errors:
            entry["errors"] = [{"code": e.code, "message": e.default_message} for e in m.errors]
        methods.append(entry)
    return {
        "openrpc": OPENRPC_VERSION,
        "info": {
            "title": "camsvc JSON-RPC API",
            "version": version,
            "description": "Camera service API over one WebSocket (JSON-RPC 2.0, text frames). "
            "Roles: none < viewer < operator < admin; x-required-role names each method's.",
        },
        "servers": [{"name": "camsvc", "url": "ws://{host}:8002/ws"}],
        "methods": methods,
        "components": {
            "schemas": SCHEMAS,
            "errors": {e.__name__: {"code": e.code, "message": e.default_message} for e in ALL_ERRORS},
        },
        "x-notifications": NOTIFICATIONS,
    }


class DocumentCache:
    """The OpenRPC document of ``registry``, built once, with its JSON text, bytes and ETag.

    Rebuilt only when ``registry.version`` changed (a method was added).
    """

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._version = -1
        self._text = RawJSON("{}")
        self._body = b"{}"
        self._etag = b'""'

    def _fresh(self) -> None:
        if self._version != self.registry.version:
            text = dumps(build_document(self.registry))
            self._text = RawJSON(text)
            self._body = text.encode("utf-8")
            self._etag = b'"' + hashlib.sha256(self._body).hexdigest()[:32].encode() + b'"'
            self._version = self.registry.version

    @property
    def text(self) -> RawJSON:
        """The document as JSON text, for a JSON-RPC result (embedded without re-encoding)."""
        self._fresh()
        return self._text

    @property
    def body(self) -> bytes:
        self._fresh()
        return self._body

    @property
    def etag(self) -> bytes:
        """A strong ETag (quoted) of :attr:`body`."""
        self._fresh()
        return self._etag
