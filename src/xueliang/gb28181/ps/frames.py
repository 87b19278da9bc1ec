"""What the demuxer gives out: frames, the elementary streams it has found, and its counters."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Frame:
    """One access unit (video, Annex B) or one audio PES payload; times in 90 kHz ticks,
    unwrapped past the 33-bit PTS range so they only grow within a stream."""

    stream_id: int
    kind: str  # "video" | "audio"
    codec: str  # FFmpeg codec name: h264, hevc, pcm_alaw, aac, ...
    pts: int
    dts: int
    keyframe: bool
    data: bytes


@dataclass(frozen=True, slots=True)
class PsStream:
    stream_id: int
    kind: str
    codec: str


@dataclass(slots=True)
class DemuxStats:
    frames: int = 0
    resyncs: int = 0  # garbage where a PS unit should start, skipped to the next pack header
    discontinuities: int = 0  # losses reported by the caller
    dropped_frames: int = 0  # partial frames thrown away after a loss or garbage
    bad_pes: int = 0  # PES packets whose header does not parse
    skipped_pes: int = 0  # PES of streams not (yet) known: before the PSM, or unsupported
    untimed: int = 0  # frames with no timestamp and none before them to derive one from
