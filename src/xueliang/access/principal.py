"""The principal a request or command acts as."""

from __future__ import annotations

from dataclasses import dataclass, replace

from xueliang.access.permissions import ALL_PERMISSIONS, Permission
from xueliang.access.scope import Scope
from xueliang.core.errors import PermissionDenied


@dataclass(frozen=True, slots=True)
class Principal:
    username: str
    user_pk: int | None
    permissions: frozenset[Permission]
    scope: Scope
    roles: tuple[str, ...] = ()
    # Where the request came from (client address, "cli", "system"): recorded in audit.
    source: str = ""
    # How it authenticated: session | api_key | cli | system.
    via: str = "session"

    def has(self, permission: Permission) -> bool:
        return permission in self.permissions

    def require(self, permission: Permission) -> None:
        if permission not in self.permissions:
            raise PermissionDenied(f"permission {permission.value!r} is required")

    def at(self, source: str) -> Principal:
        return replace(self, source=source)


SYSTEM = Principal(
    username="system",
    user_pk=None,
    permissions=ALL_PERMISSIONS,
    scope=Scope.all(),
    roles=("admin",),
    source="local",
    via="system",
)


def cli_principal() -> Principal:
    """Commands run on the host by whoever can read the data directory act with full rights."""
    return replace(SYSTEM, username="cli", source="cli", via="cli")
