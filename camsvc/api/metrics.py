"""Operations methods: get_metrics."""

from __future__ import annotations

from typing import Any

from camsvc.server.rpc import Role

_SAMPLE = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "value": {"type": ["number", "string"]},
    },
}


def register(app: Any) -> None:
    def get_metrics(session: Any, params: dict) -> dict:
        return app.metrics.as_json()

    app.registry.add(
        "get_metrics",
        get_metrics,
        role=Role.ADMIN,
        summary="The figures of /metrics as JSON: a summary plus every metric with its samples.",
        description=(
            "Read from in-memory counters and /proc; never blocks. `metrics` maps each metric name "
            "(as in the Prometheus text format) to `{type, help, samples}`; docs/operations.md lists them all."
        ),
        result={
            "type": "object",
            "properties": {
                "summary": {
                    "type": "object",
                    "properties": {
                        "uptime_seconds": {"type": "number"},
                        "connections": {"type": "integer"},
                        "connections_total": {"type": "integer"},
                        "requests_total": {"type": "integer"},
                        "errors_total": {"type": "integer"},
                        "error_rate": {"type": "number"},
                        "average_response_seconds": {"type": "number"},
                        "notifications_sent_total": {"type": "integer"},
                        "notifications_dropped_total": {"type": "integer"},
                        "cameras_connected": {"type": "integer"},
                        "recordings_active": {"type": "integer"},
                        "mediamtx_up": {"type": "integer"},
                        "resident_memory_bytes": {"type": "integer"},
                        "cpu_seconds_total": {"type": "number"},
                        "open_fds": {"type": "integer"},
                    },
                },
                "metrics": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "properties": {
                            "type": {"type": "string"},
                            "help": {"type": "string"},
                            "samples": {"type": "array", "items": _SAMPLE},
                        },
                    },
                },
            },
        },
    )
