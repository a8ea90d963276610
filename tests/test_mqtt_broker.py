"""The MQTT bridge against a real Mosquitto, with camsvc under twistd and umockdev cameras.

Broker: Debian's ``mosquitto`` on an ephemeral loopback port (tests/support/mosquitto.py),
with a password file and an ACL (``camsvc`` may publish its own topics; ``hass`` may
read everything and publish commands; ``intruder`` may only read), or anonymous, or
TLS with a test CA.  A subscriber checks topics, retained state, discovery
configurations (against Home Assistant's schema), the Last Will after a SIGKILL,
republishing after a broker restart, commands accepted or refused by ACL and role.
"""

from __future__ import annotations

import json
import signal
import time

import pytest

from tests.support.ha_discovery import fleet_problems, problems
from tests.support.mosquitto import Broker, Subscriber, make_ca, mosquitto_binary
from tests.support.server import PROBE_TIMEOUT, ServiceProcess
from tests.support.umockdev import Testbed, umockdev_available
from tests.support.wsclient import RpcCallError, RpcClient

_ok, _reason = umockdev_available()
needs_umockdev = pytest.mark.skipif(not _ok, reason=f"umockdev unavailable: {_reason}")

KEEPALIVE = 5
USERS = {"camsvc": "camsvc-pw", "hass": "hass-pw", "intruder": "intruder-pw"}
ACL = """\
user camsvc
topic readwrite camsvc/#
topic readwrite homeassistant/#

user hass
topic read camsvc/#
topic read homeassistant/#
topic write camsvc/+/command
topic write camsvc/+/cameras/+/recording/set
topic write camsvc/+/cameras/+/snapshot/take

user intruder
topic read camsvc/#
"""


@pytest.fixture(scope="module", autouse=True)
def _mosquitto_installed():
    mosquitto_binary()


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path / "broker", users=USERS, acl=ACL).start()
    yield b
    b.stop()


@pytest.fixture
def bed():
    tb = Testbed()
    yield tb
    tb.close()


def camsvc(tmp, broker, host_id, *, bed=None, password_file=None, **mqtt):
    section = {
        "enabled": True,
        "url": broker.url,
        "host_id": host_id,
        "keepalive": KEEPALIVE,
        "reconnect_min": 0.5,
        "reconnect_max": 2.0,
    }
    if password_file is not None:
        section.update(username="camsvc", password_file=str(password_file))
    section.update(mqtt)
    config = {"mqtt": section}
    if bed is not None:
        config["discovery"] = {"enabled": True, "debounce": 0.1, "probe_timeout": PROBE_TIMEOUT}
    return ServiceProcess(tmp / host_id, config, env=bed.env() if bed is not None else None).start()


def json_at(sub, topic, predicate=lambda v: True, timeout=15.0):
    return json.loads(sub.wait_payload(topic, lambda p: bool(p) and predicate(json.loads(p)), timeout))


def discovery_configs(sub, host_id):
    with sub.lock:
        return {
            t: json.loads(p) for t, p in sub.retained.items() if t.startswith("homeassistant/") and f"/{host_id}/" in t
        }


@needs_umockdev
def test_three_hosts_one_broker(tmp_path, broker, bed):
    bed.add_camera("usb", serial="SER-1", card="HD Pro Webcam", port="1")
    secret = tmp_path / "mqtt-password"
    secret.write_text("camsvc-pw\n")
    hosts = ["shed", "barn", "gate"]
    procs = {h: camsvc(tmp_path, broker, h, bed=bed, password_file=secret) for h in hosts}
    try:
        with Subscriber(broker, username="hass", password="hass-pw") as sub:
            for h in hosts:
                sub.wait_payload(f"camsvc/{h}/availability", lambda p: p == b"online")
                state = json_at(sub, f"camsvc/{h}/cameras/camera0/state", lambda s: s["resolution"] != "")
                assert (state["status"], state["name"], state["resolution"]) == (
                    "CONNECTED",
                    "HD Pro Webcam",
                    "1920x1080",
                )
                assert state["streams"]["rtsp"].endswith("/camera0")
                assert sub.wait_payload(f"camsvc/{h}/cameras/camera0/recording") == b"OFF"
                assert "free_percent" in json_at(sub, f"camsvc/{h}/storage")
                assert json_at(sub, f"camsvc/{h}/mediamtx")["available"] is False  # mediamtx disabled here
            # every host's discovery: retained, valid, the camera's device via its host's device
            configs = {}
            for h in hosts:
                sub.wait(lambda s, h=h: len(discovery_configs(s, h)) >= 5, what=f"discovery of {h}")
                configs.update(discovery_configs(sub, h))
            for topic, config in configs.items():
                assert problems(topic, config) == [], topic
            assert fleet_problems(configs) == []
            camera = configs["homeassistant/camera/barn/camera0/config"]
            assert camera["device"]["via_device"] == "camsvc_barn"
            assert camera["availability_topic"] == "camsvc/barn/availability"

        # a fresh subscriber gets all of it retained
        with Subscriber(broker, username="intruder", password="intruder-pw") as late:
            for h in hosts:
                assert late.wait_payload(f"camsvc/{h}/availability") == b"online"
                json_at(late, f"camsvc/{h}/cameras/camera0/state")
            # SIGKILL: the kernel closes the socket and the broker publishes the Last Will
            procs["gate"].stop(signal.SIGKILL)
            late.wait_payload("camsvc/gate/availability", lambda p: p == b"offline", timeout=2 * KEEPALIVE + 5)
            # a hung process (SIGSTOP) keeps its socket: the broker gives up after 1.5 x keepalive
            procs["barn"].proc.send_signal(signal.SIGSTOP)
            try:
                late.wait_payload("camsvc/barn/availability", lambda p: p == b"offline", timeout=2 * KEEPALIVE + 5)
                assert late.latest["camsvc/shed/availability"] == b"online"
            finally:
                procs["barn"].proc.send_signal(signal.SIGCONT)
            # a clean stop says offline itself
            procs["shed"].stop_cleanly()
            late.wait_payload("camsvc/shed/availability", lambda p: p == b"offline", timeout=5)
    finally:
        for p in procs.values():
            p.stop()
    assert "Traceback" not in procs["shed"].log(), procs["shed"].log()


@needs_umockdev
def test_broker_outage_never_affects_the_api_or_discovery(tmp_path, bed):
    """Anonymous broker; killed while camsvc runs; a camera plugged meanwhile."""
    broker = Broker(tmp_path / "broker").start()
    bed.add_camera("usb", serial="SER-1", card="Cam A", port="1")
    svc = camsvc(tmp_path, broker, "box", bed=bed, queue_size=50)
    try:
        with Subscriber(broker) as sub:
            json_at(sub, "camsvc/box/cameras/camera0/state", lambda s: s["resolution"] != "")
        broker.kill()
        with RpcClient(svc.url) as client:
            client.call("ping")
            bed.add_camera("other", serial="SER-2", card="Cam B", port="2")
            client.wait_notification("camera_status_update", lambda p: p["camera_id"] == "camera1", timeout=10)
            listing = client.call("get_camera_list")
            assert listing["connected"] == 2
            assert svc.get("/health/ready")[0] == 200
            status = client.call("get_status")
            assert status["components"]["mqtt"]["connected"] is False
            # camsvc has tried (and failed) to reconnect meanwhile
            deadline = time.monotonic() + 20
            while "unreachable" not in svc.log() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert client.call("get_camera_list")["connected"] == 2
            # the broker comes back (no persistence: what is retained now was republished)
            broker.start()
            with Subscriber(broker) as sub:
                assert sub.wait_payload("camsvc/box/availability", timeout=20) == b"online"
                for cid, name in (("camera0", "Cam A"), ("camera1", "Cam B")):
                    assert json_at(sub, f"camsvc/box/cameras/{cid}/state")["name"] == name
                sub.wait(lambda s: len(discovery_configs(s, "box")) >= 2 + 2 * 3, what="discovery republished")
                # the plug event waited in the queue
                events = sub.wait(
                    lambda s: [json.loads(p) for p in s.on("camsvc/box/events") if b"camera1" in p], what="events"
                )
                assert events[0]["event"] == "camera_plugged" and events[0]["host"] == "box"
            metrics = client.call("get_metrics")["metrics"]
            failed = [
                s["value"]
                for s in metrics["camsvc_mqtt_connections_total"]["samples"]
                if s["labels"].get("result") == "failed"
            ]
            assert failed and failed[0] >= 1, metrics["camsvc_mqtt_connections_total"]
    finally:
        svc.stop()
        broker.stop()
    assert "Traceback" not in svc.log(), svc.log()


def responses(sub, topic, req_id):
    return [json.loads(p) for p in sub.on(topic) if json.loads(p).get("id") == req_id]


@needs_umockdev
def test_commands_accepted_or_refused_by_acl_and_role(tmp_path, broker, bed):
    bed.add_camera("usb", serial="SER-1", card="Cam", port="1")
    secret = tmp_path / "mqtt-password"
    secret.write_text("camsvc-pw\n")
    ops = camsvc(tmp_path, broker, "ops", bed=bed, password_file=secret, commands=True, command_role="operator")
    view = camsvc(tmp_path, broker, "view", bed=bed, password_file=secret, commands=True, command_role="viewer")
    try:
        with (
            Subscriber(broker, username="hass", password="hass-pw") as hass,
            Subscriber(broker, ["camsvc/#"], username="intruder", password="intruder-pw") as intruder,
        ):
            for h in ("ops", "view"):
                json_at(hass, f"camsvc/{h}/cameras/camera0/state", lambda s: s["resolution"] != "")
                # Home Assistant sees a switch and a button when commands are on
                hass.wait(lambda s, h=h: f"homeassistant/switch/{h}/camera0_recording/config" in s.retained)
                hass.wait(lambda s, h=h: f"homeassistant/button/{h}/camera0_snapshot/config" in s.retained)
            stop = {"jsonrpc": "2.0", "id": "r1", "method": "stop_recording", "params": {"device": "camera0"}}
            hass.publish("camsvc/ops/command", json.dumps(stop))
            (reply,) = hass.wait(lambda s: responses(s, "camsvc/ops/response", "r1"), what="response r1")
            with RpcClient(ops.url) as client, pytest.raises(RpcCallError) as err:
                client.call("stop_recording", {"device": "camera0"})
            assert reply["error"] == err.value.error  # the same error as over the WebSocket
            # a duplicate delivery is answered again, not run again
            hass.publish("camsvc/ops/command", json.dumps(stop))
            hass.wait(lambda s: len(responses(s, "camsvc/ops/response", "r1")) == 2, what="second r1")
            # refused by the broker's ACL: intruder may not publish commands
            intruder.publish("camsvc/ops/command", json.dumps({**stop, "id": "r2"}))
            hass.publish("camsvc/ops/command", json.dumps({**stop, "id": "r3"}))
            hass.wait(lambda s: responses(s, "camsvc/ops/response", "r3"), what="response r3")
            assert responses(hass, "camsvc/ops/response", "r2") == []
            assert "camsvc/ops/command" in broker.log() and "intruder" in broker.log()
            # Home Assistant's switch: ON -> start_recording (MediaMTX is off here: -32006)
            hass.publish("camsvc/ops/cameras/camera0/recording/set", "ON")
            ha = hass.wait(
                lambda s: [
                    r for r in (json.loads(p) for p in s.on("camsvc/ops/response")) if str(r["id"]).startswith("mqtt-")
                ],
                what="switch response",
            )
            assert ha[0]["error"]["code"] == -32006
            # refused by role: the viewer host may not record
            hass.publish("camsvc/view/command", json.dumps({**stop, "id": "v1"}))
            (denied,) = hass.wait(lambda s: responses(s, "camsvc/view/response", "v1"), what="response v1")
            assert denied["error"]["code"] == -32003
            with RpcClient(ops.url) as client:
                samples = client.call("get_metrics")["metrics"]["camsvc_mqtt_commands_total"]["samples"]
            counts = {s["labels"]["result"]: s["value"] for s in samples}
            assert counts["duplicate"] == 1 and counts["error"] >= 3
            assert "MQTT command stop_recording refused" in ops.log()
    finally:
        ops.stop()
        view.stop()


def test_mqtts_with_a_test_ca_and_password(tmp_path):
    ca = make_ca(tmp_path)
    broker = Broker(tmp_path / "broker", users={"camsvc": "pw", "hass": "pw2"}, tls=ca).start()
    svc = camsvc(tmp_path, broker, "tls", username="camsvc", password="pw", tls={"ca_file": ca["ca"]})
    try:
        assert broker.url.startswith("mqtts://")
        with Subscriber(broker, username="hass", password="pw2") as sub:
            assert sub.wait_payload("camsvc/tls/availability") == b"online"
            assert "free_percent" in json_at(sub, "camsvc/tls/storage")
        with RpcClient(svc.url) as client:
            assert client.call("get_status")["components"]["mqtt"]["broker"] == broker.url
    finally:
        svc.stop()
        broker.stop()
    # without the CA the broker's certificate is refused (and camsvc keeps running)
    broker.start()
    try:
        svc = camsvc(tmp_path / "noca", broker, "noca", username="camsvc", password="pw")
        deadline = time.monotonic() + 15
        while "CERTIFICATE_VERIFY_FAILED" not in svc.log() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "CERTIFICATE_VERIFY_FAILED" in svc.log()
        assert svc.get("/health/ready")[0] == 200
    finally:
        svc.stop()
        broker.stop()


def test_mqtt5_response_topic_and_correlation_data(tmp_path):
    """MQTT 5: a request's response topic and correlation data are honoured."""
    import paho.mqtt.client as paho
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    broker = Broker(tmp_path / "broker").start()
    svc = camsvc(tmp_path, broker, "five", protocol="5", commands=True)
    try:
        with Subscriber(broker, ["camsvc/#", "reply/#"], protocol=paho.MQTTv5) as sub:
            assert sub.wait_payload("camsvc/five/availability") == b"online"
            props = Properties(PacketTypes.PUBLISH)
            props.ResponseTopic = "reply/me"
            props.CorrelationData = b"corr-1"
            request = {"jsonrpc": "2.0", "id": 5, "method": "take_snapshot", "params": {"device": "camera0"}}
            sub.publish("camsvc/five/command", json.dumps(request), properties=props)
            reply = json.loads(sub.wait_payload("reply/me"))
            assert reply["id"] == 5 and reply["error"]["code"] == -32004  # no such camera here
            with sub.lock:
                assert sub.properties["reply/me"].CorrelationData == b"corr-1"
            assert sub.on("camsvc/five/response") == []
    finally:
        svc.stop()
        broker.stop()
    assert "Traceback" not in svc.log(), svc.log()


def test_a_broker_that_never_answers_does_not_stall_camsvc(tmp_path):
    """A 'broker' that accepts TCP and never sends CONNACK: the API stays responsive, camsvc retries."""
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    held = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()

    class Silent:
        url = f"mqtt://127.0.0.1:{port}"

    svc = camsvc(tmp_path, Silent, "mute")
    try:
        with RpcClient(svc.url) as client:
            deadline = time.monotonic() + 3 * KEEPALIVE + 10
            pings = 0
            # paho gives up on the CONNACK after keepalive and camsvc reconnects: 2+ TCP connections
            while time.monotonic() < deadline and len(held) < 3:
                assert client.call("ping") == "pong"
                pings += 1
                time.sleep(0.05)
            assert len(held) >= 3, svc.log()
            status = client.call("get_status")["components"]["mqtt"]
            assert status["connected"] is False and status["connects"] == 0
            assert pings > 10
    finally:
        svc.stop()
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        listener.close()
    assert "Traceback" not in svc.log(), svc.log()
