"""Log output: level filtering and the text or JSON-lines format.

The service logs through ``twisted.logger`` only.  :func:`make_observer`
builds the observer twistd installs (via the Application's ILogObserver
component): human-readable lines by default, or one JSON object per line for
journald/Loki with ``logging.format: json``.  Event fields named in
``CONTEXT_FIELDS`` (camera id, connection id, ...) are carried into JSON
records.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import IO, Any

from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    formatEvent,
    formatEventAsClassicLogText,
    textFileLogObserver,
)
from zope.interface import implementer

CONTEXT_FIELDS = ("camera_id", "conn_id", "peer", "method", "device", "path", "component")

_LEVELS = {
    "debug": LogLevel.debug,
    "info": LogLevel.info,
    "warn": LogLevel.warn,
    "error": LogLevel.error,
    "critical": LogLevel.critical,
}


@implementer(ILogObserver)
class JSONLinesObserver:
    """One JSON object per line: time, level, namespace, message, context fields."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out

    def __call__(self, event: dict) -> None:
        level = event.get("log_level")
        record: dict[str, Any] = {
            "time": datetime.fromtimestamp(event.get("log_time", 0), tz=UTC).isoformat(timespec="milliseconds"),
            "level": level.name if level is not None else "info",
            "namespace": event.get("log_namespace", ""),
            "message": formatEvent(event),
        }
        for key in CONTEXT_FIELDS:
            if key in event:
                value = event[key]
                record[key] = value if isinstance(value, (str, int, float, bool)) or value is None else str(value)
        failure = event.get("log_failure")
        if failure is not None:
            record["traceback"] = failure.getTraceback()
        try:
            self.out.write(json.dumps(record, ensure_ascii=False) + "\n")
            self.out.flush()
        except Exception:
            pass


class LevelControl:
    """The log level predicate, changeable at runtime (SIGHUP reload)."""

    def __init__(self, level: str) -> None:
        self.predicate = LogLevelFilterPredicate(defaultLogLevel=_LEVELS[level])

    def set_level(self, level: str) -> None:
        self.predicate.setLogLevelForNamespace("", _LEVELS[level])


def make_observer(fmt: str, control: LevelControl, out: IO[str] | None = None) -> ILogObserver:
    out = out or sys.stdout
    if fmt == "json":
        inner = JSONLinesObserver(out)
    else:
        inner = textFileLogObserver(out, timeFormat="%Y-%m-%dT%H:%M:%S%z")
    return FilteringLogObserver(inner, [control.predicate])


__all__ = ["make_observer", "LevelControl", "JSONLinesObserver", "formatEventAsClassicLogText"]
