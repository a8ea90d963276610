"""Metrics: what the service counts, exposed at ``/metrics`` and by ``get_metrics``.

This module owns every Prometheus metric camsvc exports and the small API
components call to record events, so no other module imports
``prometheus_client``.  :class:`Metrics` (``app.metrics``, created with the
App) records events in plain Python structures: an increment is a dict
update, with no lock and no import of the client library, which is loaded
only at the first scrape (``/metrics`` or ``get_metrics``; it costs about
1 MB of resident memory).  Its :attr:`Metrics.registry` is then an own
:class:`~prometheus_client.CollectorRegistry` (never the library's global
one) holding: the recorded counters, gauges and histograms; collectors that
read the App's state when scraped (connections, cameras, readiness, free
disk space); and the library's process collector
(``process_resident_memory_bytes``, ``process_cpu_seconds_total``,
``process_open_fds``...).  The text format is written by the library.

The API for components (all cheap, none raises, label values are bounded):

=============================================  ==============================================
``metrics.udev_event(action)``                 a udev event was read (add, remove, change...)
``metrics.reenumeration(reason)``              discovery re-enumerated all devices
``metrics.mediamtx_call(endpoint, status, s)`` one control-API request (status: HTTP code,
                                               ``"timeout"`` or ``"error"``)
``metrics.mediamtx_reachable(ok)``             MediaMTX answered / stopped answering
``metrics.reconcile(seconds, ok)``             one reconciliation run
``metrics.recordings_active.set(n)``           recordings in progress (also ``inc()``/``dec()``)
``metrics.recording_event(event)``             started, stopped, failed...
``metrics.snapshot(seconds, source, ok)``      one snapshot (source: ``stream`` or ``device``)
``metrics.retention_deleted(files, nbytes)``   files removed by the retention policy
``metrics.auth_attempt(method, ok)``           one authenticate call (method: jwt, api_key)
``metrics.connection_rejected(reason)``        a WebSocket handshake refused
``metrics.connection_dropped(reason)``         an open connection closed by the server
``metrics.config_reload(result)``              a SIGHUP reload (ok, invalid, error)
=============================================  ==============================================

The JSON-RPC engine and the hub report through :meth:`Metrics.observe_rpc`
and :meth:`Metrics.notifications` (wired by the App).  Label values passed by
callers are reduced to ``[a-z0-9_./{}-]`` and each label keeps at most
``MAX_LABEL_VALUES`` distinct values (further ones become ``"other"``), so a
bug can never explode the series count.  ``docs/operations.md`` lists every
metric.
"""

from __future__ import annotations

import os
import re
from bisect import bisect_left
from collections.abc import Iterable
from typing import Any

from twisted.logger import Logger
from twisted.web.resource import Resource

from camsvc import __version__
from camsvc.common.errors import ALL_ERRORS

log = Logger()

#: Distinct values one label may take before new ones are reported as "other".
MAX_LABEL_VALUES = 64

#: Latency buckets (seconds) for JSON-RPC calls: most answer in well under a millisecond.
RPC_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Buckets for HTTP calls to MediaMTX and reconciliation runs.
API_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Buckets for snapshots (an ffmpeg run: tenths of seconds to seconds).
SNAPSHOT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0)

UDEV_ACTIONS = frozenset({"add", "remove", "change", "bind", "unbind", "move", "online", "offline"})
CAMERA_STATES = ("CONNECTED", "DISCONNECTED", "ERROR")
#: The registry writes the classic text format (0.0.4) in every library version.
CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
_MEDIAMTX_ACTIONS = frozenset({"get", "add", "patch", "replace", "delete", "kick", "deletesegment"})


# -- recording primitives: plain data, exported by _RecordedCollector ----------------


class Counter:
    """A counter family: label values tuple -> total."""

    __slots__ = ("name", "help", "labelnames", "values")
    kind = "counter"

    def __init__(self, name: str, help: str, labelnames: tuple = ()) -> None:
        assert name.endswith("_total")
        self.name, self.help, self.labelnames = name, help, tuple(labelnames)
        self.values: dict[tuple, float] = {} if labelnames else {(): 0.0}

    def inc(self, labels: tuple = (), amount: float = 1) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + amount


class Gauge:
    """A gauge without labels: ``set``, ``inc``, ``dec``."""

    __slots__ = ("name", "help", "value")
    kind = "gauge"
    labelnames = ()

    def __init__(self, name: str, help: str) -> None:
        self.name, self.help, self.value = name, help, 0.0

    def set(self, value: float) -> None:
        self.value = float(value)

    def inc(self, amount: float = 1) -> None:
        self.value += amount

    def dec(self, amount: float = 1) -> None:
        self.value -= amount

    @property
    def values(self) -> dict:
        return {(): self.value}


class Histogram:
    """A histogram family: label values tuple -> [per-bucket counts..., +Inf count, sum]."""

    __slots__ = ("name", "help", "labelnames", "buckets", "values")
    kind = "histogram"

    def __init__(self, name: str, help: str, labelnames: tuple = (), buckets: tuple = RPC_BUCKETS) -> None:
        self.name, self.help, self.labelnames = name, help, tuple(labelnames)
        self.buckets = tuple(buckets)
        self.values: dict[tuple, list] = {} if labelnames else {(): [0] * (len(self.buckets) + 1) + [0.0]}

    def observe(self, labels: tuple, value: float) -> None:
        cells = self.values.get(labels)
        if cells is None:
            cells = self.values[labels] = [0] * (len(self.buckets) + 1) + [0.0]
        cells[bisect_left(self.buckets, value)] += 1
        cells[-1] += value


def _snake(name: str) -> str:
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name)
    return words.lower().replace("media_mtx", "mediamtx")


#: JSON-RPC error code -> the ``outcome`` label ("method_not_found", "camera_not_found", ...).
OUTCOMES: dict[str, str] = {str(cls.code): _snake(cls.__name__) for cls in ALL_ERRORS}
OUTCOMES["ok"] = "ok"

_UNSAFE = re.compile(r"[^a-z0-9_./{}-]+")


class _LabelGuard:
    """Keeps one label's value set small and tidy."""

    def __init__(self, limit: int = MAX_LABEL_VALUES) -> None:
        self.limit = limit
        self.seen: dict[str, str] = {}

    def __call__(self, value: Any) -> str:
        key = str(value)
        known = self.seen.get(key)
        if known is not None:
            return known
        clean = _UNSAFE.sub("_", key.strip().lower())[:64] or "unknown"
        if len(self.seen) >= self.limit:
            return "other"
        self.seen[key] = clean
        return clean


def mediamtx_endpoint(path: str) -> str:
    """A MediaMTX API path as a label: names replaced, e.g. ``/v3/config/paths/patch/{name}``."""
    path = path.split("?", 1)[0]
    if "://" in path:
        path = "/" + path.split("://", 1)[1].partition("/")[2]
    parts = [p for p in path.split("/") if p]
    for i, part in enumerate(parts[:-1]):
        if part in _MEDIAMTX_ACTIONS:
            parts = parts[: i + 1] + ["{name}"]
            break
    return "/" + "/".join(parts)


class Metrics:
    """Every metric of one running camsvc.

    Collaborator: the App, read at scrape time only (``hub``, ``cameras``,
    ``health``, ``config.storage``, ``uptime()``, ``started_wall``).
    ``registry`` (created at first use) is this instance's own
    CollectorRegistry; ``process=False`` leaves out the process and platform
    collectors (unit tests).
    """

    def __init__(self, app: Any, *, process: bool = True) -> None:
        self.app = app
        self._process = process
        self._registry: Any = None
        self.rpc_requests = Counter(
            "camsvc_rpc_requests_total",
            "JSON-RPC requests handled, by method and outcome (ok or the error's name).",
            ("method", "outcome"),
        )
        self.rpc_duration = Histogram(
            "camsvc_rpc_request_duration_seconds",
            "Time from receiving a JSON-RPC request to having its response, by method.",
            ("method",),
            RPC_BUCKETS,
        )
        self.notifications_sent = Counter(
            "camsvc_notifications_sent_total",
            "Notifications handed to client connections, by notification method.",
            ("method",),
        )
        self.notifications_dropped = Counter(
            "camsvc_notifications_dropped_total",
            "Notifications not delivered because a connection could not take more, by method.",
            ("method",),
        )
        self.connections_rejected = Counter(
            "camsvc_connections_rejected_total", "WebSocket handshakes refused, by reason.", ("reason",)
        )
        self.connections_dropped = Counter(
            "camsvc_connections_dropped_total",
            "Open WebSocket connections closed by the server, by reason.",
            ("reason",),
        )
        self.udev_events = Counter(
            "camsvc_udev_events_total", "udev video4linux events read from the netlink monitor, by action.", ("action",)
        )
        self.reenumerations = Counter(
            "camsvc_udev_reenumerations_total", "Full re-enumerations of video4linux devices, by reason.", ("reason",)
        )
        self.mediamtx_requests = Counter(
            "camsvc_mediamtx_requests_total",
            "Requests to the MediaMTX control API, by endpoint and HTTP status (or timeout/error).",
            ("endpoint", "status"),
        )
        self.mediamtx_duration = Histogram(
            "camsvc_mediamtx_request_duration_seconds",
            "Duration of MediaMTX control API requests, by endpoint.",
            ("endpoint",),
            API_BUCKETS,
        )
        self.mediamtx_up = Gauge(
            "camsvc_mediamtx_up", "1 when the MediaMTX control API answered the last check, else 0."
        )
        self.reconcile_runs = Counter(
            "camsvc_reconcile_runs_total",
            "Reconciliations of MediaMTX paths with camsvc's cameras, by result.",
            ("result",),
        )
        self.reconcile_duration = Histogram(
            "camsvc_reconcile_duration_seconds", "Duration of reconciliation runs.", (), API_BUCKETS
        )
        self.recordings_active = Gauge("camsvc_recordings_active", "Recordings in progress.")
        self.recordings = Counter(
            "camsvc_recordings_total", "Recording lifecycle events (started, stopped, failed...).", ("event",)
        )
        self.snapshots = Counter(
            "camsvc_snapshots_total", "Snapshots taken, by source (stream or device) and result.", ("source", "result")
        )
        self.snapshot_duration = Histogram(
            "camsvc_snapshot_duration_seconds",
            "Time to take a snapshot, by source (stream or device).",
            ("source",),
            SNAPSHOT_BUCKETS,
        )
        self.retention_files = Counter("camsvc_retention_deleted_files_total", "Files deleted by the retention policy.")
        self.retention_bytes = Counter("camsvc_retention_deleted_bytes_total", "Bytes freed by the retention policy.")
        self.auth_attempts = Counter(
            "camsvc_auth_attempts_total",
            "authenticate calls, by credential type (jwt, api_key) and result (ok, failed).",
            ("method", "result"),
        )
        self.config_reloads = Counter(
            "camsvc_config_reloads_total",
            "Configuration reloads (SIGHUP), by result (ok, invalid, error).",
            ("result",),
        )
        self.mqtt_connected_gauge = Gauge("camsvc_mqtt_connected", "1 while connected to the MQTT broker, else 0.")
        self.mqtt_connections = Counter(
            "camsvc_mqtt_connections_total", "MQTT connection attempts, by result (ok, failed).", ("result",)
        )
        self.mqtt_messages = Counter(
            "camsvc_mqtt_messages_total",
            "Messages published to the MQTT broker, by kind (state, event, response, image).",
            ("kind",),
        )
        self.mqtt_dropped_messages = Counter(
            "camsvc_mqtt_dropped_total",
            "MQTT messages dropped: events beyond mqtt.queue_size while disconnected, or a full client queue.",
            ("kind",),
        )
        self.mqtt_commands = Counter(
            "camsvc_mqtt_commands_total", "MQTT commands, by result (ok, error, rejected, duplicate).", ("result",)
        )
        self.recorded = [value for value in vars(self).values() if isinstance(value, (Counter, Gauge, Histogram))]
        self._guards: dict[str, _LabelGuard] = {}
        app.health.subscribe(self._health_changed)

    @property
    def registry(self) -> Any:
        """The CollectorRegistry (prometheus_client is imported here, on first use)."""
        if self._registry is None:
            from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector

            registry = CollectorRegistry(auto_describe=False)
            if self._process:
                ProcessCollector(registry=registry)
                PlatformCollector(registry=registry)
            registry.register(_StateCollector(self.app))
            registry.register(_RecordedCollector(self.recorded))
            self._registry = registry
        return self._registry

    def _label(self, name: str, value: Any) -> str:
        guard = self._guards.get(name)
        if guard is None:
            guard = self._guards[name] = _LabelGuard()
        return guard(value)

    def _safely(self, what: str, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            log.failure("Recording metric {what} failed", what=what)

    # -- hooks of the engine and the hub (hot path: keep them cheap) --------------

    def observe_rpc(self, method: str, outcome: str, seconds: float) -> None:
        """Engine hook: ``method`` is a registered name or "unknown"; ``outcome`` "ok" or an error code."""
        self.rpc_requests.inc((method, OUTCOMES.get(outcome, "error")))
        self.rpc_duration.observe((method,), seconds if seconds > 0 else 0.0)

    def notifications(self, method: str, delivered: int, dropped: int) -> None:
        """Hub hook: one publish reached ``delivered`` connections and missed ``dropped``."""
        label = self._label("notification", method)
        if delivered:
            self.notifications_sent.inc((label,), delivered)
        if dropped:
            self.notifications_dropped.inc((label,), dropped)

    # -- the component API ----------------------------------------------------------

    def connection_rejected(self, reason: str) -> None:
        self._safely("connection_rejected", lambda: self.connections_rejected.inc((self._label("reject", reason),)))

    def connection_dropped(self, reason: str) -> None:
        self._safely("connection_dropped", lambda: self.connections_dropped.inc((self._label("drop", reason),)))

    def udev_event(self, action: str | None) -> None:
        value = action if action in UDEV_ACTIONS else "other"
        self._safely("udev_event", lambda: self.udev_events.inc((value,)))

    def reenumeration(self, reason: str) -> None:
        self._safely("reenumeration", lambda: self.reenumerations.inc((self._label("reenumerate", reason),)))

    def mediamtx_call(self, endpoint: str, status: int | str, seconds: float) -> None:
        def record() -> None:
            name = self._label("endpoint", mediamtx_endpoint(endpoint))
            code = self._label("http_status", status)
            self.mediamtx_requests.inc((name, code))
            self.mediamtx_duration.observe((name,), max(seconds, 0.0))

        self._safely("mediamtx_call", record)

    def mediamtx_reachable(self, ok: bool) -> None:
        self.mediamtx_up.set(1 if ok else 0)

    def _health_changed(self, name: str, ok: bool, reason: str) -> None:
        # The MediaMTX monitor reports reachability as the "mediamtx" readiness check.
        if name == "mediamtx":
            self.mediamtx_reachable(ok)

    def reconcile(self, seconds: float, ok: bool) -> None:
        def record() -> None:
            self.reconcile_runs.inc(("ok" if ok else "error",))
            self.reconcile_duration.observe((), max(seconds, 0.0))

        self._safely("reconcile", record)

    def recording_event(self, event: str) -> None:
        self._safely("recording_event", lambda: self.recordings.inc((self._label("recording", event),)))

    def snapshot(self, seconds: float, source: str, ok: bool = True) -> None:
        def record() -> None:
            label = self._label("snapshot_source", source)
            self.snapshots.inc((label, "ok" if ok else "error"))
            if ok:
                self.snapshot_duration.observe((label,), max(seconds, 0.0))

        self._safely("snapshot", record)

    def retention_deleted(self, files: int, nbytes: int) -> None:
        def record() -> None:
            self.retention_files.inc((), max(files, 0))
            self.retention_bytes.inc((), max(nbytes, 0))

        self._safely("retention_deleted", record)

    def auth_attempt(self, method: str, ok: bool) -> None:
        self._safely(
            "auth_attempt",
            lambda: self.auth_attempts.inc((self._label("auth_method", method), "ok" if ok else "failed")),
        )

    def mqtt_connected(self, ok: bool) -> None:
        self.mqtt_connected_gauge.set(1 if ok else 0)

    def mqtt_connect(self, result: str) -> None:
        self._safely("mqtt_connect", lambda: self.mqtt_connections.inc((self._label("mqtt_connect", result),)))

    def mqtt_published(self, kind: str) -> None:
        self._safely("mqtt_published", lambda: self.mqtt_messages.inc((self._label("mqtt_kind", kind),)))

    def mqtt_dropped(self, kind: str) -> None:
        self._safely("mqtt_dropped", lambda: self.mqtt_dropped_messages.inc((self._label("mqtt_kind", kind),)))

    def mqtt_command(self, result: str) -> None:
        self._safely("mqtt_command", lambda: self.mqtt_commands.inc((self._label("mqtt_command", result),)))

    def config_reload(self, result: str) -> None:
        self._safely("config_reload", lambda: self.config_reloads.inc((self._label("reload", result),)))

    # -- output ------------------------------------------------------------------

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)

    def as_json(self) -> dict:
        """The same figures as plain data, for ``get_metrics``.

        ``metrics`` maps each metric name (as in the text format) to its type,
        help and samples (``{"name", "labels", "value"}``); ``summary`` picks
        the figures people ask for first.
        """
        families: dict[str, dict] = {}
        for family in self.registry.collect():
            name = family.name + "_total" if family.type == "counter" else family.name
            samples = [{"name": s.name, "labels": dict(s.labels), "value": _number(s.value)} for s in family.samples]
            families[name] = {"type": family.type, "help": family.documentation, "samples": samples}
        return {"summary": self._summary(families), "metrics": families}

    def _summary(self, families: dict) -> dict:
        def total(name: str, **match: str) -> float:
            fam = families.get(name)
            if fam is None:
                return 0
            return sum(
                s["value"]
                for s in fam["samples"]
                if s["name"] == name and all(s["labels"].get(k) == v for k, v in match.items())
            )

        requests = total("camsvc_rpc_requests_total")
        ok = total("camsvc_rpc_requests_total", outcome="ok")
        count = total("camsvc_rpc_request_duration_seconds_count")
        seconds = total("camsvc_rpc_request_duration_seconds_sum")
        return {
            "uptime_seconds": round(self.app.uptime(), 3),
            "connections": total("camsvc_connections"),
            "connections_total": total("camsvc_connections_accepted_total"),
            "requests_total": requests,
            "errors_total": requests - ok,
            "error_rate": round((requests - ok) / requests, 6) if requests else 0.0,
            "average_response_seconds": round(seconds / count, 6) if count else 0.0,
            "notifications_sent_total": total("camsvc_notifications_sent_total"),
            "notifications_dropped_total": total("camsvc_notifications_dropped_total"),
            "cameras_connected": total("camsvc_cameras", state="connected"),
            "recordings_active": total("camsvc_recordings_active"),
            "mediamtx_up": total("camsvc_mediamtx_up"),
            "resident_memory_bytes": total("process_resident_memory_bytes"),
            "cpu_seconds_total": total("process_cpu_seconds_total"),
            "open_fds": total("process_open_fds"),
        }


def _number(value: float) -> float | int:
    if value != value or value in (float("inf"), float("-inf")):
        return str(value)  # type: ignore[return-value]  # JSON has no NaN/Inf
    return int(value) if float(value).is_integer() and abs(value) < 2**53 else value


class _StateCollector:
    """Figures read from the App when scraped: connections, cameras, readiness, disk space."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def describe(self) -> Iterable:
        return []

    def collect(self) -> Iterable:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        app = self.app
        info = GaugeMetricFamily("camsvc_info", "camsvc version (always 1).", labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        yield GaugeMetricFamily(
            "camsvc_start_time_seconds", "When camsvc started, in seconds since the epoch.", value=app.started_wall
        )
        yield GaugeMetricFamily("camsvc_uptime_seconds", "Seconds since camsvc started.", value=max(app.uptime(), 0.0))
        hub = app.hub
        yield GaugeMetricFamily("camsvc_connections", "Open WebSocket connections.", value=len(hub))
        yield CounterMetricFamily(
            "camsvc_connections_accepted", "WebSocket connections accepted since start.", value=hub.total
        )
        counts = dict.fromkeys(CAMERA_STATES, 0)
        for camera in app.cameras.cameras():
            counts[camera.status] = counts.get(camera.status, 0) + 1
        family = GaugeMetricFamily("camsvc_cameras", "Known cameras by state.", labels=["state"])
        for state, n in counts.items():
            family.add_metric([state.lower()], n)
        yield family
        report = app.health.report()
        yield GaugeMetricFamily(
            "camsvc_ready", "1 when every readiness check passes, else 0.", value=int(report["ready"])
        )
        family = GaugeMetricFamily("camsvc_health_check", "Readiness checks: 1 ok, 0 failing.", labels=["check"])
        for name, check in report["checks"].items():
            family.add_metric([name], int(check["ok"]))
        yield family
        storage = app.config.storage
        if storage is not None:
            free = GaugeMetricFamily(
                "camsvc_storage_free_bytes", "Bytes available to camsvc on the volume, by directory.", labels=["volume"]
            )
            size = GaugeMetricFamily(
                "camsvc_storage_size_bytes", "Size of the filesystem holding the directory.", labels=["volume"]
            )
            for volume, path in (("recordings", storage.recordings_dir), ("snapshots", storage.snapshots_dir)):
                try:
                    st = os.statvfs(path)
                except OSError:
                    continue
                free.add_metric([volume], st.f_bavail * st.f_frsize)
                size.add_metric([volume], st.f_blocks * st.f_frsize)
            yield free
            yield size


class _RecordedCollector:
    """Exports the recorded Counters, Gauges and Histograms."""

    def __init__(self, recorded: list) -> None:
        self.recorded = recorded

    def describe(self) -> Iterable:
        return []

    def collect(self) -> Iterable:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
        from prometheus_client.utils import floatToGoString

        for metric in self.recorded:
            labelnames = list(metric.labelnames)
            values = sorted(metric.values.items())
            if metric.kind == "counter":
                family = CounterMetricFamily(metric.name[: -len("_total")], metric.help, labels=labelnames)
                for labels, value in values:
                    family.add_metric(list(labels), value)
            elif metric.kind == "gauge":
                family = GaugeMetricFamily(metric.name, metric.help, labels=labelnames)
                for labels, value in values:
                    family.add_metric(list(labels), value)
            else:
                family = HistogramMetricFamily(metric.name, metric.help, labels=labelnames)
                bounds = [floatToGoString(b) for b in metric.buckets] + ["+Inf"]
                for labels, cells in values:
                    running = 0
                    buckets = []
                    for bound, n in zip(bounds, cells[:-1], strict=True):
                        running += n
                        buckets.append((bound, running))
                    family.add_metric(list(labels), buckets, cells[-1])
            yield family


class MetricsResource(Resource):
    """``GET /metrics``: the Prometheus text format."""

    isLeaf = True

    def __init__(self, metrics: Metrics) -> None:
        super().__init__()
        self.metrics = metrics

    def render_GET(self, request: Any) -> bytes:
        try:
            body = self.metrics.exposition()
        except Exception:
            log.failure("Building the metrics exposition failed")
            request.setResponseCode(500)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"metrics unavailable: see the service log\n"
        request.setHeader(b"content-type", CONTENT_TYPE)
        request.setHeader(b"cache-control", b"no-store")
        return body
