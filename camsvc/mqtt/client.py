"""The MQTT connection: paho-mqtt driven by the Twisted reactor, without threads.

paho-mqtt's external-loop API is used: its ``on_socket_open`` /
``on_socket_close`` / ``on_socket_register_write`` /
``on_socket_unregister_write`` callbacks add and remove the socket as a reader
and writer of the injected reactor, whose ``doRead`` / ``doWrite`` call
``loop_read`` / ``loop_write``; a ``LoopingCall`` on the injected clock runs
``loop_misc`` every second (keepalive pings, timeouts).  paho's own threads
and ``loop_start`` are never used.  Works with paho-mqtt 1.6 (Debian 12,
Ubuntu 22.04/24.04) and 2.x (``CallbackAPIVersion.VERSION2``).

Connecting: paho's ``connect`` opens the TCP connection with a blocking
``socket.create_connection``.  So that a broker that is down (or a host that
does not answer) never stalls the reactor, every attempt first opens a TCP
connection of its own through the reactor (name resolution included); only
when that succeeded does paho connect, to the address just found for
``mqtt://`` (a loopback or LAN round trip); for ``mqtts://`` paho resolves the
name again and does the TLS handshake, both synchronously.  Failures are retried with exponential
backoff (``reconnect_min`` doubling up to ``reconnect_max``), as are lost
connections.

:class:`MQTTConnection` is an ``IService``.  Collaborators: :class:`Settings`,
the reactor (``IReactorFDSet``, ``IReactorTCP``), the clock, callbacks
``on_connected()``, ``on_disconnected()``, ``on_message(topic, payload,
properties, retained)`` and the Last Will ``(topic, payload)``; ``metrics`` (optional,
``mqtt_connect(result)``, ``mqtt_connected(ok)``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import IReadDescriptor, IWriteDescriptor
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from camsvc.mqtt.settings import Settings

log = Logger()

#: paho-mqtt 2.x has CallbackAPIVersion (and different callback signatures); 1.6 does not.
PAHO_V2 = hasattr(paho, "CallbackAPIVersion")


def _code(rc: Any) -> int:
    """An int from paho's rc: an int (1.6, 3.1.1) or a ReasonCode(s) (5, and 2.x always)."""
    value = getattr(rc, "value", rc)
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


def make_paho(settings: Settings) -> Any:
    """A paho Client for ``settings`` on either paho API (not connected)."""
    protocol = paho.MQTTv5 if settings.protocol == "5" else paho.MQTTv311
    kwargs: dict[str, Any] = {"client_id": settings.client_id, "protocol": protocol}
    if protocol != paho.MQTTv5:
        kwargs["clean_session"] = True
    if PAHO_V2:
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, **kwargs)
    else:
        client = paho.Client(**kwargs)
    if settings.username:
        client.username_pw_set(settings.username, settings.password or None)
    context = settings.ssl_context()
    if context is not None:
        client.tls_set_context(context)
        if settings.insecure:
            client.tls_insecure_set(True)
    client.max_queued_messages_set(settings.queue_size)
    return client


@implementer(IReadDescriptor, IWriteDescriptor)
class _Socket:
    """paho's socket as a reactor descriptor."""

    def __init__(self, owner: "MQTTConnection", sock: Any) -> None:
        self.owner = owner
        self.sock = sock
        self._fd = sock.fileno()

    def fileno(self) -> int:
        return self._fd

    def doRead(self) -> None:
        self.owner._read()

    def doWrite(self) -> None:
        self.owner._write()

    def connectionLost(self, reason: Failure) -> None:
        pass

    def logPrefix(self) -> str:
        return "mqtt"


class _Probe(Protocol):
    peer = ""

    def connectionMade(self) -> None:
        self.peer = getattr(self.transport.getPeer(), "host", "")
        self.transport.loseConnection()


class _ProbeFactory(Factory):
    noisy = False  # one attempt per backoff step: no "Starting factory" lines
    protocol = _Probe


class MQTTConnection(Service):
    """One broker connection kept up for the service's life (see module docstring)."""

    name = "mqtt-connection"

    def __init__(
        self,
        settings: Settings,
        reactor: Any,
        clock: Any = None,
        *,
        will: tuple[str, bytes] | None = None,
        on_connected: Callable[[], None] | None = None,
        on_disconnected: Callable[[], None] | None = None,
        on_message: Callable[[str, bytes, Any, bool], None] | None = None,
        metrics: Any = None,
        client_factory: Callable[[Settings], Any] = make_paho,
    ) -> None:
        self.settings = settings
        self.reactor = reactor
        self.clock = clock or reactor
        self.will = will
        self.on_connected = on_connected
        self.on_disconnected = on_disconnected
        self.on_message = on_message
        self.metrics = metrics
        self.client_factory = client_factory
        self.client: Any = None
        self.connected = False
        self.connects = 0
        self.last_error = ""
        self._socket: _Socket | None = None
        self._reading = self._writing = False
        self._delay = settings.reconnect_min
        self._retry: Any = None
        self._attempting = False
        self._stopping = False
        self._misc = LoopingCall(self._tick)
        self._misc.clock = self.clock
        self._closed: defer.Deferred | None = None

    # -- service -----------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self._stopping = False
        self._misc.start(1.0, now=False)
        self._attempt()

    def stopService(self) -> defer.Deferred:
        super().stopService()
        self._stopping = True
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        if self._misc.running:
            self._misc.stop()
        d: defer.Deferred = defer.succeed(None)
        if self.client is not None and self._socket is not None:
            self._closed = defer.Deferred()
            try:
                self.client.disconnect()
            except Exception:
                log.failure("MQTT disconnect failed")
            # The DISCONNECT goes out on the next write; give it a moment, then drop the socket.
            timeout = self.clock.callLater(2.0, self._force_close)
            d = self._closed
            d.addBoth(lambda r: (timeout.cancel() if timeout.active() else None, r)[1])
        return d

    def _force_close(self) -> None:
        self._unwatch()
        if self._closed is not None and not self._closed.called:
            self._closed.callback(None)

    # -- publishing ---------------------------------------------------------------------

    def publish(
        self, topic: str, payload: bytes, *, qos: int | None = None, retain: bool = False, properties: Any = None
    ) -> str:
        """Hand a message to paho: ``"sent"``, ``"disconnected"`` (not taken) or ``"full"`` (paho's queue)."""
        if not self.connected or self.client is None:
            return "disconnected"
        qos = self.settings.qos if qos is None else qos
        try:
            if properties is not None:
                info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
            else:
                info = self.client.publish(topic, payload, qos=qos, retain=retain)
        except Exception:
            log.failure("MQTT publish to {topic} failed", topic=topic)
            return "full"
        rc = info.rc
        if rc == paho.MQTT_ERR_SUCCESS:
            return "sent"
        if rc == paho.MQTT_ERR_NO_CONN:
            return "disconnected"
        return "full"

    def subscribe(self, topics: list[str], qos: int | None = None) -> None:
        if not self.connected or not topics:
            return
        qos = self.settings.qos if qos is None else qos
        try:
            self.client.subscribe([(t, qos) for t in topics])
        except Exception:
            log.failure("MQTT subscribe to {topics} failed", topics=topics)

    # -- connecting -----------------------------------------------------------------------

    def _attempt(self) -> None:
        """Probe the broker's port through the reactor, then let paho connect."""
        self._retry = None
        if self._stopping or self._attempting or self.connected:
            return
        self._attempting = True
        s = self.settings
        endpoint = HostnameEndpoint(self.reactor, s.host, s.port, timeout=max(5, s.keepalive))
        d = endpoint.connect(_ProbeFactory())
        d.addCallbacks(lambda probe: self._connect_paho(probe.peer), self._probe_failed)
        d.addErrback(lambda f: log.failure("MQTT connection attempt failed", f))

    def _probe_failed(self, failure: Failure) -> None:
        self._attempting = False
        self._failed(failure.getErrorMessage())

    def _connect_paho(self, address: str = "") -> None:
        self._attempting = False
        if self._stopping:
            return
        s = self.settings
        # Plain MQTT: the address the probe just resolved, so paho does no (blocking) lookup.
        # TLS needs the name for SNI and the certificate check.
        host = address if address and not s.tls else s.host
        try:
            if self.client is None:
                self.client = self._new_client()
            self.client.connect(host, s.port, keepalive=s.keepalive)
        except Exception as exc:  # OSError, ssl.SSLError, ValueError from paho
            self._unwatch()
            self._failed(f"{type(exc).__name__}: {exc}")

    def _new_client(self) -> Any:
        client = self.client_factory(self.settings)
        if self.will is not None:
            client.will_set(self.will[0], self.will[1], qos=self.settings.qos, retain=True)
        client.on_connect = self._paho_connect
        client.on_disconnect = self._paho_disconnect
        client.on_message = self._paho_message
        client.on_socket_open = self._socket_open
        client.on_socket_close = self._socket_close
        client.on_socket_register_write = self._register_write
        client.on_socket_unregister_write = self._unregister_write
        return client

    def _failed(self, reason: str) -> None:
        if self._stopping:
            return
        if reason != self.last_error:
            log.warn(
                "MQTT broker {broker} unreachable: {reason}; retrying in {delay:.0f} s (with backoff)",
                broker=self.settings.broker,
                reason=reason,
                delay=self._delay,
            )
        self.last_error = reason
        self._count("mqtt_connect", "failed")
        self._schedule()

    def _schedule(self) -> None:
        if self._stopping or (self._retry is not None and self._retry.active()):
            return
        delay = self._delay
        self._delay = min(self._delay * 2, self.settings.reconnect_max)
        self._retry = self.clock.callLater(delay, self._attempt)

    # -- paho callbacks (either API version) ------------------------------------------------

    def _paho_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, properties: Any = None) -> None:
        code = _code(rc)
        if code != 0:
            self._failed(f"the broker refused the connection: {paho.connack_string(code) if code < 6 else rc}")
            return
        self.connected = True
        self.connects += 1
        self.last_error = ""
        self._delay = self.settings.reconnect_min
        log.info(
            "MQTT connected to {broker} as {client_id}", broker=self.settings.broker, client_id=self.settings.client_id
        )
        self._count("mqtt_connect", "ok")
        self._count("mqtt_connected", True)
        if self.on_connected is not None:
            try:
                self.on_connected()
            except Exception:
                log.failure("MQTT on_connected failed")

    def _paho_disconnect(self, client: Any, userdata: Any, *args: Any) -> None:
        # 1.6: (rc) or (rc, properties); 2.x: (flags, reason_code, properties)
        rc = args[1] if PAHO_V2 and len(args) >= 2 else (args[0] if args else 0)
        was = self.connected
        self.connected = False
        self._count("mqtt_connected", False)
        if self._stopping:
            self._unwatch()
            if self._closed is not None and not self._closed.called:
                self._closed.callback(None)
            return
        if was:
            log.warn("MQTT connection to {broker} lost (rc {rc})", broker=self.settings.broker, rc=_code(rc))
            if self.on_disconnected is not None:
                try:
                    self.on_disconnected()
                except Exception:
                    log.failure("MQTT on_disconnected failed")
        self._schedule()

    def _paho_message(self, client: Any, userdata: Any, message: Any) -> None:
        if self.on_message is None:
            return
        try:
            self.on_message(
                message.topic, bytes(message.payload), getattr(message, "properties", None), bool(message.retain)
            )
        except Exception:
            log.failure("MQTT message on {topic} could not be handled", topic=message.topic)

    def _socket_open(self, client: Any, userdata: Any, sock: Any) -> None:
        self._unwatch()
        self._socket = _Socket(self, sock)
        self.reactor.addReader(self._socket)
        self._reading = True

    def _socket_close(self, client: Any, userdata: Any, sock: Any) -> None:
        self._unwatch()

    def _register_write(self, client: Any, userdata: Any, sock: Any) -> None:
        if self._socket is not None and not self._writing:
            self.reactor.addWriter(self._socket)
            self._writing = True

    def _unregister_write(self, client: Any, userdata: Any, sock: Any) -> None:
        if self._socket is not None and self._writing:
            self.reactor.removeWriter(self._socket)
            self._writing = False

    def _unwatch(self) -> None:
        if self._socket is None:
            return
        if self._reading:
            self.reactor.removeReader(self._socket)
        if self._writing:
            self.reactor.removeWriter(self._socket)
        self._reading = self._writing = False
        self._socket = None

    # -- the loop ---------------------------------------------------------------------------

    def _read(self) -> None:
        client = self.client
        if client is None:
            return
        try:
            client.loop_read(100)
            sock = self._socket.sock if self._socket is not None else None
            # TLS: records already decrypted wait in the SSL object, not in the kernel.
            while sock is not None and self._socket is not None and getattr(sock, "pending", lambda: 0)():
                client.loop_read(100)
        except Exception:
            log.failure("MQTT read failed")

    def _write(self) -> None:
        if self.client is None:
            return
        try:
            self.client.loop_write()
        except Exception:
            log.failure("MQTT write failed")

    def _tick(self) -> None:
        if self.client is None or self._socket is None:
            return
        try:
            self.client.loop_misc()
        except Exception:
            log.failure("MQTT keepalive failed")

    def _count(self, what: str, value: Any) -> None:
        if self.metrics is None:
            return
        try:
            getattr(self.metrics, what)(value)
        except Exception:
            log.failure("MQTT metric {what} failed", what=what)

    def status(self) -> dict:
        return {
            "broker": self.settings.broker,
            "client_id": self.settings.client_id,
            "connected": self.connected,
            "connects": self.connects,
            "last_error": self.last_error,
        }
