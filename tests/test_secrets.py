"""No secret ever reaches the logs (or /metrics).

A scenario runs with known secrets in every place they can appear — a JWT and an
API key sent by clients (authenticate, request params, method names, HTTP headers),
MediaMTX's api_pass (requests to a MediaMTX that refuses them, a reload that changes
it) — and the whole log output is searched for them.  To cover a new place a secret
can travel, add a step to the scenario; to cover a new secret, add it to SECRETS.
"""

from __future__ import annotations

import base64
import json
import signal
import time
import urllib.request

import pytest_twisted
import yaml
from twisted.internet import reactor
from twisted.internet.task import deferLater

from camsvc.config import parse_config_dict
from camsvc.tap import build
from tests.support.logcapture import captured_logs
from tests.support.server import ServiceProcess, free_port
from tests.support.wsclient import RpcClient
from tests.test_logs import check_context, read_json_log


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


JWT = ".".join(
    [_b64({"alg": "HS256", "typ": "JWT"}), _b64({"sub": "tester", "role": "admin", "exp": 4102444800}), "c2lnbmF0dXJl"]
)
SECRETS = {
    "jwt": JWT,
    "api_key": "ck_live_7QnV2p9XzL4rT8wYb3Ks",
    "mediamtx_api_pass": "Mtx-pass-4f9d2c7e",
    "mediamtx_api_pass_reloaded": "Mtx-pass-reloaded-91ab",
}


def assert_no_secret(text: str, where: str) -> None:
    found = [name for name, value in SECRETS.items() if value in text]
    assert not found, f"secrets {found} appear in {where}"


def test_no_secret_in_the_logs_of_a_service_run(tmp_path):
    proc = ServiceProcess(
        tmp_path,
        {
            "logging": {"level": "debug", "format": "json"},
            "mediamtx": {
                "enabled": True,
                "api_url": f"http://127.0.0.1:{free_port()}",  # nothing listens: every request fails
                "api_user": "camsvc",
                "api_pass": SECRETS["mediamtx_api_pass"],
                "health_interval": 0.2,
                "request_timeout": 0.5,
            },
        },
    ).start()
    try:
        headers = {"Authorization": f"Bearer {JWT}", "X-API-Key": SECRETS["api_key"]}
        with RpcClient(proc.url, additional_headers=headers) as client:
            methods = client.call("get_server_info")["methods"]
            if "authenticate" in methods:  # the security component: wrong and right-looking credentials
                for token in (JWT, SECRETS["api_key"], JWT + "x"):
                    client.request("authenticate", {"auth_token": token})
            client.request("ping", {"auth_token": JWT})  # unknown parameter
            client.request(SECRETS["api_key"])  # a secret as the method name
            client.send_raw(f'{{"jsonrpc": "2.0", "method": "ping", "params": "{JWT}", "id": 9}}')
            client.recv_json()
            client.send_raw(f"not json {SECRETS['api_key']}")
            client.recv_json()
        for path in ("/metrics", "/health/ready", f"/files/recordings/x?token={JWT}"):
            proc.get(path, headers=headers)
        request = urllib.request.Request(proc.http + "/metrics")
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert_no_secret(resp.read().decode(), "/metrics")
        # The service keeps failing to reach MediaMTX with the password for a while.
        deadline = time.monotonic() + 10
        while "MediaMTX is unavailable" not in proc.log():
            assert time.monotonic() < deadline, proc.log()
            time.sleep(0.1)
        # A reload that changes the password names the key, never the values.
        data = yaml.safe_load(proc.config_path.read_text())
        data["mediamtx"]["api_pass"] = SECRETS["mediamtx_api_pass_reloaded"]
        proc.config_path.write_text(yaml.safe_dump(data))
        proc.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "mediamtx.api_pass" not in proc.log():
            assert time.monotonic() < deadline, proc.log()
            time.sleep(0.1)
    finally:
        proc.stop_cleanly()
    assert_no_secret(proc.log(), "the service log")


@pytest_twisted.ensureDeferred
async def test_no_secret_in_the_logs_when_mediamtx_refuses_the_password(tmp_path, mediamtx_standin_factory):
    standin = await mediamtx_standin_factory(user="camsvc", password=SECRETS["mediamtx_api_pass_reloaded"])
    config = parse_config_dict(
        {
            "server": {"host": "127.0.0.1", "endpoint": "tcp:0:interface=127.0.0.1"},
            "auth": {"required": False},
            "mediamtx": {
                "api_url": standin.url,
                "api_user": "camsvc",
                "api_pass": SECRETS["mediamtx_api_pass"],
                "health_interval": 0.1,
            },
            "storage": {"state_dir": str(tmp_path), "recordings_dir": str(tmp_path), "snapshots_dir": str(tmp_path)},
            "discovery": {"enabled": False},
            "logging": {"level": "debug"},
        }
    )
    with captured_logs() as lines:
        app = build(config, reactor)
        app.service.startService()
        try:
            deadline = reactor.seconds() + 10
            while app.mediamtx.monitor.state != "down":
                assert reactor.seconds() < deadline, lines
                await deferLater(reactor, 0.05, lambda: None)
            status = app.status_providers["mediamtx"]()
        finally:
            await app.service.stopService()
    text = "\n".join(lines)
    assert "refused camsvc's credentials" in text
    assert_no_secret(text, "the log")
    assert_no_secret(json.dumps(status, default=str), "get_status")


def test_no_secret_in_the_logs_with_authentication_on(tmp_path):
    """Real credentials (a JWT signed with the service's secret, an API key) used right and wrong."""
    from camsvc.server.rpc import Role
    from tests.support.security import make_key, mint

    state = tmp_path / "state"
    state.mkdir(parents=True, exist_ok=True)
    key = make_key(state / "api_keys.json", Role.ADMIN, "prometheus")
    token = mint(state / "jwt_secret", Role.OPERATOR)
    secrets = {
        "api_key": key,
        "jwt": token,
        "jwt_secret": (state / "jwt_secret").read_text().strip(),
        "forged_jwt": token[:-4] + "AAAA",
    }
    proc = ServiceProcess(
        tmp_path, {"auth": {"required": True}, "logging": {"level": "debug", "format": "json"}}
    ).start()
    try:
        with RpcClient(proc.url) as client:
            assert client.call("authenticate", {"auth_token": token})["role"] == "operator"
            assert client.request("get_metrics")["error"]["code"] == -32003  # operator < admin
            assert client.call("authenticate", {"auth_token": key})["role"] == "admin"
            client.call("get_metrics")
        with RpcClient(proc.url) as client:
            for bad in (secrets["forged_jwt"], key + "x", "k" + key):
                assert "error" in client.request("authenticate", {"auth_token": bad})
        for headers in ({"X-API-Key": key}, {"Authorization": f"Bearer {token}"}, {"X-API-Key": key[:-1]}):
            proc.get("/metrics", headers=headers)
        proc.get(f"/files/recordings/nothing.mp4?token={token}")
    finally:
        proc.stop_cleanly()
    log = proc.log()
    assert "Connection c1 open" in log  # the debug lines were written
    # The security component's lines about clients carry their connection id too.
    records = read_json_log(proc)
    assert any("c2" == r.get("conn_id") and r["level"] in ("warn", "info") for r in records), log
    check_context(records)
    found = [name for name, value in secrets.items() if value and value in log]
    assert not found, f"secrets {found} appear in the service log"
