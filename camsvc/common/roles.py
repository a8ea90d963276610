"""Roles: who may call what, ordered none < viewer < operator < admin.

The JSON-RPC engine (:mod:`camsvc.server.rpc`) checks a method's role against
the session's; credentials (:mod:`camsvc.auth`) carry one; ``camsvc-admin``
names one when it creates a key.  ``camsvc.server.rpc.Role`` is the same class.
"""

from __future__ import annotations

from enum import IntEnum


class Role(IntEnum):
    """Roles, ordered: a session may call methods needing its role or less."""

    NONE = 0
    VIEWER = 1
    OPERATOR = 2
    ADMIN = 3

    @classmethod
    def parse(cls, name: str) -> "Role":
        try:
            role = cls[name.upper()]
        except (KeyError, AttributeError):
            raise ValueError(f"unknown role {name!r} (viewer, operator or admin)") from None
        if role is cls.NONE:
            raise ValueError("role must be viewer, operator or admin")
        return role

    @property
    def label(self) -> str:
        return self.name.lower()
