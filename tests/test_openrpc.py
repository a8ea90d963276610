"""The committed OpenRPC document matches the code, and documents every method."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from camsvc.server.openrpc import build_document
from camsvc.tap import full_registry
from tests.support.server import ROOT


def test_committed_document_is_current():
    committed = json.loads((ROOT / "docs" / "openrpc.json").read_text())
    generated = json.loads(json.dumps(build_document(full_registry())))
    assert committed == generated, "docs/openrpc.json is stale: run `make openrpc`"


def test_make_openrpc_writes_the_committed_file_byte_for_byte():
    """What `make openrpc` runs (``python -m camsvc.apidoc``) reproduces the file exactly."""
    out = subprocess.run(
        [sys.executable, "-m", "camsvc.apidoc"],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr.decode()
    assert out.stdout == (ROOT / "docs" / "openrpc.json").read_bytes(), "docs/openrpc.json is stale: run `make openrpc`"


def test_every_method_is_documented():
    doc = build_document(full_registry())
    for method in doc["methods"]:
        assert method["summary"], f"{method['name']} has no summary"
        assert method["x-required-role"] in ("none", "viewer", "operator", "admin")
        assert method["result"]["schema"], f"{method['name']} has no result schema"
        for param in method["params"]:
            assert "schema" in param and param["name"]


def test_api_reference_mentions_every_method():
    text = (ROOT / "docs" / "api.md").read_text()
    for method in full_registry():
        assert f"`{method.name}`" in text, f"docs/api.md does not document {method.name}"
