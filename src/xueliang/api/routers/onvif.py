"""ONVIF: discover devices on a segment, read one, register it with a channel per stream.

All three need device management (``registry.write``) and are audited. A device that cannot be
reached, refuses the credentials or answers nonsense is the caller's input failing, not the
platform: 422 with code ``device_unreachable``, ``device_unauthorized`` or ``device_protocol``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, status

from xueliang.api.deps import PlatformDep, PrincipalDep
from xueliang.api.errors import ERROR_RESPONSES
from xueliang.onvif.schemas import (
    DiscoveredView,
    DiscoverRequest,
    ProbeRequest,
    ProbeView,
    RegisterRequest,
)
from xueliang.onvif.service import OnvifService
from xueliang.registry.schemas import DeviceView

router = APIRouter(prefix="/onvif", tags=["onvif"], responses=ERROR_RESPONSES)


def onvif_service(request: Request, p: PlatformDep) -> OnvifService:
    """The ONVIF service of this app (built on first use; tests override this dependency)."""
    service: OnvifService | None = getattr(request.app.state, "onvif", None)
    if service is None:
        service = OnvifService(p.db, p.audit, p.devices)
        request.app.state.onvif = service
    return service


OnvifDep = Annotated[OnvifService, Depends(onvif_service)]


@router.post(
    "/discover",
    response_model=list[DiscoveredView],
    summary="Find ONVIF devices on a local segment (WS-Discovery)",
)
async def discover(
    onvif: OnvifDep, principal: PrincipalDep, body: DiscoverRequest | None = None
) -> list[DiscoveredView]:
    body = body or DiscoverRequest()
    found = await onvif.discover(principal, body.interface_address, body.timeout_seconds)
    return [DiscoveredView.of(d) for d in found]


@router.post(
    "/probe",
    response_model=ProbeView,
    summary="Read an ONVIF device: identity, profiles with RTSP URIs, PTZ",
)
async def probe(body: ProbeRequest, onvif: OnvifDep, principal: PrincipalDep) -> ProbeView:
    return ProbeView.of(await onvif.probe(principal, body.target()))


@router.post(
    "/devices",
    response_model=DeviceView,
    status_code=status.HTTP_201_CREATED,
    summary="Register an ONVIF device with one channel per main stream (or chosen profiles)",
)
async def register(body: RegisterRequest, onvif: OnvifDep, principal: PrincipalDep) -> DeviceView:
    return await onvif.register(principal, body)
