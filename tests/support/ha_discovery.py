"""A check of MQTT discovery configurations against Home Assistant's documented schema.

Written from Home Assistant's MQTT integration documentation (the discovery
section and the pages of the ``binary_sensor``, ``switch``, ``button``,
``camera`` and ``sensor`` MQTT platforms) and the voluptuous schemas of
``homeassistant/components/mqtt`` (``schemas.py`` for the shared entity,
availability, device and origin keys, one module per platform): a JSON Schema
per platform listing the keys that platform accepts, which are required, and
the allowed values of enumerations (device classes, state classes, entity
categories).  Stricter than Home Assistant in one way: unknown keys are errors
here (Home Assistant drops them silently in discovery, which would hide a
typo).  :func:`problems` checks one configuration and its discovery topic;
:func:`fleet_problems` what spans configurations (unique ids, ``via_device``
naming a device that exists).
"""

from __future__ import annotations

import re
from typing import Any

import jsonschema

TOPIC = re.compile(
    r"^(?P<prefix>[^/#+]+)/(?P<component>[a-z_]+)/(?:(?P<node>[A-Za-z0-9_-]+)/)?(?P<object>[A-Za-z0-9_-]+)/config$"
)

_TEMPLATE = {"type": "string", "minLength": 1}
_PUBLISH_TOPIC = {"type": "string", "minLength": 1, "not": {"pattern": "[#+\u0000]"}}
_SUBSCRIBE_TOPIC = {"type": "string", "minLength": 1, "not": {"pattern": "\u0000"}}

DEVICE = {
    "type": "object",
    "properties": {
        "identifiers": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]},
        "connections": {
            "type": "array",
            "items": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 2},
        },
        "configuration_url": {"type": "string"},
        "manufacturer": {"type": "string"},
        "model": {"type": "string"},
        "model_id": {"type": "string"},
        "name": {"type": "string"},
        "hw_version": {"type": "string"},
        "serial_number": {"type": "string"},
        "sw_version": {"type": "string"},
        "suggested_area": {"type": "string"},
        "via_device": {"type": "string"},
    },
    "additionalProperties": False,
    # "Device must have at least one identifying value in 'identifiers' and/or 'connections'"
    "anyOf": [{"required": ["identifiers"]}, {"required": ["connections"]}],
}

ORIGIN = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "sw_version": {"type": "string"}, "support_url": {"type": "string"}},
    "required": ["name"],
    "additionalProperties": False,
}

AVAILABILITY_ITEM = {
    "type": "object",
    "properties": {
        "topic": _SUBSCRIBE_TOPIC,
        "payload_available": {"type": "string"},
        "payload_not_available": {"type": "string"},
        "value_template": _TEMPLATE,
    },
    "required": ["topic"],
    "additionalProperties": False,
}

#: MQTT_ENTITY_COMMON_SCHEMA + availability + the base schema (qos, encoding).
COMMON = {
    "availability": {"type": "array", "items": AVAILABILITY_ITEM},
    "availability_mode": {"enum": ["all", "any", "latest"]},
    "availability_template": _TEMPLATE,
    "availability_topic": _SUBSCRIBE_TOPIC,
    "payload_available": {"type": "string"},
    "payload_not_available": {"type": "string"},
    "device": DEVICE,
    "origin": ORIGIN,
    "enabled_by_default": {"type": "boolean"},
    "entity_category": {"enum": ["config", "diagnostic"]},
    "entity_picture": {"type": "string"},
    "icon": {"type": "string", "pattern": "^[a-z0-9-]+:[a-z0-9-]+$"},
    "json_attributes_topic": _SUBSCRIBE_TOPIC,
    "json_attributes_template": _TEMPLATE,
    "name": {"type": ["string", "null"]},
    "object_id": {"type": "string"},
    "default_entity_id": {"type": "string"},
    "unique_id": {"type": "string", "minLength": 1},
    "qos": {"enum": [0, 1, 2]},
    "encoding": {"type": "string"},
}

BINARY_SENSOR_CLASSES = [
    "battery", "battery_charging", "carbon_monoxide", "cold", "connectivity", "door", "garage_door", "gas",
    "heat", "light", "lock", "moisture", "motion", "moving", "occupancy", "opening", "plug", "power",
    "presence", "problem", "running", "safety", "smoke", "sound", "tamper", "update", "vibration", "window",
]  # fmt: skip

PLATFORMS: dict[str, dict[str, Any]] = {
    "binary_sensor": {
        "properties": {
            "state_topic": _SUBSCRIBE_TOPIC,
            "device_class": {"enum": BINARY_SENSOR_CLASSES},
            "expire_after": {"type": "integer", "minimum": 1},
            "force_update": {"type": "boolean"},
            "off_delay": {"type": "integer", "minimum": 0},
            "payload_on": {"type": "string"},
            "payload_off": {"type": "string"},
            "value_template": _TEMPLATE,
        },
        "required": ["state_topic"],
    },
    "switch": {
        "properties": {
            "command_topic": _PUBLISH_TOPIC,
            "command_template": _TEMPLATE,
            "state_topic": _SUBSCRIBE_TOPIC,
            "device_class": {"enum": ["outlet", "switch"]},
            "optimistic": {"type": "boolean"},
            "retain": {"type": "boolean"},
            "payload_on": {"type": "string"},
            "payload_off": {"type": "string"},
            "state_on": {"type": "string"},
            "state_off": {"type": "string"},
            "value_template": _TEMPLATE,
        },
        "required": ["command_topic"],
    },
    "button": {
        "properties": {
            "command_topic": _PUBLISH_TOPIC,
            "command_template": _TEMPLATE,
            "device_class": {"enum": ["identify", "restart", "update"]},
            "payload_press": {"type": "string"},
            "retain": {"type": "boolean"},
        },
        "required": ["command_topic"],
    },
    "camera": {
        "properties": {"topic": _SUBSCRIBE_TOPIC, "image_encoding": {"enum": ["b64"]}},
        "required": ["topic"],
    },
    "sensor": {
        "properties": {
            "state_topic": _SUBSCRIBE_TOPIC,
            "device_class": {"type": "string"},
            "unit_of_measurement": {"type": "string"},
            "state_class": {"enum": ["measurement", "measurement_angle", "total", "total_increasing"]},
            "value_template": _TEMPLATE,
            "expire_after": {"type": "integer", "minimum": 1},
            "force_update": {"type": "boolean"},
            "last_reset_value_template": _TEMPLATE,
            "suggested_display_precision": {"type": "integer", "minimum": 0},
            "options": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["state_topic"],
    },
}


def schema(component: str) -> dict:
    spec = PLATFORMS[component]
    return {
        "type": "object",
        "properties": {**COMMON, **spec["properties"]},
        "required": spec["required"],
        "additionalProperties": False,
    }


def problems(topic: str, config: Any, prefix: str = "homeassistant") -> list[str]:
    """What is wrong with one discovery message (empty list: valid)."""
    match = TOPIC.match(topic)
    if match is None or match["prefix"] != prefix:
        return [f"{topic}: not <{prefix}>/<component>/[<node_id>/]<object_id>/config"]
    component = match["component"]
    if component not in PLATFORMS:
        return [f"{topic}: platform {component} is not checked here"]
    validator = jsonschema.Draft202012Validator(schema(component))
    out = [
        f"{topic}: {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
        for e in validator.iter_errors(config)
    ]
    if isinstance(config, dict) and "availability" in config and "availability_topic" in config:
        out.append(f"{topic}: availability and availability_topic are mutually exclusive")
    if isinstance(config, dict) and "json_attributes_template" in config and "json_attributes_topic" not in config:
        out.append(f"{topic}: json_attributes_template needs json_attributes_topic")
    return out


def fleet_problems(configs: dict[str, dict]) -> list[str]:
    """Checks across configurations: unique_id unique, via_device names a known device."""
    out = []
    seen: dict[str, str] = {}
    devices: set[str] = set()
    for config in configs.values():
        ids = config.get("device", {}).get("identifiers", [])
        devices.update([ids] if isinstance(ids, str) else ids)
    for topic, config in configs.items():
        uid = config.get("unique_id")
        if uid in seen:
            out.append(f"{topic}: unique_id {uid} also used by {seen[uid]}")
        seen[uid] = topic
        via = config.get("device", {}).get("via_device")
        if via is not None and via not in devices:
            out.append(f"{topic}: via_device {via} is no device of these configurations")
    return out
