"""camsvc-admin as a subprocess, against the same config file as a running camsvc."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time

import jwt
import pytest

from tests.support.server import ROOT, ServiceProcess
from tests.support.wsclient import RpcClient


def admin(config_path, *args, env=None) -> subprocess.CompletedProcess:
    environ = dict(os.environ)
    environ["PYTHONPATH"] = str(ROOT) + os.pathsep + environ.get("PYTHONPATH", "")
    environ.update(env or {})
    cmd = [sys.executable, "-m", "camsvc.tools.admin"]
    if config_path is not None:
        cmd += ["--config", str(config_path)]
    return subprocess.run(cmd + list(args), capture_output=True, text=True, env=environ, timeout=30)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = ServiceProcess(tmp_path_factory.mktemp("admin"), {"auth": {"required": True}})
    proc.start()
    yield proc
    proc.stop_cleanly()


def until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_key_create_list_revoke_against_a_running_service(server):
    made = admin(server.config_path, "key", "create", "--role", "operator", "--name", "robot arm")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("camsvc_") and "shown only this once" in made.stderr
    key_id = key.split("_")[1]
    keys_file = server.tmp / "state" / "api_keys.json"
    assert key not in keys_file.read_text() and stat.S_IMODE(keys_file.stat().st_mode) == 0o600

    listed = admin(server.config_path, "key", "list")
    assert listed.returncode == 0 and key_id in listed.stdout and "operator" in listed.stdout
    assert "robot arm" in listed.stdout and "active" in listed.stdout and key not in listed.stdout
    as_json = json.loads(admin(server.config_path, "key", "list", "--json").stdout)
    assert [(k["id"], k["role"], k["revoked_at"]) for k in as_json] == [(key_id, "operator", None)]
    assert all("hash" not in k for k in as_json)

    with RpcClient(server.url) as client:
        assert client.call("authenticate", {"auth_token": key})["role"] == "operator"
        assert client.call("get_status")["status"]
        revoked = admin(server.config_path, "key", "revoke", key_id)
        assert revoked.returncode == 0 and "Revoked" in revoked.stderr
        reply = client.request("get_status")
        assert reply["error"]["code"] == -32001 and reply["error"]["data"]["reason"] == "revoked"
    assert "revoked" in admin(server.config_path, "key", "list").stdout
    again = admin(server.config_path, "key", "revoke", key_id)
    assert again.returncode == 0 and "already revoked" in again.stderr
    unknown = admin(server.config_path, "key", "revoke", "0123456789abcdef")
    assert unknown.returncode == 1 and "no API key with id" in unknown.stderr


def test_token_and_secret_rotation_against_a_running_service(server):
    minted = admin(server.config_path, "token", "--role", "admin", "--subject", "ops", "--lifetime", "120")
    assert minted.returncode == 0, minted.stderr
    token = minted.stdout.strip()
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["sub"] == "ops" and claims["role"] == "admin" and claims["exp"] - claims["iat"] == 120
    with RpcClient(server.url) as client:
        result = client.call("authenticate", {"auth_token": token})
        assert result["role"] == "admin" and result["expires_at"]
        rotated = admin(server.config_path, "secret", "rotate")
        assert rotated.returncode == 0 and "invalid" in rotated.stderr
        # The next call notices the new secret: the session is gone.
        assert client.request("get_status")["error"]["code"] == -32001
        reply = client.request("authenticate", {"auth_token": token})
        assert reply["error"]["data"]["reason"] == "bad_signature"
        fresh = admin(server.config_path, "token", "--role", "viewer").stdout.strip()
        assert client.call("authenticate", {"auth_token": fresh})["role"] == "viewer"


def test_push_only_connection_loses_its_session_after_revocation(server):
    """The sweeper ends sessions of clients that never call (so they stop getting notifications)."""
    key = admin(server.config_path, "key", "create", "--role", "viewer", "--name", "silent").stdout.strip()
    key_id = key.split("_")[1]
    with RpcClient(server.url) as client:
        client.call("authenticate", {"auth_token": key})
        admin(server.config_path, "key", "revoke", key_id)
        until(lambda: f"session of key:{key_id} (silent) ended" in server.log(), timeout=8)
        reply = client.request("get_status")
        # Already unauthenticated before this call (the sweeper did it): plain "required", no "revoked".
        assert reply["error"]["code"] == -32001 and "data" not in reply["error"], reply


def test_usage_and_config_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("server: {port: 99999}\n")
    result = admin(bad, "key", "list")
    assert result.returncode == 78 and "server.port" in result.stderr
    assert admin(None, "key", "create", "--role", "god").returncode == 2
    assert admin(None, "key", "create", "--scope", "files").returncode == 2
    assert admin(None, "key", "create").returncode == 2  # neither --role nor --scope
    assert admin(None).returncode == 2
    assert admin(None, "token", "--role", "admin", "--lifetime", "-5").returncode == 2
    assert admin(None, "secret").returncode == 2


def test_files_are_created_where_the_config_says(tmp_path):
    config = tmp_path / "c.yaml"
    state = tmp_path / "new" / "state"
    config.write_text(f"auth:\n  jwt_secret_file: {state}/jwt_secret\n  api_keys_file: {state}/keys.json\n")
    assert admin(config, "key", "list").returncode == 0  # nothing yet: no file created
    assert not state.exists()
    assert admin(config, "token", "--role", "viewer").returncode == 0
    assert stat.S_IMODE((state / "jwt_secret").stat().st_mode) == 0o600
    assert admin(config, "key", "create", "--role", "admin").returncode == 0
    assert stat.S_IMODE((state / "keys.json").stat().st_mode) == 0o600
    made = admin(config, "key", "create", "--scope", "metrics", "--name", "prometheus")
    assert made.returncode == 0 and "/metrics only" in made.stderr, made.stderr
    listed = admin(config, "key", "list")
    assert "metrics only" in listed.stdout and "prometheus" in listed.stdout, listed.stdout
    (state / "keys.json").write_text("{broken")
    broken = admin(config, "key", "list")
    assert broken.returncode == 1 and "not valid" in broken.stderr


def test_console_script_is_declared():
    assert "camsvc-admin = camsvc.tools.admin:run" in (ROOT / "setup.py").read_text()
