"""Test tools for authentication and authorisation (test support).

* :data:`EXPECTED_ROLES`: the role every API method must declare (SPEC §5).
  The permission matrix fails on any registered method missing here, so a
  new method cannot ship without its row: add yours.
* :func:`build_app`: a fully wired camsvc App (``camsvc.tap.build``) on a
  ``MemoryReactorClock`` set to the wall clock, auth on, files under a temp dir.
* :func:`call` / :func:`login`: run one request through the engine
  synchronously (a Deferred that does not fire at once is returned as such).
* :func:`make_key` / :func:`auth_config`: credentials for a ServiceProcess.
"""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock

from camsvc.auth.authenticator import Authenticator
from camsvc.auth.keystore import KeyStore
from camsvc.config import parse_config_dict
from camsvc.server.rpc import Role
from camsvc.server.session import Session

#: Method name -> the role it must require (None: open to everyone).
EXPECTED_ROLES: dict[str, Role | None] = {
    "ping": None,
    "authenticate": None,
    "rpc.discover": None,
    "get_server_info": Role.VIEWER,
    "get_status": Role.VIEWER,
    "get_metrics": Role.ADMIN,
    "get_camera_list": Role.VIEWER,
    "get_camera_status": Role.VIEWER,
    "forget_camera": Role.ADMIN,
    "get_camera_capabilities": Role.VIEWER,
    "get_camera_controls": Role.VIEWER,
    "set_camera_controls": Role.OPERATOR,
    "reset_camera_controls": Role.OPERATOR,
    "get_stream_settings": Role.VIEWER,
    "set_stream_settings": Role.OPERATOR,
    "get_streams": Role.VIEWER,
    "take_snapshot": Role.OPERATOR,
    "start_recording": Role.OPERATOR,
    "stop_recording": Role.OPERATOR,
    "list_recordings": Role.VIEWER,
    "list_snapshots": Role.VIEWER,
    "get_recording_info": Role.VIEWER,
    "get_snapshot_info": Role.VIEWER,
    "delete_recording": Role.OPERATOR,
    "delete_snapshot": Role.OPERATOR,
    "get_storage_info": Role.VIEWER,
    "set_retention_policy": Role.ADMIN,
    "cleanup_old_files": Role.ADMIN,
}

ROLES = (None, Role.VIEWER, Role.OPERATOR, Role.ADMIN)


def config_dict(tmp: Path, *, auth_required: bool = True, **sections: dict) -> dict:
    tmp = Path(tmp)
    for sub in ("state", "recordings", "snapshots"):
        (tmp / sub).mkdir(parents=True, exist_ok=True)
    data: dict = {
        "server": {"host": "127.0.0.1", "port": 8002},
        "auth": {
            "required": auth_required,
            "jwt_secret_file": str(tmp / "state" / "jwt_secret"),
            "api_keys_file": str(tmp / "state" / "api_keys.json"),
        },
        "storage": {
            "recordings_dir": str(tmp / "recordings"),
            "snapshots_dir": str(tmp / "snapshots"),
            "state_dir": str(tmp / "state"),
        },
        "discovery": {"enabled": False},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return data


def build_app(tmp: Path, *, auth_required: bool = True, **sections: dict) -> Any:
    from camsvc.tap import build

    reactor = MemoryReactorClock()
    reactor.advance(time.time())
    return build(parse_config_dict(config_dict(tmp, auth_required=auth_required, **sections)), reactor)


_conn_ids = itertools.count(1)


def new_session(app: Any, peer: str = "tcp4:127.0.0.1:40000") -> Session:
    return app.make_session(f"t{next(_conn_ids)}", peer, "127.0.0.1")


def call(app: Any, session: Session, method: str, params: Any = None, req_id: Any = 1) -> Any:
    """The response object, or the pending Deferred when the method did not answer synchronously."""
    request: dict = {"jsonrpc": "2.0", "method": method, "id": req_id}
    if params is not None:
        request["params"] = params
    out = app.engine.handle(session, json.dumps(request))
    if isinstance(out, Deferred):
        results: list = []

        def keep(value: Any) -> Any:
            results.append(value)
            return value

        out.addBoth(keep)
        if not results:
            return out  # still running; it fires with the response text
        out = results[0]
    return json.loads(out)


def token_for(app: Any, role: Role, subject: str = "tester", lifetime: float = 600) -> str:
    return app.auth.mint_token(role, subject, lifetime)


def login(app: Any, role: Role | None, peer: str = "tcp4:127.0.0.1:40000") -> Session:
    """A session authenticated through the real ``authenticate`` method (None: not authenticated)."""
    session = new_session(app, peer)
    if role is not None:
        reply = call(app, session, "authenticate", {"auth_token": token_for(app, role)})
        assert reply["result"]["role"] == role.label, reply
    return session


def make_key(keys_file: str | Path, role: Role, name: str = "") -> str:
    key, _ = KeyStore(str(keys_file)).create(role, name, time.time())
    return key


def mint(secret_file: str | Path, role: Role, subject: str = "tester", lifetime: float = 600) -> str:
    """A JWT signed with the secret in ``secret_file`` (created if missing), as camsvc-admin would."""
    cfg = parse_config_dict({"auth": {"jwt_secret_file": str(secret_file)}}).auth

    class Wall:
        def seconds(self) -> float:
            return time.time()

    auth = Authenticator(cfg, Wall())
    return auth.mint_token(role, subject, lifetime)
