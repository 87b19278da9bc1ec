from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from xueliang.api.deps import Page, PagingDep, PlatformDep, PrincipalDep, page
from xueliang.api.errors import ERROR_RESPONSES
from xueliang.registry.schemas import DeviceCreate, DeviceUpdate, DeviceView, Protocol, Status

router = APIRouter(prefix="/devices", tags=["registry"], responses=ERROR_RESPONSES)
DeviceId = Annotated[str, Path(max_length=20, description="20-digit GB/T 28181 ID")]


@router.get("", response_model=Page[DeviceView], summary="Devices in the caller's area")
def list_devices(
    p: PlatformDep,
    principal: PrincipalDep,
    paging: PagingDep,
    org: Annotated[
        str | None, Query(max_length=20, description="Within this organisation's subtree")
    ] = None,
    protocol: Protocol | None = None,
    status: Status | None = None,
    q: Annotated[
        str | None, Query(max_length=64, description="Name contains, or ID starts with")
    ] = None,
) -> Page[DeviceView]:
    items, total = p.devices.list(
        principal,
        org=org,
        protocol=protocol,
        status=status,
        q=q,
        offset=paging.offset,
        limit=paging.limit,
    )
    return page(items, total, paging)


@router.post(
    "",
    response_model=DeviceView,
    status_code=status.HTTP_201_CREATED,
    summary="Register a device; an rtsp device gets its one channel at once",
)
def create_device(body: DeviceCreate, p: PlatformDep, principal: PrincipalDep) -> DeviceView:
    return p.devices.create(principal, body)


@router.get("/{device_id}", response_model=DeviceView)
def get_device(device_id: DeviceId, p: PlatformDep, principal: PrincipalDep) -> DeviceView:
    return p.devices.get(principal, device_id)


@router.patch("/{device_id}", response_model=DeviceView)
def update_device(
    device_id: DeviceId, body: DeviceUpdate, p: PlatformDep, principal: PrincipalDep
) -> DeviceView:
    return p.devices.update(principal, device_id, body)


@router.delete("/{device_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_device(device_id: DeviceId, p: PlatformDep, principal: PrincipalDep) -> None:
    p.devices.delete(principal, device_id)
