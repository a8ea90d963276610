"""Modules imported at their first use: :func:`lazy_import`.

Owns the one way camsvc defers an import that an idle process never needs (the MP4 reader
until the first recording's duration, in camsvc.media.component; the V4L2 binding until the
first device's QUERYCAP, in camsvc.cameras.discovery): :class:`importlib.util.LazyLoader`,
whose module runs its body at the first attribute access.  A caller keeps a ``TYPE_CHECKING`` import of the same module next to the call, so
type checkers and tests/test_layering.py see the dependency.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def lazy_import(name: str) -> ModuleType:
    """``name`` as a module whose body runs at its first attribute access (the module
    itself when it is already imported).  It is in ``sys.modules`` and an attribute of
    its package at once, so a later ``import`` of it returns the same object."""
    module = sys.modules.get(name)
    if module is not None:
        return module
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)
    return module
