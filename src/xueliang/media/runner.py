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

from xueliang.media.hub import ChannelHub, KeyFrame
from xueliang.media.ingest import Backoff, ChannelIngest
from xueliang.media.ipc import ChannelStats
from xueliang.media.live import LiveItem, LiveMuxer
from xueliang.media.model import IngestSpec, MediaEvent
from xueliang.media.plans import RecordingGate
from xueliang.media.recorder import SegmentRecorder

log = logging.getLogger(__name__)

# How long stopping waits for one ingest thread (blocked in a network read at worst; FFmpeg's
# own timeout ends that).
JOIN_SECONDS = 15.0


class _Running:
    def __init__(self, ingest: ChannelIngest, recorder: SegmentRecorder, gate: RecordingGate):
        self.ingest = ingest
        self.recorder = recorder
        self.gate = gate


class ChannelRunner:
    def __init__(
        self,
        root: Path,
        *,
        segment_seconds: float,
        backoff_cap: float,
        emit: Callable[[MediaEvent], None],
    ) -> None:
        self._root = root
        self._segment_seconds = segment_seconds
        self._backoff_cap = backoff_cap
        self._emit = emit
        self._lock = threading.Lock()
        self._running: dict[str, _Running] = {}
        self._live: dict[str, LiveMuxer] = {}
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
        ingest = ChannelIngest(spec, hub, self._emit, backoff=Backoff(cap=self._backoff_cap))
        self._running[spec.channel_id] = _Running(ingest, recorder, gate)
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

    def _forget(self, channel_id: str) -> None:
        muxer = self._live.pop(channel_id, None)
        hub = self.hubs.pop(channel_id, None)
        if muxer is not None and hub is not None:
            hub.unsubscribe(muxer)

    # --- live view -------------------------------------------------------------------------------

    def watch(self, channel_id: str, emit: Callable[[LiveItem], None]) -> None:
        """Start (or restart) the channel's live muxer. A channel not running (yet) gets its
        muxer when its ingest starts."""
        with self._lock:
            self._unwatch(channel_id)
            muxer = self._live[channel_id] = LiveMuxer(emit)
            hub = self._hub(channel_id)
        hub.subscribe(muxer)  # replays the GOP: outside the runner's lock

    def unwatch(self, channel_id: str) -> None:
        with self._lock:
            self._unwatch(channel_id)

    def _unwatch(self, channel_id: str) -> None:
        muxer = self._live.pop(channel_id, None)
        hub = self.hubs.get(channel_id)
        if muxer is not None and hub is not None:
            hub.unsubscribe(muxer)
        if hub is not None and channel_id not in self._running and hub.consumer_count == 0:
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
