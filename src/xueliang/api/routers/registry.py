from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, File, Query, UploadFile
from fastapi.responses import Response

from xueliang.api.deps import PlatformDep, PrincipalDep
from xueliang.api.errors import ERROR_RESPONSES
from xueliang.core.errors import InvalidInput
from xueliang.registry.schemas import ImportResult

router = APIRouter(prefix="/registry", tags=["registry"], responses=ERROR_RESPONSES)

MAX_UPLOAD = 50 * 1024 * 1024
_MEDIA = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


@router.post(
    "/import",
    response_model=ImportResult,
    summary="Import a register sheet (CSV or XLSX); all rows or none",
    description=(
        "Columns may be headed in English (channel_id, channel_name, device_id, …) or Chinese "
        "(通道编码, 点位名称, 设备编码, …). On any bad row nothing is imported and the 422 "
        "answer's details list every problem as {row, column, message}."
    ),
)
def import_register(
    p: PlatformDep, principal: PrincipalDep, file: Annotated[UploadFile, File()]
) -> ImportResult:
    data = file.file.read(MAX_UPLOAD + 1)
    if len(data) > MAX_UPLOAD:
        raise InvalidInput(f"file is larger than {MAX_UPLOAD // (1024 * 1024)} MiB")
    return p.register.import_sheet(principal, data, filename=file.filename)


@router.get(
    "/export",
    summary="Export the register of the caller's area as a sheet",
    response_class=Response,
    responses={200: {"content": {v: {} for v in _MEDIA.values()}}},
)
def export_register(
    p: PlatformDep,
    principal: PrincipalDep,
    format: Annotated[Literal["csv", "xlsx"], Query()] = "xlsx",
    lang: Annotated[Literal["zh", "en"], Query()] = "zh",
) -> Response:
    body = p.register.export_sheet(principal, fmt=format, lang=lang)
    return Response(
        body,
        media_type=_MEDIA[format],
        headers={"Content-Disposition": f'attachment; filename="register.{format}"'},
    )
