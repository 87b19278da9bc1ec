"""A download: one stream written into one regular MP4 file, with progress.

A GB/T 28181 Download asks a device to send a recorded range at a multiple of real time; what
arrives is copied (never re-encoded) into one MP4 with its index in front (plays from the first
byte of a transfer), by the recorder's own muxing code so that audio, G.711 and odd timestamps
are handled the same way. The file's time is the media's time, not the arrival's: a range
downloaded at 4× lasts as long as the range.

One-shot: the file is finished when the stream ends (or is stopped) and a source session that
starts again afterwards writes nothing, so a reconnect can never overwrite a finished download.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import av
from av.stream import Stream

from xueliang.media.hub import StreamInfo
from xueliang.media.model import (
    DownloadFinished,
    DownloadProgress,
    DownloadTarget,
    MediaEvent,
    SegmentClosed,
)
from xueliang.media.recorder import SegmentRecorder

if TYPE_CHECKING:
    Packet = av.Packet[Stream]
else:
    Packet = av.Packet

REGULAR_MP4 = {"movflags": "faststart"}
PROGRESS_SECONDS = 1.0  # how often progress is reported (wall time)


class DownloadWriter:
    """A hub consumer writing ``target.path`` and reporting progress, then the finished file."""

    def __init__(
        self,
        channel_id: str,
        target: DownloadTarget,
        emit: Callable[[MediaEvent], None],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        path = Path(target.path)
        self._channel_id = channel_id
        self._path = path
        self._emit = emit
        self._clock = clock
        self._closed: SegmentClosed | None = None
        self._recorder = SegmentRecorder(
            path.parent,
            channel_id,
            segment_seconds=math.inf,
            on_segment=self._on_closed,
            name=lambda _channel, _start: path.name,
            options=REGULAR_MP4,
        )
        self._started = False
        self._finished = False
        self._reported = 0.0

    def _on_closed(self, closed: SegmentClosed) -> None:
        self._closed = closed

    # --- Consumer ------------------------------------------------------------------------------

    def start(self, streams: Sequence[StreamInfo]) -> None:
        if self._finished:
            return
        if self._started:
            # The source came back after a break: what was written is the download. Ending it
            # here keeps the file whole rather than opening it again over itself.
            self.stop()
            return
        self._started = True
        self._recorder.start(streams)

    def offer(self, packet: Packet, wallclock: float) -> bool:
        if self._finished:
            return True
        self._recorder.offer(packet, wallclock)
        if self._recorder.failed is not None:
            self.stop()  # a failed write (a full disk) ends the download with what it has
            return True
        now = self._clock()
        if now - self._reported >= PROGRESS_SECONDS:
            self._reported = now
            self._emit(
                DownloadProgress(self._channel_id, self._recorder.written_seconds, self._size())
            )
        return True

    def stop(self) -> None:
        if self._finished or not self._started:
            return
        self._finished = True
        self._recorder.stop()
        closed = self._closed
        if closed is None:
            self._emit(
                DownloadFinished(
                    self._channel_id,
                    str(self._path),
                    0.0,
                    0,
                    0,
                    "unknown",
                    self._recorder.failed or "no video arrived",
                )
            )
            return
        self._emit(
            DownloadFinished(
                self._channel_id,
                str(self._path),
                (closed.end - closed.start).total_seconds(),
                closed.bytes,
                closed.frames,
                closed.codec,
                self._recorder.failed,
            )
        )

    def _size(self) -> int:
        try:
            return os.path.getsize(self._path)
        except OSError:
            return 0
