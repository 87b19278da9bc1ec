"""Messages between the control process and its media workers, and how they are framed.

A worker is a child process of the platform speaking over its own stdin/stdout pipes: nobody
else can write to them, so messages are pickled data classes (fast, and the classes are the
protocol). Each frame is a 4-byte big-endian length and the pickle. Commands flow down (control
to worker), reports flow up (worker to control).
"""

from __future__ import annotations

import pickle
import struct
from dataclasses import dataclass, field
from typing import IO

from xueliang.media.hub import KeyFrame
from xueliang.media.live import LiveItem
from xueliang.media.model import IngestSpec, MediaEvent

_LEN = struct.Struct(">I")
# No single message comes near this (a 4K key frame is a few MB); a larger length means the
# stream is corrupt, and reading on would allocate whatever the garbage says.
MAX_FRAME = 256 * 1024 * 1024


# --- commands: control -> worker ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Configure:
    recordings: str
    segment_seconds: float
    backoff_cap: float
    # The worker's own live-view server (live_server.py): where it listens (no host: none)
    # and the key that signs the platform's live tickets.
    live_host: str = ""
    live_port: int = 0
    live_key: bytes = b""
    rtsp_client: str = "own"  # "own" or "ffmpeg" (media.rtsp_client)


@dataclass(frozen=True, slots=True)
class Assign:
    """The complete set of channels this worker runs from now on (declarative: the worker
    starts, stops and restarts ingests to match)."""

    specs: tuple[IngestSpec, ...]


@dataclass(frozen=True, slots=True)
class Watch:
    """Run a live muxer for the channel; its output is tagged with ``generation`` so that the
    control side can drop what an earlier watch of the same channel still had in flight."""

    channel_id: str
    generation: int


@dataclass(frozen=True, slots=True)
class Unwatch:
    channel_id: str


@dataclass(frozen=True, slots=True)
class KeyFrameRequest:
    request_id: int
    channel_id: str


@dataclass(frozen=True, slots=True)
class StatsRequest:
    request_id: int


@dataclass(frozen=True, slots=True)
class Trigger:
    """An event on the channel: an event-mode plan records from the pre-roll until
    ``post_roll`` seconds (the plan's own when None) after ``at``."""

    channel_id: str
    at: float
    post_roll: float | None = None


@dataclass(frozen=True, slots=True)
class Shutdown:
    pass


Command = Configure | Assign | Watch | Unwatch | KeyFrameRequest | StatsRequest | Trigger | Shutdown


# --- reports: worker -> control ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ready:
    pid: int


@dataclass(frozen=True, slots=True)
class LiveListening:
    """Where the worker serves live viewers itself (port 0 and a reason: it could not)."""

    host: str
    port: int
    error: str = ""


@dataclass(frozen=True, slots=True)
class Event:
    event: MediaEvent


@dataclass(frozen=True, slots=True)
class Live:
    channel_id: str
    generation: int
    item: LiveItem


@dataclass(frozen=True, slots=True)
class KeyFrameReply:
    request_id: int
    key: KeyFrame | None


@dataclass(frozen=True, slots=True)
class ChannelStats:
    packets: int  # published since the ingest started
    consumers: int  # recorder + live muxer(s) on the hub
    online: bool
    recorder_failed: str | None = None
    recording: bool = False  # the recorder is writing now (its plan wants it)


@dataclass(frozen=True, slots=True)
class StatsReply:
    request_id: int
    channels: dict[str, ChannelStats] = field(default_factory=dict)
    live_dropped: int = 0  # live fragments dropped because the control side fell behind


Single = Ready | LiveListening | Event | Live | KeyFrameReply | StatsReply


@dataclass(frozen=True, slots=True)
class Batch:
    """Reports gathered over a few milliseconds, sent as one frame: one write, one pickle and
    one wake-up of the control process for dozens of live fragments."""

    reports: tuple[Single, ...]


Report = Single | Batch


class ProtocolError(Exception):
    """The pipe carries something that is not a frame of this protocol."""


def encode(message: Command | Report) -> bytes:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _LEN.pack(len(body)) + body


def decode(body: bytes) -> Command | Report:
    try:
        # Trusted: the pipe joins this process to its own child; nobody else can write to it.
        message = pickle.loads(body)  # noqa: S301
    except Exception as exc:  # any unpickling failure means a corrupt frame
        raise ProtocolError(f"undecodable frame: {exc}") from exc
    if not isinstance(message, Command | Report):
        raise ProtocolError(f"unexpected message type {type(message).__name__}")
    return message


def read_message(stream: IO[bytes]) -> Command | Report | None:
    """The next message, or None at a clean end of stream."""
    head = _read_exactly(stream, _LEN.size)
    if head is None:
        return None
    (length,) = _LEN.unpack(head)
    if length > MAX_FRAME:
        raise ProtocolError(f"frame of {length} bytes exceeds the limit")
    body = _read_exactly(stream, length)
    if body is None:
        raise ProtocolError("the stream ended inside a frame")
    return decode(body)


def _read_exactly(stream: IO[bytes], n: int) -> bytes | None:
    data = stream.read(n)
    if not data:
        return None
    while len(data) < n:
        more = stream.read(n - len(data))
        if not more:
            raise ProtocolError("the stream ended inside a frame")
        data += more
    return data
