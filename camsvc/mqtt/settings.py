"""The ``mqtt:`` configuration section resolved into what a connection needs.

:func:`resolve` turns the validated :class:`camsvc.config.MQTTConfig` and this
host's name into :class:`Settings`: broker host, port and whether TLS is on
(``mqtt://`` 1883, ``mqtts://`` 8883 by default), the password (read from
``password_file`` when set), the host id (the host name reduced to letters,
digits, ``_`` and ``-``), the client id and the base topic.  Nothing here
touches the network.
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass
from typing import Any

from camsvc.config import ConfigError, MQTTConfig

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


@dataclass(frozen=True)
class Settings:
    host: str
    port: int
    tls: bool
    username: str
    password: str
    client_id: str
    host_id: str
    base_topic: str
    protocol: str
    qos: int
    keepalive: int
    reconnect_min: float
    reconnect_max: float
    queue_size: int
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    insecure: bool = False

    @property
    def broker(self) -> str:
        """``mqtt[s]://host:port`` for logs and status (no credentials)."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    def ssl_context(self) -> ssl.SSLContext | None:
        """The client TLS context (None for ``mqtt://``); raises OSError/SSLError on bad files."""
        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=self.ca_file or None)
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file or None)
        if self.insecure:
            context.check_hostname = False
        return context


def host_id_from(hostname: str) -> str:
    """A topic- and Home-Assistant-safe id from a host name (``box-1.lan`` -> ``box-1``)."""
    short = hostname.split(".", 1)[0] or hostname
    cleaned = re.sub(r"[^A-Za-z0-9_-]", "_", short).strip("_")
    return cleaned or "camsvc"


def split_url(url: str) -> tuple[str, int, bool]:
    """``mqtts://broker:8884`` -> ``("broker", 8884, True)``; ``[::1]`` keeps no brackets."""
    scheme, rest = url.split("://", 1)
    rest = rest.rstrip("/")
    tls = scheme == "mqtts"
    if rest.startswith("["):
        host, _, tail = rest[1:].partition("]")
        port_text = tail[1:] if tail.startswith(":") else ""
    elif rest.count(":") == 1:
        host, port_text = rest.split(":")
    else:
        host, port_text = rest, ""
    if not host:
        raise ConfigError("mqtt.url", f"has no host: {url!r}")
    if port_text:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise ConfigError("mqtt.url", f"has an invalid port: {url!r}")
        port = int(port_text)
    else:
        port = DEFAULT_PORTS[scheme]
    return host, port, tls


def read_password(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.readline().rstrip("\r\n")
    except OSError as exc:
        raise ConfigError("mqtt.password_file", f"cannot read {path}: {exc.strerror or exc}") from None


def resolve(config: MQTTConfig, hostname: str, read: Any = read_password) -> Settings:
    """Settings for ``config`` on the host called ``hostname`` (ConfigError on a bad URL or file)."""
    host, port, tls = split_url(config.url)
    host_id = config.host_id or host_id_from(hostname)
    password = read(config.password_file) if config.password_file else config.password
    return Settings(
        host=host,
        port=port,
        tls=tls,
        username=config.username,
        password=password,
        client_id=config.client_id or f"camsvc-{host_id}",
        host_id=host_id,
        base_topic=config.base_topic or f"camsvc/{host_id}",
        protocol=config.protocol,
        qos=config.qos,
        keepalive=config.keepalive,
        reconnect_min=config.reconnect_min,
        reconnect_max=config.reconnect_max,
        queue_size=config.queue_size,
        ca_file=config.tls.ca_file,
        cert_file=config.tls.cert_file,
        key_file=config.tls.key_file,
        insecure=config.tls.insecure,
    )
