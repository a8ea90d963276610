"""API methods: one module per area, each with ``register(app)``.

A method exists only when it works: modules register real implementations
and nothing else.  :func:`register_all` is called once by ``camsvc.tap``.
"""

from __future__ import annotations

from typing import Any


def register_all(app: Any) -> None:
    from camsvc.api import system

    system.register(app)
