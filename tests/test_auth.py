"""camsvc.auth, synchronously: tokens, API keys, files, failed-attempt limits, download tokens.

Time is a twisted Clock set to the wall clock, so token times (exp, nbf, iat)
are realistic and the tests move them with ``clock.advance``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import stat
import time

import jwt
import pytest
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.task import Clock

from camsvc.auth.authenticator import SWEEP_INTERVAL, Authenticator
from camsvc.auth.keystore import (
    KEY_PREFIX,
    AuthSetupError,
    KeyStore,
    load_or_create_secret,
    new_secret,
    parse_key,
    write_private,
)
from camsvc.auth.limiter import FailureLimiter
from camsvc.auth.tokens import AuthError
from camsvc.common.addresses import client_address, parse_networks, peer_address, peer_string
from camsvc.config import parse_config_dict
from camsvc.server.rpc import Role
from camsvc.server.session import Session


@pytest.fixture
def clock():
    c = Clock()
    c.advance(time.time())
    return c


@pytest.fixture
def auth_config(tmp_path):
    return parse_config_dict(
        {
            "auth": {
                "jwt_secret_file": str(tmp_path / "state" / "jwt_secret"),
                "api_keys_file": str(tmp_path / "state" / "api_keys.json"),
                "max_failed_attempts": 3,
                "failed_attempts_window": 60,
            }
        }
    ).auth


@pytest.fixture
def auth(auth_config, clock):
    a = Authenticator(auth_config, clock)
    a.load()
    return a


def sign(claims: dict, key: bytes, alg: str = "HS256", headers: dict | None = None) -> str:
    return jwt.encode(claims, key, algorithm=alg, headers=headers)


def claims(clock, **over):
    now = int(clock.seconds())
    out = {"sub": "alice", "role": "operator", "iat": now, "exp": now + 600}
    out.update(over)
    return {k: v for k, v in out.items() if v is not None}


def refused(auth, token) -> str:
    with pytest.raises(AuthError) as info:
        auth.check(token)
    return info.value.reason


# -- the secret file ----------------------------------------------------------------


def test_secret_is_generated_private_and_reused(tmp_path):
    path = tmp_path / "deep" / "dir" / "jwt_secret"
    secret = load_or_create_secret(str(path))
    assert len(secret) == 64 and int(secret, 16) >= 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load_or_create_secret(str(path)) == secret
    assert [p.name for p in path.parent.iterdir()] == ["jwt_secret"]  # no temp file left


def test_exclusive_create_never_overwrites(tmp_path):
    path = tmp_path / "jwt_secret"
    path.write_bytes(b"x" * 64)
    with pytest.raises(FileExistsError):
        write_private(str(path), b"y" * 64, exclusive=True)
    assert path.read_bytes() == b"x" * 64
    assert [p.name for p in tmp_path.iterdir()] == ["jwt_secret"]


def test_short_or_unreadable_secret_stops_startup(tmp_path):
    path = tmp_path / "jwt_secret"
    path.write_bytes(b"short\n")
    with pytest.raises(AuthSetupError, match="too short"):
        load_or_create_secret(str(path))
    blocked = tmp_path / "file"
    blocked.write_text("")
    with pytest.raises(AuthSetupError, match="cannot read"):
        load_or_create_secret(str(blocked / "jwt_secret"))
    readonly = tmp_path / "ro"
    readonly.mkdir(mode=0o500)
    if os.geteuid() != 0:  # root writes anywhere
        with pytest.raises(AuthSetupError, match="cannot create"):
            load_or_create_secret(str(readonly / "jwt_secret"))
    # procfs refuses new files even to root
    with pytest.raises(AuthSetupError, match="cannot create the JWT secret file /proc/"):
        load_or_create_secret("/proc/camsvc-no-such-dir/jwt_secret")


def test_a_secret_created_concurrently_is_used(tmp_path, monkeypatch):
    """camsvc-admin creates the secret between our read and our exclusive create: theirs wins."""
    from camsvc.auth import keystore

    path = tmp_path / "jwt_secret"
    theirs = new_secret()

    def racing_write(target, data, *, exclusive=False):
        write_private(target, theirs + b"\n", exclusive=True)  # the other process was first
        raise FileExistsError(17, "File exists", target)

    monkeypatch.setattr(keystore, "write_private", racing_write)
    assert load_or_create_secret(str(path)) == theirs


def test_privileged_start_reports_a_bad_secret_and_exits(tmp_path, clock, capsys):
    (tmp_path / "jwt_secret").write_text("short")
    cfg = parse_config_dict({"auth": {"jwt_secret_file": str(tmp_path / "jwt_secret")}}).auth
    with pytest.raises(SystemExit) as info:
        Authenticator(cfg, clock).privilegedStartService()
    assert info.value.code == 1
    assert "too short" in capsys.readouterr().err


# -- JWTs ------------------------------------------------------------------------------


def test_valid_jwt(auth, clock):
    cred = auth.check(sign(claims(clock), auth.secret))
    assert (cred.role, cred.subject, cred.method) == (Role.OPERATOR, "alice", "jwt")
    assert cred.expires_at == int(clock.seconds()) + 600


def test_user_id_claim_is_accepted_as_subject(auth, clock):
    cred = auth.check(sign(claims(clock, sub=None, user_id=42), auth.secret))
    assert cred.subject == "42"


def test_minted_token_round_trip(auth, clock):
    token = auth.mint_token(Role.ADMIN, "ops", 60)
    cred = auth.check(token)
    assert cred.role is Role.ADMIN and cred.subject == "ops"
    clock.advance(61)
    assert refused(auth, token) == "expired"


def test_wrong_signature(auth, clock):
    assert refused(auth, sign(claims(clock), b"another secret of decent length!!")) == "bad_signature"


def test_alg_none_is_refused(auth, clock):
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "JWT"}).encode()).rstrip(b"=")
    body = base64.urlsafe_b64encode(json.dumps(claims(clock, role="admin")).encode()).rstrip(b"=")
    assert refused(auth, f"{header.decode()}.{body.decode()}.") in ("bad_algorithm", "malformed")


def test_other_hmac_algorithms_are_refused(auth, clock):
    assert refused(auth, sign(claims(clock), auth.secret, alg="HS512")) == "bad_algorithm"


def test_hs256_header_with_forged_alg_confusion(auth, clock):
    # A token claiming RS256 but HMAC-signed with the secret (key confusion) is refused.
    header = base64.urlsafe_b64encode(json.dumps({"alg": "RS256", "typ": "JWT"}).encode()).rstrip(b"=")
    body = base64.urlsafe_b64encode(json.dumps(claims(clock)).encode()).rstrip(b"=")
    signing_input = header + b"." + body
    sig = base64.urlsafe_b64encode(hmac.new(auth.secret, signing_input, hashlib.sha256).digest()).rstrip(b"=")
    assert refused(auth, (signing_input + b"." + sig).decode()) == "bad_algorithm"


def test_expired_and_not_yet_valid(auth, clock):
    now = int(clock.seconds())
    assert refused(auth, sign(claims(clock, exp=now - 1), auth.secret)) == "expired"
    assert refused(auth, sign(claims(clock, exp=now), auth.secret)) == "expired"
    assert refused(auth, sign(claims(clock, nbf=now + 60), auth.secret)) == "not_yet_valid"
    assert refused(auth, sign(claims(clock, iat=now + 60), auth.secret)) == "not_yet_valid"
    # Small skew (a minting host a few seconds ahead) is tolerated.
    assert auth.check(sign(claims(clock, nbf=now + 3, iat=now + 3), auth.secret)).role is Role.OPERATOR


@pytest.mark.parametrize(
    "over, reason",
    [
        ({"role": "root"}, "bad_role"),
        ({"role": "none"}, "bad_role"),
        ({"role": ["admin"]}, "bad_role"),
        ({"role": None}, "missing_claim"),
        ({"exp": None}, "missing_claim"),
        ({"iat": None}, "missing_claim"),
        ({"sub": None}, "missing_claim"),
        ({"sub": ""}, "missing_claim"),
    ],
)
def test_wrong_or_missing_claims(auth, clock, over, reason):
    assert refused(auth, sign(claims(clock, **over), auth.secret)) == reason


def test_non_numeric_times_are_refused(auth, clock):
    # PyJWT itself refuses a non-integer exp/iat; either way the token is refused.
    assert refused(auth, sign(claims(clock, exp="tomorrow"), auth.secret)) in ("bad_claim", "malformed")


@pytest.mark.parametrize(
    "token",
    ["", "garbage", "a.b.c", "....", "eyJ.eyJ.sig", "x" * 5000, "\x00\x01", "ключ.ключ.ключ", 42, None],
)
def test_garbage_tokens(auth, token):
    with pytest.raises(AuthError):
        auth.check(token)


def test_download_token_is_not_an_api_token(auth):
    assert refused(auth, auth.sign_download("snapshots", "a.jpg")) in ("bad_signature", "bad_audience", "missing_claim")


# -- API keys --------------------------------------------------------------------------


def test_api_key_life_cycle(auth, auth_config, clock):
    store = KeyStore(auth_config.api_keys_file)
    key, record = store.create(Role.VIEWER, "kiosk", clock.seconds())
    assert key.startswith(KEY_PREFIX) and parse_key(key) == record["id"]
    stored = auth_config.api_keys_file and open(auth_config.api_keys_file).read()
    assert key not in stored and key.split("_", 2)[2] not in stored  # only the hash is kept
    assert stat.S_IMODE(os.stat(auth_config.api_keys_file).st_mode) == 0o600
    cred = auth.check(key)  # picked up without a restart
    assert (cred.role, cred.method, cred.key_id, cred.expires_at) == (Role.VIEWER, "api_key", record["id"], None)
    assert "kiosk" in cred.subject
    store.revoke(record["id"], clock.seconds())
    assert refused(auth, key) == "revoked"


def test_unknown_prefix_only_and_tampered_keys(auth, auth_config, clock):
    key, record = KeyStore(auth_config.api_keys_file).create(Role.ADMIN, "", clock.seconds())
    prefix = f"{KEY_PREFIX}{record['id']}"
    assert refused(auth, prefix) == "malformed"
    assert refused(auth, prefix + "_") == "malformed"
    assert refused(auth, KEY_PREFIX) == "malformed"
    assert refused(auth, key[:-1]) == "unknown_key"
    assert refused(auth, key + "A") == "unknown_key"
    assert refused(auth, f"{KEY_PREFIX}{'0' * 16}_{key.split('_', 2)[2]}") == "unknown_key"
    assert refused(auth, f"{KEY_PREFIX}zzzzzzzzzzzzzzzz_abc") == "malformed"
    assert auth.check(key).role is Role.ADMIN


def test_corrupt_key_file_keeps_the_last_good_keys(auth, auth_config, clock):
    key, _ = KeyStore(auth_config.api_keys_file).create(Role.VIEWER, "", clock.seconds())
    assert auth.check(key).role is Role.VIEWER
    with open(auth_config.api_keys_file, "w") as fh:
        fh.write("{not json")
    assert auth.check(key).role is Role.VIEWER
    os.unlink(auth_config.api_keys_file)  # the file is the truth: no file, no keys
    assert refused(auth, key) == "unknown_key"


def test_key_store_refuses_invalid_records(tmp_path):
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"version": 1, "keys": [{"id": "x", "hash": "y", "role": "god"}]}))
    with pytest.raises(AuthSetupError, match="not valid"):
        KeyStore(str(path)).read()
    for bad in ([{"id": "x", "role": "viewer"}], ["a string"], [{"id": 7, "hash": "y"}]):
        path.write_text(json.dumps({"version": 1, "keys": bad}))
        with pytest.raises(AuthSetupError, match="not valid: a key record lacks id or hash"):
            KeyStore(str(path)).read()
    for bad in ({"version": 1}, {"keys": 3}, []):
        path.write_text(json.dumps(bad))
        with pytest.raises(AuthSetupError, match="not valid"):
            KeyStore(str(path)).read()


def test_an_unreadable_key_file_is_a_setup_error(tmp_path):
    (tmp_path / "keys.json").mkdir()  # a directory where the file should be
    with pytest.raises(AuthSetupError, match="cannot read the API key file .*keys.json: Is a directory"):
        KeyStore(str(tmp_path / "keys.json")).read()


@pytest.mark.parametrize(
    "key",
    [
        "",
        "nope",
        "camsvc_",
        "camsvc_0123456789abcdef",  # no secret part
        "camsvc_0123456789abcdef_",  # empty secret
        "camsvc_0123_secret",  # id too short
        "camsvc_0123456789abcdeg_secret",  # id not hex
        "CAMSVC_0123456789abcdef_secret",
    ],
)
def test_malformed_api_keys_have_no_id(key):
    assert parse_key(key) is None


def test_well_formed_api_key_has_its_id():
    assert parse_key(f"{KEY_PREFIX}0123456789abcdef_s3cret") == "0123456789abcdef"


# -- rotation and live sessions ------------------------------------------------------------


def granted(auth, token) -> Session:
    session = Session("c1", peer="tcp4:127.0.0.1:1", clock=auth.clock)
    cred = auth.check(token)
    session.grant(cred.role, subject=cred.subject, expires_at=cred.expires_at, method=cred.method, session_id="s")
    session.extra["credential"] = cred
    return session


class FakeHub:
    def __init__(self, *sessions):
        self.connections = [type("Conn", (), {"session": s})() for s in sessions]


def test_secret_rotation_invalidates_tokens_and_sessions(auth, auth_config, clock):
    token = auth.mint_token(Role.ADMIN, "ops", 600)
    session = granted(auth, token)
    auth.hub = FakeHub(session)
    write_private(auth_config.jwt_secret_file, new_secret())
    assert refused(auth, token) == "bad_signature"
    auth.sweep()
    assert session.role is None and "credential" not in session.extra
    assert auth.check(auth.mint_token(Role.VIEWER, "new", 60)).role is Role.VIEWER


def test_touching_the_secret_file_does_not_invalidate(auth, auth_config, clock):
    token = auth.mint_token(Role.ADMIN, "ops", 600)
    session = granted(auth, token)
    data = open(auth_config.jwt_secret_file, "rb").read()
    write_private(auth_config.jwt_secret_file, data)
    auth.refresh()
    assert auth.still_valid(session) and auth.check(token).role is Role.ADMIN


def test_revoked_key_ends_its_sessions_by_sweep_and_by_guard(auth, auth_config, clock):
    from camsvc.common.errors import AuthenticationRequired
    from camsvc.server.rpc import Method

    store = KeyStore(auth_config.api_keys_file)
    key1, rec1 = store.create(Role.OPERATOR, "a", clock.seconds())
    key2, _ = store.create(Role.OPERATOR, "b", clock.seconds())
    s1, s2, s_other = granted(auth, key1), granted(auth, key2), granted(auth, key1)
    auth.hub = FakeHub(s1, s2)
    auth.startService()
    try:
        store.revoke(rec1["id"], clock.seconds())
        clock.advance(SWEEP_INTERVAL)
        assert s1.role is None and s2.role is Role.OPERATOR
        # A session the sweeper does not know (no hub) is caught at its next call.
        method = Method(name="take_snapshot", handler=lambda s, p: None, role=Role.OPERATOR)
        with pytest.raises(AuthenticationRequired, match="revoked"):
            auth.revalidate(s_other, method)
    finally:
        auth.stopService()
    assert not clock.getDelayedCalls()


# -- download tokens --------------------------------------------------------------------------


def test_download_tokens_bind_one_file_and_expire(auth, clock):
    token = auth.sign_download("snapshots", "camera0_x.jpg", ttl=60)
    assert auth.verify_download(token, "snapshots", "camera0_x.jpg")
    assert not auth.verify_download(token, "snapshots", "camera0_y.jpg")
    assert not auth.verify_download(token, "recordings", "camera0_x.jpg")
    assert not auth.verify_download(token + "x", "snapshots", "camera0_x.jpg")
    assert not auth.verify_download(auth.mint_token(Role.ADMIN, "a", 60), "snapshots", "camera0_x.jpg")
    clock.advance(61)
    assert not auth.verify_download(token, "snapshots", "camera0_x.jpg")


def test_download_path_quotes_the_name(auth):
    path = auth.download_path("recordings", "a b&c.mp4")
    assert path.startswith("/files/recordings/a%20b%26c.mp4?token=")


# -- failed attempts and client addresses ----------------------------------------------------------


def test_failure_limiter_window(clock):
    limiter = FailureLimiter(3, 60, clock)
    for _ in range(3):
        assert limiter.retry_after("conn:c1", "addr:1.2.3.4") is None
        limiter.record("conn:c1", "addr:1.2.3.4")
    assert limiter.retry_after("conn:c1") == pytest.approx(60)
    assert limiter.retry_after("conn:c2", "addr:1.2.3.4") == pytest.approx(60)
    assert limiter.retry_after("conn:c2", "addr:5.6.7.8") is None
    clock.advance(30)
    assert limiter.retry_after("addr:1.2.3.4") == pytest.approx(30)
    clock.advance(30)
    assert limiter.retry_after("conn:c1", "addr:1.2.3.4") is None


def test_failure_limiter_backs_off_on_failures_while_locked(clock):
    limiter = FailureLimiter(3, 60, clock, max_backoff=900)
    for _ in range(3):
        limiter.record("addr:a")
    waits = [limiter.retry_after("addr:a")]
    for _ in range(6):
        limiter.record("addr:a")
        waits.append(limiter.retry_after("addr:a"))
    assert waits[0] == pytest.approx(60)
    assert waits[1:4] == [pytest.approx(120), pytest.approx(240), pytest.approx(480)]
    assert waits[-1] == pytest.approx(900)  # capped
    clock.advance(901)
    assert limiter.retry_after("addr:a") is None
    limiter.record("addr:a")
    assert limiter.retry_after("addr:a") is None  # the slate is clean again


def test_failure_limiter_memory_is_bounded(clock):
    limiter = FailureLimiter(1, 60, clock, max_tracked=100)
    for i in range(1000):
        limiter.record(f"addr:{i}")
    assert len(limiter._by_key) == 100
    assert limiter.retry_after("addr:999") is not None


@pytest.mark.parametrize(
    "peer, address",
    [
        ("tcp4:127.0.0.1:5555", "127.0.0.1"),
        ("tcp6:::1:5555", "::1"),
        ("tcp6:2001:db8::7:443", "2001:db8::7"),
        ("unix:/run/x.sock", "unix"),
        ("", ""),
    ],
)
def test_peer_address(peer, address):
    assert peer_address(peer) == address


def test_forwarded_for_only_from_trusted_proxies():
    trusted = parse_networks(["127.0.0.1", "10.0.0.0/8"])
    assert client_address("127.0.0.1", "203.0.113.9", trusted) == "203.0.113.9"
    assert client_address("127.0.0.1", "6.6.6.6, 203.0.113.9, 10.1.1.1", trusted) == "203.0.113.9"
    assert client_address("198.51.100.1", "203.0.113.9", trusted) == "198.51.100.1"
    assert client_address("127.0.0.1", None, trusted) == "127.0.0.1"
    assert client_address("127.0.0.1", "203.0.113.9", []) == "127.0.0.1"


@pytest.mark.parametrize(
    "address, peer",
    [
        (IPv4Address("TCP", "127.0.0.1", 5555), "tcp4:127.0.0.1:5555"),
        (IPv6Address("TCP", "2001:db8::7", 443), "tcp6:2001:db8::7:443"),
        (UNIXAddress(b"/run/x.sock"), "unix:/run/x.sock"),
    ],
)
def test_peer_string_names_an_address_as_autobahn_does_on_every_release(address, peer):
    """Autobahn 21.11's peer2str takes an address, 22.x's a transport: camsvc names it itself."""
    assert peer_string(address) == peer
    assert peer_address(peer_string(address)) == peer_address(peer)
