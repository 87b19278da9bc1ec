"""The channels one media worker runs: an ingest thread, a hub and a recorder per channel, and a
live muxer on the hub while somebody watches.

Knows nothing of the database or of HTTP: it is told which channels to run (``assign``) and
reports what happens through callbacks. The worker process wraps it in the pipe protocol.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from xueliang.media.download import DownloadWriter
from xueliang.media.hub import ChannelHub, KeyFrame
from xueliang.media.ingest import Backoff, ChannelIngest
from xueliang.media.ipc import ChannelStats
from xueliang.media.live import Closed, LiveItem
from xueliang.media.live_fanout import LiveFanout, Sink
from xueliang.media.model import IngestSpec, MediaEvent
from xueliang.media.plans import RecordingGate
from xueliang.media.recorder import SegmentRecorder

log = logging.getLogger(__name__)

_RELAY = "relay"  # the sink key of the relay to the control process

# How long stopping waits for one ingest thread (blocked in a network read at worst; FFmpeg's
# own timeout ends that).
JOIN_SECONDS = 15.0


class _Running:
    def __init__(
        self,
        ingest: ChannelIngest,
        recorder: SegmentRecorder,
        gate: RecordingGate,
        download: DownloadWriter | None = None,
    ):
        self.ingest = ingest
        self.recorder = recorder
        self.gate = gate
        self.download = download


class ChannelRunner:
    def __init__(
        self,
        root: Path,
        *,
        segment_seconds: float,
        backoff_cap: float,
        emit: Callable[[MediaEvent], None],
        rtsp_client: str = "own",
    ) -> None:
        self._root = root
        self._rtsp_client = rtsp_client
        self._segment_seconds = segment_seconds
        self._backoff_cap = backoff_cap
        self._emit = emit
        self._lock = threading.Lock()
        self._running: dict[str, _Running] = {}
        self._live: dict[str, LiveFanout] = {}
        self.hubs: dict[str, ChannelHub] = {}

    def assign(self, specs: Sequence[IngestSpec]) -> None:
        """Run exactly these channels: start the new, stop the gone, restart the changed."""
        wanted = {spec.channel_id: spec for spec in specs}
        with self._lock:
            for cid, run in self._running.items():
                spec = wanted.get(cid)
                if (
                    spec is not None
                    and spec != run.ingest.spec
                    and spec.same_source(run.ingest.spec)
                ):
                    run.gate.set_plan(spec.plan)  # a new recording plan: no reconnect
                    run.ingest.spec = spec
            going = [c for c, run in self._running.items() if wanted.get(c) != run.ingest.spec]
            self._stop_all(going)
            for cid in going:
                if cid not in wanted:
                    self._forget(cid)
            for cid, spec in wanted.items():
                if cid not in self._running:
                    self._start(spec)

    def _hub(self, channel_id: str) -> ChannelHub:
        return self.hubs.setdefault(channel_id, ChannelHub(channel_id))

    def _start(self, spec: IngestSpec) -> None:
        hub = self._hub(spec.channel_id)
        recorder = SegmentRecorder(
            self._root,
            spec.channel_id,
            segment_seconds=self._segment_seconds,
            on_segment=self._emit,
        )
        gate = RecordingGate(recorder, spec.plan)
        hub.subscribe(gate)
        download = None
        if spec.download is not None:
            download = DownloadWriter(spec.channel_id, spec.download, self._emit)
            hub.subscribe(download)
        ingest = ChannelIngest(
            spec,
            hub,
            self._emit,
            backoff=Backoff(cap=self._backoff_cap),
            rtsp_client=self._rtsp_client,
        )
        self._running[spec.channel_id] = _Running(ingest, recorder, gate, download)
        ingest.start()

    def _stop_all(self, channel_ids: Sequence[str]) -> None:
        """Stop several ingests at once: signal them all, then wait (each may take a moment to
        leave a network read, and they leave in parallel)."""
        runs = [self._running.pop(cid) for cid in channel_ids]
        for run in runs:
            run.ingest.stop()
        for run in runs:
            run.ingest.join(timeout=JOIN_SECONDS)
            if run.ingest.is_alive():
                log.error("channel %s: ingest did not stop in time", run.ingest.spec.channel_id)
            run.ingest.hub.unsubscribe(run.gate)  # closes the segment in progress
            if run.download is not None:
                run.ingest.hub.unsubscribe(run.download)  # finishes the file

    def _forget(self, channel_id: str) -> None:
        fan = self._live.pop(channel_id, None)
        hub = self.hubs.pop(channel_id, None)
        if fan is not None:
            if hub is not None:
                hub.unsubscribe(fan.muxer)
            fan.close("the channel is no longer pulled here")

    # --- live view -------------------------------------------------------------------------------
    # A channel's live muxer runs while it has a sink: the relay to the control process
    # (``watch``) and/or viewers this worker serves itself (``add_viewer``).

    def watch(self, channel_id: str, emit: Callable[[LiveItem], None]) -> None:
        """Relay the channel's live output to the control process through ``emit``, starting
        with the init segment and the current GOP. A channel not running (yet) gets its muxer
        when its ingest starts."""

        def relay(item: LiveItem) -> bool:
            # The control side tells its own viewers when a channel stops being pulled.
            if not isinstance(item, Closed):
                emit(item)
            return True

        self._add_sink(channel_id, _RELAY, relay)

    def unwatch(self, channel_id: str) -> None:
        self.remove_sink(channel_id, _RELAY)

    def add_viewer(self, channel_id: str, key: object, sink: Sink) -> bool:
        """A viewer served by this worker; False when the channel does not run here."""
        return self._add_sink(channel_id, key, sink, running_only=True)

    def _add_sink(
        self, channel_id: str, key: object, sink: Sink, *, running_only: bool = False
    ) -> bool:
        with self._lock:
            if running_only and channel_id not in self._running:
                return False
            fan = self._live.get(channel_id)
            if fan is None:
                fan = self._live[channel_id] = LiveFanout()
                fan.add(key, sink)
                # Replays the hub's GOP into the new muxer, whose output reaches the sink.
                self._hub(channel_id).subscribe(fan.muxer)
            else:
                fan.add(key, sink)
        return True

    def remove_sink(self, channel_id: str, key: object) -> None:
        """Let a sink go; the muxer stops with the last one."""
        with self._lock:
            fan = self._live.get(channel_id)
            if fan is None or not fan.remove(key):
                return
            del self._live[channel_id]
            hub = self.hubs.get(channel_id)
            if hub is not None:
                hub.unsubscribe(fan.muxer)
                if channel_id not in self._running and hub.consumer_count == 0:
                    del self.hubs[channel_id]

    # --- questions -------------------------------------------------------------------------------

    def latest_keyframe(self, channel_id: str) -> KeyFrame | None:
        hub = self.hubs.get(channel_id)
        return hub.latest_keyframe() if hub is not None else None

    def stats(self) -> dict[str, ChannelStats]:
        with self._lock:
            runs = dict(self._running)
        return {
            cid: ChannelStats(
                packets=run.ingest.hub.packets,
                consumers=run.ingest.hub.consumer_count,
                online=run.ingest.status == "online",
                recorder_failed=run.recorder.failed,
                recording=run.gate.recording,
            )
            for cid, run in runs.items()
        }

    def trigger(self, channel_id: str, at: float, post_roll: float | None) -> float | None:
        """An event on the channel (event-mode recording): until when it records, or None
        when the channel does not run here."""
        with self._lock:
            run = self._running.get(channel_id)
        return run.gate.trigger(at, post_roll) if run is not None else None

    def running(self) -> list[str]:
        with self._lock:
            return sorted(self._running)

    def stop(self) -> None:
        with self._lock:
            self._stop_all(list(self._running))
            for cid in list(self._live):
                self._forget(cid)
