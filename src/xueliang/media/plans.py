"""Recording plans: when a channel's recorder writes.

- ``continuous``: always (the default; what the regulations expect of key points).
- ``schedule``: inside weekly windows, in the site's time zone (for example 工作日 07:00–19:00,
  or 22:00–06:00 across midnight).
- ``event``: only around events (an alarm input, analytics, an operator's "record now"): the
  last ``pre_roll`` seconds are kept in memory and written when an event comes, and recording
  goes on until ``post_roll`` seconds after the last event.
- ``off``: never (live view only).

The plan is plain data that travels to the media worker with the channel's ingest spec; the
``RecordingGate`` there sits between the hub and the recorder. Time comes in as arguments (the
packets' arrival wall clock), so all of this is tested without waiting.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo

import av
from av.stream import Stream

from xueliang.media.hub import Consumer, StreamInfo

if TYPE_CHECKING:
    Packet = av.Packet[Stream]
else:
    Packet = av.Packet

log = logging.getLogger(__name__)

PlanMode = Literal["continuous", "schedule", "event", "off"]
MINUTES_PER_DAY = 24 * 60
# Bound on the pre-roll kept in memory (a minute at 50 fps with audio).
MAX_PRE_ROLL_PACKETS = 6000


@dataclass(frozen=True, slots=True)
class Window:
    """Weekly window: ``days`` 1 (Monday) … 7 (Sunday); minutes since midnight. ``end`` at or
    before ``start`` crosses midnight into the next day (which need not be in ``days``)."""

    days: frozenset[int]
    start: int
    end: int

    def contains(self, weekday: int, minute: int) -> bool:
        if self.start < self.end:
            return weekday in self.days and self.start <= minute < self.end
        # Across midnight: the evening part on a listed day, the morning part on the next day.
        yesterday = 7 if weekday == 1 else weekday - 1
        return (weekday in self.days and minute >= self.start) or (
            yesterday in self.days and minute < self.end
        )


@dataclass(frozen=True, slots=True)
class RecordingPlan:
    mode: PlanMode = "continuous"
    windows: tuple[Window, ...] = ()
    timezone: str = "Asia/Shanghai"
    pre_roll: float = 10.0
    post_roll: float = 30.0

    def scheduled(self, wallclock: float) -> bool:
        """Whether the schedule wants recording at this instant (seconds since the epoch)."""
        local = datetime.fromtimestamp(wallclock, ZoneInfo(self.timezone))
        minute = local.hour * 60 + local.minute
        return any(w.contains(local.isoweekday(), minute) for w in self.windows)


CONTINUOUS = RecordingPlan()
OFF = RecordingPlan(mode="off")


@dataclass(slots=True)
class _Buffered:
    packets: deque[tuple[Packet, float]] = field(default_factory=deque)


class RecordingGate:
    """A hub consumer in front of the recorder that passes packets only when the plan says so.

    Recording always begins on a video key frame (with the pre-roll for events, which also
    begins on one), and ends by closing the segment in progress: a gap in the recordings is
    then a gap in the index, which is how playback and gap reports see it.
    """

    def __init__(self, recorder: Consumer, plan: RecordingPlan) -> None:
        self._recorder = recorder
        self._plan = plan
        self._streams: list[StreamInfo] = []
        self._video: int | None = None
        self._recording = False
        self._started = False  # the recorder has this session's streams
        self._pre = _Buffered()
        # Set from another thread (the worker's command reader): one float, read per packet.
        self._event_until = 0.0
        self._lock = threading.Lock()
        self._checked_at = -1.0
        self._valid_until = -1.0
        self._scheduled = False

    @property
    def plan(self) -> RecordingPlan:
        return self._plan

    @property
    def recording(self) -> bool:
        return self._recording

    def set_plan(self, plan: RecordingPlan) -> None:
        """A new plan, taking effect with the next packet (no reconnect to the camera)."""
        with self._lock:
            self._plan = plan
            self._valid_until = -1.0

    def trigger(self, at: float, post_roll: float | None = None) -> float:
        """An event at ``at``: record (from the pre-roll) until ``post_roll`` seconds after it.
        Returns until when. Events only matter to the ``event`` mode."""
        with self._lock:
            until = at + (self._plan.post_roll if post_roll is None else post_roll)
            self._event_until = max(self._event_until, until)
            return self._event_until

    # --- Consumer ------------------------------------------------------------------------------

    def start(self, streams: Sequence[StreamInfo]) -> None:
        self._streams = list(streams)
        self._video = next((s.index for s in streams if s.kind == "video"), None)
        self._recording = False
        self._pre.packets.clear()
        self._recorder.start(streams)
        self._started = True

    def offer(self, packet: Packet, wallclock: float) -> bool:
        want = self._wanted(wallclock)
        if self._recording:
            if want:
                return self._recorder.offer(packet, wallclock)
            self._recording = False
            self._recorder.stop()  # closes (and reports) the segment in progress
        key = packet.stream_index == self._video and bool(packet.is_keyframe)
        if self._plan.mode == "event":
            self._buffer(packet, wallclock, key)
        if not want:
            return True
        if self._plan.mode == "event" and self._pre.packets:
            # Begin with the pre-roll (it starts on a key frame; this packet is its last).
            self._recording = True
            self._recorder.start(self._streams)
            ok = all([self._recorder.offer(p, t) for p, t in self._pre.packets])
            self._pre.packets.clear()
            return ok
        if not key:
            return True  # wait for a key frame to begin on
        self._recording = True
        self._recorder.start(self._streams)
        return self._recorder.offer(packet, wallclock)

    def stop(self) -> None:
        self._recording = False
        self._pre.packets.clear()
        self._recorder.stop()

    # --- deciding ------------------------------------------------------------------------------

    def _wanted(self, wallclock: float) -> bool:
        plan = self._plan
        if plan.mode == "continuous":
            return True
        if plan.mode == "off":
            return False
        if plan.mode == "event":
            return wallclock < self._event_until
        # Schedule: windows are whole minutes (and zone offsets too), so the answer holds
        # until the next minute begins: worked out once a minute, not per packet.
        if not self._checked_at <= wallclock < self._valid_until:
            self._scheduled = plan.scheduled(wallclock)
            self._checked_at = wallclock
            self._valid_until = (wallclock // 60 + 1) * 60
        return self._scheduled

    def _buffer(self, packet: Packet, wallclock: float, key: bool) -> None:
        """Keep at least ``pre_roll`` seconds, beginning on a key frame."""
        buf = self._pre.packets
        if not buf and not key:
            return
        if len(buf) >= MAX_PRE_ROLL_PACKETS:  # a camera with a very long GOP: start afresh
            buf.clear()
            if not key:
                return
        buf.append((packet, wallclock))
        if not key:
            return
        # Drop whole GOPs from the front while the rest still covers the pre-roll.
        horizon = wallclock - self._plan.pre_roll
        while True:
            second_key = next(
                (
                    i
                    for i, (p, _t) in enumerate(buf)
                    if i > 0 and p.stream_index == self._video and p.is_keyframe
                ),
                None,
            )
            if second_key is None or buf[second_key][1] > horizon:
                break
            for _ in range(second_key):
                buf.popleft()
