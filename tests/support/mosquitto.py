"""A real Mosquitto broker for the tests, and a subscriber that remembers what it saw.

:func:`mosquitto_binary` finds Debian's ``mosquitto`` (``apt-get install
mosquitto``, declared in mk/mqtt.mk): missing, the test is skipped on a
developer's machine and **fails** under ``CI=true``.  :class:`Broker` writes a
configuration (loopback listener on an ephemeral port, optional password file
made with ``mosquitto_passwd``, ACL, TLS listener with a test CA), starts
``mosquitto -c``, waits until it accepts connections, and can be SIGKILLed and
started again on the same port (retained messages are not persisted, so what
reappears after a restart was republished).  :class:`Subscriber` is a paho
client on its own network thread (test side only) keeping every message and
the latest retained payload per topic.  :func:`make_ca` writes a test CA and a
broker certificate for 127.0.0.1/localhost.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import pwd
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest

from tests.support.server import free_port

PAHO_V2 = hasattr(paho, "CallbackAPIVersion")


def mosquitto_binary() -> str:
    """The broker's path; skip (developer machine) or fail (CI=true) when it is not installed."""
    path = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
    if path and shutil.which("mosquitto_passwd"):
        return path
    message = "mosquitto is not installed (apt-get install mosquitto; make deps installs it)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def make_ca(directory: Path) -> dict[str, str]:
    """A test CA and a broker certificate signed by it (SAN 127.0.0.1, localhost); PEM paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)  # noqa: UP017 (Python 3.10)

    def write_key(key: Any, path: Path) -> None:
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        path.chmod(0o600)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "camsvc test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = {"ca": directory / "ca.pem", "cert": directory / "broker.pem", "key": directory / "broker.key"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    write_key(key, paths["key"])
    return {k: str(v) for k, v in paths.items()}


class Broker:
    """One mosquitto process on 127.0.0.1:``port`` (see module docstring)."""

    def __init__(
        self,
        tmp: Path,
        *,
        users: dict[str, str] | None = None,
        acl: str | None = None,
        tls: dict[str, str] | None = None,
    ) -> None:
        self.binary = mosquitto_binary()
        self.tmp = Path(tmp)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.tls = tls
        self.log_path = self.tmp / "mosquitto.log"
        self.proc: subprocess.Popen | None = None
        # As root, mosquitto would switch to the "mosquitto" user, who cannot read the test's files.
        user = pwd.getpwuid(os.getuid()).pw_name
        lines = [
            f"user {user}",
            f"listener {self.port} 127.0.0.1",
            "persistence false",
            f"log_dest file {self.log_path}",
            "log_type all",
        ]
        if tls:
            lines += [f"cafile {tls['ca']}", f"certfile {tls['cert']}", f"keyfile {tls['key']}"]
        if users:
            passwd = self.tmp / "passwd"
            passwd.write_text("")
            for name, password in users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(passwd), name, password], check=True, capture_output=True)
            passwd.chmod(0o600)
            lines += ["allow_anonymous false", f"password_file {passwd}"]
        else:
            lines.append("allow_anonymous true")
        if acl is not None:
            acl_path = self.tmp / "acl"
            acl_path.write_text(acl)
            acl_path.chmod(0o600)
            lines.append(f"acl_file {acl_path}")
        self.config_path = self.tmp / "mosquitto.conf"
        self.config_path.write_text("\n".join(lines) + "\n")

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> "Broker":
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.config_path)], stdout=self._out(), stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}:\n{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"mosquitto did not listen on {self.port}:\n{self.log()}")

    def _out(self):
        return open(self.tmp / "mosquitto.out", "ab")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        text = ""
        for path in (self.tmp / "mosquitto.out", self.log_path):
            try:
                text += path.read_text(errors="replace")
            except OSError:
                pass
        return text


class Subscriber:
    """A test-side MQTT client (paho on its own thread) that remembers every message."""

    def __init__(
        self,
        broker: Broker,
        topics: list[str] | tuple[str, ...] = ("#",),
        *,
        username: str | None = None,
        password: str | None = None,
        client_id: str = "",
        protocol: int = paho.MQTTv311,
    ) -> None:
        self.broker = broker
        self.topics = list(topics)
        self.lock = threading.Condition()
        self.messages: list[tuple[str, bytes, bool]] = []
        self.retained: dict[str, bytes] = {}
        self.latest: dict[str, bytes] = {}
        #: topic -> the MQTT 5 properties of the latest message
        self.properties: dict[str, Any] = {}
        kwargs: dict[str, Any] = {"client_id": client_id or f"test-{os.getpid()}-{id(self)}", "protocol": protocol}
        if PAHO_V2:
            self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, **kwargs)
        else:
            self.client = paho.Client(**kwargs)
        if username:
            self.client.username_pw_set(username, password)
        if broker.tls:
            self.client.tls_set(ca_certs=broker.tls["ca"])
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.connected = threading.Event()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, properties: Any = None) -> None:
        client.subscribe([(t, 1) for t in self.topics])
        self.connected.set()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self.lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))
            self.latest[msg.topic] = bytes(msg.payload)
            self.properties[msg.topic] = getattr(msg, "properties", None)
            if msg.payload:
                self.retained[msg.topic] = bytes(msg.payload)
            else:
                self.retained.pop(msg.topic, None)
            self.lock.notify_all()

    def __enter__(self) -> "Subscriber":
        self.client.connect("127.0.0.1", self.broker.port, keepalive=10)
        self.client.loop_start()
        if not self.connected.wait(10):
            raise AssertionError("test subscriber did not connect")
        return self

    def __exit__(self, *exc: Any) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, topic: str, payload: bytes | str, qos: int = 1, properties: Any = None) -> None:
        info = self.client.publish(topic, payload, qos=qos, properties=properties)
        info.wait_for_publish(10)

    def wait(self, check: Any, timeout: float = 15.0, what: str = "a message") -> Any:
        """Block until ``check(self)`` is truthy (called under the lock); return its value."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                value = check(self)
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = sorted({t for t, _, _ in self.messages})
                    raise AssertionError(f"timed out waiting for {what}; topics seen: {seen}")
                self.lock.wait(min(left, 0.2))

    def wait_payload(self, topic: str, predicate: Any = lambda p: True, timeout: float = 15.0) -> bytes:
        return self.wait(
            lambda s: topic in s.latest and predicate(s.latest[topic]) and s.latest[topic] or None,
            timeout,
            what=f"{topic}",
        )

    def on(self, topic: str) -> list[bytes]:
        with self.lock:
            return [p for t, p, _ in self.messages if t == topic]

    def clear(self) -> None:
        with self.lock:
            self.messages.clear()
            self.latest.clear()
