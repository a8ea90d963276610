"""HTTP plumbing of the MediaMTX stand-in: the request record, replies, the /v3 resource, the route table and pagination."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twisted.web.resource import Resource

from tests.support.mediamtx.gojson import GoError, _go_quote

if TYPE_CHECKING:
    from tests.support.mediamtx.standin import MediaMTXStandIn


# ---------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    """One request as the stand-in received it."""

    method: str
    target: str  # raw request target (path + query) as sent
    path: str  # percent-decoded path
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    spec_errors: list[str] = field(default_factory=list)
    status: int | None = None
    response_body: bytes = b""

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body.strip() else None


@dataclass
class _Reply:
    status: int
    body: bytes = b""
    content_type: str | None = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    pause: float = 0.0


class _APIResource(Resource):
    isLeaf = True

    def __init__(self, standin: MediaMTXStandIn):
        super().__init__()
        self.standin = standin

    def render(self, request):
        return self.standin._render(request)


# Routes registered by internal/api/api.go that do not depend on optional servers.
_ROUTES: list[tuple[str, str, bool, str]] = [
    # (method, path or wildcard prefix, is_wildcard, handler)
    ("GET", "/v3/info", False, "info"),
    ("POST", "/v3/auth/jwks/refresh", False, "jwks_refresh"),
    ("GET", "/v3/config/global/get", False, "global_get"),
    ("PATCH", "/v3/config/global/patch", False, "global_patch"),
    ("GET", "/v3/config/pathdefaults/get", False, "pathdefaults_get"),
    ("PATCH", "/v3/config/pathdefaults/patch", False, "pathdefaults_patch"),
    ("GET", "/v3/config/paths/list", False, "config_paths_list"),
    ("GET", "/v3/config/paths/get", True, "config_paths_get"),
    ("POST", "/v3/config/paths/add", True, "config_paths_add"),
    ("PATCH", "/v3/config/paths/patch", True, "config_paths_patch"),
    ("POST", "/v3/config/paths/replace", True, "config_paths_replace"),
    ("DELETE", "/v3/config/paths/delete", True, "config_paths_delete"),
    ("GET", "/v3/paths/list", False, "paths_list"),
    ("GET", "/v3/paths/get", True, "paths_get"),
    ("GET", "/v3/recordings/list", False, "recordings_list"),
    ("GET", "/v3/recordings/get", True, "recordings_get"),
    ("DELETE", "/v3/recordings/deletesegment", False, "recordings_deletesegment"),
]


def _paginate(items: list, query: dict) -> tuple[list, int]:
    """``internal/api/paginate.go``."""

    def parse(name: str, default: int) -> int:
        raw = query.get(name, [""])[0]
        if raw == "":
            return default
        if not re.fullmatch(r"[0-9]+", raw):
            raise GoError(f"strconv.ParseUint: parsing {_go_quote(raw)}: invalid syntax")
        v = int(raw)
        if v >= 2**31:
            raise GoError(f"strconv.ParseUint: parsing {_go_quote(raw)}: value out of range")
        return v

    per_page = parse("itemsPerPage", 100)
    if "itemsPerPage" in query and query["itemsPerPage"][0] != "" and per_page == 0:
        raise GoError("invalid items per page")
    page = parse("page", 0)
    if not items:
        return [], 0
    page_count = -(-len(items) // per_page)
    lo = min(page * per_page, len(items))
    hi = min((page + 1) * per_page, len(items))
    return items[lo:hi], page_count
