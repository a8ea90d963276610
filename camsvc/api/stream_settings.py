"""Stream settings methods: ``get_stream_settings``, ``set_stream_settings``.

The rules are :mod:`camsvc.cameras.stream_settings`; the stored values live in
``app.camera_settings``; ``app.mediamtx.stream_settings_changed(camera_id)`` makes the
reconciler rebuild the camera's path (the publisher restarts only when its command
changed).  A camera being recorded refuses a change (-32005): a new publisher would cut
the recording's segment mid-file, so the operator stops the recording first.

Collaborators: ``app.cameras``, ``app.camera_settings``, ``app.encoders``
(:class:`~camsvc.cameras.stream_settings.EncoderProbe`), ``app.mediamtx``,
``app.recordings`` (through :func:`camsvc.api.cameras.is_recording`),
``app.camera_notifier``.
"""

from __future__ import annotations

from typing import Any

from camsvc.api.cameras import DEVICE_PARAM, is_recording
from camsvc.api.cameras import active_mode as active
from camsvc.cameras import stream_settings as ss
from camsvc.common.errors import CameraNotFound, InvalidParams, InvalidState
from camsvc.server.rpc import Role

MODE_SCHEMA = {
    "type": ["object", "null"],
    "properties": {
        "format": {"type": "string"},
        "width": {"type": "integer"},
        "height": {"type": "integer"},
        "fps": {"type": ["number", "null"]},
        "encoder": {"type": "string", "enum": list(ss.ENCODERS)},
        "bitrate": {"type": ["integer", "null"], "description": "kbit/s; null = the encoder's default"},
        "gop": {"type": ["integer", "null"], "description": "frames; null = one second"},
        "custom": {"type": "boolean", "description": "stored stream settings apply"},
    },
}

#: The properties both methods' results share.
STATE_PROPERTIES = {
    "device": {"type": "string"},
    "camera_id": {"type": "string"},
    "active": MODE_SCHEMA,
    "stored": {"type": "object"},
}


def register(app: Any) -> None:
    reg = app.registry

    def settings() -> Any:
        if app.camera_settings is None or app.encoders is None:
            raise InvalidState("Stream settings are not available")
        return app.camera_settings

    def state(store: Any, camera: Any) -> dict:
        """What both methods answer: the camera, its active mode and its stored settings."""
        return {
            "device": camera.device,
            "camera_id": camera.camera_id,
            "active": active(app, camera),
            "stored": store.stream(camera.camera_id),
        }

    async def get_stream_settings(session: Any, params: dict) -> dict:
        store = settings()
        camera = app.cameras.resolve(params["device"])
        available = await app.encoders.available()
        return {**state(store, camera), **ss.choices(camera, available)}

    async def set_stream_settings(session: Any, params: dict) -> dict:
        store = settings()
        camera = app.cameras.resolve(params["device"])
        requested = {k: params[k] for k in ss.FIELDS if k in params}
        if not requested:
            raise InvalidParams("Give at least one of " + ", ".join(ss.FIELDS), data={"param": "format"})
        available = await app.encoders.available()
        camera = app.cameras.get(camera.camera_id) or camera
        before = store.stream(camera.camera_id)
        new = ss.validate(camera, requested, before, available)
        changed = new != before
        if changed and is_recording(app, camera.camera_id):
            raise InvalidState(
                f"{camera.camera_id} is recording: stop the recording before changing its stream settings",
                data={"camera_id": camera.camera_id, "reason": "recording"},
            )
        if changed:
            store.store_stream(camera.camera_id, new)
            if app.mediamtx is not None:
                app.mediamtx.stream_settings_changed(camera.camera_id)
            if app.camera_notifier is not None:
                app.camera_notifier.publish(camera)
        return {**state(store, camera), "changed": changed}

    reg.add(
        "get_stream_settings",
        get_stream_settings,
        role=Role.VIEWER,
        params={"device": DEVICE_PARAM},
        required=("device",),
        summary="The mode a camera streams with, its stored stream settings, and the choices it offers.",
        description=(
            "active: format, size, rate, encoder, bitrate and GOP the publisher uses (the default mode"
            " overridden by stored settings). formats: what the camera offers (probed capabilities);"
            " encoders: libx264, copy (when the camera offers H.264 or MJPEG) and hardware encoders ffmpeg has."
        ),
        result={
            "type": "object",
            "properties": {
                **STATE_PROPERTIES,
                "formats": {"type": "array", "items": {"type": "object"}},
                "encoders": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string"},
                            "description": {"type": "string"},
                            "formats": {"type": "array", "items": {"type": "string"}},
                        },
                    },
                },
            },
        },
        errors=(CameraNotFound,),
    )
    reg.add(
        "set_stream_settings",
        set_stream_settings,
        role=Role.OPERATOR,
        params={
            "device": DEVICE_PARAM,
            "format": {"type": ["string", "null"], "maxLength": 4, "description": "FourCC, e.g. MJPG"},
            "width": {"type": ["integer", "null"], "minimum": 1, "maximum": 16384},
            "height": {"type": ["integer", "null"], "minimum": 1, "maximum": 16384},
            "fps": {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 1000},
            "encoder": {"type": ["string", "null"], "enum": [*ss.ENCODERS, None]},
            "bitrate": {
                "type": ["integer", "null"],
                "minimum": ss.BITRATE_RANGE[0],
                "maximum": ss.BITRATE_RANGE[1],
                "description": "kbit/s",
            },
            "gop": {"type": ["integer", "null"], "minimum": ss.GOP_RANGE[0], "maximum": ss.GOP_RANGE[1]},
        },
        required=("device",),
        summary="Choose a camera's streamed mode and encoder (checked, stored per camera, applied to its MediaMTX path).",
        description=(
            "Fields not given keep their stored value; null returns a field to camsvc's default. Format, size"
            " and rate must be offered together by the camera (-32602 naming what it does not offer, with"
            " error.data.allowed). A change replaces the camera's MediaMTX path: the publisher restarts and"
            " readers reconnect. Refused with -32005 while the camera is being recorded."
        ),
        result={
            "type": "object",
            "properties": {**STATE_PROPERTIES, "changed": {"type": "boolean"}},
        },
        errors=(CameraNotFound, InvalidParams, InvalidState),
    )
