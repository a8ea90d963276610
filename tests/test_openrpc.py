"""The committed OpenRPC document matches the code, and documents every method."""

from __future__ import annotations

import json

from camsvc.server.openrpc import build_document
from camsvc.tap import full_registry
from tests.support.server import ROOT


def test_committed_document_is_current():
    committed = json.loads((ROOT / "docs" / "openrpc.json").read_text())
    generated = json.loads(json.dumps(build_document(full_registry())))
    assert committed == generated, "docs/openrpc.json is stale: run `make openrpc`"


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
