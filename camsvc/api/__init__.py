"""API methods: one module per area, each with ``register(app)``.

A method exists only when it works: modules register real implementations
and nothing else.  :func:`register_all` is called once by ``camsvc.tap``; it
registers every module listed in :data:`MODULES`, in that order (the order of
the OpenRPC document and of ``docs/api.md``).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

#: API modules under camsvc.api, in documentation order.
MODULES = (
    "system",
    "auth",
    "cameras",
    "controls",
    "stream_settings",
    "streams",
    "metrics",
    "media",
)


def register_all(app: Any) -> None:
    for name in MODULES:
        import_module(f"camsvc.api.{name}").register(app)
