"""Snapshots GB/T 28181-2022 devices take and upload on command.

:class:`DeviceSnapshots` runs snapshot sessions: the platform sends SnapShotConfig with an upload
URL of its own that carries an unguessable per-session token (devices cannot log in) and a
SessionID; the device uploads JPEGs there over HTTP and then sends ``UploadSnapShotFinished``
with the SessionID and the IDs of the files. The pictures are stored under the data directory::

    DATA/device-snapshots/<channel>/<session>/session.json   what was asked, what came
    DATA/device-snapshots/<channel>/<session>/<file id>.jpg

A session is ``running`` until the notify arrives (then ``done``, or ``incomplete`` while
files it lists have not arrived), ``timed_out`` when neither came in time, ``failed`` when the
device refused. Upload tokens live in memory: after a restart old sessions take no more files.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xueliang.access.audit import AuditLog
from xueliang.access.permissions import Permission
from xueliang.access.principal import Principal
from xueliang.core.errors import (
    Conflict,
    DeviceError,
    InvalidInput,
    NotFound,
)
from xueliang.gb28181 import manscdp
from xueliang.gb28181.config import DeviceConfigService
from xueliang.gb28181.control import check_result
from xueliang.registry.common import visible_channel
from xueliang.store.db import Database

if TYPE_CHECKING:
    from xueliang.gb28181.server import GbServer
    from xueliang.gb28181.sip import SipRequest
    from xueliang.gb28181.stream_session import ChannelRoute

log = logging.getLogger(__name__)

JPEG_MAGIC = b"\xff\xd8\xff"
MAX_SNAPSHOT_BYTES = 4 * 1024 * 1024  # a 4K JPEG of a busy scene is 2-3 MiB
MAX_SNAPSHOTS = 10  # SnapNum: the standard allows 1..10
SETTLE_SECONDS = 60.0  # beyond count x interval, for the device to upload and report
_FILE_ID = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_SESSION_ID = re.compile(r"[0-9a-f]{32}")


# --- snapshot sessions ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredSnapshot:
    file_id: str
    size: int
    sha256: str
    received_at: datetime


@dataclass
class SnapshotSession:
    session_id: str
    channel_id: str
    device_id: str  # the SIP device the channel belongs to
    target_id: str  # the ID the device uses for the channel
    count: int
    interval: int
    started_at: datetime
    status: str = "running"  # running, done, incomplete, timed_out, failed
    finished_at: datetime | None = None
    reported: tuple[str, ...] | None = None  # the file IDs the notify listed
    files: list[StoredSnapshot] = field(default_factory=list)
    error: str | None = None
    # In memory only:
    token: str = ""
    deadline: float = 0.0  # time.monotonic()

    def to_json(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "channel_id": self.channel_id,
            "device_id": self.device_id,
            "target_id": self.target_id,
            "count": self.count,
            "interval": self.interval,
            "started_at": self.started_at.isoformat(),
            "status": self.status,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "reported": list(self.reported) if self.reported is not None else None,
            "files": [
                {
                    "file_id": f.file_id,
                    "size": f.size,
                    "sha256": f.sha256,
                    "received_at": f.received_at.isoformat(),
                }
                for f in self.files
            ],
            "error": self.error,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SnapshotSession:
        finished = data.get("finished_at")
        reported = data.get("reported")
        return cls(
            session_id=str(data["session_id"]),
            channel_id=str(data["channel_id"]),
            device_id=str(data["device_id"]),
            target_id=str(data.get("target_id") or data["channel_id"]),
            count=int(data["count"]),
            interval=int(data["interval"]),
            started_at=datetime.fromisoformat(data["started_at"]),
            status=str(data["status"]),
            finished_at=datetime.fromisoformat(finished) if finished else None,
            reported=tuple(str(r) for r in reported) if reported is not None else None,
            files=[
                StoredSnapshot(
                    str(f["file_id"]),
                    int(f["size"]),
                    str(f["sha256"]),
                    datetime.fromisoformat(f["received_at"]),
                )
                for f in data.get("files", [])
            ],
            error=data.get("error"),
        )


def is_jpeg(data: bytes) -> bool:
    """A JPEG starts with SOI and a marker (FF D8 FF)."""
    return data.startswith(JPEG_MAGIC)


def file_id_of(name: str | None) -> str | None:
    """The file ID from an uploaded name (``<id>.jpg``, a path stripped); None when unusable."""
    if not name:
        return None
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if base.lower().endswith((".jpg", ".jpeg")):
        base = base.rsplit(".", 1)[0]
    if not _FILE_ID.fullmatch(base) or base in (".", ".."):
        return None
    return base


class DeviceSnapshots:
    """Snapshot sessions with GB/T 28181-2022 devices; see the module's description."""

    def __init__(
        self,
        db: Database,
        audit: AuditLog,
        root: Path,
        configs: DeviceConfigService,
        server: Callable[[], GbServer | None],
        routes: Callable[[str], ChannelRoute | None],
    ) -> None:
        self._db = db
        self._audit = audit
        self.root = root
        self._configs = configs
        self._server = server
        self._routes = routes
        self._lock = threading.RLock()
        self._by_token: dict[str, SnapshotSession] = {}
        self._by_id: dict[str, SnapshotSession] = {}
        self._listening: GbServer | None = None
        self.max_bytes = MAX_SNAPSHOT_BYTES
        self.settle_seconds = SETTLE_SECONDS

    # --- storage -----------------------------------------------------------------------------

    def _dir(self, channel_id: str, session_id: str) -> Path:
        return self.root / channel_id / session_id

    def _save(self, session: SnapshotSession) -> None:
        folder = self._dir(session.channel_id, session.session_id)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / "session.json.tmp"
        tmp.write_text(json.dumps(session.to_json(), ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, folder / "session.json")

    def _load(self, folder: Path) -> SnapshotSession | None:
        try:
            data = json.loads((folder / "session.json").read_text(encoding="utf-8"))
            return SnapshotSession.from_json(data)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("snapshot session %s cannot be read: %s", folder, exc)
            return None

    # --- the server's notify ---------------------------------------------------------------

    def _listen(self) -> None:
        """Hear UploadSnapShotFinished from the running SIP server (again after a restart)."""
        server = self._server()
        if server is not None and server is not self._listening:
            server.notify_listeners.append(self.on_notify)
            self._listening = server

    def on_notify(self, sender: str, message: manscdp.Message, _request: SipRequest) -> None:
        """A notify from a device (called on the SIP server's loop; the MESSAGE is already
        answered 200): an UploadSnapShotFinished finishes its session."""
        if not isinstance(message, manscdp.UploadSnapShotFinished):
            return
        with self._lock:
            session = self._by_id.get((message.session_id or "").strip())
            if session is None:
                log.info(
                    "UploadSnapShotFinished from %s for unknown session %r",
                    sender,
                    message.session_id,
                )
                return
            if sender != session.device_id:
                log.warning(
                    "UploadSnapShotFinished for session %s came from %s, not from device %s",
                    session.session_id,
                    sender,
                    session.device_id,
                )
                return
            if session.status not in ("running", "incomplete"):
                return
            session.reported = tuple(dict.fromkeys(i.strip() for i in message.file_ids))
            session.finished_at = datetime.now(UTC)
            self._settle(session)
            self._save(session)

    def _settle(self, session: SnapshotSession) -> None:
        """done / incomplete once the device has reported (lock held)."""
        if session.reported is None:
            return
        have = {f.file_id for f in session.files}
        missing = [i for i in session.reported if file_id_of(i) not in have]
        session.status = "incomplete" if missing else "done"

    def _expire(self, now: float) -> None:
        """Sessions past their deadline: timed out (running), or closed (lock held)."""
        for session in list(self._by_id.values()):
            if now < session.deadline:
                continue
            if session.status == "running":
                session.status = "timed_out"
                session.finished_at = datetime.now(UTC)
                session.error = "the device did not report the snapshots in time"
                self._save(session)
            del self._by_id[session.session_id]
            self._by_token.pop(session.token, None)

    # --- sessions --------------------------------------------------------------------------

    def _route(self, principal: Principal, channel_id: str) -> ChannelRoute:
        principal.require(Permission.VIDEO_SNAPSHOT)
        with self._db.read() as s:
            visible_channel(s, principal, channel_id)
        route = self._routes(channel_id)
        if route is None:
            raise NotFound(f"channel {channel_id} is not a GB/T 28181 channel")
        return route

    def _audit_session(
        self, principal: Principal, session: SnapshotSession, error: DeviceError | None
    ) -> None:
        with self._db.transaction() as s:
            self._audit.append(
                s,
                principal,
                "video.snapshot.request",
                target=f"channel:{session.channel_id}",
                outcome="ok" if error is None else "failed",
                reason="" if error is None else f"{error.code}: {error.message}"[:256],
                detail={
                    "where": "device",
                    "session_id": session.session_id,
                    "count": session.count,
                    "interval": session.interval,
                },
            )

    async def start(
        self,
        principal: Principal,
        channel_id: str,
        count: int,
        interval: int,
        upload_base: str,
    ) -> SnapshotSession:
        """Ask the channel's device for ``count`` pictures ``interval`` s apart, uploaded under
        ``upload_base`` (the platform's HTTP root as the device reaches it)."""
        if not 1 <= count <= MAX_SNAPSHOTS:
            raise InvalidInput(f"count must be 1..{MAX_SNAPSHOTS}")
        if not 1 <= interval <= 60:
            raise InvalidInput("interval must be 1..60 seconds")
        route = await asyncio.to_thread(self._route, principal, channel_id)
        session = SnapshotSession(
            session_id=uuid.uuid4().hex,
            channel_id=channel_id,
            device_id=route.device_id,
            target_id=route.remote_id,
            count=count,
            interval=interval,
            started_at=datetime.now(UTC),
            token=secrets.token_urlsafe(32),
            deadline=time.monotonic() + count * interval + self.settle_seconds,
        )
        url = f"{upload_base.rstrip('/')}/api/v1/device-snapshots/upload/{session.token}"
        block = manscdp.SnapShotConfig(
            snap_num=count, interval=interval, upload_url=url, session_id=session.session_id
        )
        self._listen()
        with self._lock:
            self._expire(time.monotonic())
            self._by_id[session.session_id] = session
            self._by_token[session.token] = session
        await asyncio.to_thread(self._save, session)
        try:
            answer = await self._configs.send(route.device_id, route.remote_id, (block,))
            check_result(route.device_id, "the snapshot request (SnapShotConfig)", answer)
        except DeviceError as exc:
            with self._lock:
                session.status, session.error = "failed", exc.message
                session.finished_at = datetime.now(UTC)
                self._by_id.pop(session.session_id, None)
                self._by_token.pop(session.token, None)
            await asyncio.to_thread(self._save, session)
            await asyncio.to_thread(self._audit_session, principal, session, exc)
            raise
        await asyncio.to_thread(self._audit_session, principal, session, None)
        return session

    def session_for_upload(self, token: str) -> SnapshotSession:
        """The session an upload URL's token opens; NotFound for an unknown or closed one."""
        with self._lock:
            self._expire(time.monotonic())
            session = self._by_token.get(token) if token else None
            if session is None or session.status not in ("running", "incomplete"):
                raise NotFound("no snapshot session takes uploads at this address")
            return session

    def store(self, token: str, name: str | None, data: bytes) -> StoredSnapshot:
        """Keep one uploaded picture of the session ``token`` opens (called in a thread)."""
        if len(data) > self.max_bytes:
            raise InvalidInput(f"a snapshot may be at most {self.max_bytes} bytes")
        if not is_jpeg(data):
            raise InvalidInput("the upload is not a JPEG (it does not start with FF D8 FF)")
        with self._lock:
            session = self.session_for_upload(token)
            have = {f.file_id for f in session.files}
            if len(session.files) >= session.count:
                raise Conflict(
                    f"snapshot session {session.session_id} already has the "
                    f"{session.count} picture(s) it asked for"
                )
            file_id = file_id_of(name)
            if file_id is None:
                stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
                file_id = f"{session.target_id}02{stamp}{len(session.files) + 1:05d}"
            if file_id in have:
                raise Conflict(f"snapshot {file_id} of session {session.session_id} is stored")
            folder = self._dir(session.channel_id, session.session_id)
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f"{file_id}.jpg.part"
            tmp.write_bytes(data)
            os.replace(tmp, folder / f"{file_id}.jpg")
            stored = StoredSnapshot(
                file_id, len(data), hashlib.sha256(data).hexdigest(), datetime.now(UTC)
            )
            session.files.append(stored)
            self._settle(session)
            self._save(session)
            return stored

    def sessions(self, principal: Principal, channel_id: str) -> list[SnapshotSession]:
        """The channel's snapshot sessions, newest first; audited as a search."""
        principal.require(Permission.VIDEO_SNAPSHOT)
        with self._lock:
            self._expire(time.monotonic())
        with self._db.transaction() as s:
            visible_channel(s, principal, channel_id)
            found: list[SnapshotSession] = []
            folder = self.root / channel_id
            if folder.is_dir():
                for entry in folder.iterdir():
                    if entry.is_dir() and _SESSION_ID.fullmatch(entry.name):
                        loaded = self._load(entry)
                        if loaded is not None:
                            found.append(loaded)
            found.sort(key=lambda x: x.started_at, reverse=True)
            self._audit.append(
                s,
                principal,
                "video.search",
                target=f"channel:{channel_id}",
                detail={"where": "device-snapshots", "sessions": len(found)},
            )
        return found

    def open_file(
        self, principal: Principal, channel_id: str, session_id: str, file_id: str
    ) -> Path:
        """A stored picture the principal may see; audited as video access."""
        principal.require(Permission.VIDEO_SNAPSHOT)
        if not _SESSION_ID.fullmatch(session_id) or file_id_of(file_id) != file_id:
            raise NotFound(f"snapshot {session_id}/{file_id} not found")
        with self._db.transaction() as s:
            visible_channel(s, principal, channel_id)
            path = self._dir(channel_id, session_id) / f"{file_id}.jpg"
            if not path.is_file():
                raise NotFound(f"snapshot {session_id}/{file_id} not found")
            self._audit.append(
                s,
                principal,
                "video.snapshot",
                target=f"channel:{channel_id}",
                detail={"where": "device", "session_id": session_id, "file_id": file_id},
            )
        return path
