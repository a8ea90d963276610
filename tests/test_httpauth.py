"""Protected: HTTP authorisation, through a real twisted.web Site in memory (treq's StubTreq)."""

from __future__ import annotations

import json

import pytest
from treq.testing import StubTreq
from twisted.web.resource import Resource

from camsvc.auth.http import Protected, protect
from camsvc.auth.keystore import KeyStore
from camsvc.server.rpc import Role
from tests.support.security import build_app


class Leaf(Resource):
    isLeaf = True

    def render_GET(self, request):
        return b"leaf:" + b"/".join(request.postpath)


class FileLeaf(Resource):
    isLeaf = True

    def __init__(self, kind: bytes):
        super().__init__()
        self.kind = kind

    def render_GET(self, request):
        return b"file:" + self.kind + b"/" + b"/".join(request.postpath)


@pytest.fixture
def app(tmp_path):
    return build_app(tmp_path, auth={"max_failed_attempts": 10}, server={"trusted_proxies": ["127.0.0.1"]})


@pytest.fixture
def client(app):
    root = Resource()
    root.putChild(b"metrics", protect(app, Leaf(), Role.ADMIN))
    files = Resource()
    files.putChild(b"snapshots", FileLeaf(b"snapshots"))
    files.putChild(b"recordings", FileLeaf(b"recordings"))
    root.putChild(b"files", protect(app, files, Role.VIEWER, downloads=True))
    return StubTreq(root)


def get(client, path, headers=None):
    results = []
    d = client.get("http://127.0.0.1" + path, headers=headers or {})
    d.addCallback(lambda r: r.content().addCallback(lambda body: results.append((r, body))))
    client.flush()
    assert results, "no response"
    return results[0]


def status(client, path, headers=None):
    return get(client, path, headers)[0].code


def test_no_credentials_is_401_with_challenge(client):
    response, body = get(client, "/metrics")
    assert response.code == 401
    assert response.headers.getRawHeaders(b"www-authenticate") == [b'Bearer realm="camsvc"']
    assert "authentication required" in json.loads(body)["error"]


def test_bearer_jwt_and_roles(app, client):
    admin = app.auth.mint_token(Role.ADMIN, "a", 60)
    viewer = app.auth.mint_token(Role.VIEWER, "v", 60)
    response, body = get(client, "/metrics", {"Authorization": f"Bearer {admin}"})
    assert (response.code, body) == (200, b"leaf:")
    response, body = get(client, "/metrics", {"Authorization": f"bearer {viewer}"})
    assert response.code == 403 and "admin role" in json.loads(body)["error"]
    assert status(client, "/files/snapshots/a.jpg", {"Authorization": f"Bearer {viewer}"}) == 200


def test_api_key_header_and_bearer_key(app, client):
    store = KeyStore(app.config.auth.api_keys_file)
    key, record = store.create(Role.ADMIN, "prometheus", app.clock.seconds())
    assert status(client, "/metrics", {"X-API-Key": key}) == 200
    assert status(client, "/metrics", {"Authorization": f"Bearer {key}"}) == 200
    store.revoke(record["id"], app.clock.seconds())
    assert status(client, "/metrics", {"X-API-Key": key}) == 401


def test_download_token_opens_exactly_one_file(app, client):
    token = app.auth.sign_download("snapshots", "camera0_1.jpg", ttl=60)
    response, body = get(client, f"/files/snapshots/camera0_1.jpg?token={token}")
    assert (response.code, body) == (200, b"file:snapshots/camera0_1.jpg")
    assert status(client, f"/files/snapshots/camera0_2.jpg?token={token}") == 401
    assert status(client, f"/files/recordings/camera0_1.jpg?token={token}") == 401
    assert status(client, f"/files/snapshots/camera0_1.jpg/x?token={token}") == 401
    assert status(client, f"/metrics?token={token}") == 401  # not a download resource
    app.clock.advance(61)
    assert status(client, f"/files/snapshots/camera0_1.jpg?token={token}") == 401


@pytest.mark.parametrize(
    "path, code",
    [
        ("/files/snapshots/..%2Fstate%2Fjwt_secret", 400),
        ("/files/snapshots/..", 400),
        ("/files/snapshots/.", 400),
        ("/files/snapshots/%2e%2e", 400),
        ("/files/snapshots/a%5C..%5Cb", 400),
        ("/files/snapshots/a%00.jpg", 400),
        ("/files/..%2F..%2Fetc/passwd", 400),
        ("/files/snapshots/", 404),
        ("/files/snapshots", 404),
        ("/files", 404),
        ("/files/snapshots/a/b", 404),
        ("/files/snapshots/%FF%FE", 404),
    ],
)
def test_only_plain_names_reach_the_files_code(app, client, path, code):
    viewer = app.auth.mint_token(Role.VIEWER, "v", 60)
    assert status(client, path, {"Authorization": f"Bearer {viewer}"}) == code
    assert status(client, path) == 401  # and nothing is said to strangers


def test_a_token_signed_for_an_unsafe_name_opens_nothing(app, client):
    token = app.auth.sign_download("snapshots", "../state/jwt_secret", ttl=60)
    assert status(client, f"/files/snapshots/..%2Fstate%2Fjwt_secret?token={token}") in (400, 401)
    assert status(client, f"/files/state/jwt_secret?token={token}") == 401


def test_failed_attempts_are_limited_per_client_address(app, client):
    for _ in range(10):
        assert status(client, "/metrics", {"Authorization": "Bearer nope", "X-Forwarded-For": "198.51.100.7"}) == 401
    response, _ = get(client, "/metrics", {"Authorization": "Bearer nope", "X-Forwarded-For": "198.51.100.7"})
    assert response.code == 429 and int(response.headers.getRawHeaders(b"retry-after")[0]) > 0
    # Valid credentials from the locked address (a NAT, a proxy) always work.
    admin = app.auth.mint_token(Role.ADMIN, "a", 60)
    assert status(client, "/metrics", {"Authorization": f"Bearer {admin}", "X-Forwarded-For": "198.51.100.7"}) == 200
    assert status(client, "/metrics", {"Authorization": f"Bearer {admin}", "X-Forwarded-For": "198.51.100.8"}) == 200


def test_stale_download_links_do_not_lock_anyone_out(app, client):
    """An expired (but authentic) download link used to count as a failed attempt."""
    xff = {"X-Forwarded-For": "198.51.100.20"}
    stale = app.auth.sign_download("snapshots", "camera0_1.jpg", ttl=1)
    app.clock.advance(5)
    for _ in range(30):
        assert status(client, f"/files/snapshots/camera0_1.jpg?token={stale}", xff) == 401
    admin = app.auth.mint_token(Role.ADMIN, "a", 60)
    assert status(client, "/metrics", {"Authorization": "Bearer nope", **xff}) == 401  # not locked
    assert status(client, "/metrics", {"Authorization": f"Bearer {admin}", **xff}) == 200


def test_forged_download_links_are_counted_apart(app, client):
    xff = {"X-Forwarded-For": "198.51.100.21"}
    for _ in range(10):
        assert status(client, "/files/snapshots/camera0_1.jpg?token=forged", xff) == 401
    assert status(client, "/files/snapshots/camera0_1.jpg?token=forged", xff) == 429
    # Bearer/API-key failures are a separate count: this address is not locked there ...
    assert status(client, "/metrics", {"Authorization": "Bearer nope", **xff}) == 401
    # ... and a valid link is still served.
    fresh = app.auth.sign_download("snapshots", "camera0_1.jpg", ttl=60)
    assert status(client, f"/files/snapshots/camera0_1.jpg?token={fresh}", xff) == 200


def test_other_authorization_schemes_are_refused(client):
    assert status(client, "/metrics", {"Authorization": "Basic YWRtaW46YWRtaW4="}) == 401


def test_without_auth_everything_passes(tmp_path):
    app = build_app(tmp_path, auth_required=False)
    root = Resource()
    root.putChild(b"metrics", protect(app, Leaf(), Role.ADMIN))
    assert status(StubTreq(root), "/metrics") == 200


def test_protected_delegates_children(app):
    inner = Resource()
    wrapped = Protected(inner, Role.VIEWER, app.auth)
    wrapped.putChild(b"x", Leaf())
    assert inner.children[b"x"] is not None and wrapped.isLeaf is False
    assert Protected(Leaf(), Role.VIEWER, app.auth).isLeaf is True


def test_the_wired_service_protects_metrics_and_leaves_health_open(app):
    client = StubTreq(app.listener.site.resource)
    assert status(client, "/health/live") == 200
    assert status(client, "/openrpc.json") == 200
    assert status(client, "/metrics") == 401
    viewer = app.auth.mint_token(Role.VIEWER, "v", 60)
    assert status(client, "/metrics", {"Authorization": f"Bearer {viewer}"}) == 403
    admin = app.auth.mint_token(Role.ADMIN, "a", 60)
    response, body = get(client, "/metrics", {"Authorization": f"Bearer {admin}"})
    assert response.code == 200 and b"camsvc_info" in body


def test_a_metrics_scoped_key_reads_metrics_and_nothing_else(app):
    # What a Prometheus scraper holds: camsvc-admin key create --scope metrics.
    client = StubTreq(app.listener.site.resource)
    store = KeyStore(app.config.auth.api_keys_file)
    key, record = store.create(Role.VIEWER, "prometheus", app.clock.seconds(), scope="metrics")
    assert record["scope"] == "metrics"
    response, body = get(client, "/metrics", {"Authorization": f"Bearer {key}"})
    assert response.code == 200 and b"camsvc_info" in body
    assert status(client, "/metrics", {"X-API-Key": key}) == 200
    # A viewer's files are closed to it, although its recorded role is viewer.
    response, body = get(client, "/files/snapshots/a.jpg", {"Authorization": f"Bearer {key}"})
    assert response.code == 403 and "/metrics only" in json.loads(body)["error"]
    # Unscoped keys keep their role rules: a viewer key still cannot scrape.
    viewer_key, _ = store.create(Role.VIEWER, "v", app.clock.seconds())
    assert status(client, "/metrics", {"X-API-Key": viewer_key}) == 403
    store.revoke(record["id"], app.clock.seconds())
    assert status(client, "/metrics", {"X-API-Key": key}) == 401


def test_unknown_scopes_are_refused(app):
    store = KeyStore(app.config.auth.api_keys_file)
    with pytest.raises(ValueError):
        store.create(Role.VIEWER, "x", app.clock.seconds(), scope="files")
