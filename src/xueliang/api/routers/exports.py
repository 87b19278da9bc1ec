"""Evidence exports: a recorded range into one MP4 file, with a stated reason."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status
from fastapi.responses import FileResponse

from xueliang.api.deps import PlatformDep, PrincipalDep
from xueliang.api.errors import ERROR_RESPONSES
from xueliang.media.export import ExportRequest, ExportView

router = APIRouter(prefix="/exports", tags=["media"], responses=ERROR_RESPONSES)


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
def export_file(
    export_id: Annotated[int, Path(ge=1, le=2**31 - 1)], p: PlatformDep, principal: PrincipalDep
) -> FileResponse:
    path, name = p.exports.open_for_download(principal, export_id)
    return FileResponse(path, media_type="video/mp4", filename=name)
