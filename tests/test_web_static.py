"""The dashboard's files as camsvc serves them: /, /static/..., headers, no listings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from camsvc.server import web
from tests.support.server import ServiceProcess

STATIC = Path(web.STATIC_DIR)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = ServiceProcess(tmp_path_factory.mktemp("web"))
    proc.start()
    yield proc
    proc.stop_cleanly()


def test_index_is_the_dashboard_with_a_strict_policy(server):
    status, body, headers = server.get("/")
    assert status == 200
    assert body == (STATIC / "index.html").read_bytes()
    assert headers["content-type"] == "text/html; charset=utf-8"
    csp = headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert f"ws://127.0.0.1:{server.port}" in csp and f"wss://127.0.0.1:{server.port}" in csp
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["cache-control"] == "no-cache"
    assert headers["last-modified"]


@pytest.mark.parametrize(
    ("name", "ctype"),
    [
        ("app.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("icon.svg", "image/svg+xml"),
    ],
)
def test_assets_are_served_with_their_types(server, name, ctype):
    status, body, headers = server.get(f"/static/{name}")
    assert status == 200 and headers["content-type"] == ctype
    assert body == (STATIC / name).read_bytes()


def test_no_listing_no_escape_and_a_hostile_host_gets_no_socket_source(server):
    assert server.get("/static/")[0] == 404
    assert server.get("/static/nothing.js")[0] == 404
    assert server.get("/static/..%2fweb.py")[0] == 404
    assert server.get("/static/%2e%2e/web.py")[0] == 404
    status, _, headers = server.get("/", headers={"Host": "evil.example'; script-src *"})
    assert status == 200
    assert "ws://" not in headers["content-security-policy"] and "*" not in headers["content-security-policy"]


def test_everything_the_page_loads_is_local():
    html = (STATIC / "index.html").read_text()
    refs = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert refs, html
    for ref in refs:
        assert ref.startswith(("/", "#")) and not ref.startswith("//"), ref
    for name in ("app.js", "style.css"):
        text = (STATIC / name).read_text()
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), f"{name} refers to a remote URL"
    for ref in refs:
        if ref.startswith("/static/"):
            assert (STATIC / ref.removeprefix("/static/")).is_file(), ref


def test_a_missing_dashboard_falls_back_to_text(tmp_path):
    index, static = web.dashboard(str(tmp_path))
    assert isinstance(index, web.Index)
