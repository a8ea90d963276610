"""Camera methods and the ``camera_status_update`` notification.

Methods: ``get_camera_list``, ``get_camera_status``, ``get_camera_capabilities``
(role viewer); ``forget_camera`` (role admin: drop a DISCONNECTED camera's record).  Their ``device`` parameter is a camera id (``camera0``), a node
(``/dev/video0``) or a ``/dev/v4l/by-id/...`` / ``by-path`` link; anything else is
-32004 naming the device.

The Camera object (SPEC §3) is built here for one client host: ``streams`` from
:func:`camsvc.mediamtx.urls.stream_urls` (``mediamtx.public_host`` or the host the client
connected to), ``recording`` from ``app.recordings.is_recording(camera_id)`` when a
recordings component is installed.  ``get_camera_status`` adds ``capabilities`` and
``metrics``: the merged dicts returned by the callables in ``app.camera_metrics``
(``fn(camera) -> dict | Deferred | coroutine``, given the Camera record; a failing
one is logged and skipped).

:class:`CameraNotifier` observes the registry and publishes ``camera_status_update``
on every add, remove and visible change, with per-host stream URLs.

Collaborators: ``app.cameras`` (registry), ``app.hub``, ``app.config.mediamtx``,
optional ``app.recordings``, ``app.camera_metrics`` and ``app.discovery``
(``when_probed(camera_id)``, to answer capabilities once an in-flight probe ends).
"""

from __future__ import annotations

import inspect
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from camsvc.cameras import stream_settings
from camsvc.cameras.registry import CONNECTED, DISCONNECTED, Camera
from camsvc.common.errors import CameraNotFound, InvalidState
from camsvc.common.timefmt import iso
from camsvc.mediamtx.desired import PASSTHROUGH_FORMATS, published_mode
from camsvc.mediamtx.urls import stream_urls
from camsvc.server.rpc import Role

log = Logger()

DEVICE_PARAM = {
    "type": "string",
    "minLength": 1,
    "maxLength": 4096,
    "description": "Camera id (camera0), device node (/dev/video0) or /dev/v4l/by-id/... path",
}
CAMERA_REF = {"$ref": "#/components/schemas/Camera"}
CAPABILITIES_REF = {"$ref": "#/components/schemas/CameraCapabilities"}


def is_recording(app: Any, camera_id: str) -> bool:
    recordings = app.recordings
    if recordings is None:
        return False
    try:
        return bool(recordings.is_recording(camera_id))
    except Exception:
        log.failure("recordings.is_recording({camera_id}) failed", camera_id=camera_id)
        return False


def active_mode(app: Any, camera: Camera) -> dict | None:
    """The mode ``camera`` streams with: its default mode overridden by its stored stream
    settings, with the encoder the configuration picks when none is stored."""
    stored = app.camera_settings.stream(camera.camera_id) if app.camera_settings is not None else {}
    mode = stream_settings.active_mode(camera, stored)
    if mode is not None and mode["encoder"] is None:
        copy = app.config.mediamtx.passthrough and mode["format"] in PASSTHROUGH_FORMATS
        mode["encoder"] = "copy" if copy else "libx264"
    return mode


def camera_object(app: Any, camera: Camera, host: str) -> dict:
    """The API's Camera object for a client that connected with ``host``.

    ``resolution`` and ``fps`` are those of the active mode (stream settings applied);
    ``mode`` is that mode in full (None until the capabilities are known).
    """
    obj = camera.to_dict(stream_urls(app.config.mediamtx, camera.camera_id, host), is_recording(app, camera.camera_id))
    mode = active_mode(app, camera)
    if mode is not None and mode["custom"]:
        obj["resolution"] = f"{mode['width']}x{mode['height']}"
        obj["fps"] = int(round(float(mode["fps"]))) if mode["fps"] else 0
    obj["mode"] = mode
    return obj


def capabilities_object(camera: Camera, mediamtx_config: Any = None) -> dict | None:
    """``{driver, card, bus_info, formats, default, resolutions, fps_options[, published]}`` or None."""
    caps = camera.capabilities
    if caps is None:
        return None
    formats = list(caps.get("formats") or ())
    sizes: dict[tuple[int, int], None] = {}
    rates: set = set()
    for fmt in formats:
        for size in fmt.get("sizes") or ():
            sizes[(size["width"], size["height"])] = None
            rates.update(r for r in size.get("fps") or () if r)
    ordered = sorted(sizes, key=lambda s: (s[0] * s[1], s[0]), reverse=True)
    return {
        "driver": caps.get("driver") or "",
        "card": caps.get("card") or "",
        "bus_info": caps.get("bus_info") or "",
        "formats": formats,
        "default": camera.default,
        "resolutions": [f"{w}x{h}" for w, h in ordered],
        "fps_options": sorted(rates, reverse=True),
        **({"published": published_mode(camera, mediamtx_config)} if mediamtx_config is not None else {}),
    }


class CameraNotifier:
    """Registry observer publishing ``camera_status_update`` (Camera object per host).

    A change invisible in the Camera object (e.g. new capabilities with the same
    default mode) is not re-sent.  :meth:`publish` forces one (for components whose
    state shows in the object, such as the recording flag).
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self._sent: dict[str, tuple] = {}

    def camera_added(self, camera: Camera) -> None:
        self._changed(camera)

    def camera_removed(self, camera: Camera) -> None:
        self._changed(camera)

    def camera_changed(self, camera: Camera) -> None:
        self._changed(camera)

    def camera_forgotten(self, camera: Camera) -> None:
        self._sent.pop(camera.camera_id, None)

    def _changed(self, camera: Camera) -> None:
        visible = (camera.status, camera.device, camera.name, camera.resolution, camera.fps)
        if self._sent.get(camera.camera_id) == visible:
            return
        self._sent[camera.camera_id] = visible
        self.publish(camera)

    def publish(self, camera: Camera) -> int:
        app = self.app
        # in-process listeners (metrics, status) get the object for the public host, if set
        params = camera_object(app, camera, app.config.mediamtx.public_host or "localhost")
        return app.hub.publish("camera_status_update", params, per_host=lambda host: camera_object(app, camera, host))


def register(app: Any) -> None:
    reg = app.registry
    # Stream URLs read app.config at every call: a reloaded public_host applies at once.
    app.on_reload(None, ("mediamtx.public_host",))

    def resolve(params: dict) -> Camera:
        return app.cameras.resolve(params["device"])

    def get_camera_list(session: Any, params: dict) -> dict:
        cameras = [camera_object(app, c, session.host) for c in app.cameras.cameras()]
        return {
            "cameras": cameras,
            "total": len(cameras),
            "connected": sum(1 for c in cameras if c["status"] == CONNECTED),
        }

    async def metrics(camera: Camera) -> dict:
        merged: dict = {}
        for fn in list(app.camera_metrics):
            try:
                value = fn(camera)
                if isinstance(value, Deferred) or inspect.isawaitable(value):
                    value = await value
            except Exception:
                log.failure("camera metrics provider {fn} failed for {camera_id}", fn=fn, camera_id=camera.camera_id)
                continue
            if isinstance(value, dict):
                merged.update(value)
        return merged

    async def get_camera_status(session: Any, params: dict) -> dict:
        camera = resolve(params)
        result = camera_object(app, camera, session.host)
        result["error"] = camera.error
        result["since"] = iso(camera.since)
        result["links"] = list(camera.links)
        result["path"] = camera.stable_device
        result["capabilities"] = capabilities_object(camera, app.config.mediamtx)
        result["metrics"] = await metrics(camera)
        return result

    async def get_camera_capabilities(session: Any, params: dict) -> dict:
        camera = resolve(params)
        discovery = app.discovery
        if camera.capabilities is None and discovery is not None:
            pending = discovery.when_probed(camera.camera_id)
            if pending is not None:
                await pending
                camera = app.cameras.get(camera.camera_id) or camera
        caps = capabilities_object(camera, app.config.mediamtx)
        if caps is None:
            reason = f": {camera.error}" if camera.error else ""
            raise InvalidState(
                f"Capabilities of {camera.camera_id} are not known (camera is {camera.status}{reason})",
                data={"camera_id": camera.camera_id, "status": camera.status, "error": camera.error},
            )
        return {"device": camera.device, "camera_id": camera.camera_id, "status": camera.status, **caps}

    def forget_camera(session: Any, params: dict) -> dict:
        camera = resolve(params)
        discovery = app.discovery
        if camera.status != DISCONNECTED or discovery is None:
            raise InvalidState(
                f"{camera.camera_id} is {camera.status}: only a DISCONNECTED camera can be forgotten",
                data={"camera_id": camera.camera_id, "status": camera.status},
            )
        discovery.forget(camera.camera_id, why=f"forget_camera by {getattr(session, 'subject', None) or 'admin'}")
        return {"camera_id": camera.camera_id, "forgotten": True}

    reg.add(
        "forget_camera",
        forget_camera,
        role=Role.ADMIN,
        params={"device": DEVICE_PARAM},
        required=("device",),
        summary="Drop a DISCONNECTED camera from the list now (as discovery.forget_after does later). "
        "Its id mapping is kept: plugged in again it comes back with the same id.",
        result={
            "type": "object",
            "properties": {"camera_id": {"type": "string"}, "forgotten": {"type": "boolean"}},
        },
        errors=(CameraNotFound, InvalidState),
    )
    reg.add(
        "get_camera_list",
        get_camera_list,
        role=Role.VIEWER,
        summary="Every camera camsvc knows (connected, disconnected or in error), with stream URLs.",
        result={
            "type": "object",
            "properties": {
                "cameras": {"type": "array", "items": CAMERA_REF},
                "total": {"type": "integer"},
                "connected": {"type": "integer"},
            },
        },
    )
    reg.add(
        "get_camera_status",
        get_camera_status,
        role=Role.VIEWER,
        params={"device": DEVICE_PARAM},
        required=("device",),
        summary="One camera: the Camera object plus error, since, links, capabilities and metrics.",
        result={
            "allOf": [
                CAMERA_REF,
                {
                    "type": "object",
                    "properties": {
                        "error": {"type": ["string", "null"], "description": "Why status is ERROR"},
                        "since": {"type": "string", "format": "date-time", "description": "When status last changed"},
                        "links": {"type": "array", "items": {"type": "string"}},
                        "path": {
                            "type": "string",
                            "description": "The device path unique to this camera that camsvc opens "
                            "(publish command, snapshots): a by-id link it alone owns, else by-path, else the node",
                        },
                        "capabilities": {"oneOf": [CAPABILITIES_REF, {"type": "null"}]},
                        "metrics": {"type": "object"},
                    },
                },
            ]
        },
        errors=(CameraNotFound,),
    )
    reg.add(
        "get_camera_capabilities",
        get_camera_capabilities,
        role=Role.VIEWER,
        params={"device": DEVICE_PARAM},
        required=("device",),
        summary="Pixel formats, frame sizes and frame rates of a camera, and the default mode camsvc chose.",
        result={
            "allOf": [
                {
                    "type": "object",
                    "properties": {
                        "device": {"type": "string"},
                        "camera_id": {"type": "string"},
                        "status": {"type": "string", "enum": ["CONNECTED", "DISCONNECTED", "ERROR"]},
                    },
                },
                CAPABILITIES_REF,
            ]
        },
        errors=(CameraNotFound, InvalidState),
    )
