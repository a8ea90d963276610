"""The connection registry and notification fan-out.

The core publishes events here (``hub.publish("camera_status_update", cam)``);
the hub encodes each notification once and hands it to every connection whose
session is authenticated.  It knows nothing about WebSockets: a connection is
anything with ``session`` and ``send_notification(text, shared)``, where
``shared`` is a per-publish dict the transport may use to cache work done once
for all receivers (the WebSocket transport frames it once).  Clients first,
then in-process listeners (:meth:`Hub.subscribe`).  A connection that
cannot take more (its outgoing buffer is full) drops itself; one failing
connection never stops delivery to the others.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from typing import Any

from twisted.logger import Logger

from camsvc.server.rpc import notification

log = Logger()


class Hub:
    """Live connections, and publish() to all authenticated ones.

    Collaborators: ``on_sent(method, delivered, dropped)``, an optional hook
    for metrics.
    """

    def __init__(self, on_sent: Callable[[str, int, int], None] | None = None) -> None:
        self._connections: dict[Any, None] = {}
        self._ids = itertools.count(1)
        self.total = 0
        self.on_sent = on_sent
        self._listeners: list[Callable[[str, Any], None]] = []

    def next_id(self) -> str:
        """A short connection id for logs ("c17")."""
        return f"c{next(self._ids)}"

    def add(self, conn: Any) -> None:
        self._connections[conn] = None
        self.total += 1

    def remove(self, conn: Any) -> None:
        self._connections.pop(conn, None)

    def __len__(self) -> int:
        return len(self._connections)

    @property
    def connections(self) -> Iterable[Any]:
        return list(self._connections)

    def subscribe(self, listener: Callable[[str, Any], None]) -> None:
        """In-process listeners (e.g. metrics, system-status tracking) see every publish."""
        self._listeners.append(listener)

    def publish(self, method: str, params: Any, *, per_host: Callable[[str], Any] | None = None) -> int:
        """Send a notification to every authenticated connection; return how many got it.

        ``per_host``, when given, builds the params for one client host (stream
        URLs depend on the host a client connected to): it is called once per
        distinct host and each encoding is shared by that host's connections.
        ``params`` is then what in-process listeners see.
        """
        if not self._connections:
            self._tell_listeners(method, params)
            return 0
        encoded: dict[str, tuple[str, dict]] = {}
        delivered = dropped = 0
        for conn in list(self._connections):
            session = conn.session
            if not session.authenticated:
                continue
            key = session.host if per_host is not None else ""
            entry = encoded.get(key)
            if entry is None:
                body = per_host(key) if per_host is not None else params
                entry = encoded[key] = (notification(method, body), {})
            text, shared = entry
            try:
                if conn.send_notification(text, shared):
                    delivered += 1
                else:
                    dropped += 1
            except Exception:
                dropped += 1
                log.failure("sending {method} to connection {conn_id} failed", method=method, conn_id=conn.session.id)
        if self.on_sent is not None:
            self.on_sent(method, delivered, dropped)
        self._tell_listeners(method, params)
        return delivered

    def _tell_listeners(self, method: str, params: Any) -> None:
        # after the clients: their frames are on the wire before an in-process listener
        # (the MQTT bridge) does its own work
        for listener in self._listeners:
            try:
                listener(method, params)
            except Exception:
                log.failure("notification listener failed for {method}", method=method)
