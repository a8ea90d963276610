"""System methods: ping, get_server_info, get_status, rpc.discover."""

from __future__ import annotations

import platform
from typing import Any

from camsvc import __version__
from camsvc.common.timefmt import iso
from camsvc.server.openrpc import NOTIFICATIONS
from camsvc.server.rpc import Role

API_VERSION = "1.0"


def register(app: Any) -> None:
    reg = app.registry

    def ping(session: Any, params: dict) -> str:
        return "pong"

    def get_server_info(session: Any, params: dict) -> dict:
        return {
            "name": "camsvc",
            "version": __version__,
            "api_version": API_VERSION,
            "started_at": iso(app.started_wall, "seconds"),
            "python": platform.python_version(),
            "methods": sorted(m.name for m in reg),
            "notifications": sorted(NOTIFICATIONS),
            "auth_required": app.config.auth.required,
        }

    def get_status(session: Any, params: dict) -> dict:
        report = app.health.report()
        if report["ready"]:
            status = "healthy"
        elif app.was_ready:
            status = "degraded"
        else:
            status = "starting"
        components = {}
        for name, provider in app.status_providers.items():
            components[name] = provider()
        return {
            "status": status,
            "version": __version__,
            "uptime": round(app.uptime(), 3),
            "connections": len(app.hub),
            "checks": report["checks"],
            "components": components,
        }

    def discover(session: Any, params: dict) -> Any:
        return app.openrpc.text  # built once; embedded in the answer without re-encoding

    reg.add(
        "ping",
        ping,
        role=Role.NONE,
        summary='Liveness check; answers "pong".',
        result={"type": "string", "const": "pong"},
    )
    reg.add(
        "get_server_info",
        get_server_info,
        role=Role.VIEWER,
        summary="Server name, version, API version and the methods and notifications it offers.",
        result={
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "version": {"type": "string"},
                "api_version": {"type": "string"},
                "started_at": {"type": "string", "format": "date-time"},
                "python": {"type": "string"},
                "methods": {"type": "array", "items": {"type": "string"}},
                "notifications": {"type": "array", "items": {"type": "string"}},
                "auth_required": {"type": "boolean"},
            },
        },
    )
    reg.add(
        "get_status",
        get_status,
        role=Role.VIEWER,
        summary="Overall health: healthy, degraded or starting, with each readiness check and component status.",
        result={
            "type": "object",
            "properties": {
                "status": {"type": "string", "enum": ["healthy", "degraded", "starting"]},
                "version": {"type": "string"},
                "uptime": {"type": "number"},
                "connections": {"type": "integer"},
                "checks": {"type": "object"},
                "components": {"type": "object"},
            },
        },
    )
    reg.add("rpc.discover", discover, role=Role.NONE, summary="This API's OpenRPC document.", result={"type": "object"})
