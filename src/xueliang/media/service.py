"""The media service in the control process: runs one ingest per channel and records what
happens (segments into the index, status into the registry).

This first form runs ingest threads inside the platform process; the supervised media worker
processes (a bounded group of channels each) take the same IngestSpec and report the same events.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from xueliang.core.secretbox import SecretBox
from xueliang.media.hub import ChannelHub
from xueliang.media.ingest import Backoff, ChannelIngest
from xueliang.media.model import IngestSpec, MediaEvent, SegmentClosed, StatusChanged
from xueliang.media.recorder import SegmentRecorder
from xueliang.media.segments import SegmentIndex
from xueliang.registry.channels import ChannelService
from xueliang.store.db import Database
from xueliang.store.models import Channel, Device

log = logging.getLogger(__name__)

PULLED_PROTOCOLS = ("rtsp", "sim")


class _Running:
    def __init__(self, ingest: ChannelIngest, recorder: SegmentRecorder | None) -> None:
        self.ingest = ingest
        self.recorder = recorder


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
    ) -> None:
        self._db = db
        self._secrets = secrets
        self._channels = channels
        self._index = index
        self._root = recordings
        self._segment_seconds = segment_seconds
        self._backoff_cap = backoff_cap
        self._lock = threading.Lock()
        self._running: dict[str, _Running] = {}
        self._started = False
        self.hubs: dict[str, ChannelHub] = {}
        # Called with every event after it was stored (the console's push channel, tests).
        self.listeners: list[Callable[[MediaEvent], None]] = []

    def start(self) -> None:
        self._started = True
        self.sync()

    def on_registry_changed(self) -> None:
        if self._started:
            self.sync()

    # --- events from ingest threads ---------------------------------------------------------

    def _on_event(self, event: MediaEvent) -> None:
        try:
            if isinstance(event, SegmentClosed):
                self._index.add(event)
            elif isinstance(event, StatusChanged):
                self._channels.set_status(event.channel_id, event.status, event.reason, event.at)
        except Exception:  # an event lost must not kill the ingest thread that reported it
            log.exception("media event %r could not be stored", event)
        for listener in list(self.listeners):
            listener(event)

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
                    )
                )
            return out

    def sync(self) -> None:
        """Start what should run, stop what should not, restart what changed."""
        wanted = {spec.channel_id: spec for spec in self.specs()}
        with self._lock:
            for channel_id in list(self._running):
                running = self._running[channel_id]
                if wanted.get(channel_id) != running.ingest.spec:
                    self._stop(channel_id)
            for channel_id, spec in wanted.items():
                if channel_id not in self._running:
                    self._start(spec)

    def _start(self, spec: IngestSpec) -> None:
        hub = self.hubs.setdefault(spec.channel_id, ChannelHub(spec.channel_id))
        recorder = None
        if spec.record:
            recorder = SegmentRecorder(
                self._root,
                spec.channel_id,
                segment_seconds=self._segment_seconds,
                on_segment=self._on_event,
            )
            hub.subscribe(recorder)
        ingest = ChannelIngest(spec, hub, self._on_event, backoff=Backoff(cap=self._backoff_cap))
        self._running[spec.channel_id] = _Running(ingest, recorder)
        ingest.start()

    def _stop(self, channel_id: str) -> None:
        running = self._running.pop(channel_id)
        running.ingest.stop()
        running.ingest.join(timeout=15)
        if running.recorder is not None:
            self.hubs[channel_id].unsubscribe(running.recorder)

    def stop(self) -> None:
        self._started = False
        with self._lock:
            for channel_id in list(self._running):
                self._running[channel_id].ingest.stop()
            for channel_id in list(self._running):
                self._stop(channel_id)

    def running(self) -> list[str]:
        with self._lock:
            return sorted(self._running)
