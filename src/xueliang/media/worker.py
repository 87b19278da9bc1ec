"""A media worker process: runs a bounded group of channels for the control process.

    python -m xueliang.media.worker        (started by the control process's WorkerPool)

Commands arrive on stdin and reports leave on stdout (see ipc.py). One Python process holds
32–48 streams before its threads contend for the GIL, so the platform runs several workers;
a worker is also the unit that later runs on other machines.

The worker exits when told to, or when stdin closes (the control process died): it never
outlives the platform. Reports are queued to a writer thread so that an ingest thread never
blocks on the pipe; live fragments are dropped (events never) when the control process falls
far behind.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import sys
import threading
from pathlib import Path
from typing import BinaryIO

from xueliang.media import ipc
from xueliang.media.live import Fragment, LiveItem
from xueliang.media.live_server import LiveServer
from xueliang.media.model import MediaEvent
from xueliang.media.runner import ChannelRunner
from xueliang.media.tickets import TicketVerifier

log = logging.getLogger("xueliang.media.worker")

# Live bytes allowed in the outgoing queue before fragments are dropped (a few seconds of
# dozens of watched 1080p channels).
LIVE_BACKLOG_BYTES = 64 * 1024 * 1024
# Reports wait at most this long to travel together (live view's latency budget is 500 ms).
BATCH_SECONDS = 0.01
BATCH_MAX = 512


class Sender:
    """Sends reports from one thread; anyone may call ``send``.

    Reports are gathered for up to BATCH_SECONDS and go out as one Batch frame: with dozens of
    watched channels, a frame (pickle, write, wake-up of the control process) per fragment
    cost more than the muxing itself.
    """

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        # (report, live bytes in it) or None to stop.
        self._queue: queue.SimpleQueue[tuple[ipc.Single, int] | None] = queue.SimpleQueue()
        self._live_backlog = 0
        self._lock = threading.Lock()
        self.live_dropped = 0
        self._pause = threading.Event()  # set on close: the last batch goes at once
        self._thread = threading.Thread(target=self._run, name="worker-sender", daemon=True)
        self._thread.start()

    def send(self, message: ipc.Single) -> None:
        live = 0
        if isinstance(message, ipc.Live):
            item = message.item
            live = len(item.data) if isinstance(item, Fragment) else 1
            with self._lock:
                if self._live_backlog > LIVE_BACKLOG_BYTES:
                    self.live_dropped += 1
                    return
                self._live_backlog += live
        self._queue.put((message, live))

    def _run(self) -> None:
        done = False
        while not done:
            first = self._queue.get()
            items = [first]
            if first is not None:
                # Let the batch gather without waking up for each report: a wake-up (and a
                # GIL hand-over) per fragment cost more than sending it.
                self._pause.wait(BATCH_SECONDS)
                while len(items) < BATCH_MAX:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    items.append(item)
                    if item is None:
                        break
            done = None in items
            batch = [item for item in items if item is not None]
            if not batch:
                continue
            reports = tuple(report for report, _ in batch)
            frame = ipc.encode(reports[0] if len(reports) == 1 else ipc.Batch(reports))
            try:
                self._out.write(frame)
                self._out.flush()
            except (BrokenPipeError, ValueError, OSError):
                return  # the control process is gone; stdin's end stops the worker
            with self._lock:
                self._live_backlog -= sum(live for _, live in batch)

    def close(self) -> None:
        """Send what is queued, then stop the writer."""
        self._pause.set()
        self._queue.put(None)
        self._thread.join(timeout=10)


def serve(commands: BinaryIO, out: BinaryIO) -> None:
    sender = Sender(out)
    sender.send(ipc.Ready(os.getpid()))
    runner: ChannelRunner | None = None
    live: LiveServer | None = None

    def event(e: MediaEvent) -> None:
        sender.send(ipc.Event(e))

    try:
        while True:
            try:
                cmd = ipc.read_message(commands)
            except ipc.ProtocolError as exc:
                log.error("media worker: bad command stream (%s); stopping", exc)
                break
            if cmd is None or isinstance(cmd, ipc.Shutdown):
                break
            if isinstance(cmd, ipc.Configure):
                if runner is None:
                    runner = ChannelRunner(
                        Path(cmd.recordings),
                        segment_seconds=cmd.segment_seconds,
                        backoff_cap=cmd.backoff_cap,
                        emit=event,
                        rtsp_client=cmd.rtsp_client,
                    )
                    if cmd.live_host:
                        live = _serve_live(runner, sender, cmd)
                continue
            if runner is None or isinstance(cmd, ipc.Report):
                log.error("media worker: unexpected %s; ignored", type(cmd).__name__)
                continue
            _handle(runner, sender, cmd)
    finally:
        if live is not None:
            live.stop()  # viewers are told the worker stops
        if runner is not None:
            runner.stop()  # closes segments in progress: their events go out before we exit
        sender.close()


def _serve_live(runner: ChannelRunner, sender: Sender, cmd: ipc.Configure) -> LiveServer | None:
    """Start the worker's own live-view server; without one, live view goes by the relay."""
    try:
        server = LiveServer(
            cmd.live_host,
            cmd.live_port,
            TicketVerifier(cmd.live_key),
            join=runner.add_viewer,
            leave=runner.remove_sink,
        )
    except OSError as exc:
        log.error("media worker: live view on %s:%d: %s", cmd.live_host, cmd.live_port, exc)
        sender.send(ipc.LiveListening(cmd.live_host, 0, str(exc)))
        return None
    server.start()
    sender.send(ipc.LiveListening(server.host, server.port))
    return server


def _handle(runner: ChannelRunner, sender: Sender, cmd: ipc.Command) -> None:
    if isinstance(cmd, ipc.Assign):
        runner.assign(cmd.specs)
    elif isinstance(cmd, ipc.Watch):
        channel_id, generation = cmd.channel_id, cmd.generation

        def live(item: LiveItem) -> None:
            sender.send(ipc.Live(channel_id, generation, item))

        runner.watch(channel_id, live)
    elif isinstance(cmd, ipc.Unwatch):
        runner.unwatch(cmd.channel_id)
    elif isinstance(cmd, ipc.KeyFrameRequest):
        sender.send(ipc.KeyFrameReply(cmd.request_id, runner.latest_keyframe(cmd.channel_id)))
    elif isinstance(cmd, ipc.Trigger):
        runner.trigger(cmd.channel_id, cmd.at, cmd.post_roll)
    elif isinstance(cmd, ipc.StatsRequest):
        sender.send(ipc.StatsReply(cmd.request_id, runner.stats(), sender.live_dropped))


def main() -> None:
    # Ctrl-C in a terminal reaches the whole process group: the control process decides when
    # workers stop (and tells them), so they finish their segments cleanly.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The protocol owns the real stdout; anything printed by accident goes to stderr.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    logging.basicConfig(
        level=os.environ.get("XUELIANG_WORKER_LOG", "WARNING"),
        format="%(asctime)s worker[%(process)d] %(levelname)s %(name)s: %(message)s",
    )
    serve(sys.stdin.buffer, out)


if __name__ == "__main__":
    main()
