"""Coverage per area and the channels on the map, for the console's status page and map."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from xueliang.access.permissions import Permission
from xueliang.api.deps import PlatformDep, PrincipalDep
from xueliang.api.errors import ERROR_RESPONSES
from xueliang.registry.coverage import ChannelLocation, CoverageReport

router = APIRouter(tags=["registry"], responses=ERROR_RESPONSES)


class MapSettings(BaseModel):
    tile_url: str = Field(description="{z}/{x}/{y} template; empty: a plain background")
    attribution: str
    max_zoom: int
    center: tuple[float, float] | None = Field(description="[longitude, latitude] or null: fit")
    zoom: int


@router.get(
    "/coverage",
    summary="Channels, online (在线率) and on the map, per organisation in the caller's area",
)
def coverage(p: PlatformDep, principal: PrincipalDep) -> CoverageReport:
    return p.coverage.report(principal)


@router.get(
    "/map/channels",
    summary="Every channel with coordinates in the caller's area (compact, for the map)",
)
def map_channels(
    p: PlatformDep,
    principal: PrincipalDep,
    org: Annotated[str | None, Query(max_length=20, description="Only this subtree")] = None,
) -> list[ChannelLocation]:
    return p.coverage.locations(principal, org=org)


@router.get("/map/settings", summary="The map's tiles and starting view (from [map] config)")
def map_settings(p: PlatformDep, principal: PrincipalDep) -> MapSettings:
    principal.require(Permission.REGISTRY_READ)
    m = p.settings.map
    return MapSettings(
        tile_url=m.tile_url,
        attribution=m.attribution,
        max_zoom=m.max_zoom,
        center=m.center,
        zoom=m.zoom,
    )
