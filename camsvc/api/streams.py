"""Stream methods: get_streams (MediaMTX path states)."""

from __future__ import annotations

from typing import Any

from camsvc.common.errors import MediaMTXUnavailable
from camsvc.server.rpc import Role

STREAM_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "description": "MediaMTX path name (the camera id for camera paths)"},
        "camera_id": {"type": ["string", "null"], "description": "the camera this path belongs to, if any"},
        "ready": {"type": "boolean", "description": "a publisher is sending media"},
        "ready_time": {"type": ["string", "null"], "description": "when it became ready (RFC 3339)"},
        "source": {"type": ["string", "null"], "description": "publisher type, e.g. rtspSession"},
        "readers": {"type": "integer", "description": "clients reading the path now"},
        "bytes_received": {"type": "integer"},
        "bytes_sent": {"type": "integer"},
        "tracks": {"type": "array", "items": {"type": "string"}, "description": "codecs, e.g. H264"},
    },
}


def register(app: Any) -> None:
    async def get_streams(session: Any, params: dict) -> dict:
        streams = await app.mediamtx.streams()
        return {"streams": streams, "total": len(streams)}

    app.registry.add(
        "get_streams",
        get_streams,
        role=Role.VIEWER,
        summary="Every MediaMTX path with its live state: ready, readers, bytes, source and tracks.",
        description=(
            "Read fresh from MediaMTX's /v3/paths/list (all pages). Fails with -32006 when MediaMTX"
            " is unavailable; error.data.reason says why."
        ),
        result={
            "type": "object",
            "properties": {
                "streams": {"type": "array", "items": STREAM_SCHEMA},
                "total": {"type": "integer"},
            },
        },
        errors=(MediaMTXUnavailable,),
    )
