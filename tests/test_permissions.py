"""The permission matrix: every registered method x {unauthenticated, viewer, operator, admin}.

Generated from the live registry of a fully wired camsvc (``camsvc.tap.build``):
a method registered anywhere appears here automatically, and one missing from
``tests.support.security.EXPECTED_ROLES`` fails the suite until its author
declares the role it must require.  Sessions authenticate through the real
``authenticate`` method with real JWTs.  A refused call gets exactly -32001
(no session) or -32003 (role too low, with ``data.required_role``); an allowed
call gets anything but those two (missing params answer -32602 after the
guards passed; a method that goes on asynchronously passed them too).
"""

from __future__ import annotations

import pytest
from twisted.internet.defer import Deferred

from camsvc.server.rpc import Role
from camsvc.tap import full_registry
from tests.support.security import EXPECTED_ROLES, ROLES, build_app, call, login, new_session

REGISTERED = [m.name for m in full_registry()]


def test_every_registered_method_declares_its_expected_role():
    registry = full_registry()
    unknown = sorted(m.name for m in registry if m.name not in EXPECTED_ROLES)
    assert not unknown, (
        f"methods without a row in tests/support/security.py EXPECTED_ROLES: {unknown} -- "
        "add each with the role it must require"
    )
    wrong = {
        m.name: (m.role.label, EXPECTED_ROLES[m.name].label if EXPECTED_ROLES[m.name] else "none")
        for m in registry
        if (EXPECTED_ROLES[m.name] or Role.NONE) != m.role
    }
    assert not wrong, f"registered role differs from the expected one (registered, expected): {wrong}"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    return build_app(tmp_path_factory.mktemp("matrix"))


@pytest.fixture(scope="module")
def sessions(app):
    return {role: login(app, role) for role in ROLES}


def expected_outcome(method: str, role: Role | None) -> int | None:
    """None: allowed; else the exact error code."""
    needed = EXPECTED_ROLES[method]
    if needed is None:
        return None
    if role is None:
        return -32001
    return None if role >= needed else -32003


CASES = [(m, r) for m in REGISTERED for r in ROLES]


@pytest.mark.parametrize("method, role", CASES, ids=[f"{m}-{r.label if r else 'anonymous'}" for m, r in CASES])
def test_matrix(app, sessions, method, role):
    if method not in EXPECTED_ROLES:
        pytest.fail(f"{method} has no row in EXPECTED_ROLES")
    session = sessions[role]
    if method == "authenticate":
        session = new_session(app)  # a fresh connection, so the shared sessions keep their role
    reply = call(app, session, method, {})
    want = expected_outcome(method, role)
    if isinstance(reply, Deferred):
        reply.cancel()
        assert want is None, f"{method} as {role}: expected {want}, but the call went through to the handler"
        return
    code = reply.get("error", {}).get("code")
    if want is None:
        assert code not in (-32001, -32003), f"{method} as {role}: refused: {reply}"
    else:
        assert code == want, f"{method} as {role}: expected {want}, got {reply}"
        if want == -32003:
            assert reply["error"]["data"]["required_role"] == EXPECTED_ROLES[method].label
            assert reply["error"]["data"]["role"] == role.label


def test_matrix_size_is_reported(app):
    assert len(CASES) == 4 * len(REGISTERED) >= 4 * 5


def test_guards_run_before_params_validation(app, sessions):
    """A refused caller learns nothing about params (no -32602 before the role check)."""
    for method in REGISTERED:
        if EXPECTED_ROLES.get(method) is not None:
            reply = call(app, sessions[None], method, {"no_such_param": 1})
            assert reply["error"]["code"] == -32001, (method, reply)


def test_expired_session_gets_32001_then_nothing_is_allowed(app):
    session = new_session(app)
    token = app.auth.mint_token(Role.ADMIN, "short", 30)
    assert call(app, session, "authenticate", {"auth_token": token})["result"]["role"] == "admin"
    assert "result" in call(app, session, "get_status")
    app.clock.advance(31)
    reply = call(app, session, "get_status")
    assert reply["error"]["code"] == -32001 and "expired" in reply["error"]["message"]
    assert session.role is None
    assert call(app, session, "ping")["result"] == "pong"


def test_session_is_bound_to_its_connection(app):
    admin = login(app, Role.ADMIN)
    other = new_session(app)
    assert "result" in call(app, admin, "get_status")
    assert call(app, other, "get_status")["error"]["code"] == -32001
    assert admin.session_id and other.session_id is None


def test_failed_authenticate_ends_the_previous_session(app):
    session = login(app, Role.OPERATOR, peer="tcp4:10.9.9.9:1")
    reply = call(app, session, "authenticate", {"auth_token": "garbage"})
    assert reply["error"]["code"] == -32001 and reply["error"]["data"]["reason"] == "malformed"
    assert call(app, session, "get_status")["error"]["code"] == -32001


def test_without_auth_every_connection_is_admin(tmp_path):
    app = build_app(tmp_path, auth_required=False)
    session = new_session(app)
    for method in REGISTERED:
        reply = call(app, session, method, {})
        if isinstance(reply, Deferred):
            reply.cancel()
            continue
        assert reply.get("error", {}).get("code") not in (-32001, -32003), (method, reply)
    # A viewer token downgrades the session; its expiry returns to the default (admin), not to nothing.
    token = app.auth.mint_token(Role.VIEWER, "v", 10)
    call(app, session, "authenticate", {"auth_token": token})
    assert session.role is Role.VIEWER
    app.clock.advance(11)
    assert "result" in call(app, session, "get_status") and session.role is Role.ADMIN
    # A failed attempt also returns to admin (development mode stays usable).
    call(app, session, "authenticate", {"auth_token": "nope"})
    assert session.role is Role.ADMIN


class FakeConnection:
    def __init__(self, session):
        self.session = session
        self.received: list[str] = []

    def send_notification(self, text, shared):
        self.received.append(text)
        return True


def test_notifications_reach_authenticated_connections_only(app):
    anonymous = FakeConnection(new_session(app))
    viewer = FakeConnection(login(app, Role.VIEWER))
    expiring = FakeConnection(new_session(app))
    call(app, expiring.session, "authenticate", {"auth_token": app.auth.mint_token(Role.ADMIN, "x", 5)})
    for conn in (anonymous, viewer, expiring):
        app.hub.add(conn)
    try:
        assert app.hub.publish("system_status_update", {"component": "test", "status": "ok"}) == 2
        app.clock.advance(6)
        assert app.hub.publish("system_status_update", {"component": "test", "status": "later"}) == 1
    finally:
        for conn in (anonymous, viewer, expiring):
            app.hub.remove(conn)
    assert anonymous.received == [] and len(viewer.received) == 2 and len(expiring.received) == 1
