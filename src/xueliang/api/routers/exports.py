"""Evidence exports: a recorded range into one MP4 file, with a stated reason. Exports made
from the platform's recordings are finished when created; downloads from GB/T 28181 devices
(``POST /channels/{id}/device-download``) run as jobs, listed and followed here."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Path, Query, status
from fastapi.responses import FileResponse

from xueliang.api.deps import PlatformDep, PrincipalDep
from xueliang.api.errors import ERROR_RESPONSES
from xueliang.core.errors import Conflict
from xueliang.media.export import ExportRequest, ExportView

router = APIRouter(prefix="/exports", tags=["media"], responses=ERROR_RESPONSES)
ExportId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.post(
    "",
    response_model=ExportView,
    status_code=status.HTTP_201_CREATED,
    summary="Export [start, end) of a channel into one MP4 file (synchronous); audited with "
    "the reason and the file's SHA-256",
)
def create_export(body: ExportRequest, p: PlatformDep, principal: PrincipalDep) -> ExportView:
    return p.exports.create(principal, body)


@router.get(
    "/{export_id}/file",
    summary="Download an export's MP4 file; audited",
    response_class=FileResponse,
    responses={200: {"content": {"video/mp4": {}}}},
)
def export_file(export_id: ExportId, p: PlatformDep, principal: PrincipalDep) -> FileResponse:
    path, name = p.exports.open_for_download(principal, export_id)
    return FileResponse(path, media_type="video/mp4", filename=name)


@router.get("", summary="The newest exports of channels in the caller's area, running ones too")
def list_exports(
    p: PlatformDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[ExportView]:
    return p.exports.recent(principal, limit=limit)


@router.get("/{export_id}", summary="One export: its status, progress and, when finished, SHA-256")
def get_export(export_id: ExportId, p: PlatformDep, principal: PrincipalDep) -> ExportView:
    return p.exports.get(principal, export_id)


@router.post(
    "/{export_id}/cancel",
    summary="Stop a running device download; what arrived is kept as a partial export",
)
async def cancel_export(export_id: ExportId, p: PlatformDep, principal: PrincipalDep) -> ExportView:
    downloads = p.gb28181.downloads
    if downloads is None:
        view = await asyncio.to_thread(p.exports.get, principal, export_id)
        if view.status == "running":
            raise Conflict(f"export {export_id} is not running here")
        return view
    return await downloads.cancel(principal, export_id)
