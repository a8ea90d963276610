"""TLS for the whole port: wss:// and https:// with a certificate made for the test."""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from camsvc.server.rpc import Role
from tests.support.security import make_key
from tests.support.server import ServiceProcess
from tests.support.wsclient import RpcClient


def make_certificate(directory) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 and localhost; returns (cert path, key path)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "camsvc test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    return str(cert_path), str(key_path)


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tls")
    cert, key = make_certificate(tmp)
    context = ssl.create_default_context(cafile=cert)
    proc = ServiceProcess(
        tmp, {"auth": {"required": True}, "server": {"tls": {"cert": cert, "key": key}}}, ssl_context=context
    )
    proc.start()
    proc.context = context
    yield proc
    proc.stop_cleanly()


def test_wss_round_trip_with_authentication(tls_server):
    assert tls_server.url.startswith("wss://")
    key = make_key(tls_server.tmp / "state" / "api_keys.json", Role.VIEWER)
    with RpcClient(tls_server.url, ssl=tls_server.context) as client:
        assert client.call("ping") == "pong"
        assert client.call("authenticate", {"auth_token": key})["role"] == "viewer"
        status = client.call("get_status")
        assert status["connections"] == 1


def test_https_health_and_protected_metrics(tls_server):
    status, body, _ = tls_server.get("/health/live")
    assert status == 200 and json.loads(body) == {"status": "alive"}
    assert tls_server.get("/metrics")[0] == 401
    assert "service_identity" not in tls_server.log()  # Twisted warns when it is missing


def test_certificate_is_checked_by_clients(tls_server):
    """A client that does not trust the certificate cannot connect (it is real TLS, verified)."""
    from websockets.sync.client import connect

    with pytest.raises(ssl.SSLCertVerificationError):
        connect(tls_server.url, ssl=ssl.create_default_context(), open_timeout=5)


def test_plain_http_on_the_tls_port_gets_nothing(tls_server):
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", tls_server.port, timeout=5)
    try:
        with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
            conn.request("GET", "/health/live")
            conn.getresponse().read()
    finally:
        conn.close()
