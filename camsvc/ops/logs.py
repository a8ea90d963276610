"""Log output: level filtering and the text or JSON-lines format.

The service logs through ``twisted.logger`` only.  :func:`make_observer`
builds the observer twistd installs (via the Application's ILogObserver
component): human-readable lines by default, or one JSON object per line for
journald/Loki with ``logging.format: json``.  Event fields named in
``CONTEXT_FIELDS`` (camera id, connection id, ...) are carried into JSON
records.  When stdout is the systemd journal (``$JOURNAL_STREAM`` names it),
each line starts with its syslog priority (``<4>`` for a warning), which
journald strips and records, so ``journalctl -p warning`` works.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import IO, Any

from twisted.logger import (
    FileLogObserver,
    FilteringLogObserver,
    ILogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    formatEvent,
    formatEventAsClassicLogText,
    formatTime,
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


#: syslog priorities journald reads from a ``<N>`` line prefix.
_PRIORITIES = {
    LogLevel.debug: 7,
    LogLevel.info: 6,
    LogLevel.warn: 4,
    LogLevel.error: 3,
    LogLevel.critical: 2,
}
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%z"


def priority_prefix(event: dict) -> str:
    return f"<{_PRIORITIES.get(event.get('log_level'), 6)}>"


def stdout_is_journal(environ: Mapping[str, str], fd: int = 1) -> bool:
    """True when ``fd`` is the stream systemd's ``$JOURNAL_STREAM`` (``device:inode``) names."""
    value = environ.get("JOURNAL_STREAM", "")
    try:
        device, inode = (int(x) for x in value.split(":"))
        st = os.fstat(fd)
    except (ValueError, OSError):
        return False
    return st.st_dev == device and st.st_ino == inode


@implementer(ILogObserver)
class JSONLinesObserver:
    """One JSON object per line: time, level, namespace, message, context fields."""

    def __init__(self, out: IO[str], *, journal: bool = False) -> None:
        self.out = out
        self.journal = journal

    def __call__(self, event: dict) -> None:
        level = event.get("log_level")
        record: dict[str, Any] = {
            "time": datetime.fromtimestamp(event.get("log_time", 0), tz=timezone.utc).isoformat(
                timespec="milliseconds"
            ),
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
        prefix = priority_prefix(event) if self.journal else ""
        try:
            self.out.write(prefix + json.dumps(record, ensure_ascii=False, default=str) + "\n")
            self.out.flush()
        except Exception:
            pass


class LevelControl:
    """The log level predicate, changeable at runtime (SIGHUP reload)."""

    def __init__(self, level: str) -> None:
        self.predicate = LogLevelFilterPredicate(defaultLogLevel=_LEVELS[level])

    def set_level(self, level: str) -> None:
        self.predicate.setLogLevelForNamespace("", _LEVELS[level])


def _text_line(journal: bool):
    def format_line(event: dict) -> str | None:
        text = formatEventAsClassicLogText(event, formatTime=lambda t: formatTime(t, timeFormat=TIME_FORMAT))
        if text is None or not journal:
            return text
        return priority_prefix(event) + text

    return format_line


def make_observer(
    fmt: str, control: LevelControl, out: IO[str] | None = None, *, journal: bool = False
) -> ILogObserver:
    """The service's observer: ``fmt`` text or json, filtered by ``control``; ``journal`` adds ``<N>`` priorities."""
    out = out or sys.stdout
    if fmt == "json":
        inner: ILogObserver = JSONLinesObserver(out, journal=journal)
    else:
        inner = FileLogObserver(out, _text_line(journal))
    return FilteringLogObserver(inner, [control.predicate])


__all__ = ["make_observer", "LevelControl", "JSONLinesObserver", "formatEventAsClassicLogText", "stdout_is_journal"]
