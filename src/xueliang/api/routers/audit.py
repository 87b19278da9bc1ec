from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from xueliang.access.audit_service import AuditRecordView
from xueliang.access.permissions import Permission
from xueliang.api.deps import Page, PagingDep, PlatformDep, PrincipalDep, page
from xueliang.api.errors import ERROR_RESPONSES

router = APIRouter(prefix="/audit", tags=["audit"], responses=ERROR_RESPONSES)


class VerifyResult(BaseModel):
    ok: bool
    checked: int
    first_bad_seq: int | None
    problem: str


@router.get(
    "",
    response_model=Page[AuditRecordView],
    summary="Audit records, newest first (read-only: nothing deletes them)",
)
def list_audit(
    p: PlatformDep,
    principal: PrincipalDep,
    paging: PagingDep,
    actor: Annotated[str | None, Query(max_length=64)] = None,
    action: Annotated[
        str | None, Query(max_length=64, description="Exact, or a prefix ending in '.'")
    ] = None,
    target: Annotated[str | None, Query(max_length=128, description="Target starts with")] = None,
    outcome: Annotated[str | None, Query(max_length=16)] = None,
    source: Annotated[
        str | None, Query(max_length=64, description="Client address, or its beginning")
    ] = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Page[AuditRecordView]:
    items, total = p.audit_records.list(
        principal,
        actor=actor,
        action=action,
        target=target,
        outcome=outcome,
        source=source,
        since=since,
        until=until,
        offset=paging.offset,
        limit=paging.limit,
    )
    return page(items, total, paging)


@router.get("/verify", response_model=VerifyResult, summary="Walk the hash chain")
def verify_audit(p: PlatformDep, principal: PrincipalDep) -> VerifyResult:
    principal.require(Permission.AUDIT_READ)
    r = p.audit_records.verify()
    return VerifyResult(
        ok=r.ok, checked=r.checked, first_bad_seq=r.first_bad_seq, problem=r.problem
    )
