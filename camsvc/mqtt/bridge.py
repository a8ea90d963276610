"""What camsvc publishes to the broker and when; commands from it.

:class:`MQTTBridge` observes the camera registry and the hub's notifications
and keeps the host's **retained state** (availability, each camera's Camera
object and recording state, storage and MediaMTX state, the Home Assistant
discovery configurations) as a topic -> payload map.  State is published when
it changes and *all of it* again after every (re)connect, so nothing is queued
for it while the broker is away.  **Events** (camera plugged/unplugged,
recording started/finished/failed) are not retained: while disconnected they
wait in a queue of ``mqtt.queue_size``; beyond it the oldest are dropped and
counted (``camsvc_mqtt_dropped_total{kind="event"}``).  A forgotten camera's
state, recording state and discovery configurations are cleared with empty
retained messages (on the next connection if the broker is away then).

**Commands** (``mqtt.commands``): a JSON-RPC request on ``<base>/command``
(``start_recording``, ``stop_recording``, ``take_snapshot``) or Home
Assistant's switch/button payloads on the camera command topics run through
the same JSON-RPC engine as the WebSocket, in a session holding
``mqtt.command_role``; the engine's response text (same result or error) goes
to ``<base>/response`` (or an MQTT 5 request's response topic).  A request id
seen recently gets the stored response again without running twice, so a
QoS 1 duplicate is harmless.  A successful snapshot is also published to the
camera's image topic (Home Assistant's camera entity).

Collaborators (all injected by :func:`camsvc.mqtt.component.setup`): the
:class:`~camsvc.mqtt.client.MQTTConnection` (``publish``/``subscribe``), the
:class:`~camsvc.mqtt.topics.Topics`, ``camera_state(camera) -> dict``,
``handle(text) -> str | Deferred`` (the engine with the MQTT session),
``read_snapshot(filename) -> bytes``, ``storage_state()`` and
``mediamtx_state()`` (dicts), the clock and ``metrics``.
"""

from __future__ import annotations

import json
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from camsvc.cameras.registry import CONNECTED, DISCONNECTED
from camsvc.common.timefmt import iso
from camsvc.mqtt import payloads
from camsvc.mqtt.topics import RECORDING_SET, SNAPSHOT_TAKE, Topics

log = Logger()

#: The JSON-RPC methods the command topic accepts.
COMMANDS = ("start_recording", "stop_recording", "take_snapshot")
#: How many request ids are remembered for duplicate detection.
SEEN_IDS = 256

RECORDING_EVENTS = {"STARTED": "recording_started", "STOPPED": "recording_finished", "FAILED": "recording_failed"}


class MQTTBridge(Service):
    """The host's state and events on the broker, and commands from it (module docstring)."""

    name = "mqtt"

    def __init__(
        self,
        connection: Any,
        topics: Topics,
        *,
        host_id: str,
        version: str,
        cameras: Any,
        camera_state: Callable[[Any], dict],
        clock: Any,
        qos: int = 1,
        queue_size: int = 1000,
        ha_discovery: bool = True,
        commands: bool = False,
        handle: Callable[[str], Any] | None = None,
        read_snapshot: Callable[[str], bytes] | None = None,
        storage_state: Callable[[], dict] | None = None,
        mediamtx_state: Callable[[], dict] | None = None,
        state_interval: float = 60.0,
        snapshot_interval: float = 0.0,
        metrics: Any = None,
    ) -> None:
        self.connection = connection
        self.topics = topics
        self.host_id = host_id
        self.version = version
        self.cameras = cameras
        self.camera_state = camera_state
        self.clock = clock
        self.qos = qos
        self.ha_discovery = ha_discovery
        self.commands = commands
        self.handle = handle
        self.read_snapshot = read_snapshot
        self.storage_state = storage_state
        self.mediamtx_state = mediamtx_state
        self.metrics = metrics
        #: topic -> payload of everything retained (republished after each connect).
        self.retained: dict[str, bytes] = {}
        #: topics to clear that could not be cleared while disconnected (a persistent broker keeps them).
        self.clears: set[str] = set()
        self.events: deque[tuple[str, bytes]] = deque(maxlen=queue_size)
        self.dropped = 0
        self._seen: OrderedDict[str, Any] = OrderedDict()
        self._requests = 0
        self._state_loop = LoopingCall(self.refresh_host)
        self._state_loop.clock = clock
        self._state_interval = state_interval
        self._snapshot_loop = LoopingCall(self._snapshot_all)
        self._snapshot_loop.clock = clock
        self._snapshot_interval = snapshot_interval

    # -- life cycle --------------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self.retained[self.topics.availability] = payloads.ONLINE
        if self.ha_discovery:
            for topic, config in payloads.host_entities(self.topics, self.host_id, self.version).items():
                self.retained[topic] = payloads.dumps(config)
        for camera in self.cameras.cameras():
            self._camera(camera, publish=False)
        self._state_loop.start(self._state_interval, now=True)
        if self._snapshot_interval > 0:
            self._snapshot_loop.start(self._snapshot_interval, now=False)

    def stopService(self) -> None:
        super().stopService()
        for loop in (self._state_loop, self._snapshot_loop):
            if loop.running:
                loop.stop()
        # A clean stop says offline itself (the Last Will covers a crash).
        self.connection.publish(self.topics.availability, payloads.OFFLINE, qos=self.qos, retain=True)

    def connected(self) -> None:
        """The connection is up: subscribe, republish every retained state, flush queued events."""
        if self.commands:
            self.connection.subscribe(self.topics.command_subscriptions(), self.qos)
        for topic in sorted(self.clears):
            if self.connection.publish(topic, b"", qos=self.qos, retain=True) == "sent":
                self.clears.discard(topic)
        for topic, payload in list(self.retained.items()):
            self._send(topic, payload, retain=True, kind="state")
        while self.events:
            topic, payload = self.events[0]
            if self.connection.publish(topic, payload, qos=self.qos, retain=False) != "sent":
                break  # gone again, or the client's queue is full: the rest waits in the queue
            self.events.popleft()
            self._count("mqtt_published", "event")

    # -- publishing ---------------------------------------------------------------------------

    def _send(self, topic: str, payload: bytes, *, retain: bool, kind: str, properties: Any = None) -> bool:
        result = self.connection.publish(topic, payload, qos=self.qos, retain=retain, properties=properties)
        if result == "sent":
            self._count("mqtt_published", kind)
            return True
        if result == "full":
            self._drop(kind)
        return False

    def _drop(self, kind: str) -> None:
        self.dropped += 1
        self._count("mqtt_dropped", kind)

    def set_state(self, topic: str, payload: bytes) -> None:
        """Keep ``payload`` as the retained state of ``topic`` and publish it if it changed."""
        if self.retained.get(topic) == payload:
            return
        self.retained[topic] = payload
        self.clears.discard(topic)
        self._send(topic, payload, retain=True, kind="state")

    def clear_state(self, topic: str) -> None:
        """An empty retained message: the broker forgets the topic."""
        self.retained.pop(topic, None)
        if self.connection.publish(topic, b"", qos=self.qos, retain=True) != "sent":
            self.clears.add(topic)  # cleared on the next connect

    def emit(self, kind: str, **fields: Any) -> None:
        body = payloads.event(kind, iso(self.clock.seconds()), host=self.host_id, **fields)
        if self._send(self.topics.events, body, retain=False, kind="event"):
            return
        if len(self.events) == self.events.maxlen:
            self._drop("event")
        self.events.append((self.topics.events, body))

    # -- cameras (registry observer) ------------------------------------------------------------

    def camera_added(self, camera: Any) -> None:
        self._camera(camera)
        self.emit("camera_plugged", camera_id=camera.camera_id, device=camera.device, name=camera.name)

    def camera_removed(self, camera: Any) -> None:
        if self.cameras.get(camera.camera_id) is None:
            self.forget(camera.camera_id)
        else:
            self._camera(camera)
        self.emit("camera_unplugged", camera_id=camera.camera_id, device=camera.device)

    def camera_changed(self, camera: Any) -> None:
        self._camera(camera)

    def _camera(self, camera: Any, publish: bool = True) -> None:
        state = self.camera_state(camera)
        cid = camera.camera_id
        entries = {
            self.topics.camera(cid): payloads.dumps(state),
            self.topics.recording(cid): payloads.recording_state(bool(state.get("recording"))),
        }
        if self.ha_discovery:
            configs = payloads.camera_entities(self.topics, self.host_id, state, self.version, commands=self.commands)
            entries.update((topic, payloads.dumps(config)) for topic, config in configs.items())
        for topic, payload in entries.items():
            if publish:
                self.set_state(topic, payload)
            else:
                self.retained[topic] = payload
                self.clears.discard(topic)

    def forget(self, camera_id: str) -> None:
        """The camera's record is gone: clear its state and discovery configurations."""
        topics = [self.topics.camera(camera_id), self.topics.recording(camera_id)]
        topics += payloads.camera_discovery_topics(self.topics, camera_id)
        for topic in topics:
            self.clear_state(topic)

    # -- notifications (hub listener) -------------------------------------------------------------

    def notified(self, method: str, params: Any) -> None:
        if not isinstance(params, dict):
            return
        if method == "camera_status_update":
            camera = self.cameras.get(params.get("camera_id"))
            if camera is not None:
                self._camera(camera)
        elif method == "recording_status_update":
            kind = RECORDING_EVENTS.get(params.get("status"))
            if kind is not None:
                fields = {k: params.get(k) for k in ("camera_id", "filename", "duration", "session_id")}
                if params.get("reason") is not None:
                    fields["reason"] = params["reason"]
                self.emit(kind, **fields)
        elif method == "system_status_update":
            self.refresh_host()

    def refresh_host(self) -> None:
        """Re-read the storage and MediaMTX state (every ``state_interval`` and on their notifications)."""
        for topic, read in ((self.topics.storage, self.storage_state), (self.topics.mediamtx, self.mediamtx_state)):
            if read is None:
                continue
            try:
                state = read()
            except Exception:
                log.failure("Reading the state for {topic} failed", topic=topic)
                continue
            self.set_state(topic, payloads.dumps(state))

    # -- commands ------------------------------------------------------------------------------------

    def message(self, topic: str, payload: bytes, properties: Any = None, retained: bool = False) -> None:
        """A message on a subscribed topic (the connection's ``on_message``)."""
        if not self.commands or self.handle is None:
            return
        if retained:
            # A retained command would run again at every reconnect: never act on one.
            log.warn("MQTT command on {topic} ignored: it is a retained message", topic=topic)
            self._count("mqtt_command", "rejected")
            return
        reply_to = getattr(properties, "ResponseTopic", None) or self.topics.response
        correlation = getattr(properties, "CorrelationData", None)
        if topic == self.topics.command:
            self._command(payload, reply_to, correlation)
            return
        parsed = self.topics.camera_command(topic)
        if parsed is None:
            return
        camera_id, action = parsed
        text = payload.decode("utf-8", "replace").strip()
        if action == RECORDING_SET and text in (payloads.ON, payloads.OFF):
            method = "start_recording" if text == payloads.ON else "stop_recording"
        elif action == SNAPSHOT_TAKE and text == payloads.PRESS:
            method = "take_snapshot"
        else:
            log.warn("MQTT command on {topic} rejected: unknown payload {payload!r}", topic=topic, payload=text[:40])
            self._count("mqtt_command", "rejected")
            return
        self._requests += 1
        request = {"jsonrpc": "2.0", "id": f"mqtt-{self._requests}", "method": method, "params": {"device": camera_id}}
        self._run(request, reply_to, correlation)

    def _command(self, payload: bytes, reply_to: str, correlation: Any) -> None:
        try:
            request = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            request = None
        if not isinstance(request, dict) or request.get("method") not in COMMANDS:
            method = request.get("method") if isinstance(request, dict) else None
            log.warn(
                "MQTT command rejected: {method!r} is not one of {allowed}", method=method, allowed=", ".join(COMMANDS)
            )
            self._count("mqtt_command", "rejected")
            req_id = request.get("id") if isinstance(request, dict) else None
            error = {"code": -32601, "message": f"Method not found: commands over MQTT are {', '.join(COMMANDS)}"}
            if request is None:
                error = {"code": -32700, "message": "Parse error: the message is not a JSON-RPC request object"}
            body = payloads.dumps({"jsonrpc": "2.0", "id": req_id, "error": error})
            self._reply(reply_to, body, correlation)
            return
        self._run(request, reply_to, correlation)

    def _run(self, request: dict, reply_to: str, correlation: Any) -> None:
        req_id = request.get("id")
        key = json.dumps(req_id) if req_id is not None else None
        if key is not None and key in self._seen:
            self._count("mqtt_command", "duplicate")
            previous = self._seen[key]
            if isinstance(previous, bytes):
                self._reply(reply_to, previous, correlation)
            return  # still running: its answer goes out when it ends
        if key is not None:
            self._seen[key] = None
            while len(self._seen) > SEEN_IDS:
                self._seen.popitem(last=False)
        d = maybeDeferred(self.handle, json.dumps(request))
        d.addCallback(self._answered, request, key, reply_to, correlation)
        d.addErrback(lambda f: log.failure("MQTT command {method} failed", f, method=request.get("method")))

    def _answered(self, text: Any, request: dict, key: str | None, reply_to: str, correlation: Any) -> None:
        if text is None:
            return
        body = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        if key is not None and key in self._seen:
            self._seen[key] = body
        response = json.loads(body)
        method = request.get("method")
        if "error" in response:
            log.warn(
                "MQTT command {method} refused: {code} {message}",
                method=method,
                code=response["error"].get("code"),
                message=response["error"].get("message"),
            )
            self._count("mqtt_command", "error")
        else:
            log.info("MQTT command {method} done", method=method)
            self._count("mqtt_command", "ok")
            if method == "take_snapshot":
                self._publish_image(response.get("result") or {})
        self._reply(reply_to, body, correlation)

    def _reply(self, topic: str, body: bytes, correlation: Any) -> None:
        properties = None
        if correlation is not None:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            properties = Properties(PacketTypes.PUBLISH)
            properties.CorrelationData = correlation
        self._send(topic, body, retain=False, kind="response", properties=properties)

    # -- snapshots -------------------------------------------------------------------------------------

    def _publish_image(self, result: dict) -> None:
        camera_id, filename = result.get("camera_id"), result.get("filename")
        if not camera_id or not filename or self.read_snapshot is None:
            return
        try:
            image = self.read_snapshot(filename)
        except OSError:
            log.failure("Reading snapshot {filename} for MQTT failed", filename=filename)
            return
        self._send(self.topics.image(camera_id), image, retain=False, kind="image")

    def _snapshot_all(self) -> Deferred | None:
        """Every ``snapshot_interval``: a snapshot of each connected camera to its image topic."""
        if self.handle is None or not self.connection.connected:
            return None
        for camera in self.cameras.cameras():
            if camera.status != CONNECTED:
                continue
            self._requests += 1
            request = {
                "jsonrpc": "2.0",
                "id": f"mqtt-interval-{self._requests}",
                "method": "take_snapshot",
                "params": {"device": camera.camera_id},
            }
            d = maybeDeferred(self.handle, json.dumps(request))
            d.addCallback(self._interval_snapshot, camera.camera_id)
            d.addErrback(
                lambda f, cid=camera.camera_id: log.failure("Periodic snapshot of {camera_id} failed", f, camera_id=cid)
            )
        return None

    def _interval_snapshot(self, text: Any, camera_id: str) -> None:
        if not text:
            return
        response = json.loads(text)
        if "result" in response:
            self._publish_image(response["result"])
        else:
            log.debug("Periodic snapshot of {camera_id}: {error}", camera_id=camera_id, error=response.get("error"))

    # -- status and metrics ------------------------------------------------------------------------------

    def status(self) -> dict:
        return {
            **self.connection.status(),
            "base_topic": self.topics.base,
            "retained_topics": len(self.retained),
            "queued_events": len(self.events),
            "dropped": self.dropped,
            "cameras": sum(1 for c in self.cameras.cameras() if c.status != DISCONNECTED),
        }

    def _count(self, what: str, value: Any) -> None:
        if self.metrics is None:
            return
        try:
            getattr(self.metrics, what)(value)
        except Exception:
            log.failure("MQTT metric {what} failed", what=what)
