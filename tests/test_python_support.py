"""Python 3.10 to 3.13: what the packaging declares and what the code uses agree.

Ubuntu 22.04 ships Python 3.10, so nothing newer may be used: no
``datetime.UTC``, ``tomllib``, ``except*``, ``asyncio.TaskGroup``, ``enum.StrEnum``
or typing names added after 3.10.  The syntax is checked with ``ast.parse(...,
feature_version=(3, 10))``, the names with an AST walk; `make test-jammy-libs`
runs the suite itself on a 3.10 interpreter (tests/distros/).
"""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parent.parent
OLDEST = (3, 10)
SOURCES = ("camsvc", "tests", "twisted", "bench", "examples", "tools", "setup.py")

# module -> names that module gained after Python 3.10.
NEWER = {
    "datetime": {"UTC"},
    "asyncio": {"TaskGroup", "timeout", "timeout_at", "Runner", "Barrier"},
    "enum": {"StrEnum", "ReprEnum", "verify", "member", "nonmember", "global_enum", "EnumCheck"},
    "hashlib": {"file_digest"},
    "typing": {
        "Self",
        "LiteralString",
        "Never",
        "assert_never",
        "assert_type",
        "reveal_type",
        "Required",
        "NotRequired",
        "TypeVarTuple",
        "Unpack",
        "dataclass_transform",
        "override",
        "TypeAliasType",
        "ReadOnly",
        "TypeIs",
        "get_overloads",
        "clear_overloads",
    },
    "operator": {"call"},
    "inspect": {"markcoroutinefunction", "getmembers_static"},
}
NEWER_MODULES = {"tomllib", "wsgiref.types"}


def python_files():
    for name in SOURCES:
        p = TOP / name
        if p.is_file():
            yield p
        elif p.is_dir():
            for root, dirs, files in os.walk(p):
                # tests/system/cache holds guest root filesystems (with /proc mounted while built).
                dirs[:] = sorted(d for d in dirs if d != "cache" and not d.startswith("."))
                yield from (Path(root) / f for f in sorted(files) if f.endswith(".py"))


def problems(source: str, filename: str = "<source>") -> list[str]:
    """What in ``source`` needs a Python newer than 3.10."""
    try:
        tree = ast.parse(source, filename, feature_version=OLDEST)
    except SyntaxError as e:
        return [f"{filename}:{e.lineno}: syntax newer than 3.10: {e.msg}"]
    out = []
    aliases = {}  # local name -> module, for "import datetime as dt"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name in NEWER_MODULES:
                    out.append(f"{filename}:{node.lineno}: import {a.name} (3.11+)")
                aliases[a.asname or a.name] = a.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module in NEWER_MODULES:
                out.append(f"{filename}:{node.lineno}: from {node.module} (3.11+)")
            for a in node.names:
                if a.name in NEWER.get(node.module, ()):
                    out.append(f"{filename}:{node.lineno}: from {node.module} import {a.name} (3.11+)")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            module = aliases.get(node.value.id)
            if module and node.attr in NEWER.get(module, ()):
                out.append(f"{filename}:{node.lineno}: {node.value.id}.{node.attr} (3.11+)")
        if isinstance(node, ast.Attribute) and node.attr == "UTC":
            # datetime.datetime.UTC does not exist either; datetime.UTC through any path does.
            v = node.value
            if isinstance(v, ast.Attribute) and v.attr == "datetime":
                out.append(f"{filename}:{node.lineno}: datetime.UTC (3.11+)")
    return out


def test_packaging_declares_python_3_10():
    setup = (TOP / "setup.py").read_text(encoding="utf-8")
    assert re.search(r'python_requires=">=3\.10"', setup)
    control = (TOP / "debian" / "control").read_text(encoding="utf-8")
    assert re.search(r"^X-Python3-Version: >= 3\.10$", control, re.M)
    ruff = (TOP / "ruff.toml").read_text(encoding="utf-8")
    # ruff's pyupgrade rules (UP) would otherwise "fix" timezone.utc into datetime.UTC.
    assert re.search(r'^target-version = "py310"$', ruff, re.M)


def test_distro_pins_cover_every_supported_python():
    pythons = set()
    for pins in (TOP / "tests" / "distros").glob("*.txt"):
        m = re.search(r"^# python=(3\.\d+)$", pins.read_text(encoding="utf-8"), re.M)
        assert m, f"{pins.name} does not say its python"
        pythons.add(m.group(1))
    assert {"3.10", "3.12", "3.13"} <= pythons


def test_nothing_newer_than_python_3_10_is_used():
    found = []
    for p in python_files():
        found += problems(p.read_text(encoding="utf-8"), str(p.relative_to(TOP)))
    assert not found, "\n".join(found)


@pytest.mark.parametrize(
    "source",
    [
        "from datetime import UTC\n",
        "import datetime\nx = datetime.UTC\n",
        "import datetime as dt\nx = dt.UTC\n",
        "import datetime\nx = datetime.datetime.now(datetime.datetime.UTC)\n",
        "import tomllib\n",
        "from typing import Self\n",
        "import typing\ndef f() -> typing.Self: ...\n",
        "import asyncio\nasyncio.TaskGroup()\n",
        "from enum import StrEnum\n",
        "try:\n    pass\nexcept* ValueError:\n    pass\n",
    ],
)
def test_the_check_can_fail(source):
    assert problems(source)


def test_the_check_accepts_3_10_code():
    assert not problems("from datetime import datetime, timezone\nx = datetime.now(timezone.utc)\n")
