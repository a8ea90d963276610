"""``setup(app)``: the MQTT bridge wired into a camsvc (None when ``mqtt.enabled`` is false).

Creates the :class:`~camsvc.mqtt.client.MQTTConnection` and the
:class:`~camsvc.mqtt.bridge.MQTTBridge` as services under ``app.service``
(connection first, so the bridge stops first and can still say ``offline``),
subscribes the bridge to the camera registry and the hub, and gives it what it
needs as callables: the Camera object (stream URLs for ``mediamtx.public_host``
or this host's name), the JSON-RPC engine with a session holding
``mqtt.command_role``, the snapshot reader, and the storage and MediaMTX state.
MQTT is not a readiness condition: the broker being away never makes camsvc
unready.  ``get_status`` gets an ``mqtt`` section.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from twisted.logger import Logger

from camsvc import __version__
from camsvc.api.cameras import camera_object
from camsvc.common.roles import Role
from camsvc.mqtt import payloads
from camsvc.mqtt.bridge import MQTTBridge
from camsvc.mqtt.client import MQTTConnection
from camsvc.mqtt.settings import resolve
from camsvc.mqtt.topics import Topics
from camsvc.server.session import Session

log = Logger()


def command_session(app: Any, role: Role, host: str) -> Session:
    """The session MQTT commands run in: authenticated as ``role``, never expiring."""
    session = Session("mqtt", peer="mqtt", host=host, clock=app.clock, auth_required=True)
    session.grant(role, subject="mqtt", expires_at=None, method="mqtt", session_id="mqtt")
    return session


def setup(app: Any, *, hostname: str | None = None) -> MQTTBridge | None:
    config = app.config
    mcfg = config.mqtt
    if not mcfg.enabled:
        return None
    hostname = hostname or socket.gethostname()
    settings = resolve(mcfg, hostname)
    topics = Topics(settings.base_topic, mcfg.ha_prefix, settings.host_id)
    url_host = config.mediamtx.public_host or hostname
    session = command_session(app, Role.parse(mcfg.command_role), url_host)

    def camera_state(camera: Any) -> dict:
        return camera_object(app, camera, app.config.mediamtx.public_host or url_host)

    def handle(text: str) -> Any:
        return app.engine.handle(session, text)

    def read_snapshot(filename: str) -> bytes:
        with open(os.path.join(app.config.storage.snapshots_dir, os.path.basename(filename)), "rb") as fh:
            return fh.read()

    storage_state = None
    if app.media is not None:
        storage = app.media.storage

        def storage_state() -> dict:
            systems = storage.filesystems()
            worst = min(systems.values(), key=lambda s: s["free_percent"])
            return {
                "status": storage.classify(worst["free_percent"]),
                "free_percent": round(worst["free_percent"], 2),
                "free_bytes": worst["free_bytes"],
                "total_bytes": worst["total_bytes"],
            }

    mediamtx_state = None
    if app.mediamtx is not None:
        mediamtx = app.mediamtx

        def mediamtx_state() -> dict:
            status = mediamtx.status()
            return {
                "enabled": bool(status.get("enabled", True)),
                "available": bool(status.get("available")),
                "reason": status.get("reason") or "",
                "version": status.get("version") or "",
            }

    bridge_ref: list[MQTTBridge] = []
    connection = MQTTConnection(
        settings,
        app.reactor,
        app.clock,
        will=(topics.availability, payloads.OFFLINE),
        on_connected=lambda: bridge_ref[0].connected(),
        on_message=lambda topic, payload, props, retained: bridge_ref[0].message(topic, payload, props, retained),
        metrics=app.metrics,
    )
    bridge = MQTTBridge(
        connection,
        topics,
        host_id=settings.host_id,
        version=__version__,
        cameras=app.cameras,
        camera_state=camera_state,
        clock=app.clock,
        qos=settings.qos,
        queue_size=settings.queue_size,
        ha_discovery=mcfg.ha_discovery,
        commands=mcfg.commands,
        handle=handle,
        read_snapshot=read_snapshot,
        storage_state=storage_state,
        mediamtx_state=mediamtx_state,
        state_interval=mcfg.state_interval,
        snapshot_interval=mcfg.snapshot_interval,
        metrics=app.metrics,
    )
    bridge_ref.append(bridge)
    connection.setServiceParent(app.service)
    bridge.setServiceParent(app.service)
    app.cameras.subscribe(bridge)
    app.hub.subscribe(bridge.notified)
    app.status_providers["mqtt"] = bridge.status
    log.info(
        "MQTT bridge to {broker} under {base} (Home Assistant discovery {ha}, commands {commands})",
        broker=settings.broker,
        base=topics.base,
        ha="on" if mcfg.ha_discovery else "off",
        commands=f"on as {mcfg.command_role}" if mcfg.commands else "off",
    )
    return bridge
