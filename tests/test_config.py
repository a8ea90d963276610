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
    with pytest.raises(ConfigError, match=r"^server\.port: must be an integer, got"):
        load_config(None, environ={"CAMSVC_SERVER__PORT__X": "1"})


def test_malformed_env_overrides(tmp_path):
    with pytest.raises(ConfigError, match=r"^CAMSVC_SERVER____PORT: malformed override variable name"):
        load_config(None, environ={"CAMSVC_SERVER____PORT": "1"})
    with pytest.raises(ConfigError, match=r"^server\.allowed_origins: cannot parse CAMSVC_SERVER__ALLOWED_ORIGINS"):
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
