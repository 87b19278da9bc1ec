"""Coverage (覆盖) per area: how many channels each organisation has in its subtree, how many
are online, and how many are placed on the map, within the caller's area.

One grouped query over the channels, rolled up the organisation tree in memory along the
materialised paths: the status page and the map ask for it every few seconds, so it must stay
cheap at tens of thousands of channels.
"""

from __future__ import annotations

from collections import defaultdict

from pydantic import BaseModel, Field
from sqlalchemy import and_, func, select
from sqlalchemy.orm import aliased

from xueliang.access.permissions import Permission
from xueliang.access.principal import Principal
from xueliang.registry.schemas import PTZ_CAPABLE
from xueliang.store.db import Database
from xueliang.store.models import Channel, Org


class Counts(BaseModel):
    channels: int = Field(description="Enabled channels")
    online: int
    located: int = Field(description="Channels with coordinates (shown on the map)")
    online_rate: float | None = Field(description="online / channels (在线率); null without any")


class OrgCoverage(Counts):
    code: str
    name: str
    level: str
    parent: str | None


class CoverageReport(Counts):
    orgs: list[OrgCoverage] = Field(description="Every organisation in the caller's area")
    unplaced: int = Field(description="Channels in the area that belong to no organisation")


class ChannelLocation(BaseModel):
    """A channel on the map: compact, for thousands at once."""

    id: str
    name: str
    lon: float
    lat: float
    status: str
    ptz: bool
    org: str | None


def _counts(channels: int, online: int, located: int) -> dict[str, int | float | None]:
    rate = round(online / channels, 4) if channels else None
    return {"channels": channels, "online": online, "located": located, "online_rate": rate}


def _ancestors(path: str | None) -> set[int]:
    return {int(part) for part in path.strip("/").split("/") if part} if path else set()


class CoverageService:
    def __init__(self, db: Database) -> None:
        self._db = db

    def report(self, principal: Principal) -> CoverageReport:
        principal.require(Permission.REGISTRY_READ)
        parent = aliased(Org)
        org_of, grid_of = aliased(Org), aliased(Org)
        located = and_(Channel.longitude.is_not(None), Channel.latitude.is_not(None))
        with self._db.read() as s:
            orgs = s.execute(
                select(Org.pk, Org.code, Org.name, Org.level, Org.path, parent.code)
                .outerjoin(parent, Org.parent_pk == parent.pk)
                .where(principal.scope.org_filter())
                .order_by(Org.path)
            ).all()
            groups = s.execute(
                select(
                    org_of.path,
                    grid_of.path,
                    Channel.status,
                    located,
                    func.count(),
                )
                .outerjoin(org_of, Channel.org_pk == org_of.pk)
                .outerjoin(grid_of, Channel.grid_pk == grid_of.pk)
                .where(Channel.enabled.is_(True), principal.scope.channel_filter())
                .group_by(org_of.path, grid_of.path, Channel.status, located)
            ).all()
        per_org: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
        total = [0, 0, 0]
        unplaced = 0
        for org_path, grid_path, status, is_located, n in groups:
            add = (n, n if status == "online" else 0, n if is_located else 0)
            total = [a + b for a, b in zip(total, add, strict=True)]
            owners = _ancestors(org_path) | _ancestors(grid_path)
            if not owners:
                unplaced += n
            for pk in owners:
                row = per_org[pk]
                for i, v in enumerate(add):
                    row[i] += v
        return CoverageReport(
            **_counts(*total),
            unplaced=unplaced,
            orgs=[
                OrgCoverage(
                    code=code, name=name, level=level, parent=parent_code, **_counts(*per_org[pk])
                )
                for pk, code, name, level, _path, parent_code in orgs
            ],
        )

    def locations(self, principal: Principal, *, org: str | None = None) -> list[ChannelLocation]:
        principal.require(Permission.REGISTRY_READ)
        org_of = aliased(Org)
        stmt = (
            select(
                Channel.gb_id,
                Channel.name,
                Channel.longitude,
                Channel.latitude,
                Channel.status,
                Channel.ptz_type,
                org_of.code,
            )
            .outerjoin(org_of, Channel.org_pk == org_of.pk)
            .where(
                Channel.enabled.is_(True),
                Channel.longitude.is_not(None),
                Channel.latitude.is_not(None),
                principal.scope.channel_filter(),
            )
            .order_by(Channel.gb_id)
        )
        if org is not None:
            root = select(Org.path).where(Org.code == org).scalar_subquery()
            subtree = select(Org.pk).where(Org.path.startswith(root))
            stmt = stmt.where(Channel.org_pk.in_(subtree) | Channel.grid_pk.in_(subtree))
        with self._db.read() as s:
            return [
                ChannelLocation(
                    id=gb_id,
                    name=name,
                    lon=lon,
                    lat=lat,
                    status=status,
                    ptz=ptz_type in PTZ_CAPABLE,
                    org=org_code,
                )
                for gb_id, name, lon, lat, status, ptz_type, org_code in s.execute(stmt)
            ]
