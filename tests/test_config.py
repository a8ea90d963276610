"""Configuration loading: defaults, every error class, environment overrides."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from camsvc.config import Config, ConfigError, load_config, parse_config_dict
from tests.support.server import ROOT, TWISTD


def test_defaults_cover_every_section():
    config = parse_config_dict({})
    assert isinstance(config, Config)
    assert config.server.port == 8002
    assert config.server.host == "0.0.0.0"
    assert config.auth.required is True
    assert config.mediamtx.api_url == "http://127.0.0.1:9997"
    assert config.storage.recordings_dir == "/var/lib/camsvc/recordings"
    assert config.server.max_message_size == 1024 * 1024


def test_shipped_config_is_valid_and_equals_the_defaults():
    """conf/camsvc.yaml documents every key with its default value."""
    data = yaml.safe_load((ROOT / "conf" / "camsvc.yaml").read_text())
    assert parse_config_dict(data) == parse_config_dict({})


def test_shipped_config_mentions_every_key():
    text = (ROOT / "conf" / "camsvc.yaml").read_text()
    data = yaml.safe_load(text)
    import dataclasses

    def walk(obj, raw, path):
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            assert f.name in raw, f"conf/camsvc.yaml does not document {path}{f.name}"
            if dataclasses.is_dataclass(value):
                walk(value, raw[f.name], f"{path}{f.name}.")

    walk(parse_config_dict({}), data, "")


def test_dev_config_is_valid():
    config = load_config(str(ROOT / "conf" / "dev.yaml"), environ={})
    assert config.auth.required is False
    assert config.server.host == "127.0.0.1"


@pytest.mark.parametrize(
    "data, path, words",
    [
        ({"server": {"bogus": 1}}, "server.bogus", "unknown key"),
        ({"nosection": {}}, "nosection", "unknown key"),
        ({"server": {"port": "abc"}}, "server.port", "must be an integer"),
        ({"server": {"port": 70000}}, "server.port", "between 1 and 65535"),
        ({"server": {"port": 0}}, "server.port", "between 1 and 65535"),
        ({"server": {"port": True}}, "server.port", "must be an integer"),
        ({"auth": {"required": "yes please"}}, "auth.required", "must be a boolean"),
        ({"server": []}, "server", "must be a mapping"),
        ({"mediamtx": {"api_url": "ftp://x"}}, "mediamtx.api_url", "http://"),
        ({"logging": {"level": "loud"}}, "logging.level", "must be one of"),
        ({"snapshots": {"quality": 101}}, "snapshots.quality", "between 1 and 100"),
        ({"server": {"allowed_origins": [1]}}, "server.allowed_origins[0]", "must be a string"),
        ({"server": {"tls": {"cert": "/x.pem"}}}, "server.tls", "together"),
        ({"server": {"host": "0.0.0.0"}, "auth": {"required": False}}, "auth.required", "loopback"),
        ({"storage": {"recordings_dir": ""}}, "storage.recordings_dir", "must not be empty"),
        ({"mediamtx": {"reconcile_interval": 0}}, "mediamtx.reconcile_interval", "greater than 0"),
        ({"retention": {"max_age_days": -1}}, "retention.max_age_days", "0 or greater"),
        ({"storage": {"warn_free_percent": 120}}, "storage.warn_free_percent", "between 0 and 100"),
        ({"server": {"idle_timeout": 1}}, "server.idle_timeout", "at least 2 seconds"),
        ({"server": {"trusted_proxies": ["10.0.0.0/8", "proxy.lan"]}}, "server.trusted_proxies", "'proxy.lan'"),
        ({"mediamtx": {"publish_command": "ffmpeg -i {device!r}"}}, "mediamtx.publish_command", "not a plain name"),
        ({"mediamtx": {"publish_command": "ffmpeg -i {0}"}}, "mediamtx.publish_command", "not a plain name"),
        (
            {"storage": {"warn_free_percent": 5, "critical_free_percent": 8}},
            "storage.critical_free_percent",
            "must not exceed storage.warn_free_percent",
        ),
        ({1: {}}, "1", "section names must be strings"),
    ],
)
def test_invalid_values_name_the_key_path(data, path, words):
    with pytest.raises(ConfigError) as info:
        parse_config_dict(data)
    assert str(info.value).startswith(path + ":")
    assert info.value.path == path
    assert words in str(info.value)


def test_insecure_bind_can_be_overridden_explicitly():
    config = parse_config_dict({"auth": {"required": False, "allow_insecure_bind": True}})
    assert config.auth.required is False


def test_ints_are_accepted_for_floats():
    assert parse_config_dict({"mediamtx": {"request_timeout": 2}}).mediamtx.request_timeout == 2.0


def test_env_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("server:\n  port: 8100\n")
    env = {
        "CAMSVC_SERVER__PORT": "9000",
        "CAMSVC_SERVER__TLS__CERT": "/c.pem",
        "CAMSVC_SERVER__TLS__KEY": "/k.pem",
        "CAMSVC_LOGGING__LEVEL": "debug",
        "CAMSVC_SERVER__ALLOWED_ORIGINS": "[https://a.example]",
        "UNRELATED": "1",
    }
    config = load_config(str(path), environ=env)
    assert config.server.port == 9000
    assert config.server.tls.cert == "/c.pem"
    assert config.logging.level == "debug"
    assert config.server.allowed_origins == ["https://a.example"]


def test_env_override_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"^server\.port: must be an integer"):
        load_config(None, environ={"CAMSVC_SERVER__PORT": "nine"})
    with pytest.raises(ConfigError, match=r"^server\.nope: unknown key"):
        load_config(None, environ={"CAMSVC_SERVER__NOPE": "1"})
    with pytest.raises(ConfigError, match=r"^server\.port: is not a section"):
        load_config(None, environ={"CAMSVC_SERVER__PORT__X": "1"})


def test_malformed_env_overrides(tmp_path):
    with pytest.raises(ConfigError, match=r"^CAMSVC_SERVER____PORT: malformed override variable name"):
        load_config(None, environ={"CAMSVC_SERVER____PORT": "1"})
    with pytest.raises(
        ConfigError,
        match=r"^server\.allowed_origins: is not a valid list \(\[a, b\] or a,b\): expected ',' or '\]', but got '<stream end>'$",
    ):
        load_config(None, environ={"CAMSVC_SERVER__ALLOWED_ORIGINS": "[unclosed"})
    with pytest.raises(ConfigError, match=r"^server\.port: is not a section"):
        load_config(None, environ={"CAMSVC_SERVER__PORT": "1", "CAMSVC_SERVER__PORT__X": "1"})


def test_a_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("logging:\n  level: d\xe9bug\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        load_config(str(path), environ={})


def test_unreadable_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(str(tmp_path / "missing.yaml"), environ={})


def test_bad_yaml_reports_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("server:\n  port: [1,\n")
    with pytest.raises(ConfigError, match=r"not valid YAML at line \d+"):
        load_config(str(path), environ={})


def test_non_mapping_document(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must be a mapping of sections"):
        load_config(str(path), environ={})


def test_empty_file_means_defaults(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert load_config(str(path), environ={}) == parse_config_dict({})


def test_config_is_frozen():
    config = parse_config_dict({})
    with pytest.raises(Exception):
        config.server.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    "content, expected",
    [
        (
            "server:\n  port: 99999\n",
            "camsvc: invalid configuration: server.port: must be a TCP port between 1 and 65535, got 99999",
        ),
        ("server: [\n", "camsvc: invalid configuration: config file"),
        ("logging:\n  colour: red\n", "camsvc: invalid configuration: logging.colour: unknown key"),
    ],
)
def test_twistd_refuses_invalid_config_with_one_line(tmp_path, content, expected):
    path = tmp_path / "c.yaml"
    path.write_text(content)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-c", TWISTD, "-n", "--pidfile=", "camsvc", "--config", str(path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 78
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(expected)
    assert proc.stdout == ""
    assert not Path(tmp_path / "twistd.pid").exists()


def test_auth_files_live_in_the_state_dir_unless_configured():
    config = parse_config_dict({"storage": {"state_dir": "/srv/cam"}})
    assert config.auth.jwt_secret_file == "/srv/cam/jwt_secret"
    assert config.auth.api_keys_file == "/srv/cam/api_keys.json"
    assert parse_config_dict({}).auth.jwt_secret_file == "/var/lib/camsvc/jwt_secret"
    explicit = parse_config_dict(
        {"auth": {"jwt_secret_file": "/etc/camsvc/secret"}, "storage": {"state_dir": "/srv/cam"}}
    )
    assert explicit.auth.jwt_secret_file == "/etc/camsvc/secret"
    assert explicit.auth.api_keys_file == "/srv/cam/api_keys.json"


# -- environment overrides are typed by the schema (issue 15) ----------------------


@pytest.mark.parametrize("raw", ["0123", "yes", "null", "1e3", "[a, b]", "{x: 1}", "~", "  spaced  ", "true"])
def test_env_string_keys_take_the_value_as_it_is(raw):
    """A string key never goes through YAML: ``API_PASS=0123`` used to become 123 and refuse startup."""
    config = load_config(None, environ={"CAMSVC_MEDIAMTX__API_PASS": raw, "CAMSVC_MEDIAMTX__API_USER": raw})
    assert config.mediamtx.api_pass == raw
    assert config.mediamtx.api_user == raw


@pytest.mark.parametrize(
    "name, raw, expected",
    [
        ("CAMSVC_SERVER__PORT", "9000", 9000),
        ("CAMSVC_SERVER__PORT", " 9001 ", 9001),
        ("CAMSVC_SERVER__IDLE_TIMEOUT", "0", 0.0),
        ("CAMSVC_MEDIAMTX__REQUEST_TIMEOUT", "2.5", 2.5),
        ("CAMSVC_AUTH__REQUIRED", "false", False),
        ("CAMSVC_AUTH__REQUIRED", "no", False),
        ("CAMSVC_RETENTION__ENABLED", "1", True),
        ("CAMSVC_RETENTION__ENABLED", "ON", True),
        (
            "CAMSVC_SERVER__ALLOWED_ORIGINS",
            "https://a.example, https://b.example",
            ["https://a.example", "https://b.example"],
        ),
        ("CAMSVC_SERVER__ALLOWED_ORIGINS", "[https://a.example]", ["https://a.example"]),
        ("CAMSVC_SERVER__ALLOWED_ORIGINS", "", []),
    ],
)
def test_env_typed_keys(name, raw, expected):
    env = {name: raw}
    if name == "CAMSVC_AUTH__REQUIRED":
        env["CAMSVC_SERVER__HOST"] = "127.0.0.1"
    config = load_config(None, environ=env)
    section, key = name[len("CAMSVC_") :].lower().split("__")
    assert getattr(getattr(config, section), key) == expected


@pytest.mark.parametrize(
    "name, raw, words",
    [
        ("CAMSVC_SERVER__PORT", "0x10", "server.port: must be an integer"),
        ("CAMSVC_SERVER__PORT", "9000.0", "server.port: must be an integer"),
        ("CAMSVC_MEDIAMTX__REQUEST_TIMEOUT", "nan", "mediamtx.request_timeout: must be a finite number"),
        ("CAMSVC_AUTH__REQUIRED", "maybe", "auth.required: must be a boolean"),
        ("CAMSVC_MEDIAMTX__API_PASS__X", "1", "mediamtx.api_pass: is not a section"),
        ("CAMSVC_SERVER", "1", None),  # no "__": not an override, ignored
    ],
)
def test_env_typed_errors_name_the_key(name, raw, words):
    if words is None:
        assert load_config(None, environ={name: raw}) == parse_config_dict({})
        return
    with pytest.raises(ConfigError) as info:
        load_config(None, environ={name: raw})
    assert str(info.value).startswith(words)


def test_secrets_never_appear_in_error_messages(tmp_path):
    secret = "s3cr3t-0123"
    path = tmp_path / "c.yaml"
    path.write_text("mediamtx:\n  api_pass: [s3cr3t-0123]\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(path), environ={})
    assert str(info.value).startswith("mediamtx.api_pass: must be a string")
    assert secret not in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_config(None, environ={"CAMSVC_MEDIAMTX__API_PASS__DEEPER": secret})
    assert secret not in str(info.value)


def _twistd(tmp_path, content, env_extra=None):
    path = tmp_path / "c.yaml"
    path.write_text(content)
    env = dict(os.environ, PYTHONPATH=str(ROOT), **(env_extra or {}))
    return subprocess.run(
        [sys.executable, "-c", TWISTD, "-n", "--pidfile=", "camsvc", "--config", str(path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "content, expected",
    [
        ('server:\n  endpoint: "tcp:port=notaport"\n', "camsvc: invalid configuration: server.endpoint: "),
        ('server:\n  endpoint: "bogus:1234"\n', "camsvc: invalid configuration: server.endpoint: "),
        (
            "server:\n  tls:\n    cert: /nonexistent/cert.pem\n    key: /nonexistent/key.pem\n",
            "camsvc: invalid configuration: server.tls: ",
        ),
    ],
)
def test_bad_endpoint_or_missing_tls_file_is_one_line_and_exit_78(tmp_path, content, expected):
    content += (
        f"storage:\n  state_dir: {tmp_path}/state\n  recordings_dir: {tmp_path}/rec\n"
        f"  snapshots_dir: {tmp_path}/snap\nmediamtx:\n  enabled: false\ndiscovery:\n  enabled: false\n"
    )
    proc = _twistd(tmp_path, content)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 78, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(expected), lines[0]


def test_bad_secret_in_environment_is_one_line_without_the_secret(tmp_path):
    proc = _twistd(tmp_path, "", {"CAMSVC_MEDIAMTX__API_PASS__X": "hunter2-0123"})
    assert proc.returncode == 78
    assert "hunter2" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


# -- the loopback rule is checked on the address actually bound (issue 15) ----------


def test_no_auth_with_an_endpoint_on_every_interface_is_refused(tmp_path):
    """``auth.required: false`` + host 127.0.0.1 passed the config check, but
    ``server.endpoint: "tcp:port=..."`` listens on every interface."""
    content = (
        'server:\n  host: 127.0.0.1\n  endpoint: "tcp:port=0"\nauth:\n  required: false\n'
        f"storage:\n  state_dir: {tmp_path}/state\n  recordings_dir: {tmp_path}/rec\n"
        f"  snapshots_dir: {tmp_path}/snap\nmediamtx:\n  enabled: false\ndiscovery:\n  enabled: false\n"
    )
    proc = _twistd(tmp_path, content)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 78, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("camsvc: invalid configuration: auth.required: false"), lines[0]
    assert "0.0.0.0" in lines[0]


def test_listener_checks_the_bound_address():
    from twisted.internet.address import IPv4Address, IPv6Address
    from twisted.internet.defer import succeed
    from twisted.internet.task import Clock

    from camsvc.ops.health import Health
    from camsvc.server.listener import ListenerService

    class Port:
        def __init__(self, host):
            self.host = host
            self.stopped = False

        def getHost(self):
            return IPv6Address("TCP", self.host, 8002) if ":" in self.host else IPv4Address("TCP", self.host, 8002)

        def stopListening(self):
            self.stopped = True

    class Endpoint:
        def __init__(self, port):
            self.port = port

        def listen(self, site):
            return succeed(self.port)

    for host, allowed in [("127.0.0.1", True), ("::1", True), ("0.0.0.0", False), ("::", False), ("192.0.2.7", False)]:
        port = Port(host)
        listener = ListenerService(
            Endpoint(port), "tcp:port=8002", None, None, Health(Clock()), Clock(), 1.0, loopback_only=True
        )
        if allowed:
            listener.privilegedStartService()
            assert listener.port is port and not port.stopped
        else:
            with pytest.raises(SystemExit) as info:
                listener.privilegedStartService()
            assert info.value.code == 78 and port.stopped, host


def test_no_auth_with_a_loopback_endpoint_is_accepted_by_the_config():
    config = parse_config_dict(
        {"server": {"endpoint": "tcp:port=8002:interface=127.0.0.1"}, "auth": {"required": False}}
    )
    assert config.auth.required is False  # the listener then checks the bound address
