"""Permissions and the built-in roles.

A role is a set of permissions; a user holds roles, and an area scope (organisation subtrees
and single channels, or everything) says where those permissions apply.
"""

from __future__ import annotations

from enum import StrEnum


class Permission(StrEnum):
    REGISTRY_READ = "registry.read"
    REGISTRY_WRITE = "registry.write"
    VIDEO_LIVE = "video.live"
    VIDEO_PLAYBACK = "video.playback"
    VIDEO_EXPORT = "video.export"
    VIDEO_SNAPSHOT = "video.snapshot"
    # Place and release legal holds on recordings (held ranges are never deleted).
    RECORDING_HOLD = "recording.hold"
    PTZ_CONTROL = "ptz.control"
    DEVICE_CONTROL = "device.control"
    USER_MANAGE = "user.manage"
    AUDIT_READ = "audit.read"
    SYSTEM_MANAGE = "system.manage"
    INCIDENT_REPORT = "incident.report"
    INCIDENT_MANAGE = "incident.manage"


ALL_PERMISSIONS = frozenset(Permission)

VIEW_VIDEO = frozenset(
    {
        Permission.REGISTRY_READ,
        Permission.VIDEO_LIVE,
        Permission.VIDEO_PLAYBACK,
        Permission.VIDEO_SNAPSHOT,
    }
)

# name -> (Chinese title, permissions)
BUILTIN_ROLES: dict[str, tuple[str, frozenset[Permission]]] = {
    "admin": ("系统管理员", ALL_PERMISSIONS),
    "operator": (
        "值班操作员",
        VIEW_VIDEO
        | {
            Permission.REGISTRY_WRITE,
            Permission.VIDEO_EXPORT,
            Permission.RECORDING_HOLD,
            Permission.PTZ_CONTROL,
            Permission.DEVICE_CONTROL,
            Permission.INCIDENT_REPORT,
            Permission.INCIDENT_MANAGE,
        },
    ),
    "viewer": ("查看员", VIEW_VIDEO),
    "auditor": ("审计员", frozenset({Permission.REGISTRY_READ, Permission.AUDIT_READ})),
    "grid_worker": (
        "网格员",
        frozenset({Permission.REGISTRY_READ, Permission.VIDEO_LIVE, Permission.INCIDENT_REPORT}),
    ),
}


def parse_permissions(values: list[str]) -> frozenset[Permission]:
    from xueliang.core.errors import InvalidInput

    unknown = sorted(set(values) - {p.value for p in Permission})
    if unknown:
        raise InvalidInput(
            f"unknown permission(s): {', '.join(unknown)}",
            details={"known": sorted(p.value for p in Permission)},
        )
    return frozenset(Permission(v) for v in values)
