"""The ``authenticate`` method and the request rate limit, through the engine (synchronous)."""

from __future__ import annotations

import pytest
from twisted.logger import globalLogPublisher

from camsvc.auth.keystore import KeyStore
from camsvc.server.limits import RateLimiter
from camsvc.server.rpc import Method, Role
from camsvc.server.session import Session
from tests.support.security import build_app, call, login, new_session


@pytest.fixture
def app(tmp_path):
    return build_app(tmp_path, auth={"max_failed_attempts": 3, "failed_attempts_window": 60})


@pytest.fixture
def logged():
    events: list = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


def text_of(events) -> str:
    from twisted.logger import formatEvent

    return "\n".join(formatEvent(e) for e in events)


def test_authenticate_with_a_jwt(app):
    session = new_session(app)
    token = app.auth.mint_token(Role.OPERATOR, "alice", 600)
    result = call(app, session, "authenticate", {"auth_token": token})["result"]
    assert result["authenticated"] is True and result["role"] == "operator"
    assert result["expires_at"].endswith("Z") and len(result["session_id"]) >= 16
    assert session.subject == "alice" and session.auth_method == "jwt"


def test_authenticate_with_an_api_key_and_revocation(app):
    store = KeyStore(app.config.auth.api_keys_file)
    key, record = store.create(Role.VIEWER, "kiosk", app.clock.seconds())
    session = new_session(app)
    result = call(app, session, "authenticate", {"auth_token": key})["result"]
    assert result["role"] == "viewer" and result["expires_at"] is None
    assert "result" in call(app, session, "get_status")
    store.revoke(record["id"], app.clock.seconds())
    app.clock.advance(1)  # the request path looks at the key file at most every 0.1 s
    reply = call(app, session, "get_status")
    assert reply["error"]["code"] == -32001 and reply["error"]["data"]["reason"] == "revoked"
    assert call(app, session, "authenticate", {"auth_token": key})["error"]["data"]["reason"] == "revoked"


def test_a_metrics_scoped_key_opens_no_session(app):
    store = KeyStore(app.config.auth.api_keys_file)
    key, _ = store.create(Role.VIEWER, "prometheus", app.clock.seconds(), scope="metrics")
    session = new_session(app)
    reply = call(app, session, "authenticate", {"auth_token": key})
    assert reply["error"]["code"] == -32001 and reply["error"]["data"]["reason"] == "scope"
    assert "/metrics only" in reply["error"]["message"]
    assert not session.authenticated
    assert call(app, session, "get_status")["error"]["code"] == -32001
    # Not counted as a failed guess: the limiter is untouched.
    assert app.auth.failures.retry_after(f"conn:{session.id}") is None


def test_failures_are_limited_per_connection_but_valid_credentials_always_work(app, logged):
    """The lockout used to refuse a valid token too (NAT, proxies): now only failures are refused."""
    session = new_session(app, peer="tcp4:192.0.2.1:1000")
    for _ in range(3):
        assert call(app, session, "authenticate", {"auth_token": "camsvc_bad"})["error"]["code"] == -32001
    reply = call(app, session, "authenticate", {"auth_token": "camsvc_bad"})
    assert reply["error"]["code"] == -32002 and 119 <= reply["error"]["data"]["retry_after"] <= 121
    assert "retry in" in reply["error"]["message"]
    good = app.auth.mint_token(Role.ADMIN, "a", 600)
    assert call(app, session, "authenticate", {"auth_token": good})["result"]["role"] == "admin"
    assert "camsvc_bad" not in text_of(logged) and good not in text_of(logged)
    assert "authentication failed" in text_of(logged)


def test_failures_while_locked_back_off(app):
    session = new_session(app, peer="tcp4:192.0.2.9:1000")
    waits = []
    for _ in range(7):
        reply = call(app, session, "authenticate", {"auth_token": "camsvc_bad"})
        if reply["error"]["code"] == -32002:
            waits.append(reply["error"]["data"]["retry_after"])
    assert len(waits) == 4 and waits == sorted(waits) and waits[-1] > waits[0] * 4, waits
    app.clock.advance(waits[-1] + 1)
    assert call(app, session, "authenticate", {"auth_token": "camsvc_bad"})["error"]["code"] == -32001


def test_failures_are_limited_per_address_across_connections(app):
    for _ in range(3):
        s = new_session(app, peer="tcp4:192.0.2.2:1000")
        call(app, s, "authenticate", {"auth_token": "x.y.z"})
    fresh = new_session(app, peer="tcp4:192.0.2.2:2000")
    assert call(app, fresh, "authenticate", {"auth_token": "x.y.z"})["error"]["code"] == -32002
    # Another user behind the same address (NAT) with a valid credential gets in.
    neighbour = new_session(app, peer="tcp4:192.0.2.2:3000")
    token = app.auth.mint_token(Role.VIEWER, "v", 60)
    assert call(app, neighbour, "authenticate", {"auth_token": token})["result"]["role"] == "viewer"
    elsewhere = new_session(app, peer="tcp4:192.0.2.3:2000")
    assert call(app, elsewhere, "authenticate", {"auth_token": "x.y.z"})["error"]["code"] == -32001


def test_forwarded_address_is_used_when_set_by_the_transport(app):
    # ws.py puts the client address (X-Forwarded-For from a trusted proxy) in session.extra.
    for i in range(3):
        s = new_session(app, peer="tcp4:127.0.0.1:1000")
        s.extra["client_address"] = f"198.51.100.{i}"
        call(app, s, "authenticate", {"auth_token": "nope"})
    s = new_session(app, peer="tcp4:127.0.0.1:1000")
    s.extra["client_address"] = "198.51.100.77"
    token = app.auth.mint_token(Role.VIEWER, "v", 60)
    assert call(app, s, "authenticate", {"auth_token": token})["result"]["role"] == "viewer"


@pytest.mark.parametrize("params", [{}, {"auth_token": ""}, {"auth_token": 5}, {"auth_token": "x" * 5000}, [1]])
def test_bad_params_are_32602(app, params):
    assert call(app, new_session(app), "authenticate", params)["error"]["code"] == -32602


# -- rate limit ------------------------------------------------------------------------------


def test_rate_limit_token_bucket():
    from twisted.internet.task import Clock

    clock = Clock()
    guard = RateLimiter(60, clock)
    session = Session("c1", clock=clock)
    method = Method(name="ping", handler=lambda s, p: None, role=Role.NONE)
    for _ in range(60):
        guard(session, method)
    with pytest.raises(Exception) as info:
        guard(session, method)
    assert info.value.code == -32002 and info.value.data["retry_after"] == 1.0
    clock.advance(1)
    guard(session, method)  # one more token after a second
    with pytest.raises(Exception):
        guard(session, method)
    clock.advance(3600)
    for _ in range(60):  # the bucket holds one minute's allowance, no more
        guard(session, method)
    with pytest.raises(Exception):
        guard(session, method)
    other = Session("c2", clock=clock)
    guard(other, method)  # per connection


def test_rate_limit_zero_is_unlimited():
    from twisted.internet.task import Clock

    guard = RateLimiter(0, Clock())
    session = Session("c1")
    for _ in range(10000):
        guard(session, None)


def test_rate_limit_through_the_engine_counts_batch_elements(tmp_path):
    app = build_app(tmp_path, server={"rate_limit_per_minute": 5})
    session = login(app, None)
    import json

    batch = [{"jsonrpc": "2.0", "method": "ping", "id": i} for i in range(7)]
    replies = json.loads(app.engine.handle(session, json.dumps(batch)))
    codes = [r.get("error", {}).get("code") for r in replies]
    assert codes == [None] * 5 + [-32002] * 2
    assert replies[5]["error"]["data"]["limit_per_minute"] == 5
