"""Camera control methods: ``get_camera_controls``, ``set_camera_controls``, ``reset_camera_controls``.

The work is :class:`camsvc.cameras.controls.CameraControls` (``app.controls``); this
module declares the methods (roles, parameters, result schemas, errors) and resolves
``device`` like every camera method (camera id, node or /dev/v4l link; -32004
otherwise).  The ``camera_controls_update`` notification is published by the component.

Collaborators: ``app.cameras``, ``app.controls``.
"""

from __future__ import annotations

from typing import Any

from camsvc.api.cameras import DEVICE_PARAM
from camsvc.common.errors import CameraNotFound, InvalidParams, InvalidState
from camsvc.server.rpc import Role

CONTROL_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "integer", "description": "V4L2 control id"},
        "name": {"type": "string", "description": "v4l2-ctl's name, e.g. exposure_time_absolute"},
        "label": {"type": "string", "description": "the driver's name, e.g. 'Exposure Time, Absolute'"},
        "class": {"type": "string", "description": "control class: user, camera, ..."},
        "type": {
            "type": "string",
            "enum": ["integer", "boolean", "menu", "integer_menu", "button", "int64", "bitmask", "unsupported"],
        },
        "supported": {"type": "boolean"},
        "v4l2_type": {"type": "string", "description": "for unsupported controls: the V4L2 type (string, ...)"},
        "minimum": {"type": "integer"},
        "maximum": {"type": "integer"},
        "step": {"type": "integer"},
        "default": {"type": ["integer", "boolean", "null"]},
        "value": {"type": ["integer", "boolean", "null"], "description": "null for buttons and write-only controls"},
        "stored": {"description": "the value camsvc re-applies on plug (null: none stored)"},
        "flags": {
            "type": "array",
            "items": {"type": "string"},
            "description": "read_only, inactive, grabbed, volatile, write_only, disabled, slider, update, ...",
        },
        "menu": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"index": {"type": "integer"}, "name": {"type": "string"}, "value": {"type": "integer"}},
            },
        },
    },
}
CONTROLS_PARAM = {
    "type": "object",
    "minProperties": 1,
    "maxProperties": 256,
    "description": "{name or id: value}; menus take the index or the item's name (auto_exposure: 'manual')",
}
VALUES_RESULT = {
    "type": "object",
    "properties": {
        "device": {"type": "string"},
        "camera_id": {"type": "string"},
        "controls": {"type": "object", "description": "{name: value read back} (drivers clamp)"},
    },
}


def register(app: Any) -> None:
    reg = app.registry

    def component() -> Any:
        if app.controls is None:
            raise InvalidState("Camera controls are not available")
        return app.controls

    def get_camera_controls(session: Any, params: dict) -> dict:
        return component().describe(app.cameras.resolve(params["device"]))

    def set_camera_controls(session: Any, params: dict) -> dict:
        return component().set(app.cameras.resolve(params["device"]), params["controls"])

    def reset_camera_controls(session: Any, params: dict) -> dict:
        names = params.get("controls")
        return component().reset(app.cameras.resolve(params["device"]), names)

    reg.add(
        "get_camera_controls",
        get_camera_controls,
        role=Role.VIEWER,
        params={"device": DEVICE_PARAM},
        required=("device",),
        summary="Every V4L2 control of a camera, grouped by class, with its current and stored value.",
        description=(
            "Enumerated with VIDIOC_QUERY_EXT_CTRL (NEXT_CTRL|NEXT_COMPOUND) and VIDIOC_QUERYMENU, values"
            " read with VIDIOC_G_EXT_CTRLS. Types other than integer, boolean, menu, integer_menu, button,"
            " int64 and bitmask (strings, arrays, compound controls) are listed with type 'unsupported'."
            " -32005 when the camera is not connected or its node cannot be opened."
        ),
        result={
            "type": "object",
            "properties": {
                "device": {"type": "string"},
                "camera_id": {"type": "string"},
                "classes": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "class": {"type": "string"},
                            "controls": {"type": "array", "items": CONTROL_SCHEMA},
                        },
                    },
                },
                "stored": {"type": "object", "description": "{name: value} camsvc re-applies on plug and at start"},
            },
        },
        errors=(CameraNotFound, InvalidState),
    )
    reg.add(
        "set_camera_controls",
        set_camera_controls,
        role=Role.OPERATOR,
        params={"device": DEVICE_PARAM, "controls": CONTROLS_PARAM},
        required=("device", "controls"),
        summary="Set controls (checked, applied with VIDIOC_S_EXT_CTRLS, stored per camera); returns the values read back.",
        description=(
            "Values are checked against type, range, step and menu before anything is written: -32602 names the"
            " control (error.data.control) and what it allows (error.data.allowed); unknown, read-only and"
            " unsupported controls are -32602 too (error.data.reason: unknown, read_only, unsupported). Inactive"
            " and grabbed controls are -32005 (reason inactive / grabbed; EBUSY from the driver: busy). Automatic/"
            " manual pairs (auto_exposure and exposure_time_absolute, white_balance_automatic and"
            " white_balance_temperature, focus_automatic_continuous and focus_absolute, ...) are applied in the"
            " order that works: an automatic control switched to manual first, then the manual values, an"
            " automatic control switched back last. The values read back are stored under the camera's id and"
            " re-applied when it is plugged in again and at service start. A camera_controls_update follows."
        ),
        result=VALUES_RESULT,
        errors=(CameraNotFound, InvalidParams, InvalidState),
    )
    reg.add(
        "reset_camera_controls",
        reset_camera_controls,
        role=Role.OPERATOR,
        params={
            "device": DEVICE_PARAM,
            "controls": {
                "type": "array",
                "items": {"type": ["string", "integer"]},
                "minItems": 1,
                "maxItems": 256,
                "description": "names or ids; omitted = every writable control",
            },
        },
        required=("device",),
        summary="Return controls to the driver's defaults and forget their stored values.",
        description=(
            "Without controls, every writable control is reset (inactive ones are skipped, read-only ones"
            " left alone) and every stored value of the camera is forgotten."
        ),
        result=VALUES_RESULT,
        errors=(CameraNotFound, InvalidParams, InvalidState),
    )
