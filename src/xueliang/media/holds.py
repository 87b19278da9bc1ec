"""Legal holds: a channel's recordings over a time range that no storage policy may delete.

Placing a hold locks the channel's row, as a storage sweep's deleting transaction does (see
xueliang.media.storage), so a hold placed during a sweep is seen by it. Released holds are kept
with who released them, when and why (in the audit record).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from xueliang.access.audit import AuditLog
from xueliang.access.permissions import Permission
from xueliang.access.principal import Principal
from xueliang.core.clock import Clock
from xueliang.core.errors import Conflict, InvalidInput, NotFound
from xueliang.core.text import reject_nul
from xueliang.registry.common import visible_channel
from xueliang.store.db import Database
from xueliang.store.models import Channel, Hold
from xueliang.store.paging import page_rows

Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class HoldCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel_id: Annotated[str, StringConstraints(pattern=r"^\d{20}$")]
    start: AwareDatetime
    end: AwareDatetime
    reason: Reason = Field(description="Why the recordings must be kept (case number …)")

    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        return reject_nul(value)


class HoldView(BaseModel):
    id: int
    channel_id: str
    start: datetime
    end: datetime
    reason: str
    created_by: str
    created_at: datetime
    released_at: datetime | None
    released_by: str | None
    active: bool


def hold_view(hold: Hold, channel_id: str) -> HoldView:
    return HoldView(
        id=hold.pk,
        channel_id=channel_id,
        start=hold.start,
        end=hold.end,
        reason=hold.reason,
        created_by=hold.created_by,
        created_at=hold.created_at,
        released_at=hold.released_at,
        released_by=hold.released_by,
        active=hold.released_at is None,
    )


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise InvalidInput("times must carry a zone (ISO 8601 with Z or an offset)")
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise InvalidInput(f"time out of range: {value.isoformat()}") from exc


def _lock_channel(s: Session, channel: Channel) -> None:
    """Serialise with a sweep's deletions (see StorageManager._delete)."""
    s.execute(select(Channel.pk).where(Channel.pk == channel.pk).with_for_update(key_share=True))


class HoldService:
    """Legal holds: the recordings of a channel over a time range that must not be deleted."""

    def __init__(self, db: Database, audit: AuditLog, clock: Clock) -> None:
        self._db = db
        self._audit = audit
        self._clock = clock

    def create(self, principal: Principal, spec: HoldCreate) -> HoldView:
        principal.require(Permission.RECORDING_HOLD)
        start, end = _utc(spec.start), _utc(spec.end)
        if end <= start:
            raise InvalidInput("end must be after start")
        with self._db.transaction() as s:
            channel = visible_channel(s, principal, spec.channel_id)
            _lock_channel(s, channel)
            hold = Hold(
                channel_pk=channel.pk,
                start=start,
                end=end,
                reason=spec.reason,
                created_by=principal.username,
                created_at=self._clock.now(),
            )
            s.add(hold)
            s.flush()
            self._audit.append(
                s,
                principal,
                "recording.hold",
                target=f"channel:{channel.gb_id}",
                reason=spec.reason,
                detail={"hold": hold.pk, "start": start.isoformat(), "end": end.isoformat()},
            )
            return hold_view(hold, channel.gb_id)

    def list(
        self,
        principal: Principal,
        *,
        channel_id: str | None = None,
        active: bool | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> tuple[list[HoldView], int]:
        principal.require(Permission.RECORDING_HOLD)
        stmt = (
            select(Hold, Channel.gb_id)
            .join(Channel, Hold.channel_pk == Channel.pk)
            .where(principal.scope.channel_filter())
        )
        if active is not None:
            stmt = stmt.where(
                Hold.released_at.is_(None) if active else Hold.released_at.is_not(None)
            )
        with self._db.read() as s:
            if channel_id is not None:
                channel = visible_channel(s, principal, channel_id)
                stmt = stmt.where(Hold.channel_pk == channel.pk)
            rows, total = page_rows(
                s, stmt.order_by(Hold.created_at.desc(), Hold.pk.desc()), offset=offset, limit=limit
            )
            return [hold_view(hold, gb_id) for hold, gb_id in rows], total

    def release(self, principal: Principal, hold_id: int, reason: str) -> HoldView:
        principal.require(Permission.RECORDING_HOLD)
        reason = reason.strip()
        if not reason:
            raise InvalidInput("a reason is required to release a hold")
        with self._db.transaction() as s:
            row = s.execute(
                select(Hold, Channel.gb_id)
                .join(Channel, Hold.channel_pk == Channel.pk)
                .where(Hold.pk == hold_id)
            ).one_or_none()
            if row is None:
                raise NotFound(f"hold {hold_id} not found")
            hold, gb_id = row
            channel = visible_channel(s, principal, gb_id)
            if hold.released_at is not None:
                raise Conflict(f"hold {hold_id} was already released")
            _lock_channel(s, channel)
            hold.released_at = self._clock.now()
            hold.released_by = principal.username
            self._audit.append(
                s,
                principal,
                "recording.release",
                target=f"channel:{gb_id}",
                reason=reason,
                detail={
                    "hold": hold.pk,
                    "start": hold.start.isoformat(),
                    "end": hold.end.isoformat(),
                    "placed_by": hold.created_by,
                    "placed_for": hold.reason,
                },
            )
            return hold_view(hold, gb_id)
