"""The media service in the control process: decides what is pulled (from the registry), has
the media workers pull and record it, and records what happens (segments into the index, status
into the registry).

Ingest, recording and live muxing run in supervised worker processes (pool.py), a bounded group
of channels each; this process only stores their reports, issues live tickets (workers serve viewers
themselves) and relays live fragments where a viewer cannot reach a worker.
"""

from __future__ import annotations

import logging
import secrets as secrets_module
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import select

from xueliang.core.secretbox import SecretBox
from xueliang.media import tickets
from xueliang.media.hub import KeyFrame
from xueliang.media.ipc import ChannelStats
from xueliang.media.live import LiveItem
from xueliang.media.model import IngestSpec, MediaEvent, SegmentClosed, StatusChanged
from xueliang.media.pool import WorkerInfo, WorkerPool
from xueliang.media.recording_plans import plan_of
from xueliang.media.segments import SegmentIndex
from xueliang.registry.channels import ChannelService
from xueliang.store.db import Database
from xueliang.store.models import Channel, Device

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DirectLive:
    """Where and with what ticket a viewer watches a channel straight from its worker."""

    host: str  # where the worker listens (0.0.0.0 / :: : any address of this machine)
    port: int
    path: str
    ticket: str
    expires: float  # Unix time


# ONVIF devices are pulled over RTSP from the stream URIs read when they were registered.
PULLED_PROTOCOLS = ("rtsp", "onvif", "sim")


class MediaService:
    def __init__(
        self,
        db: Database,
        secrets: SecretBox,
        channels: ChannelService,
        index: SegmentIndex,
        *,
        recordings: Path,
        segment_seconds: float,
        backoff_cap: float = 30.0,
        channels_per_worker: int = 32,
        timezone: str = "Asia/Shanghai",
        live_host: str = "127.0.0.1",
        live_port: int = 0,
        rtsp_client: str = "own",
    ) -> None:
        self._db = db
        self._secrets = secrets
        self._channels = channels
        self._index = index
        self._root = recordings
        # Read when the workers start (tests shorten segments before starting).
        self.segment_seconds = segment_seconds
        self.backoff_cap = backoff_cap
        self.rtsp_client = rtsp_client
        self.channels_per_worker = channels_per_worker
        self._timezone = timezone
        # Workers serve live viewers themselves on live_host (empty: only the relay), under
        # tickets signed with a key that lives as long as this process.
        self.live_host = live_host
        self.live_port = live_port
        self._live_key = secrets_module.token_bytes(32)
        self._lock = threading.Lock()
        self._pool: WorkerPool | None = None
        # Streams opened on demand by a signalling side (GB/T 28181 INVITE sessions), by their
        # stream key: pulled beside the registry's channels while open. Their status events go
        # to the listeners only: a stream that ends is not a channel that went offline.
        self._sessions: dict[str, IngestSpec] = {}
        self._session_keys: set[str] = set()  # every key that was a session (late events)
        # Called with every event after it was stored (the console's push channel, tests).
        self.listeners: list[Callable[[MediaEvent], None]] = []
        # Where live fragments go (the LiveService), and what to do for the channels of a
        # worker that died (repair their recordings).
        self.live_sink: Callable[[str, LiveItem], None] | None = None
        self.on_worker_lost: Callable[[list[str]], None] | None = None

    def start(self) -> None:
        with self._lock:
            if self._pool is None:
                self._pool = WorkerPool(
                    recordings=self._root,
                    segment_seconds=self.segment_seconds,
                    backoff_cap=self.backoff_cap,
                    per_worker=self.channels_per_worker,
                    on_event=self._on_event,
                    on_live=self._on_live,
                    on_lost=self._on_lost,
                    live_host=self.live_host,
                    live_port=self.live_port,
                    live_key=self._live_key,
                    rtsp_client=self.rtsp_client,
                )
                self._pool.start()
        self.sync()

    def stop(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.stop()

    def on_registry_changed(self) -> None:
        if self._pool is not None:
            self.sync()

    @property
    def started(self) -> bool:
        return self._pool is not None

    @property
    def pool(self) -> WorkerPool:
        pool = self._pool
        if pool is None:
            raise LookupError("the media service is not running")
        return pool

    # --- reports from the workers ------------------------------------------------------------

    def _on_event(self, event: MediaEvent) -> None:
        try:
            if isinstance(event, SegmentClosed):
                self._index.add(event)
            elif isinstance(event, StatusChanged) and event.channel_id not in self._session_keys:
                self._channels.set_status(event.channel_id, event.status, event.reason, event.at)
        except Exception:  # an event lost must not stop the worker's reader that reported it
            log.exception("media event %r could not be stored", event)
        for listener in list(self.listeners):
            listener(event)

    def _on_live(self, channel_id: str, item: LiveItem) -> None:
        sink = self.live_sink
        if sink is not None:
            sink(channel_id, item)

    def _on_lost(self, channel_ids: list[str]) -> None:
        if self.on_worker_lost is not None:
            self.on_worker_lost(channel_ids)

    # --- what to pull ------------------------------------------------------------------------

    def specs(self) -> list[IngestSpec]:
        """Every enabled channel of an enabled pulled device, with its stream URL."""
        with self._db.read() as s:
            rows = s.execute(
                select(Channel, Device)
                .join(Device, Channel.device_pk == Device.pk)
                .where(
                    Channel.enabled.is_(True),
                    Device.enabled.is_(True),
                    Device.protocol.in_(PULLED_PROTOCOLS),
                )
            )
            out = []
            for channel, device in rows:
                url = channel.stream_url or device.url
                if not url:
                    continue
                password = self._secrets.open(device.password_enc) if device.password_enc else None
                out.append(
                    IngestSpec(
                        channel_id=channel.gb_id,
                        url=url,
                        username=device.username,
                        password=password,
                        transport="udp" if device.transport == "udp" else "tcp",
                        plan=plan_of(channel.recording_plan, self._timezone),
                    )
                )
            return out

    def sync(self) -> None:
        """Have the workers run exactly what the registry says should be pulled, and the
        sessions opened on demand."""
        pool = self._pool
        if pool is not None:
            with self._lock:
                sessions = list(self._sessions.values())
            pulled = self.specs()
            taken = {spec.channel_id for spec in sessions}
            pool.assign([spec for spec in pulled if spec.channel_id not in taken] + sessions)

    def open_session(self, spec: IngestSpec) -> None:
        """Pull ``spec`` (a stream a signalling side negotiated) until ``close_session``; an
        open session of the same key is replaced. LookupError when the media plane is off."""
        if self._pool is None:
            raise LookupError("the media service is not running")
        with self._lock:
            self._sessions[spec.channel_id] = spec
            self._session_keys.add(spec.channel_id)
        self.sync()

    def close_session(self, key: str) -> None:
        with self._lock:
            gone = self._sessions.pop(key, None)
        if gone is not None:
            self.sync()

    def sessions(self) -> list[str]:
        with self._lock:
            return list(self._sessions)

    def running(self) -> list[str]:
        pool = self._pool
        return pool.running() if pool is not None else []

    def is_pulled(self, channel_id: str) -> bool:
        pool = self._pool
        return pool is not None and pool.channel_worker(channel_id) is not None

    # --- live view, snapshots, statistics -----------------------------------------------------

    def watch(self, channel_id: str) -> None:
        """Start the channel's live muxer; fragments reach ``live_sink``. LookupError when the
        channel is not pulled."""
        if self._pool is None:
            raise LookupError(f"channel {channel_id} has no live source")
        self._pool.watch(channel_id)

    def unwatch(self, channel_id: str) -> None:
        if self._pool is not None:
            self._pool.unwatch(channel_id)

    def live_ticket(self, channel_id: str, subject: str) -> DirectLive | None:
        """A ticket to watch the channel straight from its worker, or None when that worker
        serves no live view itself (the relay is the way then)."""
        pool = self._pool
        endpoint = pool.live_endpoint(channel_id) if pool is not None else None
        if endpoint is None:
            return None
        token, ticket = tickets.issue(self._live_key, channel_id, subject, now=time.time())
        return DirectLive(
            endpoint[0], endpoint[1], f"/live/{quote(channel_id)}", token, ticket.expires
        )

    def trigger(self, channel_id: str, at: float, post_roll: float | None = None) -> bool:
        """An event on the channel for event-mode recording; False when it is not pulled."""
        pool = self._pool
        return pool is not None and pool.trigger(channel_id, at, post_roll)

    def latest_keyframe(self, channel_id: str) -> KeyFrame | None:
        pool = self._pool
        return pool.latest_keyframe(channel_id) if pool is not None else None

    def stats(self) -> dict[str, ChannelStats]:
        pool = self._pool
        return pool.stats() if pool is not None else {}

    def workers(self) -> list[WorkerInfo]:
        pool = self._pool
        return pool.workers() if pool is not None else []
