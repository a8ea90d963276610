"""conf/mediamtx.yml, the one MediaMTX fragment: valid for MediaMTX, agreed with camsvc, shipped, documented once.

Checked against MediaMTX v1.20.1's reference configuration (tests/data/mediamtx.yml,
the copy of shared/reference/mediamtx/mediamtx.yml the stand-in also reads):
every key exists there with a value of the same type, the auth entries have the
reference's fields and known actions.  Against camsvc: the fragment's API
address is ``mediamtx.api_url``'s, the record settings are exactly the fields
camsvc sets on its paths (camsvc.mediamtx.desired) with the built-in defaults,
and the API user may use the API from loopback only.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from camsvc.config import load_config
from camsvc.mediamtx.desired import parse_duration, record_path

TOP = Path(__file__).resolve().parent.parent
FRAGMENT_FILE = TOP / "conf" / "mediamtx.yml"
REFERENCE_FILE = TOP / "tests" / "data" / "mediamtx.yml"
LOOPBACK = {"127.0.0.1", "::1"}


@pytest.fixture(scope="module")
def fragment():
    return yaml.safe_load(FRAGMENT_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def reference():
    return yaml.safe_load(REFERENCE_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def defaults():
    return load_config(None, environ={})


def reference_actions() -> set[str]:
    """Every permission action the reference names, in values or its comments."""
    text = REFERENCE_FILE.read_text(encoding="utf-8")
    return set(re.findall(r"action: (\w+)", text))


def same_type(a, b) -> bool:
    if a is None or b is None:  # an empty value ("pass:", "paths:")
        return True
    return isinstance(a, type(b)) or isinstance(b, type(a))


def problems(fragment: dict, reference: dict) -> list[str]:
    """What in ``fragment`` MediaMTX's reference configuration does not know."""
    out = []
    for key, value in fragment.items():
        if key not in reference:
            out.append(f"unknown key {key}")
        elif not same_type(value, reference[key]):
            out.append(f"{key}: {type(value).__name__}, the reference has {type(reference[key]).__name__}")
    for key, value in (fragment.get("pathDefaults") or {}).items():
        ref = reference["pathDefaults"]
        if key not in ref:
            out.append(f"unknown key pathDefaults.{key}")
        elif not same_type(value, ref[key]):
            out.append(f"pathDefaults.{key}: {type(value).__name__}, the reference has {type(ref[key]).__name__}")
    fields = set(reference["authInternalUsers"][0])
    actions = reference_actions()
    for i, user in enumerate(fragment.get("authInternalUsers") or []):
        if set(user) != fields:
            out.append(f"authInternalUsers[{i}] fields {sorted(user)}, the reference has {sorted(fields)}")
        for perm in user.get("permissions") or []:
            if set(perm) - {"action", "path"} or perm.get("action") not in actions:
                out.append(f"authInternalUsers[{i}]: unknown permission {perm}")
    return out


def test_the_reference_is_mediamtx_1_20():
    assert "authInternalUsers" in REFERENCE_FILE.read_text(encoding="utf-8")
    assert {"api", "publish", "read", "playback", "metrics"} <= reference_actions()


def test_every_key_is_mediamtx_s(fragment, reference):
    assert not problems(fragment, reference)


def test_the_check_can_fail(reference):
    bad = {
        "apiAdress": "127.0.0.1:9997",
        "api": "maybe-a-string-is-fine-in-yaml",
        "pathDefaults": {"recordPath": "/x", "recordFormt": "fmp4", "recordDeleteAfter": 0},
        "authInternalUsers": [{"user": "camsvc", "pass": "x", "permissions": [{"action": "admin"}]}],
    }
    found = problems(bad, reference)
    assert any("apiAdress" in p for p in found)
    assert any("recordFormt" in p for p in found)
    assert any("recordDeleteAfter" in p for p in found)  # int, the reference has a string
    assert any("fields" in p for p in found) and any("admin" in p for p in found)


def test_api_on_loopback_at_camsvc_s_api_url(fragment, defaults):
    assert fragment["api"] is True
    host, _, port = fragment["apiAddress"].rpartition(":")
    assert host in LOOPBACK
    url = urlsplit(defaults.mediamtx.api_url)
    assert (url.hostname, url.port) == (host, int(port))


def test_a_camsvc_user_with_the_api_permission_from_loopback_only(fragment):
    assert fragment["authMethod"] == "internal"
    api_users = [u for u in fragment["authInternalUsers"] if {"action": "api"} in u["permissions"]]
    assert [u["user"] for u in api_users] == ["camsvc"]
    camsvc = api_users[0]
    assert camsvc["pass"] and set(camsvc["ips"]) <= LOOPBACK and camsvc["ips"]
    # Nobody else may use the API, read metrics or profile, from anywhere.
    for user in fragment["authInternalUsers"]:
        if user is not camsvc:
            assert not {p["action"] for p in user["permissions"]} & {"api", "metrics", "pprof"}
    # The publishers MediaMTX starts itself publish from loopback only.
    publishers = [u for u in fragment["authInternalUsers"] if {"action": "publish"} in u["permissions"]]
    assert publishers and all(u["ips"] and set(u["ips"]) <= LOOPBACK for u in publishers)


def test_record_settings_are_what_camsvc_sets_on_its_paths(fragment, defaults):
    pd = fragment["pathDefaults"]
    assert pd["recordPath"] == record_path(defaults.storage.recordings_dir)
    assert pd["recordPath"].startswith(defaults.storage.recordings_dir.rstrip("/") + "/")
    assert pd["recordFormat"] == defaults.recording.format
    assert parse_duration(pd["recordSegmentDuration"]) == defaults.recording.segment_duration
    assert parse_duration(pd["recordDeleteAfter"]) == 0
    assert fragment["paths"] is None  # no static camera paths


def test_the_package_ships_it_under_usr_share_camsvc():
    install = (TOP / "debian" / "camsvc.install").read_text(encoding="utf-8").split("\n")
    assert "conf/mediamtx.yml usr/share/camsvc/" in install


def test_the_documentation_has_exactly_this_version():
    body = FRAGMENT_FILE.read_text(encoding="utf-8")
    docs = (TOP / "docs" / "mediamtx.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", docs, re.S)
    assert body in blocks, "docs/mediamtx.md must show conf/mediamtx.yml verbatim"
    for page in sorted((TOP / "docs").glob("*.md")) + [TOP / "README.md"]:
        text = page.read_text(encoding="utf-8")
        copies = text.count("authInternalUsers:")
        assert copies == (1 if page.name == "mediamtx.md" else 0), f"{page.name} has its own mediamtx.yml fragment"
