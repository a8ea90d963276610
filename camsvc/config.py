"""Configuration: YAML file + environment overrides -> frozen dataclasses.

This module owns the configuration schema.  Every key has a default; the
shipped ``conf/camsvc.yaml`` documents each one.  Loading is strict: an
unknown key, a wrong type or an out-of-range value raises :class:`ConfigError`
whose message starts with the dotted key path (``server.port: ...``), so the
service can refuse to start with one clear line before the reactor runs.

Environment variables ``CAMSVC_<SECTION>__<KEY>`` (nested keys joined with
``__``) override the file; each value is converted to the type the schema
declares for its key (a string key takes the text as it is, so
``CAMSVC_MEDIAMTX__API_PASS=0123`` is the string "0123";
``CAMSVC_SERVER__PORT=9000`` is the integer 9000).  Values of
:data:`SECRET_KEYS` never appear in an error message.

Entry points: :func:`load_config` (file + environment) and
:func:`parse_config_dict` (a plain dict, used by tests).

PyYAML is loaded only while a file (or a list from the environment) is parsed, and unloaded
again afterwards unless something else had loaded it (:func:`_safe_load`): the service reads
its file once at start and on SIGHUP, and the parser would otherwise stay resident for good
(0.9 MiB, see docs/performance.md).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import string
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ENV_PREFIX = "CAMSVC_"


class ConfigError(ValueError):
    """The configuration is invalid; ``str(err)`` names the key path."""

    def __init__(self, path: str, message: str):
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


# -- schema -----------------------------------------------------------------
#
# Field metadata: ``check`` is a callable(value) -> error message or None,
# ``choices`` a tuple of allowed values.  Keep defaults safe for production;
# the development config in conf/dev.yaml relaxes them.


def _port(value: int) -> str | None:
    if not 1 <= value <= 65535:
        return f"must be a TCP port between 1 and 65535, got {value}"
    return None


def _positive(value: float) -> str | None:
    if value <= 0:
        return f"must be greater than 0, got {value}"
    return None


def _non_negative(value: float) -> str | None:
    if value < 0:
        return f"must be 0 or greater, got {value}"
    return None


def _percent(value: float) -> str | None:
    if not 0 <= value <= 100:
        return f"must be between 0 and 100, got {value}"
    return None


def _quality(value: int) -> str | None:
    if not 1 <= value <= 100:
        return f"must be between 1 and 100, got {value}"
    return None


def _url(value: str) -> str | None:
    if not (value.startswith("http://") or value.startswith("https://")):
        return f"must be an http:// or https:// URL, got {value!r}"
    return None


def _optional_url(value: str) -> str | None:
    return _url(value) if value else None


def _abs_path(value: str) -> str | None:
    if not value:
        return "must not be empty"
    return None


def _idle_timeout(value: float) -> str | None:
    if value != 0 and value < 2:
        return f"must be 0 (never) or at least 2 seconds, got {value}"
    return None


def _networks(values: list) -> str | None:
    for value in values:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            return f"must be a list of IP addresses or networks (CIDR), got {value!r}"
    return None


def _node_patterns(values: list) -> str | None:
    for value in values:
        if not isinstance(value, str) or not value.strip():
            return f"must be a list of non-empty strings (driver:GLOB, card:GLOB or a /dev path glob), got {value!r}"
        kind, sep, rest = value.partition(":")
        if value.startswith("/dev/") or (sep and kind in ("driver", "card") and rest):
            continue
        return f"entries are driver:GLOB, card:GLOB or a /dev/... path glob, got {value!r}"
    return None


def _opt(default: Any, *, check=None, choices=None, doc: str = "") -> Any:
    meta = {"check": check, "choices": choices, "doc": doc}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class TLSConfig:
    cert: str = _opt("", doc="PEM certificate chain; empty = plain ws://")
    key: str = _opt("", doc="PEM private key for cert")


@dataclass(frozen=True)
class ServerConfig:
    host: str = _opt("0.0.0.0")
    port: int = _opt(8002, check=_port)
    endpoint: str = _opt("", doc="explicit Twisted endpoint string; overrides host/port")
    tls: TLSConfig = field(default_factory=TLSConfig)
    max_message_size: int = _opt(1048576, check=_positive)
    max_connections: int = _opt(200, check=_positive, doc="authenticated WebSocket connections")
    max_unauthenticated: int = _opt(64, check=_positive, doc="unauthenticated WebSocket connections in total")
    max_unauthenticated_per_address: int = _opt(8, check=_positive, doc="unauthenticated connections per address")
    unauthenticated_rate_per_minute: int = _opt(60, check=_positive, doc="requests before authentication")
    unauthenticated_burst: int = _opt(10, check=_positive, doc="burst of requests before authentication")
    max_http_connections: int = _opt(256, check=_positive, doc="plain HTTP (non-WebSocket) connections")
    max_request_body: int = _opt(65536, check=_positive, doc="largest HTTP request body in bytes (413)")
    http_header_timeout: float = _opt(10.0, check=_positive, doc="seconds to send the request line and headers")
    http_idle_timeout: float = _opt(30.0, check=_positive, doc="seconds an HTTP connection may be silent")
    http_request_timeout: float = _opt(60.0, check=_positive, doc="seconds a whole HTTP request may take")
    max_batch_size: int = _opt(100, check=_positive)
    outgoing_buffer_size: int = _opt(4194304, check=_positive)
    idle_timeout: float = _opt(0.0, check=_idle_timeout)
    rate_limit_per_minute: int = _opt(6000, check=_non_negative)
    allowed_origins: list = _opt([])
    trusted_proxies: list = _opt([], check=_networks)
    shutdown_timeout: float = _opt(10.0, check=_positive)


@dataclass(frozen=True)
class AuthConfig:
    required: bool = _opt(True)
    allow_insecure_bind: bool = _opt(False)
    jwt_secret_file: str = _opt("", doc="empty = <storage.state_dir>/jwt_secret")
    api_keys_file: str = _opt("", doc="empty = <storage.state_dir>/api_keys.json")
    token_lifetime: float = _opt(86400.0, check=_positive)
    max_failed_attempts: int = _opt(5, check=_positive)
    failed_attempts_window: float = _opt(60.0, check=_positive)
    download_token_lifetime: float = _opt(900.0, check=_positive)
    login_timeout: float = _opt(60.0, check=_non_negative)


#: Placeholders a ``mediamtx.publish_command`` template may use (filled by camsvc.mediamtx.desired).
TEMPLATE_FIELDS = frozenset({"device", "input_format", "width", "height", "fps", "gop", "camera_id"})


def template_fields(template: str) -> set[str]:
    """The ``{name}`` placeholders of a command template (ValueError if malformed)."""
    names = set()
    for _, name, spec, conv in string.Formatter().parse(template):
        if name is None:
            continue
        if not name or spec or conv or not name.isidentifier():
            raise ValueError(f"placeholder {{{name}}} is not a plain name")
        names.add(name)
    return names


def _publish_template(value: str) -> str | None:
    if not value.strip():
        return "must not be empty"
    try:
        names = template_fields(value)
    except ValueError as exc:
        return f"is not a valid template: {exc}"
    unknown = sorted(names - TEMPLATE_FIELDS)
    if unknown:
        return f"unknown placeholder {{{unknown[0]}}} (allowed: {', '.join(sorted(TEMPLATE_FIELDS))})"
    return None


@dataclass(frozen=True)
class MediaMTXConfig:
    enabled: bool = _opt(True, doc="false = run without MediaMTX (no paths, no streams)")
    api_url: str = _opt("http://127.0.0.1:9997", check=_url)
    api_user: str = _opt("")
    api_pass: str = _opt("")
    request_timeout: float = _opt(5.0, check=_positive)
    rtsp_port: int = _opt(8554, check=_port)
    webrtc_port: int = _opt(8889, check=_port)
    hls_port: int = _opt(8888, check=_port)
    public_host: str = _opt("")
    publish_command: str = _opt(
        "ffmpeg -hide_banner -loglevel error -f v4l2 -input_format {input_format}"
        " -video_size {width}x{height} -framerate {fps} -i {device}"
        " -c:v libx264 -pix_fmt yuv420p -preset ultrafast -tune zerolatency"
        " -g {gop} -f rtsp rtsp://localhost:$RTSP_PORT/$MTX_PATH",
        check=_publish_template,
    )
    passthrough: bool = _opt(False)
    passthrough_command: str = _opt(
        "ffmpeg -hide_banner -loglevel error -f v4l2 -input_format {input_format}"
        " -video_size {width}x{height} -framerate {fps} -i {device}"
        " -c:v copy -f rtsp rtsp://localhost:$RTSP_PORT/$MTX_PATH",
        check=_publish_template,
    )
    hardware_command: str = _opt(
        "ffmpeg -hide_banner -loglevel error -f v4l2 -input_format {input_format}"
        " -video_size {width}x{height} -framerate {fps} -i {device}"
        " -c:v h264_v4l2m2m -pix_fmt yuv420p"
        " -g {gop} -f rtsp rtsp://localhost:$RTSP_PORT/$MTX_PATH",
        check=_publish_template,
    )
    reconcile_interval: float = _opt(30.0, check=_positive)
    health_interval: float = _opt(5.0, check=_positive)


@dataclass(frozen=True)
class DiscoveryConfig:
    enabled: bool = _opt(True)
    debounce: float = _opt(0.3, check=_non_negative)
    probe_timeout: float = _opt(5.0, check=_positive)
    receive_buffer_size: int = _opt(4194304, check=_positive)
    include: list = _opt([], check=_node_patterns, doc="nodes that are cameras even if the built-in rule says no")
    exclude: list = _opt([], check=_node_patterns, doc="nodes that are never cameras (wins over include)")
    forget_after: float = _opt(
        604800.0, check=_non_negative, doc="seconds a DISCONNECTED camera stays listed; 0 = kept"
    )


@dataclass(frozen=True)
class ControlsConfig:
    poll_interval: float = _opt(2.0, check=_non_negative, doc="seconds between control watches; 0 = none")


@dataclass(frozen=True)
class StorageConfig:
    recordings_dir: str = _opt("/var/lib/camsvc/recordings", check=_abs_path)
    snapshots_dir: str = _opt("/var/lib/camsvc/snapshots", check=_abs_path)
    state_dir: str = _opt("/var/lib/camsvc", check=_abs_path)
    warn_free_percent: float = _opt(10.0, check=_percent)
    critical_free_percent: float = _opt(2.0, check=_percent)
    check_interval: float = _opt(30.0, check=_positive)
    download_base_url: str = _opt("", check=_optional_url)


@dataclass(frozen=True)
class RecordingConfig:
    format: str = _opt("fmp4", choices=("fmp4",))
    segment_duration: float = _opt(3600.0, check=_positive)
    max_duration: float = _opt(86400.0, check=_positive)
    reader_command: str = _opt(
        "ffmpeg -hide_banner -loglevel error -nostdin -rtsp_transport tcp -i {rtsp_url} -c copy -f null -"
    )
    start_timeout: float = _opt(15.0, check=_positive)
    on_shutdown: str = _opt("stop", choices=("stop", "keep"))
    # A stop for a package upgrade (the postinst leaves <state_dir>/upgrade-restart):
    # "keep" resumes the recordings after the restart, "stop" does as on_shutdown says.
    on_upgrade: str = _opt("keep", choices=("stop", "keep"))
    resume_timeout: float = _opt(60.0, check=_positive)
    disk_check_interval: float = _opt(1.0, check=_positive, doc="seconds between full-disk checks while recording")
    min_free_bytes: int = _opt(16777216, check=_non_negative, doc="below this, a recording stops with FAILED")


@dataclass(frozen=True)
class SnapshotsConfig:
    format: str = _opt("jpg", choices=("jpg", "png"))
    quality: int = _opt(85, check=_quality)
    timeout: float = _opt(10.0, check=_positive)
    max_queued: int = _opt(4, check=_non_negative, doc="snapshots waiting per camera behind the one running")
    device_input: str = _opt("-f v4l2 -input_format {input_format} -video_size {width}x{height} -i {device}")
    device_skip_frames: int = _opt(0, check=_non_negative)
    stream_input: str = _opt("-rtsp_transport tcp -probesize 10000 -analyzeduration 200000 -i {rtsp_url}")


@dataclass(frozen=True)
class RetentionConfig:
    enabled: bool = _opt(False)
    max_age_days: float = _opt(30.0, check=_non_negative)
    max_size_gb: float = _opt(0.0, check=_non_negative)
    interval: float = _opt(3600.0, check=_positive)


@dataclass(frozen=True)
class LoggingConfig:
    level: str = _opt("info", choices=("debug", "info", "warn", "error", "critical"))
    format: str = _opt("text", choices=("text", "json"))


def _mqtt_url(value: str) -> str | None:
    if not (value.startswith("mqtt://") or value.startswith("mqtts://")):
        return f"must be an mqtt:// or mqtts:// URL, got {value!r}"
    rest = value.split("://", 1)[1]
    if not rest or "/" in rest.rstrip("/") or "@" in rest:
        return f"must be mqtt[s]://HOST[:PORT] (credentials go in username/password), got {value!r}"
    return None


def _topic_segment(value: str) -> str | None:
    allowed = set(string.ascii_letters + string.digits + "_-")
    if value and not set(value) <= allowed:
        return f"may contain only letters, digits, '_' and '-', got {value!r}"
    return None


def _topic(value: str) -> str | None:
    if value and (set(value) & set("+#\0") or value.startswith("/") or value.endswith("/") or "//" in value):
        return f"must be a topic without wildcards or empty levels, got {value!r}"
    return None


def _keepalive(value: int) -> str | None:
    if not 5 <= value <= 3600:
        return f"must be between 5 and 3600 seconds, got {value}"
    return None


@dataclass(frozen=True)
class MQTTTLSConfig:
    ca_file: str = _opt("", doc="PEM CA bundle for mqtts://; empty = the system's CAs")
    cert_file: str = _opt("", doc="PEM client certificate (with key_file)")
    key_file: str = _opt("", doc="PEM private key of cert_file")
    insecure: bool = _opt(False, doc="skip the broker's host name check (test brokers only)")


@dataclass(frozen=True)
class MQTTConfig:
    enabled: bool = _opt(False, doc="off by default: no broker connection at all")
    url: str = _opt("mqtt://127.0.0.1:1883", check=_mqtt_url)
    username: str = _opt("")
    password: str = _opt("")
    password_file: str = _opt("", doc="file whose first line is the password (instead of password)")
    client_id: str = _opt("", doc="empty = camsvc-<host_id>")
    host_id: str = _opt("", check=_topic_segment, doc="empty = this host's name, letters/digits/_/- only")
    base_topic: str = _opt("", check=_topic, doc="empty = camsvc/<host_id>")
    protocol: str = _opt("3.1.1", choices=("3.1.1", "5"))
    qos: int = _opt(1, choices=(0, 1, 2))
    keepalive: int = _opt(30, check=_keepalive)
    reconnect_min: float = _opt(1.0, check=_positive)
    reconnect_max: float = _opt(60.0, check=_positive)
    queue_size: int = _opt(1000, check=_positive, doc="events kept while disconnected; older ones are dropped")
    state_interval: float = _opt(60.0, check=_positive, doc="seconds between refreshes of storage/MediaMTX state")
    snapshot_interval: float = _opt(
        0.0, check=_non_negative, doc="publish a snapshot per camera every N s; 0 = on request"
    )
    ha_discovery: bool = _opt(True)
    ha_prefix: str = _opt("homeassistant", check=_topic)
    commands: bool = _opt(False, doc="accept commands on <base>/command and the Home Assistant topics")
    command_role: str = _opt("operator", choices=("viewer", "operator", "admin"))
    tls: MQTTTLSConfig = field(default_factory=MQTTTLSConfig)


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    mediamtx: MediaMTXConfig = field(default_factory=MediaMTXConfig)
    discovery: DiscoveryConfig = field(default_factory=DiscoveryConfig)
    controls: ControlsConfig = field(default_factory=ControlsConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    recording: RecordingConfig = field(default_factory=RecordingConfig)
    snapshots: SnapshotsConfig = field(default_factory=SnapshotsConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    mqtt: MQTTConfig = field(default_factory=MQTTConfig)

    @property
    def is_loopback(self) -> bool:
        """True when the server listens on loopback addresses only."""
        return is_loopback_host(self.server.host)


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- loading ----------------------------------------------------------------

_TYPE_NAMES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list"}


def _coerce(path: str, expected: type, value: Any) -> Any:
    if expected is bool:
        if isinstance(value, bool):
            return value
    elif expected is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif expected is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif expected is str:
        if isinstance(value, str):
            return value
    elif expected is list:
        if isinstance(value, list):
            for i, item in enumerate(value):
                if not isinstance(item, str):
                    raise ConfigError(f"{path}[{i}]", f"must be a string, got {item!r}")
            return list(value)
    shown = f"{_json_kind(value)} (value not shown: secret)" if path in SECRET_KEYS else repr(value)
    raise ConfigError(path, f"must be {_TYPE_NAMES[expected]}, got {shown}")


def _json_kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", bool: "a boolean", int: "an integer", float: "a number"}.get(
        type(value), type(value).__name__
    )


def _build(cls: type, data: Any, path: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(path, f"must be a mapping of keys, got {data!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in known:
            where = f"{path}.{key}" if path else str(key)
            allowed = ", ".join(sorted(known))
            raise ConfigError(where, f"unknown key (allowed here: {allowed})")
    values = {}
    for name, f in known.items():
        where = f"{path}.{name}" if path else name
        expected = hints[name]
        if dataclasses.is_dataclass(expected):
            values[name] = _build(expected, data.get(name), where)
            continue
        if name not in data:
            continue
        value = _coerce(where, expected, data[name])
        choices = f.metadata.get("choices")
        if choices and value not in choices:
            raise ConfigError(where, f"must be one of {', '.join(map(str, choices))}, got {value!r}")
        check = f.metadata.get("check")
        if check is not None:
            problem = check(value)
            if problem:
                raise ConfigError(where, problem)
        values[name] = value
    return cls(**values)


#: Keys whose values are never shown in an error message.
SECRET_KEYS = frozenset({"mediamtx.api_pass"})

_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


def _env_value(path: str, expected: Any, text: str) -> Any:
    """One override's text as the schema's type for ``path`` (never YAML for a string)."""
    shown = "(value not shown: secret)" if path in SECRET_KEYS else repr(text)
    if expected is str:
        return text
    stripped = text.strip()
    if expected is bool:
        if stripped.lower() in _TRUE:
            return True
        if stripped.lower() in _FALSE:
            return False
        raise ConfigError(path, f"must be a boolean (true/false, yes/no, on/off, 1/0), got {shown}")
    if expected is int:
        if stripped.lstrip("+-").isdigit() and stripped.isascii():
            return int(stripped)
        raise ConfigError(path, f"must be an integer, got {shown}")
    if expected is float:
        try:
            value = float(stripped)
        except ValueError:
            raise ConfigError(path, f"must be a number, got {shown}") from None
        if not math.isfinite(value):
            raise ConfigError(path, f"must be a finite number, got {shown}")
        return value
    if expected is list:
        if stripped.startswith("["):
            # A flow sequence, as in the file: YAML only here, for lists.
            value, error = _safe_load(stripped)
            if error is not None:
                problem = getattr(error, "problem", None) or "not YAML"
                raise ConfigError(path, f"is not a valid list ([a, b] or a,b): {problem}") from None
            if not isinstance(value, list):
                raise ConfigError(path, "is not a valid list ([a, b] or a,b)")
            return value
        return [item.strip() for item in stripped.split(",") if item.strip()]
    raise ConfigError(path, "cannot be set from the environment")  # pragma: no cover - every leaf type is above


def _apply_env(data: dict, environ: Mapping[str, str]) -> dict:
    """Overlay ``CAMSVC_A__B=value`` variables onto the raw config mapping.

    The value is converted to the type the schema declares for that key: a
    string key takes the text as it is, an integer key a decimal integer, a
    boolean key true/false/yes/no/on/off/1/0, a list key a comma-separated
    list or a YAML flow sequence (``[a, b]``).
    """
    merged = _deep_copy(data)
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or "__" not in name[len(ENV_PREFIX) :]:
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        if not all(parts):
            raise ConfigError(name, "malformed override variable name")
        cls: Any = Config
        node = merged
        for i, part in enumerate(parts):
            where = ".".join(parts[: i + 1])
            if not dataclasses.is_dataclass(cls):
                raise ConfigError(".".join(parts[:i]), "is not a section")
            hints = typing.get_type_hints(cls)
            if part not in hints:
                raise ConfigError(where, f"unknown key (allowed here: {', '.join(sorted(hints))})")
            cls = hints[part]
            if i == len(parts) - 1:
                if dataclasses.is_dataclass(cls):
                    raise ConfigError(where, "is a section, not a value")
                node[part] = _env_value(where, cls, environ[name])
                break
            if dataclasses.is_dataclass(cls):
                child = node.get(part)
                if child is None:
                    child = node[part] = {}
                elif not isinstance(child, dict):
                    raise ConfigError(where, "is not a section")
                node = child
    return merged


def _deep_copy(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _deep_copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return list(data)
    return data


def parse_config_dict(data: Mapping | None, environ: Mapping[str, str] | None = None) -> Config:
    """Validate a raw mapping (as from YAML) and return a :class:`Config`."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError("", f"the configuration must be a mapping of sections, got {type(data).__name__}")
    for key in data:
        if not isinstance(key, str):
            raise ConfigError(str(key), "section names must be strings")
    raw = dict(data)
    if environ is not None:
        raw = _apply_env(raw, environ)
    config = _build(Config, raw, "")
    config = _derive_paths(config)
    _check_combinations(config)
    return config


def _derive_paths(config: Config) -> Config:
    """Files that live in the state directory unless configured elsewhere."""
    auth = config.auth
    state = config.storage.state_dir
    if auth.jwt_secret_file and auth.api_keys_file:
        return config
    auth = dataclasses.replace(
        auth,
        jwt_secret_file=auth.jwt_secret_file or os.path.join(state, "jwt_secret"),
        api_keys_file=auth.api_keys_file or os.path.join(state, "api_keys.json"),
    )
    return dataclasses.replace(config, auth=auth)


def _check_combinations(config: Config) -> None:
    """Rules that involve more than one key."""
    # With an explicit server.endpoint the host says nothing about where it listens:
    # the listener checks the address it actually bound (camsvc.server.listener).
    if (
        not config.auth.required
        and not config.server.endpoint
        and not config.is_loopback
        and not config.auth.allow_insecure_bind
    ):
        raise ConfigError(
            "auth.required",
            f"false is only allowed when server.host is a loopback address (it is {config.server.host!r}); "
            "set auth.allow_insecure_bind: true to override (development only)",
        )
    if bool(config.server.tls.cert) != bool(config.server.tls.key):
        raise ConfigError("server.tls", "cert and key must be set together")
    if config.storage.critical_free_percent > config.storage.warn_free_percent:
        raise ConfigError("storage.critical_free_percent", "must not exceed storage.warn_free_percent")
    mqtt = config.mqtt
    if mqtt.password and mqtt.password_file:
        raise ConfigError("mqtt.password_file", "set either mqtt.password or mqtt.password_file, not both")
    if bool(mqtt.tls.cert_file) != bool(mqtt.tls.key_file):
        raise ConfigError("mqtt.tls", "cert_file and key_file must be set together")
    if mqtt.reconnect_min > mqtt.reconnect_max:
        raise ConfigError("mqtt.reconnect_min", "must not exceed mqtt.reconnect_max")


class _WithoutLibYAML:
    """A meta-path finder that makes PyYAML's C extension look not built (its pure-Python
    ``SafeLoader`` is what ``safe_load`` uses anyway).  A single-phase C extension is never
    freed once imported, and it would keep the rest of PyYAML alive with it."""

    NAMES = ("yaml._yaml", "_yaml")

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name in self.NAMES:
            raise ModuleNotFoundError(f"{name} is not loaded: camsvc parses with the pure-Python SafeLoader", name=name)
        return None


def _safe_load(text: str) -> tuple[Any, Exception | None]:
    """``yaml.safe_load(text)`` as ``(data, None)``, or ``(None, the YAMLError)``.

    When PyYAML was not loaded before, it is imported without its C extension and unloaded
    again afterwards (its modules dropped from ``sys.modules`` and collected), so that its
    memory serves what the service allocates next instead of staying resident.  A process that
    had imported ``yaml`` itself keeps it as it was.
    """
    import sys

    loaded = "yaml" in sys.modules
    finder = None
    if not loaded:
        finder = _WithoutLibYAML()
        sys.meta_path.insert(0, finder)
    try:
        import yaml

        try:
            return yaml.safe_load(text), None
        except yaml.YAMLError as exc:
            return None, exc
    finally:
        if finder is not None:
            sys.meta_path.remove(finder)
            yaml = None  # noqa: F841 - drop this frame's reference before collecting
            for name in [m for m in sys.modules if m == "yaml" or m.startswith("yaml.")]:
                del sys.modules[name]
            import gc

            gc.collect()


def load_config(path: str | None, environ: Mapping[str, str] | None = None) -> Config:
    """Read ``path`` (None: defaults only), apply ``environ`` overrides, validate."""
    data: Any = {}
    if path is not None:
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except OSError as exc:
            raise ConfigError("", f"cannot read config file {path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError("", f"config file {path} is not UTF-8 text: {exc}") from None
        data, error = _safe_load(text)
        if error is not None:
            mark = getattr(error, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(error, "problem", None) or str(error)
            raise ConfigError("", f"config file {path} is not valid YAML{where}: {problem}") from None
    return parse_config_dict(data, os.environ if environ is None else environ)


def to_dict(config: Any) -> dict:
    """The configuration as plain data (for logs and get_server_info); secrets masked."""
    out = dataclasses.asdict(config)
    if "mediamtx" in out and out["mediamtx"].get("api_pass"):
        out["mediamtx"]["api_pass"] = "***"
    if "mqtt" in out and out["mqtt"].get("password"):
        out["mqtt"]["password"] = "***"
    return out
