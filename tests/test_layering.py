"""The layering of camsvc's packages, and the absence of import circles, enforced.

Every module under ``camsvc/`` is parsed (not imported) and each of its
imports is collected: top-level, function-level and ``TYPE_CHECKING`` ones
alike, absolute or relative.  Each import of a camsvc module must be allowed
by :data:`MAY_IMPORT` (the table docs/architecture.md draws), and the module
graph must have no cycle.  A failure names the offending import
(``camsvc/server/ws.py:31 imports camsvc.mediamtx.urls``).

Layers, top may import lower::

    tap, app, apidoc (composition root)
      > api
        > auth
          > server | cameras, mediamtx, media (core; mediamtx and media may import cameras)
            > ops > config > common

``camsvc.tools`` (what runs outside the service) may import common, config,
the credential files of auth and itself; nothing in the service imports
``camsvc.tools`` or ``camsvc.testing``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "camsvc"

_BASE = ("camsvc.common",)
_OPS = ("camsvc.ops", "camsvc.config", *_BASE)
_CORE_BELOW = ("camsvc.ops", "camsvc.config", *_BASE)
_SERVICE = (
    "camsvc.api",
    "camsvc.auth",
    "camsvc.server",
    "camsvc.cameras",
    "camsvc.mediamtx",
    "camsvc.media",
    "camsvc.ops",
    "camsvc.config",
    *_BASE,
)

#: Which camsvc modules each unit may import (prefixes; a unit may always import itself).
#: A unit is a package (``camsvc.server``) or a top-level module (``camsvc.config``).
MAY_IMPORT: dict[str, tuple[str, ...]] = {
    "camsvc": (),  # the version only
    # python3 -m camsvc: twistd with camsvc's plugin as its only subcommand (imports no camsvc module).
    "camsvc.__main__": (),
    "camsvc.tap": ("camsvc", "camsvc.app", "camsvc.mqtt", *_SERVICE),
    "camsvc.app": ("camsvc", "camsvc.tap", "camsvc.mqtt", *_SERVICE),
    "camsvc.apidoc": ("camsvc.tap", *_SERVICE),  # make openrpc: renders the root's registry
    "camsvc.api": ("camsvc", *_SERVICE),
    # The MQTT bridge: another API surface (commands through the engine, Camera objects from api).
    "camsvc.mqtt": ("camsvc", *_SERVICE),
    "camsvc.auth": ("camsvc.server", *_CORE_BELOW),
    "camsvc.server": ("camsvc", *_CORE_BELOW),
    "camsvc.cameras": _CORE_BELOW,
    "camsvc.mediamtx": ("camsvc.cameras", *_CORE_BELOW),
    "camsvc.media": ("camsvc.cameras", *_CORE_BELOW),
    "camsvc.ops": ("camsvc", "camsvc.config", *_BASE),
    "camsvc.config": _BASE,
    "camsvc.common": (),
    # Outside the service: the client library, camsvc-cli, camsvc-admin.
    "camsvc.tools": ("camsvc", "camsvc.config", "camsvc.auth.keystore", "camsvc.auth.tokens", *_BASE),
    "camsvc.client": ("camsvc.tools",),  # the old import path of the client library
    # Test doubles: may use the service's parts; the service never imports them.
    "camsvc.testing": ("camsvc", *_SERVICE),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def unit_of(module: str) -> str:
    """The layering unit of a module: ``camsvc.X`` (package or top-level module)."""
    return ".".join(module.split(".")[:2])


MODULES: dict[str, Path] = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(module: str, path: Path, node: ast.AST) -> list[str]:
    """The camsvc modules an import statement names (submodules where they exist)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name.split(".")[0] == "camsvc"]
    assert isinstance(node, ast.ImportFrom)
    if node.level:
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{node.module}" if node.module else package
    else:
        base = node.module or ""
    if base.split(".")[0] != "camsvc":
        return []
    targets = []
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        targets.append(sub if sub in MODULES else base)
    return targets


def imports_of(module: str, path: Path) -> list[tuple[int, str]]:
    """(line, imported camsvc module) for every import anywhere in the module."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.extend((node.lineno, target) for target in _resolve(module, path, node))
    return found


GRAPH: dict[str, list[tuple[int, str]]] = {m: imports_of(m, p) for m, p in MODULES.items()}


def _allowed(importer: str, imported: str) -> bool:
    unit, target_unit = unit_of(importer), unit_of(imported)
    if unit == target_unit:
        return True
    allowed = MAY_IMPORT.get(unit)
    assert allowed is not None, f"{unit} is not in MAY_IMPORT: give the new package its place in the layering"
    # "camsvc" is the top package itself (its version), never a prefix of everything.
    return any(imported == prefix or (prefix != "camsvc" and imported.startswith(prefix + ".")) for prefix in allowed)


def test_every_unit_has_a_place_in_the_table():
    missing = sorted({unit_of(m) for m in MODULES} - set(MAY_IMPORT))
    assert not missing, f"not in MAY_IMPORT (tests/test_layering.py): {missing}"


def test_imports_follow_the_layering():
    offences = sorted(
        {
            f"{MODULES[m].relative_to(ROOT)}:{line} imports {target} ({unit_of(m)} may not import {unit_of(target)})"
            for m, imports in GRAPH.items()
            for line, target in imports
            if not _allowed(m, target)
        }
    )
    assert not offences, "imports against the layering (docs/architecture.md):\n" + "\n".join(offences)


def test_the_service_never_imports_tools_or_testing():
    offences = [
        f"{MODULES[m].relative_to(ROOT)}:{line} imports {target}"
        for m, imports in GRAPH.items()
        if unit_of(m) not in ("camsvc.tools", "camsvc.client", "camsvc.testing")
        for line, target in imports
        if unit_of(target) in ("camsvc.tools", "camsvc.client", "camsvc.testing")
    ]
    assert not offences, "the service imports what runs outside it:\n" + "\n".join(offences)


def find_cycle(graph: dict[str, list[tuple[int, str]]]) -> list[str] | None:
    """One import cycle (as a list of modules, first == last), or None."""
    WHITE, GREY, BLACK = 0, 1, 2
    colour = dict.fromkeys(graph, WHITE)
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        colour[node] = GREY
        stack.append(node)
        for _, target in graph.get(node, ()):
            if target not in colour or target == node:
                continue
            if colour[target] == GREY:
                return stack[stack.index(target) :] + [target]
            if colour[target] == WHITE:
                cycle = visit(target)
                if cycle:
                    return cycle
        stack.pop()
        colour[node] = BLACK
        return None

    for node in graph:
        if colour[node] == WHITE:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_no_import_circles():
    cycle = find_cycle(GRAPH)
    if cycle:
        steps = []
        for a, b in zip(cycle, cycle[1:], strict=False):
            line = next(n for n, t in GRAPH[a] if t == b)
            steps.append(f"{MODULES[a].relative_to(ROOT)}:{line} imports {b}")
        pytest.fail("import circle " + " -> ".join(cycle) + ":\n" + "\n".join(steps))


def test_the_checks_can_fail():
    """The checker itself: a forbidden import and a circle are caught and named."""
    assert not _allowed("camsvc.server.ws", "camsvc.mediamtx.urls")
    assert not _allowed("camsvc.common.fileio", "camsvc.config")
    assert not _allowed("camsvc.media.component", "camsvc.server.rpc")
    assert not _allowed("camsvc.tools.admin", "camsvc.server.rpc")
    assert not _allowed("camsvc.api.media", "camsvc.tools.client")
    assert not _allowed("camsvc.server.ws", "camsvc.auth.addresses")
    assert _allowed("camsvc.server.openrpc", "camsvc")
    assert _allowed("camsvc.api.media", "camsvc.media.files")
    assert find_cycle({"a": [(1, "b")], "b": [(2, "c")], "c": [(3, "a")]}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": [(1, "b")], "b": []}) is None
    source = "def f():\n    from camsvc.tools import client\n"
    tree = ast.parse(source)
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom))
    assert _resolve("camsvc.api.x", PACKAGE / "api" / "x.py", node) == ["camsvc.tools.client"]
