"""Start-up repair of the recordings index against the files: files without a row are probed
and indexed (or moved aside when unreadable), rows without a file are removed, rows are pointed
at the tier their file is on, and the second copy left by an interrupted move is removed.
StorageManager (xueliang.media.storage) runs it before ingest starts."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import av
from pydantic import BaseModel, Field
from sqlalchemy import delete, exists, select, update

from xueliang.access.audit import AuditLog
from xueliang.access.principal import SYSTEM
from xueliang.core.clock import Clock
from xueliang.media.segments import SegmentIndex
from xueliang.media.tiers import DAMAGED_DIR, MOVING_SUFFIX, Tier, _chunks
from xueliang.store.db import Database
from xueliang.store.models import Channel, Segment

log = logging.getLogger(__name__)

# Names in a report (files indexed, moved aside …) beyond this are counted, not listed.
REPORT_SAMPLES = 50


# --- the report -------------------------------------------------------------------------------


class RepairReport(BaseModel):
    started_at: datetime
    finished_at: datetime | None = None
    files_checked: int = 0
    indexed: int = Field(default=0, description="Files without an index row, probed and indexed")
    missing: int = Field(default=0, description="Index rows whose file is gone, removed")
    damaged: int = Field(default=0, description="Unreadable files, moved aside to damaged/")
    relocated: int = Field(default=0, description="Rows whose file was found in another tier")
    duplicates_removed: int = Field(default=0, description="Second copies left by a cut move")
    unregistered: int = Field(
        default=0, description="Files of channels not in the registry, left in place"
    )
    samples: dict[str, list[str]] = Field(
        default_factory=dict, description=f"Up to {REPORT_SAMPLES} paths for each kind"
    )

    def note(self, kind: str, path: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        names = self.samples.setdefault(kind, [])
        if len(names) < REPORT_SAMPLES:
            names.append(path)

    @property
    def changed(self) -> bool:
        return bool(
            self.indexed
            or self.missing
            or self.damaged
            or self.relocated
            or self.duplicates_removed
        )


# --- probing files ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Probe:
    start: datetime
    end: datetime
    codec: str
    frames: int


def start_from_name(rel: str) -> datetime:
    """The start time a segment's path encodes: ``<channel>/<YYYYMMDD>/<HHMMSS.mmm>.mp4``
    (UTC, see recorder.segment_path). ValueError when the path is not one of those."""
    parts = rel.split("/")
    if len(parts) != 3 or not parts[2].endswith(".mp4"):
        raise ValueError(f"not a segment path: {rel}")
    stamp = parts[1] + parts[2][: -len(".mp4")]
    return datetime.strptime(stamp, "%Y%m%d%H%M%S.%f").replace(tzinfo=UTC)


def probe_segment(path: Path, start: datetime) -> Probe | None:
    """What a segment file holds, read packet by packet without decoding; None when it holds no
    video. A file cut short (a killed recorder) is read up to its last complete fragment."""
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError):
        return None
    with container:
        video = next((s for s in container.streams if s.type == "video"), None)
        if video is None or video.time_base is None:
            return None
        codec = video.codec_context.name
        time_base: Fraction = video.time_base
        first: int | None = None
        last: int | None = None
        step = 0
        frames = 0
        try:
            for packet in container.demux(video):
                if packet.is_corrupt:
                    break  # the sample the cut went through
                if packet.size == 0 or packet.dts is None:
                    continue
                if first is None:
                    first = packet.dts
                if last is not None:
                    step = max(1, packet.dts - last)
                last = packet.dts
                frames += 1
        except (av.error.FFmpegError, OSError):
            pass  # the cut-off end of a killed process's file: keep what was read
    if frames == 0 or first is None or last is None:
        return None
    span = float((last - first + step) * time_base)
    return Probe(start=start, end=start + timedelta(seconds=span), codec=codec, frames=frames)


# --- the repair -------------------------------------------------------------------------------


class RecordingRepair:
    """Mends the index and the files against each other. Not locked: the caller (StorageManager)
    keeps a sweep from running meanwhile."""

    def __init__(
        self,
        db: Database,
        audit: AuditLog,
        clock: Clock,
        index: SegmentIndex,
        tiers: Sequence[Tier],
    ) -> None:
        self._db = db
        self._audit = audit
        self._clock = clock
        self._index = index
        self._tiers = tiers  # the manager's list itself, so a change to it is seen here

    def repair(self, only: Collection[str] | None = None) -> RepairReport:
        """Check the index and the files against each other and mend both (run before
        ingest). Files without a row are probed and indexed if readable, else moved aside to
        ``damaged/``; rows without a file are removed; a file found in another tier than its
        row names is followed; the second copy of an interrupted move is removed.

        ``only``: just these channels (those of a media worker that died, while the others
        go on recording: their files in progress must not be touched)."""
        report = RepairReport(started_at=self._clock.now())
        files = self._scan(report, only)
        with self._db.read() as s:
            channels = {gb_id: pk for pk, gb_id in s.execute(select(Channel.pk, Channel.gb_id))}
            with_rows = set(
                s.scalars(
                    select(Channel.gb_id).where(exists().where(Segment.channel_pk == Channel.pk))
                )
            )
        todo = set(files) | with_rows
        if only is not None:
            todo &= set(only)
        for gb_id in sorted(todo):
            on_disk = files.get(gb_id, {})
            pk = channels.get(gb_id)
            if pk is None:
                for rel in sorted(on_disk):
                    report.note("unregistered", rel)
                continue
            self._repair_channel(gb_id, pk, on_disk, report)
        report.finished_at = self._clock.now()
        if report.changed:
            with self._db.transaction() as s:
                detail = report.model_dump(mode="json", exclude={"started_at", "finished_at"})
                self._audit.append(s, SYSTEM, "recording.repair", target="storage", detail=detail)
            log.warning(
                "recordings repaired: %d indexed, %d rows without a file removed, "
                "%d unreadable files moved aside, %d relocated, %d duplicates removed",
                report.indexed,
                report.missing,
                report.damaged,
                report.relocated,
                report.duplicates_removed,
            )
        return report

    def _scan(
        self, report: RepairReport, only: Collection[str] | None = None
    ) -> dict[str, dict[str, list[int]]]:
        """Segment files on every tier: channel -> relative path -> tiers holding it. Leftover
        temporary files of interrupted moves are removed on the way."""
        files: dict[str, dict[str, list[int]]] = {}
        for tier in self._tiers:
            if not tier.root.is_dir():
                continue
            for channel_dir in sorted(tier.root.iterdir()):
                if (
                    not channel_dir.is_dir()
                    or channel_dir.name == DAMAGED_DIR
                    or channel_dir.name.startswith(".")
                    or (only is not None and channel_dir.name not in only)
                ):
                    continue
                for day_dir in sorted(channel_dir.iterdir()):
                    if not day_dir.is_dir():
                        continue
                    for f in sorted(day_dir.iterdir()):
                        if f.name.startswith(".") and f.name.endswith(MOVING_SUFFIX):
                            f.unlink(missing_ok=True)
                            continue
                        if not f.name.endswith(".mp4") or not f.is_file():
                            continue
                        rel = f"{channel_dir.name}/{day_dir.name}/{f.name}"
                        files.setdefault(channel_dir.name, {}).setdefault(rel, []).append(
                            tier.index
                        )
                        report.files_checked += 1
        return files

    def _repair_channel(
        self, gb_id: str, channel_pk: int, on_disk: dict[str, list[int]], report: RepairReport
    ) -> None:
        with self._db.read() as s:
            rows = {
                path: (pk, tier)
                for pk, path, tier in s.execute(
                    select(Segment.pk, Segment.path, Segment.tier).where(
                        Segment.channel_pk == channel_pk
                    )
                )
            }
        missing: list[int] = []
        relocate: dict[int, int] = {}
        for rel, (pk, tier) in rows.items():
            where = on_disk.get(rel, [])
            if not where:
                missing.append(pk)
                report.note("missing", rel)
                continue
            if tier not in where:
                tier = where[0]
                relocate[pk] = tier
                report.note("relocated", rel)
            for other in where:
                if other != tier:  # the second copy of a move cut short
                    self._index.path_of(rel, other).unlink(missing_ok=True)
                    report.note("duplicates_removed", rel)
        new: list[Segment] = []
        for rel, where in sorted(on_disk.items()):
            if rel in rows:
                continue
            tier = where[0]
            path = self._index.path_of(rel, tier)
            probe = None
            with contextlib.suppress(ValueError):  # a name that is no segment's
                probe = probe_segment(path, start_from_name(rel))
            if probe is None:
                self._move_aside(rel, tier)
                report.note("damaged", rel)
                continue
            try:
                size = path.stat().st_size
            except OSError:
                continue
            new.append(
                Segment(
                    channel_pk=channel_pk,
                    start=probe.start,
                    end=probe.end,
                    bytes=size,
                    codec=probe.codec[:16],
                    path=rel,
                    frames=probe.frames,
                    tier=tier,
                )
            )
            report.note("indexed", rel)
        if not (missing or relocate or new):
            return
        with self._db.transaction() as s:
            for chunk in _chunks(missing):
                s.execute(delete(Segment).where(Segment.pk.in_(chunk)))
            for pk, tier in relocate.items():
                s.execute(update(Segment).where(Segment.pk == pk).values(tier=tier))
            s.add_all(new)
        log.info("channel %s: repaired its recordings index", gb_id)

    def _move_aside(self, rel: str, tier: int) -> None:
        src = self._index.path_of(rel, tier)
        dst = self._index.roots[min(tier, len(self._index.roots) - 1)] / DAMAGED_DIR / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        n = 1
        while dst.exists():
            dst = dst.with_name(f"{dst.stem}.{n}{dst.suffix}")
            n += 1
        os.replace(src, dst)
        log.warning("unreadable recording %s moved aside to %s", src, dst)
