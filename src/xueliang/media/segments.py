"""The recording index: segments by channel and time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import BaseModel, Field
from sqlalchemy import select

from xueliang.access.audit import AuditLog
from xueliang.access.permissions import Permission
from xueliang.access.principal import Principal
from xueliang.core.clock import Clock, SystemClock
from xueliang.core.errors import InvalidInput, NotFound
from xueliang.media.model import SegmentClosed
from xueliang.registry.common import visible_channel
from xueliang.store.db import Database
from xueliang.store.models import Channel, Segment
from xueliang.store.paging import page_rows


class SegmentView(BaseModel):
    id: int
    channel_id: str
    start: datetime
    end: datetime
    bytes: int
    codec: str
    frames: int
    url: str


def segment_view(seg: Segment, channel_id: str) -> SegmentView:
    return SegmentView(
        id=seg.pk,
        channel_id=channel_id,
        start=seg.start,
        end=seg.end,
        bytes=seg.bytes,
        codec=seg.codec,
        frames=seg.frames,
        url=f"/api/v1/recordings/{seg.pk}/media",
    )


class Gap(BaseModel):
    start: datetime
    end: datetime
    seconds: float


class GapReport(BaseModel):
    channel_id: str
    start: datetime
    end: datetime = Field(description="The end asked for, or now if that is earlier")
    tolerance_seconds: float
    recorded_seconds: float = Field(description="Seconds of the range that recordings cover")
    gaps: list[Gap]


# Holes shorter than this are not gaps: segments are cut on key frames and their start is the
# wall clock at the cut, so consecutive segments can sit up to about one GOP apart.
GAP_TOLERANCE_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class SegmentFile:
    """A segment as the media code reads it: where its file is and what time it covers."""

    id: int
    channel_id: str
    start: datetime
    end: datetime
    codec: str
    path: Path


class SegmentIndex:
    def __init__(
        self,
        db: Database,
        audit: AuditLog,
        roots: Path | Sequence[Path],
        *,
        clock: Clock | None = None,
    ) -> None:
        """``roots``: the recordings root, or the storage tiers' roots, first tier first."""
        self._db = db
        self._audit = audit
        self.roots: tuple[Path, ...] = (roots,) if isinstance(roots, Path) else tuple(roots)
        if not self.roots:
            raise ValueError("at least one recordings root is needed")
        self._clock = clock or SystemClock()

    def path_of(self, rel: str, tier: int = 0) -> Path:
        """The file of a segment from its indexed (relative) path and storage tier. A tier no
        longer configured resolves to the last one (start-up repair relocates such rows)."""
        return self.roots[min(max(tier, 0), len(self.roots) - 1)] / rel

    def covering(self, channel_id: str, start: datetime, end: datetime) -> list[SegmentFile]:
        """Segments of a channel overlapping [start, end), oldest first (no permission check:
        callers check the principal first)."""
        with self._db.read() as s:
            rows = s.scalars(
                select(Segment)
                .join(Channel, Segment.channel_pk == Channel.pk)
                .where(Channel.gb_id == channel_id, Segment.end > start, Segment.start < end)
                .order_by(Segment.start)
            )
            return [
                SegmentFile(
                    id=seg.pk,
                    channel_id=channel_id,
                    start=seg.start,
                    end=seg.end,
                    codec=seg.codec,
                    path=self.path_of(seg.path, seg.tier),
                )
                for seg in rows
            ]

    def add(self, event: SegmentClosed) -> None:
        with self._db.transaction() as s:
            channel_pk = s.scalar(select(Channel.pk).where(Channel.gb_id == event.channel_id))
            if channel_pk is None:
                return  # the channel was deleted while recording
            s.add(
                Segment(
                    channel_pk=channel_pk,
                    start=event.start,
                    end=event.end,
                    bytes=event.bytes,
                    codec=event.codec,
                    path=event.path,
                    frames=event.frames,
                )
            )

    def list(
        self,
        principal: Principal,
        channel_id: str,
        *,
        start: datetime | None,
        end: datetime | None,
        offset: int = 0,
        limit: int = 100,
    ) -> tuple[list[SegmentView], int]:
        principal.require(Permission.VIDEO_PLAYBACK)
        if start is not None and end is not None and end <= start:
            raise InvalidInput("end must be after start")
        with self._db.read() as s:
            channel = visible_channel(s, principal, channel_id)
            stmt = select(Segment).where(Segment.channel_pk == channel.pk)
            # Overlap with [start, end), not containment: a segment that began before the
            # range still holds some of it.
            if start is not None:
                stmt = stmt.where(Segment.end > start)
            if end is not None:
                stmt = stmt.where(Segment.start < end)
            rows, total = page_rows(s, stmt.order_by(Segment.start), offset=offset, limit=limit)
            return [segment_view(seg, channel_id) for (seg,) in rows], total

    def gaps(
        self,
        principal: Principal,
        channel_id: str,
        start: datetime,
        end: datetime,
        *,
        tolerance: float = GAP_TOLERANCE_SECONDS,
    ) -> GapReport:
        """The parts of [start, end) that no recording covers (holes up to ``tolerance``
        seconds are not gaps). The range stops at now; the segment being recorded is not yet
        indexed, so a gap at the very end can be that segment."""
        principal.require(Permission.VIDEO_PLAYBACK)
        start, end = _utc(start), _utc(end)
        if end <= start:
            raise InvalidInput("end must be after start")
        end = min(end, self._clock.now())
        slack = timedelta(seconds=tolerance)
        gaps: list[Gap] = []
        covered = timedelta()
        with self._db.read() as s:
            channel = visible_channel(s, principal, channel_id)
            cursor = start
            if end > start:
                rows = s.execute(
                    select(Segment.start, Segment.end)
                    .where(
                        Segment.channel_pk == channel.pk, Segment.end > start, Segment.start < end
                    )
                    .order_by(Segment.start)
                )
                for seg_start, seg_end in rows:
                    seg_start, seg_end = max(seg_start, start), min(seg_end, end)
                    if seg_start - cursor > slack:
                        gaps.append(_gap(cursor, seg_start))
                    if seg_end > cursor:
                        covered += seg_end - max(seg_start, cursor)
                        cursor = seg_end
                if end - cursor > slack:
                    gaps.append(_gap(cursor, end))
        return GapReport(
            channel_id=channel_id,
            start=start,
            end=max(end, start),
            tolerance_seconds=tolerance,
            recorded_seconds=covered.total_seconds(),
            gaps=gaps,
        )

    def open_for_download(self, principal: Principal, segment_id: int) -> tuple[str, Path]:
        """(channel id, file) of a segment the principal may fetch; audited."""
        principal.require(Permission.VIDEO_PLAYBACK)
        with self._db.transaction() as s:
            row = s.execute(
                select(Segment, Channel.gb_id)
                .join(Channel, Segment.channel_pk == Channel.pk)
                .where(Segment.pk == segment_id)
            ).one_or_none()
            if row is None:
                raise NotFound(f"recording {segment_id} not found")
            seg, channel_id = row
            visible_channel(s, principal, channel_id)
            self._audit.append(
                s,
                principal,
                "video.playback",
                target=f"channel:{channel_id}",
                detail={
                    "segment": seg.pk,
                    "start": seg.start.isoformat(),
                    "end": seg.end.isoformat(),
                },
            )
            return channel_id, self.path_of(seg.path, seg.tier)


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise InvalidInput("times must carry a zone (ISO 8601 with Z or an offset)")
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise InvalidInput(f"time out of range: {value.isoformat()}") from exc


def _gap(start: datetime, end: datetime) -> Gap:
    return Gap(start=start, end=end, seconds=(end - start).total_seconds())
