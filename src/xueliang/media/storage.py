"""Storage policy for recordings: retention, storage tiers, the quota (never touching what a
legal hold keeps, see xueliang.media.holds); start-up repair of the index against the files is
in xueliang.media.repair, tiers and the policy in xueliang.media.tiers.

A sweep (one pass, run periodically by a background thread) does, in this order:

1. plans the deletion of segments older than their channel's retention;
2. moves segments on to the next tier when older than the tier's ``max_age_days`` or, oldest
   first, when the tier holds more than its ``max_bytes``;
3. plans the deletion of the oldest segments while the last tier holds more than its
   ``max_bytes``, while all tiers together hold more than the quota, or while a recordings
   filesystem has less than ``min_free_bytes`` free;
4. deletes the planned rows in one transaction with one aggregate audit record
   (``recording.expire``), then unlinks their files.

A segment overlapping an active legal hold is never planned for deletion, and the plan is
checked against the holds again inside the deleting transaction (which locks the channels'
rows, as placing a hold does), so a hold placed during a sweep wins.

A move never loses a file: the file is linked (same filesystem) or copied, fsynced and renamed
into the next tier, then the index row is updated, then the old file is unlinked. A crash in
between leaves two copies; start-up repair keeps the one the index names.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, and_, delete, exists, func, or_, select

from xueliang.access.audit import AuditLog
from xueliang.access.permissions import Permission
from xueliang.access.principal import SYSTEM, Principal
from xueliang.core.clock import Clock
from xueliang.media.repair import RecordingRepair, RepairReport
from xueliang.media.segments import SegmentIndex
from xueliang.media.tiers import (
    BATCH,
    MOVING_SUFFIX,
    StoragePolicy,
    Tier,
    _chunks,
    _fsync_dir,
    disk_free,
)
from xueliang.store.db import Database
from xueliang.store.models import Channel, Hold, Segment

log = logging.getLogger(__name__)

# Work done by one sweep at most; the background thread runs the next one at once when a sweep
# stopped at a limit, so a large backlog goes in steps and a stop request is not kept waiting.
MAX_DELETIONS_PER_SWEEP = 20_000
MAX_MOVES_PER_SWEEP = 500


# --- reports ----------------------------------------------------------------------------------


class SweepReport(BaseModel):
    started_at: datetime
    finished_at: datetime | None = None
    moved: int = 0
    moved_bytes: int = 0
    deleted: int = 0
    deleted_bytes: int = 0
    deleted_by_reason: dict[str, int] = Field(
        default_factory=dict, description="retention | tier_full | quota | free_space"
    )
    held: int = Field(
        default=0, description="Segments past retention kept only because a legal hold covers them"
    )
    over_quota_bytes: int = Field(
        default=0, description="Bytes still over the quota: only held recordings are left to go"
    )
    more: bool = Field(default=False, description="Stopped at a per-sweep limit; more to do")
    errors: list[str] = Field(default_factory=list)


class TierView(BaseModel):
    index: int
    path: str
    max_age_days: float | None
    max_bytes: int
    bytes: int = Field(description="Bytes of the indexed recordings on this tier")
    segments: int
    free_bytes: int | None = Field(description="Free space on the tier's filesystem")
    total_bytes: int | None = Field(description="Size of the tier's filesystem")


class StorageView(BaseModel):
    retention_days: int
    quota_bytes: int
    min_free_bytes: int
    bytes: int
    segments: int
    active_holds: int
    tiers: list[TierView]
    last_sweep: SweepReport | None
    last_repair: RepairReport | None


# --- the sweep --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Seg:
    pk: int
    channel_pk: int
    path: str
    tier: int
    bytes: int
    start: datetime
    end: datetime


_COLUMNS = (
    Segment.pk,
    Segment.channel_pk,
    Segment.path,
    Segment.tier,
    Segment.bytes,
    Segment.start,
    Segment.end,
)


def _held() -> ColumnElement[bool]:
    """The segment overlaps an active legal hold on its channel."""
    return exists().where(
        Hold.channel_pk == Segment.channel_pk,
        Hold.released_at.is_(None),
        Hold.start < Segment.end,
        Hold.end > Segment.start,
    )


class _MoveFailed(Exception):
    pass


@dataclass
class _Plan:
    """Segments a sweep will delete, by primary key, with the reason for each."""

    segs: dict[int, tuple[_Seg, str]] = field(default_factory=dict)

    def add(self, seg: _Seg, reason: str) -> None:
        self.segs.setdefault(seg.pk, (seg, reason))

    def __contains__(self, pk: int) -> bool:
        return pk in self.segs

    def __len__(self) -> int:
        return len(self.segs)

    def bytes_on(self, tiers: set[int] | None) -> int:
        """Planned bytes on these tiers (None: on any)."""
        return sum(seg.bytes for seg, _ in self.segs.values() if tiers is None or seg.tier in tiers)


class StorageManager:
    def __init__(
        self,
        db: Database,
        audit: AuditLog,
        clock: Clock,
        index: SegmentIndex,
        tiers: Sequence[Tier],
        policy: StoragePolicy,
        *,
        free_space: Callable[[Path], int] = disk_free,
    ) -> None:
        if not tiers:
            raise ValueError("at least one storage tier is needed")
        self._db = db
        self._audit = audit
        self._clock = clock
        self._index = index
        self.tiers = list(tiers)
        self.policy = policy
        self.free_space = free_space
        self.last_sweep: SweepReport | None = None
        self.last_repair: RepairReport | None = None
        self._repair = RecordingRepair(db, audit, clock, index, self.tiers)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- running --------------------------------------------------------------------------

    def start(self) -> None:
        """Repair the index against the files, then sweep periodically in the background.
        Call before ingest starts: a file being recorded would look like an orphan."""
        if self._thread is not None:
            return
        self.repair()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="storage-sweep", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=60)

    def _run(self) -> None:
        while not self._stop.is_set():
            more = False
            try:
                more = self._sweep(self._stop).more
            except Exception:  # a failed sweep must not end the sweeping
                log.exception("storage sweep failed")
            if not more:
                self._stop.wait(self.policy.sweep_seconds)

    def sweep(self) -> SweepReport:
        """One pass of the storage policy (see the module's description)."""
        return self._sweep(threading.Event())

    def _sweep(self, interrupt: threading.Event) -> SweepReport:
        with self._lock:
            report = SweepReport(started_at=self._clock.now())
            plan = _Plan()
            self._plan_retention(plan, report)
            self._move_between_tiers(plan, report, interrupt)
            last = self.tiers[-1]
            if last.max_bytes:
                used = self._tier_bytes(last.index) - plan.bytes_on({last.index})
                self._plan_oldest(plan, report, used - last.max_bytes, "tier_full", [last.index])
            if self.policy.quota_bytes:
                used = self._tier_bytes(None) - plan.bytes_on(None)
                left = self._plan_oldest(
                    plan, report, used - self.policy.quota_bytes, "quota", None
                )
                report.over_quota_bytes = max(0, left)
            if self.policy.min_free_bytes:
                self._plan_free_space(plan, report)
            self._delete(plan, report)
            report.finished_at = self._clock.now()
            self.last_sweep = report
        if report.deleted or report.moved or report.errors:
            log.info(
                "storage sweep: %d moved, %d deleted (%s), %d errors",
                report.moved,
                report.deleted,
                report.deleted_by_reason,
                len(report.errors),
            )
        return report

    # --- planning -------------------------------------------------------------------------

    def _room(self, plan: _Plan, report: SweepReport) -> int:
        room = MAX_DELETIONS_PER_SWEEP - len(plan)
        if room <= 0:
            report.more = True
        return room

    def _plan_retention(self, plan: _Plan, report: SweepReport) -> None:
        now = self._clock.now()
        days = func.coalesce(Channel.retention_days, self.policy.retention_days)
        with self._db.read() as s:
            periods = sorted(d for d in s.scalars(select(days).distinct()) if d is not None)
            for period in periods:
                cutoff = now - timedelta(days=period)
                expired = (
                    select(*_COLUMNS)
                    .join(Channel, Segment.channel_pk == Channel.pk)
                    .where(days == period, Segment.start < cutoff, Segment.end <= cutoff)
                )
                report.held += (
                    s.scalar(select(func.count()).select_from(expired.where(_held()).subquery()))
                    or 0
                )
                room = self._room(plan, report)
                if room <= 0:
                    return
                rows = s.execute(
                    expired.where(~_held()).order_by(Segment.start, Segment.pk).limit(room + 1)
                ).all()
                if len(rows) > room:
                    report.more = True
                for row in rows[:room]:
                    plan.add(_Seg(*row), "retention")

    def _oldest(self, tiers: Sequence[int] | None, *, held_too: bool = False) -> Iterator[_Seg]:
        """Segments oldest first (on the given tiers), without the held ones unless asked."""
        after: tuple[datetime, int] | None = None
        while True:
            stmt = select(*_COLUMNS).order_by(Segment.start, Segment.pk).limit(BATCH)
            if tiers is not None:
                stmt = stmt.where(Segment.tier.in_(list(tiers)))
            if not held_too:
                stmt = stmt.where(~_held())
            if after is not None:
                stmt = stmt.where(
                    or_(
                        Segment.start > after[0],
                        and_(Segment.start == after[0], Segment.pk > after[1]),
                    )
                )
            with self._db.read() as s:
                rows = [_Seg(*row) for row in s.execute(stmt)]
            yield from rows
            if len(rows) < BATCH:
                return
            after = (rows[-1].start, rows[-1].pk)

    def _plan_oldest(
        self,
        plan: _Plan,
        report: SweepReport,
        excess: int,
        reason: str,
        tiers: Sequence[int] | None,
    ) -> int:
        """Plan deleting the oldest unheld segments until ``excess`` bytes are freed; returns
        what is left of the excess (over 0: only held recordings, or the limit, stopped it)."""
        if excess <= 0:
            return excess
        for seg in self._oldest(tiers):
            if excess <= 0:
                break
            if seg.pk in plan:
                continue
            if self._room(plan, report) <= 0:
                break
            plan.add(seg, reason)
            excess -= seg.bytes
        return excess

    def _plan_free_space(self, plan: _Plan, report: SweepReport) -> None:
        """Per filesystem: delete the oldest recordings on its tiers until enough is free."""
        devices: dict[int, list[Tier]] = {}
        for tier in self.tiers:
            try:
                devices.setdefault(os.stat(tier.root).st_dev, []).append(tier)
            except OSError as exc:
                report.errors.append(f"tier {tier.index} ({tier.root}): {exc}")
        for tiers in devices.values():
            indexes = {t.index for t in tiers}
            try:
                free = self.free_space(tiers[0].root)
            except OSError as exc:
                report.errors.append(f"free space of {tiers[0].root}: {exc}")
                continue
            short = self.policy.min_free_bytes - free - plan.bytes_on(indexes)
            self._plan_oldest(plan, report, short, "free_space", sorted(indexes))

    def _tier_bytes(self, tier: int | None) -> int:
        stmt = select(func.coalesce(func.sum(Segment.bytes), 0))
        if tier is not None:
            stmt = stmt.where(Segment.tier == tier)
        with self._db.read() as s:
            return int(s.scalar(stmt) or 0)

    # --- moving between tiers -------------------------------------------------------------

    def _move_between_tiers(
        self, plan: _Plan, report: SweepReport, interrupt: threading.Event
    ) -> None:
        now = self._clock.now()
        for tier, target in zip(self.tiers, self.tiers[1:], strict=False):
            try:
                if tier.max_age is not None:
                    cutoff = now - tier.max_age
                    for seg in self._oldest([tier.index], held_too=True):
                        if seg.start >= cutoff or not self._may_move(report, interrupt):
                            break
                        if seg.end <= cutoff and seg.pk not in plan:
                            self._move(seg, target, report)
                if tier.max_bytes:
                    excess = self._tier_bytes(tier.index) - tier.max_bytes
                    excess -= plan.bytes_on({tier.index})
                    for seg in self._oldest([tier.index], held_too=True):
                        if excess <= 0 or not self._may_move(report, interrupt):
                            break
                        if seg.pk not in plan and self._move(seg, target, report):
                            excess -= seg.bytes
            except _MoveFailed as exc:
                # A full or failing target: no use trying the next file; the next sweep will.
                report.errors.append(str(exc))

    def _may_move(self, report: SweepReport, interrupt: threading.Event) -> bool:
        if interrupt.is_set():
            report.more = True
            return False
        if report.moved >= MAX_MOVES_PER_SWEEP:
            report.more = True
            return False
        return True

    def _move(self, seg: _Seg, target: Tier, report: SweepReport) -> bool:
        """Link or copy the file into ``target``, make it durable, update the index, then
        remove the old file. False (and the index untouched) when the file or its row is gone;
        _MoveFailed when the file could not be written."""
        src = self._index.path_of(seg.path, seg.tier)
        dst = target.root / seg.path
        tmp = dst.with_name(f".{dst.name}{MOVING_SUFFIX}")
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp.unlink(missing_ok=True)
            try:
                os.link(src, tmp)  # same filesystem: no copy
            except FileNotFoundError:
                raise
            except OSError:  # another filesystem (EXDEV), or one without hard links
                shutil.copyfile(src, tmp)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, dst)
            _fsync_dir(dst.parent)
        except FileNotFoundError:
            tmp.unlink(missing_ok=True)
            report.errors.append(f"segment {seg.pk}: file missing at {src}")
            return False
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise _MoveFailed(f"segment {seg.pk}: moving to tier {target.index}: {exc}") from exc
        with self._db.transaction() as s:
            row = s.get(Segment, seg.pk)
            moved = row is not None and row.tier == seg.tier
            if row is not None and moved:
                row.tier = target.index
        if not moved:  # deleted (its channel was) or moved by someone else meanwhile
            dst.unlink(missing_ok=True)
            return False
        src.unlink(missing_ok=True)
        report.moved += 1
        report.moved_bytes += seg.bytes
        return True

    # --- deleting -------------------------------------------------------------------------

    def _delete(self, plan: _Plan, report: SweepReport) -> None:
        if not plan.segs:
            return
        pks = sorted(plan.segs)
        gone: list[_Seg] = []
        with self._db.transaction() as s:
            channel_pks = sorted({seg.channel_pk for seg, _ in plan.segs.values()})
            names: dict[int, str] = {}
            for chunk in _chunks(channel_pks):
                # The lock placing a hold takes too: a hold placed meanwhile is seen below.
                rows = s.execute(
                    select(Channel.pk, Channel.gb_id)
                    .where(Channel.pk.in_(chunk))
                    .order_by(Channel.pk)
                    .with_for_update(key_share=True)
                )
                names.update({pk: gb_id for pk, gb_id in rows})
            for chunk in _chunks(pks):
                # Checked again under the lock; a row deleted meanwhile is simply not found.
                held = {
                    pk: bool(is_held)
                    for pk, is_held in s.execute(
                        select(Segment.pk, _held()).where(Segment.pk.in_(chunk))
                    )
                }
                deletable = sorted(pk for pk, is_held in held.items() if not is_held)
                for pk in deletable:
                    seg, reason = plan.segs[pk]
                    gone.append(seg)
                    report.deleted_by_reason[reason] = report.deleted_by_reason.get(reason, 0) + 1
                report.held += sum(
                    1 for pk, is_held in held.items() if is_held and plan.segs[pk][1] == "retention"
                )
                s.execute(delete(Segment).where(Segment.pk.in_(deletable)))
            if not gone:
                return
            report.deleted = len(gone)
            report.deleted_bytes = sum(seg.bytes for seg in gone)
            self._audit.append(
                s,
                SYSTEM,
                "recording.expire",
                target="storage",
                detail=self._expiry_detail(gone, names, report),
            )
        dirs: set[Path] = set()
        for seg in gone:
            path = self._index.path_of(seg.path, seg.tier)
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                report.errors.append(f"removing {path}: {exc}")
            dirs.add(path.parent)
        self._remove_old_day_dirs(dirs)

    def _expiry_detail(
        self, gone: list[_Seg], names: dict[int, str], report: SweepReport
    ) -> dict[str, Any]:
        channels: dict[str, dict[str, Any]] = {}
        for seg in sorted(gone, key=lambda g: g.start):
            entry = channels.setdefault(
                names.get(seg.channel_pk, str(seg.channel_pk)),
                {"segments": 0, "bytes": 0, "from": seg.start.isoformat()},
            )
            entry["segments"] += 1
            entry["bytes"] += seg.bytes
            entry["to"] = max(entry.get("to", ""), seg.end.isoformat())
        return {
            "segments": report.deleted,
            "bytes": report.deleted_bytes,
            "reasons": dict(report.deleted_by_reason),
            "channels": channels,
        }

    def _remove_old_day_dirs(self, dirs: set[Path]) -> None:
        """Remove emptied day folders, but not today's or yesterday's: the recorder may be
        about to open a file in them."""
        recent = {f"{self._clock.now().astimezone(UTC) - timedelta(days=d):%Y%m%d}" for d in (0, 1)}
        for d in dirs:
            if d.name in recent:
                continue
            with contextlib.suppress(OSError):  # not empty, or already gone
                d.rmdir()

    # --- start-up repair ------------------------------------------------------------------

    def repair(self, only: Collection[str] | None = None) -> RepairReport:
        """Check the index and the files against each other and mend both (run before
        ingest, or for the channels of a media worker that died); see RecordingRepair.repair."""
        with self._lock:
            report = self._repair.repair(only)
            self.last_repair = report
            return report

    # --- status ---------------------------------------------------------------------------

    def status(self, principal: Principal) -> StorageView:
        principal.require(Permission.SYSTEM_MANAGE)
        with self._db.read() as s:
            per_tier = {
                tier: (int(total or 0), int(n))
                for tier, total, n in s.execute(
                    select(Segment.tier, func.sum(Segment.bytes), func.count()).group_by(
                        Segment.tier
                    )
                )
            }
            holds = s.scalar(select(func.count()).where(Hold.released_at.is_(None))) or 0
        views = []
        for tier in self.tiers:
            used, n = per_tier.get(tier.index, (0, 0))
            free: int | None = None
            total: int | None = None
            try:
                total = shutil.disk_usage(tier.root).total
                free = self.free_space(tier.root)
            except OSError:
                pass
            views.append(
                TierView(
                    index=tier.index,
                    path=str(tier.root),
                    max_age_days=tier.max_age / timedelta(days=1) if tier.max_age else None,
                    max_bytes=tier.max_bytes,
                    bytes=used,
                    segments=n,
                    free_bytes=free,
                    total_bytes=total,
                )
            )
        return StorageView(
            retention_days=self.policy.retention_days,
            quota_bytes=self.policy.quota_bytes,
            min_free_bytes=self.policy.min_free_bytes,
            bytes=sum(v.bytes for v in views),
            segments=sum(v.segments for v in views),
            active_holds=holds,
            tiers=views,
            last_sweep=self.last_sweep,
            last_repair=self.last_repair,
        )
