"""The control process's side of the media workers: places channels on workers, supervises them,
and routes live fragments, snapshots and statistics.

Each worker runs at most ``per_worker`` channels (a Python process holds 32–48 1080p streams
before GIL contention costs frames). A worker that dies is restarted with back-off and given its
channels again; meanwhile its channels are reported offline with the reason, so an operator sees
why. Reports from a worker are handled on that worker's reader thread, in order.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import itertools
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from xueliang.media import ipc
from xueliang.media.hub import KeyFrame
from xueliang.media.ingest import Backoff
from xueliang.media.live import Closed, LiveItem
from xueliang.media.model import IngestSpec, MediaEvent, StatusChanged

log = logging.getLogger(__name__)

# A worker that ran this long before dying starts again at the shortest back-off.
STABLE_SECONDS = 60.0
STOP_SECONDS = 20.0  # a worker's clean shutdown: ingests leave, segments close
REQUEST_SECONDS = 5.0
PIPE_BYTES = 1 << 20  # Linux's default pipe-max-size


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    slot: int
    pid: int | None
    alive: bool
    channels: list[str]
    restarts: int


class _Worker:
    def __init__(self, slot: int) -> None:
        self.slot = slot
        self.proc: subprocess.Popen[bytes] | None = None
        self.reader: threading.Thread | None = None
        self.channels: dict[str, IngestSpec] = {}
        self.restarts = 0
        self.started_at = 0.0
        self.restart_at: float | None = None  # set while dead and waiting to be restarted
        self.retired = False
        self.backoff = Backoff(first=0.5, cap=30.0)
        self.write_lock = threading.Lock()
        self.live: tuple[str, int] | None = None  # where its live server listens

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class WorkerPool:
    def __init__(
        self,
        *,
        recordings: Path,
        segment_seconds: float,
        backoff_cap: float,
        per_worker: int,
        on_event: Callable[[MediaEvent], None],
        on_live: Callable[[str, LiveItem], None],
        on_lost: Callable[[list[str]], None] | None = None,
        python: str = sys.executable,
        live_host: str = "",
        live_port: int = 0,
        live_key: bytes = b"",
        rtsp_client: str = "own",
    ) -> None:
        if per_worker < 1:
            raise ValueError("per_worker must be at least 1")
        # live_port: 0 lets each worker's live server take a free port; otherwise worker slot
        # N listens on live_port + N (firewall-friendly, one range to open).
        self._config = ipc.Configure(
            str(recordings),
            segment_seconds,
            backoff_cap,
            live_host,
            live_port,
            live_key,
            rtsp_client,
        )
        self._per_worker = per_worker
        self._on_event = on_event
        self._on_live = on_live
        self._on_lost = on_lost
        self._python = python
        self._lock = threading.RLock()
        self._workers: list[_Worker] = []
        self._watched: dict[str, int] = {}  # channel -> generation of its live muxer
        self._generations = itertools.count(1)
        self._request_ids = itertools.count(1)
        self._pending: dict[int, tuple[threading.Event, list[ipc.Report]]] = {}
        self._wake = threading.Event()
        self._stopping = False
        self._supervisor: threading.Thread | None = None

    # --- life ----------------------------------------------------------------------------------

    def start(self) -> None:
        self._stopping = False
        self._supervisor = threading.Thread(target=self._supervise, name="media-pool", daemon=True)
        self._supervisor.start()

    def stop(self) -> None:
        """Stop every worker cleanly (segments in progress are closed and reported)."""
        with self._lock:
            self._stopping = True
            workers = list(self._workers)
            self._workers.clear()
            self._watched.clear()
        self._wake.set()
        if self._supervisor is not None:
            self._supervisor.join(timeout=5)
        for w in workers:
            self._send(w, ipc.Shutdown())
            self._close_stdin(w)
        for w in workers:
            self._reap(w)

    def _reap(self, w: _Worker) -> None:
        if w.proc is None:
            return
        try:
            w.proc.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            log.error("media worker %d (pid %d) did not stop; killed", w.slot, w.proc.pid)
            w.proc.kill()
            w.proc.wait()
        if w.reader is not None:
            w.reader.join(timeout=5)  # its last reports (closed segments) are handled

    # --- placement -----------------------------------------------------------------------------

    def assign(self, specs: Sequence[IngestSpec]) -> None:
        """Run exactly these channels across the workers; channels stay where they are."""
        wanted = {spec.channel_id: spec for spec in specs}
        with self._lock:
            if self._stopping:
                return
            changed: set[int] = set()
            placed: set[str] = set()
            for w in self._workers:
                for cid in list(w.channels):
                    spec = wanted.get(cid)
                    if spec is None:
                        del w.channels[cid]
                        changed.add(w.slot)
                        if self._watched.pop(cid, None) is not None:
                            self._on_live(cid, Closed("the channel is no longer pulled"))
                    else:
                        placed.add(cid)
                        if w.channels[cid] != spec:
                            w.channels[cid] = spec
                            changed.add(w.slot)
            for cid, spec in wanted.items():
                if cid in placed:
                    continue
                w = self._roomiest()
                w.channels[cid] = spec
                changed.add(w.slot)
            for w in self._workers:
                if w.slot not in changed or w.retired:
                    continue
                if not w.channels:
                    self._retire(w)
                elif w.proc is None:
                    self._spawn(w)
                else:
                    self._send(w, ipc.Assign(tuple(w.channels.values())))

    def _roomiest(self) -> _Worker:
        open_ = [w for w in self._workers if not w.retired and len(w.channels) < self._per_worker]
        if open_:
            return min(open_, key=lambda w: len(w.channels))
        w = _Worker(max((w.slot for w in self._workers), default=-1) + 1)
        self._workers.append(w)
        return w

    def _retire(self, w: _Worker) -> None:
        w.retired = True
        self._workers.remove(w)
        self._send(w, ipc.Shutdown())
        self._close_stdin(w)
        threading.Thread(target=self._reap, args=(w,), daemon=True).start()

    def channel_worker(self, channel_id: str) -> _Worker | None:
        with self._lock:
            return next((w for w in self._workers if channel_id in w.channels), None)

    def running(self) -> list[str]:
        with self._lock:
            return sorted(cid for w in self._workers for cid in w.channels)

    def workers(self) -> list[WorkerInfo]:
        with self._lock:
            return [
                WorkerInfo(
                    w.slot,
                    w.proc.pid if w.proc else None,
                    w.alive,
                    sorted(w.channels),
                    w.restarts,
                )
                for w in self._workers
            ]

    # --- processes -----------------------------------------------------------------------------

    def _spawn(self, w: _Worker) -> None:
        proc = subprocess.Popen(
            [self._python, "-m", "xueliang.media.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        w.proc, w.started_at, w.restart_at = proc, time.monotonic(), None
        w.live = None
        assert proc.stdout is not None
        # A larger pipe: a worker's batch of live fragments (32 channels × 10 ms of 1080p)
        # goes in one write instead of blocking on the default 64 KiB.
        with contextlib.suppress(OSError):
            fcntl.fcntl(proc.stdout.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        w.reader = threading.Thread(
            target=self._read, args=(w, proc.stdout), name=f"media-worker-{w.slot}", daemon=True
        )
        w.reader.start()
        config = self._config
        if config.live_host and config.live_port:
            config = dataclasses.replace(config, live_port=config.live_port + w.slot)
        self._send(w, config)
        self._send(w, ipc.Assign(tuple(w.channels.values())))
        for cid in w.channels:
            if cid in self._watched:
                generation = self._watched[cid] = next(self._generations)
                self._send(w, ipc.Watch(cid, generation))
        log.info("media worker %d started (pid %d, %d channels)", w.slot, proc.pid, len(w.channels))

    def _send(self, w: _Worker, cmd: ipc.Command) -> bool:
        proc = w.proc
        if proc is None or proc.stdin is None:
            return False
        with w.write_lock:
            try:
                proc.stdin.write(ipc.encode(cmd))
                proc.stdin.flush()
            except (BrokenPipeError, ValueError, OSError):
                return False  # dead: the supervisor restarts it and re-sends its state
        return True

    @staticmethod
    def _close_stdin(w: _Worker) -> None:
        if w.proc is not None and w.proc.stdin is not None:
            with w.write_lock, contextlib.suppress(OSError):
                w.proc.stdin.close()

    def _read(self, w: _Worker, stream: IO[bytes]) -> None:
        while True:
            try:
                msg = ipc.read_message(stream)
            except ipc.ProtocolError as exc:
                log.error("media worker %d: %s; restarting it", w.slot, exc)
                if w.proc is not None:
                    w.proc.kill()
                break
            if msg is None:
                break
            try:
                self._dispatch(msg, w)
            except Exception:  # a report that cannot be handled must not stop the reader
                log.exception("media worker %d: report %r failed", w.slot, type(msg).__name__)
        self._wake.set()

    def _dispatch(self, msg: ipc.Command | ipc.Report, w: _Worker) -> None:
        if isinstance(msg, ipc.Batch):
            for report in msg.reports:
                self._dispatch(report, w)
        elif isinstance(msg, ipc.LiveListening):
            if msg.port:
                w.live = (msg.host, msg.port)
            else:
                log.error("media worker %d serves no live view itself: %s", w.slot, msg.error)
        elif isinstance(msg, ipc.Event):
            self._on_event(msg.event)
        elif isinstance(msg, ipc.Live):
            if self._watched.get(msg.channel_id) == msg.generation:
                self._on_live(msg.channel_id, msg.item)
        elif isinstance(msg, ipc.KeyFrameReply | ipc.StatsReply):
            waiter = self._pending.get(msg.request_id)
            if waiter is not None:
                waiter[1].append(msg)
                waiter[0].set()

    def _supervise(self) -> None:
        while not self._stopping:
            self._wake.wait(1.0)
            self._wake.clear()
            lost: list[tuple[_Worker, int]] = []
            with self._lock:
                if self._stopping:
                    return
                now = time.monotonic()
                for w in self._workers:
                    if w.proc is None or w.retired:
                        continue
                    code = w.proc.poll()
                    if code is not None and w.restart_at is None:
                        if now - w.started_at > STABLE_SECONDS:
                            w.backoff.reset()
                        w.restart_at = now + w.backoff.next()
                        lost.append((w, code))
            for w, code in lost:
                self._lost(w, code)
            with self._lock:
                now = time.monotonic()
                for w in self._workers:
                    if w.restart_at is not None and now >= w.restart_at and not self._stopping:
                        w.restarts += 1
                        self._spawn(w)
                soonest = min(
                    (w.restart_at for w in self._workers if w.restart_at is not None),
                    default=None,
                )
            if soonest is not None and soonest > now:
                # Wake for the restart; the timer sets the same event a death does.
                threading.Timer(soonest - now, self._wake.set).start()

    def _lost(self, w: _Worker, code: int) -> None:
        assert w.reader is not None
        w.reader.join(timeout=5)  # its last reports first
        channels = sorted(w.channels)
        log.error(
            "media worker %d (pid %s) exited with code %d; %d channels restart with it",
            w.slot,
            w.proc.pid if w.proc else "?",
            code,
            len(channels),
        )
        now = datetime.now(UTC)
        reason = f"media worker exited unexpectedly (code {code}); restarting"
        # Live viewers stay: the restarted worker's muxer sends a new init, and they go on.
        for cid in channels:
            self._on_event(StatusChanged(cid, "offline", reason, now))
        if self._on_lost is not None:
            try:
                self._on_lost(channels)
            except Exception:
                log.exception("handling the loss of media worker %d failed", w.slot)

    # --- live view, snapshots, statistics ------------------------------------------------------

    def watch(self, channel_id: str) -> None:
        """Start the channel's live muxer; its items reach ``on_live``."""
        with self._lock:
            w = self.channel_worker(channel_id)
            if w is None:
                raise LookupError(f"channel {channel_id} has no live source")
            generation = self._watched[channel_id] = next(self._generations)
            self._send(w, ipc.Watch(channel_id, generation))

    def unwatch(self, channel_id: str) -> None:
        with self._lock:
            if self._watched.pop(channel_id, None) is None:
                return
            w = self.channel_worker(channel_id)
            if w is not None:
                self._send(w, ipc.Unwatch(channel_id))

    def live_endpoint(self, channel_id: str) -> tuple[str, int] | None:
        """Where the worker running the channel serves live viewers itself, if it does."""
        w = self.channel_worker(channel_id)
        return w.live if w is not None and w.alive else None

    def trigger(self, channel_id: str, at: float, post_roll: float | None = None) -> bool:
        """An event on the channel (event-mode recording); False when it is not pulled."""
        w = self.channel_worker(channel_id)
        return w is not None and self._send(w, ipc.Trigger(channel_id, at, post_roll))

    def _ask(self, w: _Worker, make: Callable[[int], ipc.Command]) -> ipc.Report | None:
        rid = next(self._request_ids)
        done = threading.Event()
        box: list[ipc.Report] = []
        self._pending[rid] = (done, box)
        try:
            if not self._send(w, make(rid)) or not done.wait(REQUEST_SECONDS):
                return None
            return box[0]
        finally:
            del self._pending[rid]

    def latest_keyframe(self, channel_id: str) -> KeyFrame | None:
        w = self.channel_worker(channel_id)
        if w is None:
            return None
        reply = self._ask(w, lambda rid: ipc.KeyFrameRequest(rid, channel_id))
        return reply.key if isinstance(reply, ipc.KeyFrameReply) else None

    def stats(self) -> dict[str, ipc.ChannelStats]:
        with self._lock:
            workers = [w for w in self._workers if w.alive]
        out: dict[str, ipc.ChannelStats] = {}
        for w in workers:
            reply = self._ask(w, ipc.StatsRequest)
            if isinstance(reply, ipc.StatsReply):
                out.update(reply.channels)
        return out
