"""ISO 8601 timestamps: the one way camsvc writes an epoch time for clients.

:func:`iso` renders an epoch time as UTC with a ``Z`` suffix
(``2025-01-02T03:04:05.678Z``); ``timespec`` picks the precision
(``"milliseconds"`` by default, ``"seconds"`` for coarse values such as
``started_at``).
"""

from __future__ import annotations

from datetime import datetime, timezone


def iso(ts: float, timespec: str = "milliseconds") -> str:
    """An epoch time as ISO 8601 UTC (``2025-01-02T03:04:05.678Z`` with the default ``timespec``)."""
    utc = timezone.utc
    return datetime.fromtimestamp(ts, tz=utc).isoformat(timespec=timespec).replace("+00:00", "Z")
