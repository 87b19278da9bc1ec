"""Evidence export: a time range of one channel into ONE regular MP4 file, with a stated reason.

The range is remuxed exactly as playback does it (``RangeRemux``: from the key frame at or
before ``start``, continuous timestamps, gaps concatenated) into ``DATA/exports/`` with the index
in front (``movflags=faststart``), so the file plays in any player and from the first byte of a
download. Its SHA-256 goes into the export's row and into the audit record (``video.export``,
with the reason), so a copy handed over later can be checked against the tamper-evident log.

A platform export runs within the request (remuxing is I/O-bound and fast). An export that
takes longer, a download from a GB/T 28181 device at its download speed, is a job: its row
says ``running`` with a progress, then ``done``, ``partial`` (the device sent less than the
range) or ``failed``; the file is hashed and audited when it is finished
(``begin_job``/``finish_job``, driven by gb28181/downloads.py).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, cast

import av
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from xueliang.access.audit import AuditLog
from xueliang.access.permissions import Permission
from xueliang.access.principal import Principal
from xueliang.core.errors import Conflict, NotFound, PermissionDenied
from xueliang.core.text import reject_nul
from xueliang.media.playback import RangeRemux, check_range
from xueliang.media.segments import SegmentIndex
from xueliang.registry.common import visible_channel
from xueliang.store.db import Database
from xueliang.store.models import Channel, Export

log = logging.getLogger(__name__)

REGULAR_MP4 = {"movflags": "faststart"}
MIN_REASON = 4


class ExportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel_id: str = Field(max_length=20, description="20-digit channel ID")
    start: datetime = Field(description="ISO 8601 with zone")
    end: datetime = Field(description="ISO 8601 with zone; at most 24 hours after start")
    reason: str = Field(
        max_length=500, description="Why the video leaves the platform (case number, request)"
    )

    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        return reject_nul(value)  # PostgreSQL text cannot hold NUL (see xueliang.core.text)

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str) -> str:
        value = value.strip()
        if len(value) < MIN_REASON:
            raise ValueError(f"a reason of at least {MIN_REASON} characters is required")
        return value


ExportStatus = Literal["running", "done", "partial", "failed"]
FINISHED: tuple[ExportStatus, ...] = ("done", "partial")  # a file to hand out


class ExportView(BaseModel):
    id: int
    channel_id: str
    start: datetime
    end: datetime
    bytes: int
    sha256: str = Field(description="SHA-256 of the file; empty while the export runs")
    url: str | None = Field(description="Where to fetch the file; none until it is finished")
    source: Literal["platform", "device"] = Field(
        description="platform: from the platform's recordings; device: downloaded from a "
        "GB/T 28181 device's own recording"
    )
    status: ExportStatus = Field(
        description="running, done, partial (the device sent less than the range) or failed"
    )
    progress: float = Field(description="0 … 1")
    error: str | None = None
    reason: str
    created_by: str
    created_at: datetime
    finished_at: datetime | None = None


def export_view(row: Export) -> ExportView:
    status = cast(ExportStatus, row.status)
    return ExportView(
        id=row.pk,
        channel_id=row.channel_id,
        start=row.start,
        end=row.end,
        bytes=row.bytes,
        sha256=row.sha256,
        url=f"/api/v1/exports/{row.pk}/file" if status in FINISHED else None,
        source=cast(Literal["platform", "device"], row.source),
        status=status,
        progress=row.progress,
        error=row.error,
        reason=row.reason,
        created_by=row.created_by,
        created_at=row.created_at,
        finished_at=row.finished_at,
    )


@dataclass(frozen=True, slots=True)
class ExportJob:
    """An export that runs for a while (a device download): its row and the file it writes."""

    id: int
    channel_id: str
    part: Path  # written while running; renamed to ``path`` when finished
    path: Path
    principal: Principal  # who asked: the finished export is audited in their name


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


class ExportService:
    def __init__(self, db: Database, audit: AuditLog, segments: SegmentIndex, root: Path) -> None:
        self._db = db
        self._audit = audit
        self._segments = segments
        self.root = root

    def create(self, principal: Principal, body: ExportRequest) -> ExportView:
        principal.require(Permission.VIDEO_EXPORT)
        start, end = check_range(body.start, body.end)
        channel_id = body.channel_id
        with self._db.read() as s:
            visible_channel(s, principal, channel_id)
        segments = self._segments.covering(channel_id, start, end)
        if not segments:
            raise NotFound(f"nothing of channel {channel_id} is recorded in this range")
        remux = RangeRemux(segments, start, end)
        self.root.mkdir(parents=True, exist_ok=True)
        stamp = start.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        name = f"{channel_id}-{stamp}-{secrets.token_hex(4)}.mp4"
        path = self.root / name
        part = path.with_suffix(".part")
        try:
            with av.open(str(part), "w", format="mp4", options=REGULAR_MP4) as output:
                for _ in remux.mux(output):
                    pass
            size = part.stat().st_size
            digest = sha256_of(part)
            part.rename(path)
        except BaseException:
            remux.close()
            part.unlink(missing_ok=True)
            raise
        try:
            with self._db.transaction() as s:
                row = Export(
                    channel_id=channel_id,
                    start=start,
                    end=end,
                    reason=body.reason,
                    file=name,
                    bytes=size,
                    sha256=digest,
                    created_by=principal.username,
                    finished_at=datetime.now(UTC),
                )
                s.add(row)
                s.flush()
                self._audit.append(
                    s,
                    principal,
                    "video.export",
                    target=f"channel:{channel_id}",
                    reason=body.reason,
                    detail={
                        "export": row.pk,
                        "sha256": digest,
                        "bytes": size,
                        "start": start.isoformat(),
                        "end": end.isoformat(),
                        "file": name,
                    },
                )
                return export_view(row)
        except BaseException:
            path.unlink(missing_ok=True)  # not recorded, so not handed out
            raise

    # --- jobs ----------------------------------------------------------------------------------

    def begin_job(
        self,
        principal: Principal,
        channel_id: str,
        start: datetime,
        end: datetime,
        reason: str,
        *,
        source: Literal["device"] = "device",
    ) -> ExportJob:
        """A running export's row (the caller checked permission and scope); the file is
        audited when it is finished (``finish_job``), the request is audited now."""
        self.root.mkdir(parents=True, exist_ok=True)
        stamp = start.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        name = f"{channel_id}-{stamp}-{source}-{secrets.token_hex(4)}.mp4"
        with self._db.transaction() as s:
            row = Export(
                channel_id=channel_id,
                start=start,
                end=end,
                reason=reason,
                file=name,
                bytes=0,
                sha256="",
                created_by=principal.username,
                source=source,
                status="running",
                progress=0.0,
            )
            s.add(row)
            s.flush()
            self._audit.append(
                s,
                principal,
                "video.export.begin",
                target=f"channel:{channel_id}",
                reason=reason,
                detail={
                    "export": row.pk,
                    "source": source,
                    "start": start.isoformat(),
                    "end": end.isoformat(),
                },
            )
            job_id = row.pk
        path = self.root / name
        return ExportJob(job_id, channel_id, path.with_suffix(".part"), path, principal)

    def progress(self, export_id: int, fraction: float, size: int) -> None:
        with self._db.transaction() as s:
            row = s.get(Export, export_id)
            if row is not None and row.status == "running":
                row.progress = max(0.0, min(1.0, fraction))
                row.bytes = size

    def finish_job(
        self, job: ExportJob, *, complete: bool, fraction: float, error: str | None = None
    ) -> ExportView:
        """The job's file is closed: hash it, hand it out (done or partial) and audit it with
        its SHA-256; a job without a file (or with an empty one) failed."""
        size = job.part.stat().st_size if job.part.is_file() else 0
        digest = ""
        if size > 0:
            digest = sha256_of(job.part)
            job.part.rename(job.path)
        else:
            job.part.unlink(missing_ok=True)
        status: ExportStatus = "failed" if size == 0 else "done" if complete else "partial"
        if status == "failed" and error is None:
            error = "nothing was received"
        with self._db.transaction() as s:
            row = s.get(Export, job.id)
            if row is None:
                raise NotFound(f"export {job.id} not found")
            row.status = status
            row.progress = 1.0 if complete else max(0.0, min(1.0, fraction))
            row.bytes = size
            row.sha256 = digest
            row.error = error
            row.finished_at = datetime.now(UTC)
            self._audit.append(
                s,
                job.principal,
                "video.export" if status != "failed" else "video.export.failed",
                target=f"channel:{job.channel_id}",
                reason=row.reason,
                detail={
                    "export": row.pk,
                    "source": row.source,
                    "status": status,
                    "sha256": digest,
                    "bytes": size,
                    "start": row.start.isoformat(),
                    "end": row.end.isoformat(),
                    "file": row.file,
                    "error": error,
                },
            )
            return export_view(row)

    def fail_running(self, why: str) -> int:
        """Jobs left running by a stopped platform are failed (their devices stopped sending
        when the platform went): run at start. Returns how many."""
        with self._db.transaction() as s:
            rows = list(s.scalars(select(Export).where(Export.status == "running")))
            for row in rows:
                row.status = "failed"
                row.error = why
                row.finished_at = datetime.now(UTC)
                (self.root / row.file).with_suffix(".part").unlink(missing_ok=True)
            return len(rows)

    def get(self, principal: Principal, export_id: int) -> ExportView:
        principal.require(Permission.VIDEO_EXPORT)
        with self._db.read() as s:
            row = s.scalar(select(Export).where(Export.pk == export_id))
            if row is None:
                raise NotFound(f"export {export_id} not found")
            self._visible(s, principal, row)
            return export_view(row)

    def recent(self, principal: Principal, *, limit: int = 100) -> list[ExportView]:
        """The newest exports the principal may see (their channels'; a deleted camera's:
        admins only)."""
        principal.require(Permission.VIDEO_EXPORT)
        out: list[ExportView] = []
        with self._db.read() as s:
            rows = s.scalars(select(Export).order_by(Export.pk.desc()).limit(limit * 4))
            for row in rows:
                try:
                    self._visible(s, principal, row)
                except (NotFound, PermissionDenied):
                    continue
                out.append(export_view(row))
                if len(out) >= limit:
                    break
        return out

    @staticmethod
    def _visible(s: Session, principal: Principal, row: Export) -> None:
        gone = s.scalar(select(Channel.pk).where(Channel.gb_id == row.channel_id)) is None
        if gone and principal.scope.everything:
            return
        if gone:
            raise NotFound(f"export {row.pk} not found")
        visible_channel(s, principal, row.channel_id)

    def open_for_download(self, principal: Principal, export_id: int) -> tuple[Path, str]:
        """(file, download name) of an export the principal may fetch; audited."""
        principal.require(Permission.VIDEO_EXPORT)
        with self._db.transaction() as s:
            row = s.scalar(select(Export).where(Export.pk == export_id))
            if row is None:
                raise NotFound(f"export {export_id} not found")
            self._visible(s, principal, row)  # a deleted camera's: admins only
            if row.status not in FINISHED:
                raise Conflict(f"export {export_id} is {row.status}: it has no file to fetch")
            path = self.root / row.file
            if not path.is_file():
                raise NotFound(f"the file of export {export_id} is missing")
            self._audit.append(
                s,
                principal,
                "video.export.download",
                target=f"channel:{row.channel_id}",
                detail={"export": row.pk, "sha256": row.sha256, "file": row.file},
            )
            return path, row.file
