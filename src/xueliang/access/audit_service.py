"""Reading the audit chain: filtered lists for auditors, and verification."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select

from xueliang.access.audit import AuditLog, VerifyReport
from xueliang.access.permissions import Permission
from xueliang.access.principal import Principal
from xueliang.store.db import Database
from xueliang.store.models import AuditRecord
from xueliang.store.paging import page_rows


class AuditRecordView(BaseModel):
    seq: int
    at: datetime
    actor: str
    action: str
    target: str
    outcome: str
    source: str
    reason: str
    detail: dict[str, Any]
    hash: str


class AuditService:
    def __init__(self, db: Database, log: AuditLog) -> None:
        self._db = db
        self._log = log

    def list(
        self,
        principal: Principal,
        *,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
        outcome: str | None = None,
        source: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> tuple[list[AuditRecordView], int]:
        principal.require(Permission.AUDIT_READ)
        stmt = select(AuditRecord)
        if actor:
            stmt = stmt.where(AuditRecord.actor == actor)
        if action:
            # "video." matches every video action; a full name matches one.
            stmt = stmt.where(
                AuditRecord.action.startswith(action, autoescape=True)
                if action.endswith(".")
                else AuditRecord.action == action
            )
        if target:
            stmt = stmt.where(AuditRecord.target.startswith(target, autoescape=True))
        if outcome:
            stmt = stmt.where(AuditRecord.outcome == outcome)
        if source:
            # An address, or its beginning ("10.2." for a subnet).
            stmt = stmt.where(AuditRecord.source.startswith(source, autoescape=True))
        if since:
            stmt = stmt.where(AuditRecord.at >= since)
        if until:
            stmt = stmt.where(AuditRecord.at < until)
        with self._db.read() as s:
            rows, total = page_rows(
                s, stmt.order_by(AuditRecord.seq.desc()), offset=offset, limit=limit
            )
            return [
                AuditRecordView(
                    seq=r.seq,
                    at=r.at,
                    actor=r.actor,
                    action=r.action,
                    target=r.target,
                    outcome=r.outcome,
                    source=r.source,
                    reason=r.reason,
                    detail=r.detail,
                    hash=r.hash,
                )
                for (r,) in rows
            ], total

    def verify(self) -> VerifyReport:
        with self._db.read() as s:
            return self._log.verify(s)
