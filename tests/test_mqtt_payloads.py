"""camsvc.mqtt.settings, topics and payloads; the discovery payloads against Home Assistant's schema."""

from __future__ import annotations

import copy
import json

import pytest

from camsvc.config import ConfigError, parse_config_dict
from camsvc.mqtt import payloads
from camsvc.mqtt.settings import host_id_from, resolve, split_url
from camsvc.mqtt.topics import Topics
from tests.support.ha_discovery import fleet_problems, problems

CAMERA = {
    "device": "/dev/video0",
    "camera_id": "camera0",
    "status": "CONNECTED",
    "name": "HD Pro Webcam C920",
    "resolution": "1920x1080",
    "fps": 30,
    "streams": {
        "rtsp": "rtsp://box:8554/camera0",
        "webrtc": "http://box:8889/camera0",
        "hls": "http://box:8888/camera0",
    },
    "recording": False,
}


def mqtt(**section):
    return parse_config_dict({"mqtt": {"enabled": True, **section}}).mqtt


def test_the_section_is_off_by_default_and_validated():
    config = parse_config_dict({})
    assert config.mqtt.enabled is False and config.mqtt.ha_prefix == "homeassistant" and config.mqtt.commands is False
    for bad, key in [
        ({"url": "tcp://broker"}, "mqtt.url"),
        ({"url": "mqtt://user:pw@broker"}, "mqtt.url"),
        ({"qos": 3}, "mqtt.qos"),
        ({"base_topic": "camsvc/#"}, "mqtt.base_topic"),
        ({"host_id": "a/b"}, "mqtt.host_id"),
        ({"password": "x", "password_file": "/f"}, "mqtt.password_file"),
        ({"tls": {"cert_file": "/c"}}, "mqtt.tls"),
        ({"command_role": "root"}, "mqtt.command_role"),
        ({"keepalive": 2}, "mqtt.keepalive"),
    ]:
        with pytest.raises(ConfigError) as err:
            parse_config_dict({"mqtt": bad})
        assert str(err.value).startswith(key), err.value
    from camsvc.config import to_dict

    assert to_dict(parse_config_dict({"mqtt": {"password": "secret"}}))["mqtt"]["password"] == "***"


def test_settings_resolve_url_host_id_and_password_file(tmp_path):
    assert split_url("mqtt://broker") == ("broker", 1883, False)
    assert split_url("mqtts://broker.lan:8884") == ("broker.lan", 8884, True)
    assert split_url("mqtts://[::1]") == ("::1", 8883, True)
    with pytest.raises(ConfigError):
        split_url("mqtt://broker:99999")
    assert host_id_from("box-1.farm.lan") == "box-1"
    assert host_id_from("weird name") == "weird_name"
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    s = resolve(mqtt(url="mqtts://b:1", username="u", password_file=str(secret)), "shed.lan")
    assert (s.host, s.port, s.tls, s.password, s.host_id) == ("b", 1, True, "s3cret", "shed")
    assert (s.client_id, s.base_topic, s.broker) == ("camsvc-shed", "camsvc/shed", "mqtts://b:1")
    s = resolve(mqtt(host_id="h1", base_topic="farm/cams/h1", client_id="cid"), "ignored")
    assert (s.host_id, s.base_topic, s.client_id, s.tls) == ("h1", "farm/cams/h1", "cid", False)
    with pytest.raises(ConfigError) as err:
        resolve(mqtt(password_file=str(tmp_path / "missing")), "h")
    assert str(err.value).startswith("mqtt.password_file")


def test_topics_layout_and_command_parsing():
    t = Topics("camsvc/box", "homeassistant", "box")
    assert t.camera("camera0") == "camsvc/box/cameras/camera0/state"
    assert t.recording("camera0") == "camsvc/box/cameras/camera0/recording"
    assert t.discovery("switch", "camera0_recording") == "homeassistant/switch/box/camera0_recording/config"
    assert t.camera_command("camsvc/box/cameras/camera3/recording/set") == ("camera3", "recording/set")
    assert t.camera_command("camsvc/box/cameras/camera3/snapshot/take") == ("camera3", "snapshot/take")
    assert t.camera_command("camsvc/box/cameras/camera3/state") is None
    assert t.camera_command("camsvc/other/cameras/camera3/recording/set") is None
    assert set(t.command_subscriptions()) == {
        "camsvc/box/command",
        "camsvc/box/cameras/+/recording/set",
        "camsvc/box/cameras/+/snapshot/take",
    }


def all_configs(commands: bool) -> dict[str, dict]:
    t = Topics("camsvc/box", "homeassistant", "box")
    configs = payloads.host_entities(t, "box", "0.1.0")
    configs.update(payloads.camera_entities(t, "box", CAMERA, "0.1.0", commands=commands))
    configs.update(
        payloads.camera_entities(t, "box", {**CAMERA, "camera_id": "camera1", "name": ""}, "0.1.0", commands=commands)
    )
    return configs


@pytest.mark.parametrize("commands", [True, False])
def test_discovery_payloads_are_valid_home_assistant_configurations(commands):
    configs = all_configs(commands)
    components = {topic.split("/")[1] for topic in configs}
    expected = {"sensor", "binary_sensor", "camera"} | ({"switch", "button"} if commands else set())
    assert components == expected
    for topic, config in configs.items():
        assert problems(topic, json.loads(payloads.dumps(config))) == []
    assert fleet_problems(configs) == []
    camera = configs["homeassistant/camera/box/camera0/config"]
    assert camera["topic"] == "camsvc/box/cameras/camera0/image"
    assert camera["device"]["via_device"] == "camsvc_box"
    assert camera["device"]["model"] == "HD Pro Webcam C920"
    assert camera["json_attributes_topic"] == "camsvc/box/cameras/camera0/state"
    # every topic a camera used is cleared when it is forgotten
    t = Topics("camsvc/box", "homeassistant", "box")
    used = {topic for topic in configs if "/camera0" in topic}
    assert used <= set(payloads.camera_discovery_topics(t, "camera0"))


def test_the_schema_check_catches_mistakes():
    """The checker itself: each broken configuration is reported."""
    good_topic = "homeassistant/switch/box/camera0_recording/config"
    good = all_configs(True)[good_topic]
    assert problems(good_topic, good) == []
    broken = []
    for mutate in (
        lambda c: c.pop("command_topic"),
        lambda c: c.__setitem__("command_topic", "camsvc/box/+/set"),
        lambda c: c.__setitem__("device_class", "camera"),
        lambda c: c.__setitem__("stat_topic", "typo"),
        lambda c: c["device"].pop("identifiers"),
        lambda c: c.__setitem__("qos", 3),
        lambda c: c.__setitem__("availability", [{"topic": "a"}]),
        lambda c: c["origin"].pop("name"),
    ):
        config = copy.deepcopy(good)
        mutate(config)
        broken.append(problems(good_topic, config))
    assert all(broken), broken
    assert problems("homeassistant/switch/bad.id/config", good)
    assert problems("homeassistant/lawnmower/box/x/config", good)
    configs = all_configs(True)
    twin = copy.deepcopy(configs["homeassistant/camera/box/camera0/config"])
    twin["device"]["via_device"] = "camsvc_elsewhere"
    configs["homeassistant/camera/box/twin/config"] = twin
    found = fleet_problems(configs)
    assert any("unique_id" in p for p in found) and any("via_device" in p for p in found)


def test_state_and_event_bodies():
    assert payloads.recording_state(True) == b"ON" and payloads.recording_state(False) == b"OFF"
    body = json.loads(payloads.event("camera_plugged", "2026-01-01T00:00:00.000Z", camera_id="camera0"))
    assert body == {"event": "camera_plugged", "time": "2026-01-01T00:00:00.000Z", "camera_id": "camera0"}
