"""Media methods: snapshots, the recordings and snapshots files, storage and retention.

Thin: each handler validates what the params schema cannot, calls ``app.media`` and
shapes the result.  Roles per SPEC §5: listing and info are viewer, taking and
deleting operator, the retention policy admin.
"""

from __future__ import annotations

from typing import Any

from camsvc.common.errors import (
    CameraNotFound,
    FileNotFound,
    InsufficientStorage,
    InternalError,
    InvalidParams,
    InvalidState,
    MediaMTXUnavailable,
    RateLimitExceeded,
)
from camsvc.common.timefmt import iso
from camsvc.media.files import RECORDINGS, SNAPSHOTS
from camsvc.media.storage import MAX_AGE_DAYS, MAX_SIZE_GB
from camsvc.server.rpc import Role

FILENAME = {
    "type": "string",
    "minLength": 1,
    "maxLength": 255,
    "description": "A file name as listed (no directories).",
}
DEVICE = {
    "type": "string",
    "minLength": 1,
    "maxLength": 4096,
    "description": "Camera id, /dev/videoN or /dev/v4l/by-id/... path.",
}
FILE_ENTRY = {
    "type": "object",
    "required": ["filename", "file_size", "modified_time", "download_url"],
    "properties": {
        "filename": {"type": "string"},
        "file_size": {"type": "integer"},
        "modified_time": {"type": "string", "format": "date-time"},
        "duration": {"type": ["number", "null"], "description": "Seconds (recordings only; null if unknown)."},
        "download_url": {"type": "string"},
    },
}
FILE_INFO = {
    "type": "object",
    "properties": {
        **FILE_ENTRY["properties"],
        "created_time": {"type": "string", "format": "date-time"},
        "camera_id": {"type": ["string", "null"]},
        "format": {"type": "string"},
        "content_type": {"type": "string"},
        "recording": {"type": "boolean", "description": "Recordings only: MediaMTX is still writing this segment."},
    },
}
FILE_LIST = {
    "type": "object",
    "required": ["files", "total", "limit", "offset"],
    "properties": {
        "files": {"type": "array", "items": FILE_ENTRY},
        "total": {"type": "integer"},
        "limit": {"type": "integer"},
        "offset": {"type": "integer"},
    },
}
LIST_PARAMS = {
    "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "description": "Page size (default 100)."},
    "offset": {"type": "integer", "minimum": 0, "description": "Files to skip (default 0)."},
    "device": {**DEVICE, "description": "Only files of this camera (id, /dev/videoN or by-id path)."},
}
POLICY = {
    "type": "object",
    "properties": {
        "enabled": {"type": "boolean"},
        "max_age_days": {"type": "number"},
        "max_size_gb": {"type": "number"},
        "source": {"type": "string", "enum": ["config", "state"]},
    },
}


def register(app: Any) -> None:
    reg = app.registry

    def camera_filter(params: dict) -> str | None:
        device = params.get("device")
        if device is None:
            return None
        try:
            return app.cameras.resolve(device).camera_id
        except CameraNotFound:
            # Files outlive cameras: a camera id the registry no longer knows still filters.
            if device.startswith("camera") and device[6:].isdigit():
                return device
            raise

    def lister(kind: str):
        def list_files(session: Any, params: dict) -> dict:
            limit = params.get("limit", 100)
            offset = params.get("offset", 0)
            files = app.media.store.list(kind, camera_filter(params))
            page = files[offset : offset + limit]
            return {
                "files": [app.media.describe(session, f) for f in page],
                "total": len(files),
                "limit": limit,
                "offset": offset,
            }

        return list_files

    def info(kind: str):
        def get_info(session: Any, params: dict) -> dict:
            return app.media.describe(session, app.media.store.lookup(kind, params["filename"]), details=True)

        return get_info

    def deleter(kind: str):
        def delete(session: Any, params: dict) -> dict:
            name = params["filename"]
            app.media.check_deletable(kind, name)
            removed = app.media.store.delete(kind, name)
            return {"filename": removed.filename, "deleted": True, "file_size": removed.size}

        return delete

    async def take_snapshot(session: Any, params: dict) -> dict:
        camera = app.cameras.resolve(params["device"])
        shot = await app.media.snapshots.take(
            camera, fmt=params.get("format"), quality=params.get("quality"), filename=params.get("filename")
        )
        return {
            "device": camera.device,
            "camera_id": camera.camera_id,
            "filename": shot["filename"],
            "status": "completed",
            "timestamp": iso(shot["timestamp"]),
            "file_size": shot["file_size"],
            "format": shot["format"],
            "source": shot["source"],
            "download_url": app.media.download_url(session, SNAPSHOTS, shot["filename"]),
        }

    async def start_recording(session: Any, params: dict) -> dict:
        camera = app.cameras.resolve(params["device"])
        started = await app.recordings.start(camera, duration=params.get("duration"), fmt=params.get("format"))
        return {**started, "start_time": iso(started["start_time"])}

    async def stop_recording(session: Any, params: dict) -> dict:
        camera = app.cameras.resolve(params["device"])
        stopped = await app.recordings.stop(camera)
        out = {**stopped, "start_time": iso(stopped["start_time"]), "end_time": iso(stopped["end_time"])}
        out["duration"] = round(stopped["duration"], 3)
        if stopped["filename"]:
            out["download_url"] = app.media.download_url(session, RECORDINGS, stopped["filename"])
        return out

    def get_storage_info(session: Any, params: dict) -> dict:
        result = app.media.storage.info()
        result["retention"] = app.media.retention.status()
        return result

    def set_retention_policy(session: Any, params: dict) -> dict:
        policy = app.media.retention.set_policy(params)
        return {**policy.to_dict(), "source": app.media.retention.source}

    def cleanup_old_files(session: Any, params: dict) -> dict:
        result = app.media.retention.run()
        for entry in result["deleted"]:
            entry["modified_time"] = iso(entry["modified_time"])
        return result

    reg.add(
        "take_snapshot",
        take_snapshot,
        role=Role.OPERATOR,
        params={
            "device": DEVICE,
            "filename": {
                "type": "string",
                "minLength": 1,
                "maxLength": 255,
                "description": "Wished file name; unsafe characters become '_', the extension follows the format,"
                " an existing file is never overwritten (a _N suffix is added).",
            },
            "format": {
                "type": "string",
                "enum": ["jpg", "png"],
                "description": "Image format (default snapshots.format).",
            },
            "quality": {
                "type": "integer",
                "minimum": 1,
                "maximum": 100,
                "description": "JPEG quality, higher is better (default snapshots.quality).",
            },
        },
        required=("device",),
        result={
            "type": "object",
            "required": ["device", "filename", "status", "timestamp", "file_size", "download_url"],
            "properties": {
                "device": {"type": "string"},
                "camera_id": {"type": "string"},
                "filename": {"type": "string"},
                "status": {"type": "string", "const": "completed"},
                "timestamp": {"type": "string", "format": "date-time"},
                "file_size": {"type": "integer"},
                "format": {"type": "string", "enum": ["jpg", "png"]},
                "source": {"type": "string", "enum": ["device", "stream"]},
                "download_url": {"type": "string"},
            },
        },
        summary="Take a still image of a camera: from its live stream when it is streaming, else from the device.",
        errors=(
            CameraNotFound,
            InvalidState,
            InsufficientStorage,
            MediaMTXUnavailable,
            InvalidParams,
            InternalError,
            RateLimitExceeded,
        ),
    )
    reg.add(
        "start_recording",
        start_recording,
        role=Role.OPERATOR,
        params={
            "device": DEVICE,
            "duration": {
                "type": "number",
                "exclusiveMinimum": 0,
                "description": "Stop automatically after this many seconds (at most recording.max_duration);"
                " omitted: until stop_recording.",
            },
            "format": {
                "type": "string",
                "enum": ["fmp4", "mp4"],
                "description": "Container: fragmented MP4 (the only one; 'mp4' is accepted as a synonym).",
            },
        },
        required=("device",),
        result={
            "type": "object",
            "required": ["device", "session_id", "filename", "status", "start_time", "duration", "format"],
            "properties": {
                "device": {"type": "string"},
                "camera_id": {"type": "string"},
                "session_id": {"type": "string"},
                "filename": {"type": "string", "description": "The first segment file."},
                "status": {"type": "string", "const": "STARTED"},
                "start_time": {"type": "string", "format": "date-time"},
                "duration": {"type": ["number", "null"], "description": "The requested duration, or null."},
                "format": {"type": "string", "const": "fmp4"},
            },
        },
        summary="Start recording a camera (MediaMTX writes fMP4 segments); returns once the first segment exists.",
        errors=(CameraNotFound, InvalidState, InsufficientStorage, MediaMTXUnavailable, InvalidParams, InternalError),
    )
    reg.add(
        "stop_recording",
        stop_recording,
        role=Role.OPERATOR,
        params={"device": DEVICE},
        required=("device",),
        result={
            "type": "object",
            "required": [
                "device",
                "session_id",
                "filename",
                "status",
                "start_time",
                "end_time",
                "duration",
                "file_size",
            ],
            "properties": {
                "device": {"type": "string"},
                "camera_id": {"type": "string"},
                "session_id": {"type": "string"},
                "filename": {"type": ["string", "null"], "description": "The first segment file."},
                "status": {"type": "string", "const": "STOPPED"},
                "start_time": {"type": "string", "format": "date-time"},
                "end_time": {"type": "string", "format": "date-time"},
                "duration": {"type": "number", "description": "Seconds recorded."},
                "file_size": {"type": "integer", "description": "Bytes in all the session's segments."},
                "files": {"type": "array", "items": {"type": "string"}, "description": "Every segment, oldest first."},
                "reason": {"type": "string"},
                "download_url": {"type": "string"},
            },
        },
        summary="Stop recording a camera; returns the session's files, duration and size.",
        errors=(CameraNotFound, InvalidState),
    )
    for kind in (RECORDINGS, SNAPSHOTS):
        reg.add(
            f"list_{kind}",
            lister(kind),
            role=Role.VIEWER,
            params=LIST_PARAMS,
            result=FILE_LIST,
            summary=f"List {kind}, newest first, optionally of one camera, a page at a time.",
            errors=(CameraNotFound,),
        )
    for kind, singular in ((RECORDINGS, "recording"), (SNAPSHOTS, "snapshot")):
        reg.add(
            f"get_{singular}_info",
            info(kind),
            role=Role.VIEWER,
            params={"filename": FILENAME},
            required=("filename",),
            result=FILE_INFO,
            summary=f"Size, times{', duration' if kind == RECORDINGS else ''} and download URL of one {singular} file.",
            errors=(FileNotFound, InvalidParams),
        )
    for kind, singular in ((RECORDINGS, "recording"), (SNAPSHOTS, "snapshot")):
        reg.add(
            f"delete_{singular}",
            deleter(kind),
            role=Role.OPERATOR,
            params={"filename": FILENAME},
            required=("filename",),
            result={
                "type": "object",
                "properties": {
                    "filename": {"type": "string"},
                    "deleted": {"type": "boolean", "const": True},
                    "file_size": {"type": "integer"},
                },
            },
            summary=f"Delete one {singular} file.",
            errors=(FileNotFound, InvalidParams, InvalidState),
        )
    reg.add(
        "get_storage_info",
        get_storage_info,
        role=Role.VIEWER,
        result={
            "type": "object",
            "properties": {
                "total_bytes": {"type": "integer"},
                "used_bytes": {"type": "integer"},
                "free_bytes": {"type": "integer"},
                "free_percent": {"type": "number"},
                "status": {"type": "string", "enum": ["ok", "low", "critical"]},
                "low": {"type": "boolean"},
                "critical": {"type": "boolean"},
                "warn_free_percent": {"type": "number"},
                "critical_free_percent": {"type": "number"},
                "recordings": {"type": "object"},
                "snapshots": {"type": "object"},
                "retention": {"type": "object"},
            },
        },
        summary="Disk space (total, used, free), space used by recordings and snapshots, low/critical flags.",
    )
    reg.add(
        "set_retention_policy",
        set_retention_policy,
        role=Role.ADMIN,
        params={
            "enabled": {
                "type": "boolean",
                "description": "Enforce the policy automatically (every retention.interval).",
            },
            "max_age_days": {
                "type": "number",
                "minimum": 0,
                "maximum": MAX_AGE_DAYS,
                "description": "Delete files older than this many days (0 = no age limit). Omitted: unchanged.",
            },
            "max_size_gb": {
                "type": "number",
                "minimum": 0,
                "maximum": MAX_SIZE_GB,
                "description": "Keep recordings + snapshots under this many GB (10^9 bytes), oldest deleted first"
                " (0 = no size limit). Omitted: unchanged.",
            },
        },
        required=("enabled",),
        result=POLICY,
        summary="Set the retention policy; it is saved in the state directory and survives restarts.",
        errors=(InvalidParams, InternalError),
    )
    reg.add(
        "cleanup_old_files",
        cleanup_old_files,
        role=Role.ADMIN,
        result={
            "type": "object",
            "properties": {
                "deleted": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "kind": {"type": "string", "enum": ["recordings", "snapshots"]},
                            "filename": {"type": "string"},
                            "file_size": {"type": "integer"},
                            "modified_time": {"type": "string", "format": "date-time"},
                            "reason": {"type": "string", "enum": ["age", "size"]},
                        },
                    },
                },
                "deleted_count": {"type": "integer"},
                "freed_bytes": {"type": "integer"},
                "policy": POLICY,
            },
        },
        summary="Apply the retention policy's limits now (even when automatic enforcement is off); returns what was deleted.",
    )
