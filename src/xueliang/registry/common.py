"""Lookups and helpers shared by the registry services; all scope checks happen here."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from xueliang.access.principal import Principal
from xueliang.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from xueliang.core.gbcode import MAX_SERIAL, gb_prefix
from xueliang.core.urls import split_userinfo
from xueliang.store.models import Channel, Device, Hold, Org


@dataclass(frozen=True, slots=True)
class IdPolicy:
    centre_code: str
    industry_code: str
    network_code: str


class IdAllocator:
    """Hands out the next free GB IDs of one type within one transaction.

    Reads the highest serial in use once per prefix, then counts up in memory, so a bulk import
    of thousands of rows costs one query per prefix, not one per row.
    """

    def __init__(self, session: Session, policy: IdPolicy) -> None:
        self._s = session
        self._policy = policy
        self._next: dict[tuple[str, str], int] = {}
        self._reserved: list[str] = []

    def _prefix(self, type_code: str) -> str:
        p = self._policy
        return gb_prefix(
            centre=p.centre_code,
            type_code=type_code,
            industry=p.industry_code,
            network=p.network_code,
        )

    def reserve(self, gb_id: str) -> None:
        """Note an explicitly given ID so that generated ones skip past it."""
        self._reserved.append(gb_id)
        for (table, prefix), serial in self._next.items():
            if gb_id.startswith(prefix) and int(gb_id[14:]) >= serial:
                self._next[(table, prefix)] = int(gb_id[14:]) + 1

    def next(self, type_code: str, table: type[Device] | type[Channel]) -> str:
        prefix = self._prefix(type_code)
        key = (table.__tablename__, prefix)
        if key not in self._next:
            highest = self._s.scalar(
                select(func.max(table.gb_id)).where(table.gb_id.startswith(prefix))
            )
            serial = int(highest[14:]) if highest else 0
            for gb_id in self._reserved:
                if gb_id.startswith(prefix):
                    serial = max(serial, int(gb_id[14:]))
            self._next[key] = serial + 1
        serial = self._next[key]
        if serial > MAX_SERIAL:
            raise InvalidInput(f"GB ID serials under {prefix} are exhausted")
        self._next[key] = serial + 1
        return f"{prefix}{serial:06d}"


def split_credentials(url: str | None) -> tuple[str | None, str | None, str | None]:
    """``rtsp://user:pass@host/x`` -> (``rtsp://host/x``, user, pass); passwords are kept apart."""
    if not url:
        return url, None, None
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        raise InvalidInput(f"not a URL: {url!r}")
    return split_userinfo(url)


def strip_credentials(url: str | None) -> str | None:
    try:
        return split_credentials(url)[0]
    except InvalidInput:
        return url


def org_by_code(s: Session, code: str) -> Org:
    org = s.scalar(select(Org).where(Org.code == code))
    if org is None:
        raise InvalidInput(f"organisation {code!r} does not exist")
    return org


def require_org_in_scope(principal: Principal, org: Org | None) -> None:
    """Writes into an organisation need it in scope; unplaced objects need the whole scope."""
    if org is None:
        if not principal.scope.everything:
            raise PermissionDenied("only users scoped to everything may manage unplaced objects")
        return
    if not principal.scope.covers_path(org.path):
        raise PermissionDenied(f"organisation {org.code} is outside your area")


def visible_device(s: Session, principal: Principal, gb_id: str) -> Device:
    device = s.scalar(select(Device).where(Device.gb_id == gb_id))
    if device is None:
        raise NotFound(f"device {gb_id} not found")
    if not s.scalar(
        select(Device.pk).where(Device.pk == device.pk, principal.scope.device_filter())
    ):
        raise PermissionDenied(f"device {gb_id} is outside your area")
    return device


def visible_channel(s: Session, principal: Principal, gb_id: str) -> Channel:
    channel = s.scalar(select(Channel).where(Channel.gb_id == gb_id))
    if channel is None:
        raise NotFound(f"channel {gb_id} not found")
    if not s.scalar(
        select(Channel.pk).where(Channel.pk == channel.pk, principal.scope.channel_filter())
    ):
        raise PermissionDenied(f"channel {gb_id} is outside your area")
    return channel


def refuse_if_held(s: Session, channel_pks: list[int], what: str) -> None:
    """Deleting a channel would drop the index of its recordings; under a legal hold it must
    not go until the hold is released."""
    held = s.scalar(
        select(func.count())
        .select_from(Hold)
        .where(Hold.channel_pk.in_(channel_pks), Hold.released_at.is_(None))
    )
    if held:
        raise Conflict(
            f"{what} has {held} active legal hold(s) on its recordings; release them first"
        )


def check_grid(s: Session, grid_code: str | None, org: Org | None) -> Org | None:
    if grid_code is None:
        return None
    grid = org_by_code(s, grid_code)
    if grid.level != "grid":
        raise InvalidInput(f"{grid_code} is a {grid.level}, not a grid")
    if org is not None and not grid.path.startswith(org.path):
        raise InvalidInput(f"grid {grid_code} does not lie within organisation {org.code}")
    return grid
