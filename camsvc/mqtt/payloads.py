"""Message bodies: state, events and Home Assistant discovery configurations.

Pure functions of plain data (no client, no reactor).  State and events are
compact JSON (UTF-8 bytes).  Discovery follows Home Assistant's MQTT discovery
documentation: per camera a device (identifiers, name, model, ``via_device``
the host) with a connectivity binary sensor, a camera entity fed by the image
topic, the recording state (a switch when commands are on, a binary sensor
otherwise) and, with commands, a snapshot button; per host a device with a
storage sensor and a MediaMTX connectivity binary sensor.  Every entity is
``available`` only while the host's availability topic says ``online`` and
carries the camera's stream URLs (or the storage figures) as attributes.
"""

from __future__ import annotations

import json
from typing import Any

from camsvc.mqtt.topics import Topics

ONLINE = b"online"
OFFLINE = b"offline"
ON = "ON"
OFF = "OFF"
PRESS = "PRESS"


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode("utf-8")


def event(kind: str, time: str, **fields: Any) -> bytes:
    """``{"event": kind, "time": ..., ...}``; kinds: camera_plugged, camera_unplugged,
    recording_started, recording_finished, recording_failed."""
    return dumps({"event": kind, "time": time, **fields})


def recording_state(recording: bool) -> bytes:
    return (ON if recording else OFF).encode()


# -- Home Assistant discovery ---------------------------------------------------------------


def host_identifier(host_id: str) -> str:
    return f"camsvc_{host_id}"


def camera_identifier(host_id: str, camera_id: str) -> str:
    return f"camsvc_{host_id}_{camera_id}"


def _origin(version: str) -> dict:
    return {"name": "camsvc", "sw_version": version}


def _available(topics: Topics) -> dict:
    return {
        "availability_topic": topics.availability,
        "payload_available": "online",
        "payload_not_available": "offline",
    }


def host_device(host_id: str, version: str) -> dict:
    return {
        "identifiers": [host_identifier(host_id)],
        "name": f"camsvc {host_id}",
        "manufacturer": "camsvc",
        "model": "camsvc camera host",
        "sw_version": version,
    }


def camera_device(host_id: str, camera: dict, version: str) -> dict:
    model = camera.get("name") or "USB camera"
    return {
        "identifiers": [camera_identifier(host_id, camera["camera_id"])],
        "name": f"{camera['camera_id']} on {host_id}",
        "manufacturer": "camsvc",
        "model": model,
        "sw_version": version,
        "via_device": host_identifier(host_id),
    }


def camera_entities(topics: Topics, host_id: str, camera: dict, version: str, *, commands: bool) -> dict[str, dict]:
    """Discovery topic -> configuration for every entity of one camera."""
    cid = camera["camera_id"]
    uid = camera_identifier(host_id, cid)
    state = topics.camera(cid)
    common = {
        **_available(topics),
        "device": camera_device(host_id, camera, version),
        "origin": _origin(version),
        "json_attributes_topic": state,
        "json_attributes_template": "{{ value_json.streams | tojson }}",
    }
    out = {
        topics.discovery("binary_sensor", f"{cid}_connected"): {
            **common,
            "name": "Connected",
            "unique_id": f"{uid}_connected",
            "device_class": "connectivity",
            "state_topic": state,
            "value_template": "{{ 'ON' if value_json.status == 'CONNECTED' else 'OFF' }}",
            "payload_on": ON,
            "payload_off": OFF,
        },
        topics.discovery("camera", cid): {
            **common,
            "name": None,
            "unique_id": f"{uid}_camera",
            "topic": topics.image(cid),
        },
    }
    recording = {
        **common,
        "name": "Recording",
        "unique_id": f"{uid}_recording",
        "state_topic": topics.recording(cid),
        "payload_on": ON,
        "payload_off": OFF,
        "icon": "mdi:record-rec",
    }
    if commands:
        out[topics.discovery("switch", f"{cid}_recording")] = {
            **recording,
            "command_topic": topics.recording_set(cid),
            "state_on": ON,
            "state_off": OFF,
        }
        out[topics.discovery("button", f"{cid}_snapshot")] = {
            **common,
            "name": "Snapshot",
            "unique_id": f"{uid}_snapshot",
            "command_topic": topics.snapshot_take(cid),
            "payload_press": PRESS,
            "icon": "mdi:camera",
        }
    else:
        out[topics.discovery("binary_sensor", f"{cid}_recording")] = {**recording, "device_class": "running"}
    return out


def camera_discovery_topics(topics: Topics, camera_id: str) -> list[str]:
    """Every discovery topic a camera may have used (to clear them when it is forgotten)."""
    return [
        topics.discovery("binary_sensor", f"{camera_id}_connected"),
        topics.discovery("camera", camera_id),
        topics.discovery("switch", f"{camera_id}_recording"),
        topics.discovery("button", f"{camera_id}_snapshot"),
        topics.discovery("binary_sensor", f"{camera_id}_recording"),
    ]


def host_entities(topics: Topics, host_id: str, version: str) -> dict[str, dict]:
    """Discovery topic -> configuration for the host's storage sensor and MediaMTX status."""
    uid = host_identifier(host_id)
    common = {**_available(topics), "device": host_device(host_id, version), "origin": _origin(version)}
    return {
        topics.discovery("sensor", "storage_free"): {
            **common,
            "name": "Storage free",
            "unique_id": f"{uid}_storage_free",
            "state_topic": topics.storage,
            "value_template": "{{ value_json.free_percent }}",
            "unit_of_measurement": "%",
            "state_class": "measurement",
            "icon": "mdi:harddisk",
            "json_attributes_topic": topics.storage,
            "entity_category": "diagnostic",
        },
        topics.discovery("binary_sensor", "mediamtx"): {
            **common,
            "name": "MediaMTX",
            "unique_id": f"{uid}_mediamtx",
            "device_class": "connectivity",
            "state_topic": topics.mediamtx,
            "value_template": "{{ 'ON' if value_json.available else 'OFF' }}",
            "payload_on": ON,
            "payload_off": OFF,
            "json_attributes_topic": topics.mediamtx,
            "entity_category": "diagnostic",
        },
    }
