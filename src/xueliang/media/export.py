"""Evidence export: a time range of one channel into ONE regular MP4 file, with a stated reason.

The range is remuxed exactly as playback does it (``RangeRemux``: from the key frame at or
before ``start``, continuous timestamps, gaps concatenated) into ``DATA/exports/`` with the index
in front (``movflags=faststart``), so the file plays in any player and from the first byte of a
download. Its SHA-256 goes into the export's row and into the audit record (``video.export``,
with the reason), so a copy handed over later can be checked against the tamper-evident log.

The export runs synchronously within the request for now: remuxing is I/O-bound and fast, but a
long range of a high bit-rate camera keeps the request open for a while; a job queue with
progress is the next step.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import av
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select

from xueliang.access.audit import AuditLog
from xueliang.access.permissions import Permission
from xueliang.access.principal import Principal
from xueliang.core.errors import NotFound
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


class ExportView(BaseModel):
    id: int
    channel_id: str
    start: datetime
    end: datetime
    bytes: int
    sha256: str
    url: str


def export_view(row: Export) -> ExportView:
    return ExportView(
        id=row.pk,
        channel_id=row.channel_id,
        start=row.start,
        end=row.end,
        bytes=row.bytes,
        sha256=row.sha256,
        url=f"/api/v1/exports/{row.pk}/file",
    )


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

    def open_for_download(self, principal: Principal, export_id: int) -> tuple[Path, str]:
        """(file, download name) of an export the principal may fetch; audited."""
        principal.require(Permission.VIDEO_EXPORT)
        with self._db.transaction() as s:
            row = s.scalar(select(Export).where(Export.pk == export_id))
            if row is None:
                raise NotFound(f"export {export_id} not found")
            gone = s.scalar(select(Channel.pk).where(Channel.gb_id == row.channel_id)) is None
            if not (gone and principal.scope.everything):
                visible_channel(s, principal, row.channel_id)  # a deleted camera's: admins only
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
