"""Configuration of GB/T 28181 devices (DeviceConfig) and the snapshots they upload (2022).

:class:`DeviceConfigService` sends a ``DeviceConfig`` control with one configuration block
(BasicParam, OSDConfig, PictureMask, SnapShotConfig, VideoRecordPlan, or any other block as raw
XML) to a device or one of its channels, waits for the device's ``<Result>`` and audits the
attempt (``device.config``). Failures are those of device control: offline or silent is
DeviceUnreachable, a refused MESSAGE DeviceProtocolError, ``<Result>ERROR</Result>`` DeviceError.

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

from sqlalchemy import select

from xueliang.access.audit import AuditLog
from xueliang.access.permissions import Permission
from xueliang.access.principal import Principal
from xueliang.core.aio import on_loop
from xueliang.core.errors import (
    Conflict,
    DeviceError,
    DeviceProtocolError,
    DeviceUnreachable,
    InvalidInput,
    NotFound,
)
from xueliang.gb28181 import manscdp
from xueliang.gb28181.control import check_result
from xueliang.gb28181.endpoint import DeviceRefused
from xueliang.registry.common import visible_channel, visible_device
from xueliang.store.db import Database
from xueliang.store.models import Channel, Device

if TYPE_CHECKING:
    from xueliang.gb28181.server import GbServer
    from xueliang.gb28181.sip import SipRequest
    from xueliang.gb28181.streams import ChannelRoute

log = logging.getLogger(__name__)

PROTOCOL = "gb28181"
AUDIT_CONFIG = "device.config"
DEFAULT_DEADLINE = 10.0
JPEG_MAGIC = b"\xff\xd8\xff"
MAX_SNAPSHOT_BYTES = 4 * 1024 * 1024  # a 4K JPEG of a busy scene is 2-3 MiB
MAX_SNAPSHOTS = 10  # SnapNum: the standard allows 1..10
SETTLE_SECONDS = 60.0  # beyond count x interval, for the device to upload and report
_FILE_ID = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_SESSION_ID = re.compile(r"[0-9a-f]{32}")


def _blocks_needing_management(block: manscdp.ConfigBlock) -> bool:
    """Registration settings (BasicParam) and blocks passed through unread can take a device
    off the platform: they need device management as well, as a reboot does."""
    return isinstance(block, manscdp.BasicParam | manscdp.RawConfig)


def config_type(block: manscdp.ConfigBlock) -> str:
    return "raw" if isinstance(block, manscdp.RawConfig) else block.type


@dataclass(frozen=True, slots=True)
class ConfigDone:
    device_id: str
    channel_id: str | None
    type: str
    tag: str  # the element sent: the type, or the raw block's name
    result: str


class DeviceConfigService:
    """DeviceConfig to GB/T 28181 devices (``device.control`` within the caller's area;
    BasicParam and raw blocks also ``registry.write``); every attempt audited."""

    def __init__(
        self,
        db: Database,
        audit: AuditLog,
        server: Callable[[], GbServer | None],
        loop: Callable[[], asyncio.AbstractEventLoop | None],
        *,
        deadline: float = DEFAULT_DEADLINE,
    ) -> None:
        self._db = db
        self._audit = audit
        self._server = server
        self._loop = loop
        self.deadline = deadline

    # --- sending (shared with the snapshot sessions) ------------------------------------------

    async def send(
        self, device_id: str, target_id: str, blocks: tuple[manscdp.ConfigBlock, ...]
    ) -> manscdp.Result:
        """Send a DeviceConfig for ``target_id`` through ``device_id``; the device's Result."""
        server = self._server()
        if server is None:
            raise DeviceUnreachable(
                f"device {device_id} cannot be reached: the GB/T 28181 server is not running"
            )

        async def ask() -> manscdp.Message:
            message = manscdp.DeviceConfig(device_id=target_id, sn=server.next_sn(), configs=blocks)
            return await asyncio.wait_for(server.ask(device_id, message), self.deadline)

        try:
            answer = await on_loop(self._loop(), ask())
        except LookupError:
            raise DeviceUnreachable(f"device {device_id} is offline (not registered)") from None
        except TimeoutError:
            raise DeviceUnreachable(
                f"device {device_id} did not answer the configuration within {self.deadline:g} s"
            ) from None
        except DeviceRefused as exc:
            raise DeviceProtocolError(
                f"device {device_id} refused the configuration: {exc}",
                details={"status": exc.status},
            ) from None
        if not isinstance(answer, manscdp.Result):
            raise DeviceProtocolError(
                f"device {device_id} answered the configuration with {type(answer).__name__}, "
                "not a Result"
            )
        return answer

    # --- the audited operation --------------------------------------------------------------

    def resolve(self, principal: Principal, device_id: str, channel_id: str | None) -> str:
        """The ID the DeviceConfig names: the device's own, or its channel's."""
        with self._db.read() as s:
            device = visible_device(s, principal, device_id)
            if device.protocol != PROTOCOL:
                raise InvalidInput(
                    f"device configuration is only for GB/T 28181 devices; {device_id} is "
                    f"{device.protocol}",
                    details={"protocol": device.protocol},
                )
            if channel_id is None:
                return device.gb_id
            channel = visible_channel(s, principal, channel_id)
            owner = s.scalar(select(Device.gb_id).where(Device.pk == channel.device_pk))
            if owner != device.gb_id:
                raise InvalidInput(f"channel {channel_id} is not a channel of device {device_id}")
            remote = s.scalar(select(Channel.remote_id).where(Channel.pk == channel.pk))
            return remote or channel.gb_id

    def _record(
        self,
        principal: Principal,
        device_id: str,
        channel_id: str | None,
        block: manscdp.ConfigBlock,
        result: str | None,
        error: DeviceError | None,
    ) -> None:
        detail: dict[str, Any] = {"type": config_type(block)}
        if isinstance(block, manscdp.RawConfig):
            detail["tag"] = block.tag
        if channel_id is not None:
            detail["channel_id"] = channel_id
        if result is not None:
            detail["result"] = result
        with self._db.transaction() as s:
            self._audit.append(
                s,
                principal,
                AUDIT_CONFIG,
                target=f"device:{device_id}",
                outcome="ok" if error is None else "failed",
                reason="" if error is None else f"{error.code}: {error.message}"[:256],
                detail=detail,
            )

    async def configure(
        self,
        principal: Principal,
        device_id: str,
        block: manscdp.ConfigBlock,
        channel_id: str | None = None,
    ) -> ConfigDone:
        principal.require(Permission.DEVICE_CONTROL)
        if _blocks_needing_management(block):
            principal.require(Permission.REGISTRY_WRITE)
        try:
            manscdp.config_element(block)  # a raw block must be one well-formed element
        except ValueError as exc:
            raise InvalidInput(f"the configuration block is not valid XML: {exc}") from None
        target = await asyncio.to_thread(self.resolve, principal, device_id, channel_id)
        tag = manscdp.block_tag(block)
        result: str | None = None
        try:
            answer = await self.send(device_id, target, (block,))
            result = (answer.result or "").strip() or None
            check_result(device_id, f"the configuration ({tag})", answer)
        except DeviceError as exc:
            await asyncio.to_thread(
                self._record, principal, device_id, channel_id, block, result, exc
            )
            raise
        await asyncio.to_thread(self._record, principal, device_id, channel_id, block, result, None)
        return ConfigDone(device_id, channel_id, config_type(block), tag, result or "OK")


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
