"""Downloads over real HTTP from camsvc under twistd (Range, types, confinement, auth), and the
/files resource alone on a DummyRequest (bad names, refusals, failures, vanished clients)."""

from __future__ import annotations

import http.client
import os

import pytest
from twisted.internet.defer import Deferred, fail
from twisted.web.server import NOT_DONE_YET
from twisted.web.test.requesthelper import DummyRequest

from camsvc.api.http_files import FileResource
from camsvc.media.files import FileStore
from tests.support.logcapture import captured_logs
from tests.support.server import ServiceProcess
from tests.support.wsclient import RpcClient

DATA = bytes(range(256)) * 40  # 10240 bytes
REC = "camera0_2024-03-04_05-06-07-000008.mp4"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("files")
    for sub in ("recordings", "snapshots"):
        (tmp / sub).mkdir()
    (tmp / "recordings" / REC).write_bytes(DATA)
    (tmp / "snapshots" / "camera0_a.jpg").write_bytes(b"\xff\xd8\xff\xe0jpeg")
    (tmp / "snapshots" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (tmp / "outside.mp4").write_bytes(b"secret")
    os.symlink(tmp / "outside.mp4", tmp / "recordings" / "escape.mp4")
    proc = ServiceProcess(tmp).start()
    yield proc
    proc.stop_cleanly()


def request(server, method, path, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read(), resp
    finally:
        conn.close()


def test_listed_download_url_serves_the_file(server):
    with RpcClient(server.url) as client:
        page = client.call("list_recordings")
    (entry,) = page["files"]
    url = entry["download_url"]
    assert url == f"http://127.0.0.1:{server.port}/files/recordings/{REC}"
    status, body, resp = request(server, "GET", url.split(str(server.port), 1)[1])
    assert status == 200 and body == DATA
    assert resp.getheader("content-type") == "video/mp4"
    assert resp.getheader("accept-ranges") == "bytes" and resp.getheader("content-length") == str(len(DATA))


def test_range_requests(server):
    status, body, resp = request(server, "GET", f"/files/recordings/{REC}", {"Range": "bytes=100-199"})
    assert status == 206 and body == DATA[100:200]
    assert resp.getheader("content-range") == f"bytes 100-199/{len(DATA)}"
    status, body, _ = request(server, "GET", f"/files/recordings/{REC}", {"Range": "bytes=-10"})
    assert status == 206 and body == DATA[-10:]
    status, _, resp = request(server, "GET", f"/files/recordings/{REC}", {"Range": "bytes=20000-"})
    assert status == 416 and resp.getheader("content-range") == f"bytes */{len(DATA)}"


def test_head_and_image_types(server):
    status, body, resp = request(server, "HEAD", f"/files/recordings/{REC}")
    assert status == 200 and body == b"" and resp.getheader("content-length") == str(len(DATA))
    assert request(server, "GET", "/files/snapshots/camera0_a.jpg")[2].getheader("content-type") == "image/jpeg"
    status, body, resp = request(server, "GET", "/files/snapshots/b.png")
    assert status == 200 and resp.getheader("content-type") == "image/png" and body.startswith(b"\x89PNG")


@pytest.mark.parametrize(
    "path, expected",
    [
        ("/files", 404),
        ("/files/", 404),
        ("/files/recordings", 404),
        ("/files/recordings/", 404),
        ("/files/other/x.mp4", 404),
        ("/files/recordings/missing.mp4", 404),
        ("/files/recordings/../camsvc.yaml", 404),
        ("/files/recordings/..", 400),
        ("/files/recordings/..%2Fcamsvc.yaml", 400),
        ("/files/recordings/%2e%2e", 400),
        ("/files/recordings/%2Fetc%2Fpasswd", 400),
        ("/files/recordings/x%00.mp4", 400),
        ("/files/recordings/escape.mp4", 400),
        ("/files/recordings/" + "a" * 300 + ".mp4", 400),
        (f"/files/recordings/{REC}/more", 404),
        ("/files/snapshots/" + REC, 400),
        ("/files/recordings/%ff%fe.mp4", 404),
    ],
)
def test_nothing_else_is_served(server, path, expected):
    status, body, resp = request(server, "GET", path)
    assert status == expected, (path, body)
    assert b"secret" not in body and b"auth" not in body.lower().replace(b"authentication", b"")


def test_only_get_and_head(server):
    status, _, resp = request(server, "POST", f"/files/recordings/{REC}")
    assert status == 405 and resp.getheader("allow") == "GET, HEAD"
    status, _, _ = request(server, "DELETE", f"/files/recordings/{REC}")
    assert status == 405
    assert request(server, "GET", f"/files/recordings/{REC}")[0] == 200


def test_downloads_need_authorisation_when_auth_is_required(tmp_path):
    (tmp_path / "recordings").mkdir()
    (tmp_path / "recordings" / REC).write_bytes(DATA)
    proc = ServiceProcess(tmp_path, {"auth": {"required": True}}).start()
    try:
        status, body, resp = request(proc, "GET", f"/files/recordings/{REC}")
        assert status == 401 and resp.getheader("www-authenticate").startswith("Bearer")
        assert DATA[:100] not in body
    finally:
        proc.stop_cleanly()


# -- the resource alone (DummyRequest): bad names, refusals, failures, vanished clients ------


@pytest.fixture
def store(tmp_path):
    for sub in ("recordings", "snapshots"):
        (tmp_path / sub).mkdir()
    (tmp_path / "snapshots" / "a.jpg").write_bytes(b"\xff\xd8jpeg")
    return FileStore(str(tmp_path / "recordings"), str(tmp_path / "snapshots"))


def _get(resource, name: bytes, method: bytes = b"GET") -> DummyRequest:
    request = DummyRequest([name])
    request.method = method
    result = resource.render(request)
    if result is not NOT_DONE_YET:
        request.write(result)
        request.finish()
    return request


def test_a_name_that_is_not_utf8_is_not_found(store):
    request = _get(FileResource(store, "snapshots", lambda *a: True), b"\xff\xfe.jpg")
    assert request.responseCode == 404 and b"".join(request.written) == b'{"error": "not found"}'


def test_refused_downloads_say_how_to_authenticate(store):
    request = _get(FileResource(store, "snapshots", lambda *a: False), b"a.jpg")
    assert request.responseCode == 401 and request.finished
    assert request.responseHeaders.getRawHeaders(b"www-authenticate") == [b'Bearer realm="camsvc"']
    head = _get(FileResource(store, "snapshots", lambda *a: False), b"a.jpg", b"HEAD")
    assert head.responseCode == 401 and head.written == []  # a HEAD answer has no body


def test_a_failing_authoriser_is_a_logged_500(store):
    def broken(request, kind, name):
        return fail(RuntimeError("key store unreadable"))

    with captured_logs() as logs:
        request = _get(FileResource(store, "snapshots", broken), b"a.jpg")
    assert request.responseCode == 500 and b"internal error" in b"".join(request.written) and request.finished
    assert any("Download of snapshots/a.jpg failed" in line and "key store unreadable" in line for line in logs), logs


def test_a_client_gone_before_authorisation_gets_nothing(store):
    pending = Deferred()
    request = _get(FileResource(store, "snapshots", lambda *a: pending), b"a.jpg")
    request._disconnected = True  # the peer went away while the credential was checked
    pending.callback(True)
    assert request.written == [] and not request.finished
    failing = Deferred()
    request = _get(FileResource(store, "snapshots", lambda *a: failing), b"a.jpg")
    request._disconnected = True
    with captured_logs():
        failing.errback(RuntimeError("late"))
    assert request.written == [] and not request.finished


# -- no lstat-then-open race (issue 15) ------------------------------------------------


def _serve_in_process(store, kind, name):
    """Render /files/<kind>/<name> on a DummyRequest (authorised) and return (status, body)."""
    from twisted.web.test.requesthelper import DummyRequest

    from camsvc.api.http_files import FileResource

    resource = FileResource(store, kind, lambda request, kind, name: True)
    request = DummyRequest([name.encode()])
    request.method = b"GET"
    result = resource.render(request)
    if isinstance(result, bytes):
        request.write(result)
        request.finish()
    assert request.finished
    return request.responseCode or 200, b"".join(request.written)


def test_a_symlink_swapped_in_after_the_check_is_never_followed(tmp_path, monkeypatch):
    """The download was checked with lstat, then opened by path (following links):
    a link swapped into the group-writable directory in between served any file."""
    from camsvc.media import files as files_mod
    from camsvc.media.files import RECORDINGS, FileStore

    for sub in ("recordings", "snapshots"):
        (tmp_path / sub).mkdir()
    secret = tmp_path / "jwt_secret"
    secret.write_bytes(b"THE-JWT-SECRET")
    victim = tmp_path / "recordings" / REC
    victim.write_bytes(DATA)
    store = FileStore(str(tmp_path / "recordings"), str(tmp_path / "snapshots"))
    swapped = []

    def swap():
        if not swapped:
            victim.unlink()
            os.symlink(secret, victim)
            swapped.append(True)

    # The attacker wins every race: the swap happens right after any check of the
    # name (the old lookup) and right before any open relative to the directory.
    real_lookup = FileStore.lookup

    def lookup_then_swap(self, kind, name):
        found = real_lookup(self, kind, name)
        swap()
        return found

    real_open = os.open

    def open_after_swap(path, flags, mode=0o777, *, dir_fd=None):
        if dir_fd is not None and path == REC:
            swap()
        return real_open(path, flags, mode, dir_fd=dir_fd)

    monkeypatch.setattr(FileStore, "lookup", lookup_then_swap)
    monkeypatch.setattr(files_mod.os, "open", open_after_swap)
    status, body = _serve_in_process(store, RECORDINGS, REC)
    assert swapped
    assert b"THE-JWT-SECRET" not in body
    assert status in (400, 404), (status, body[:80])


def test_downloads_come_from_the_opened_file(tmp_path):
    """Size and type are taken from the descriptor that is served (fstat), not the path."""
    from camsvc.media.files import RECORDINGS, SNAPSHOTS, FileStore

    for sub in ("recordings", "snapshots"):
        (tmp_path / sub).mkdir()
    (tmp_path / "recordings" / REC).write_bytes(DATA)
    os.mkdir(tmp_path / "snapshots" / "camera0_dir.jpg")
    os.mkfifo(tmp_path / "snapshots" / "camera0_fifo.jpg")
    os.symlink(REC, tmp_path / "recordings" / "camera0_alias.mp4")
    store = FileStore(str(tmp_path / "recordings"), str(tmp_path / "snapshots"))
    assert _serve_in_process(store, RECORDINGS, REC) == (200, DATA)
    assert _serve_in_process(store, SNAPSHOTS, "camera0_dir.jpg")[0] == 404
    assert _serve_in_process(store, SNAPSHOTS, "camera0_fifo.jpg")[0] == 404  # and it did not block
    assert _serve_in_process(store, RECORDINGS, "camera0_alias.mp4")[0] in (400, 404)  # no link is followed
    assert _serve_in_process(store, RECORDINGS, "camera0_missing.mp4")[0] == 404
