"""Data classes crossing the media plane's boundary: what to pull, and what happened."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from xueliang.media.plans import CONTINUOUS, RecordingPlan


@dataclass(frozen=True, slots=True)
class DownloadTarget:
    """Write the stream into one MP4 file instead of recording it (a GB/T 28181 Download: a
    device's recording copied at its download speed). ``path`` is absolute; ``seconds`` is the
    media the device was asked for, so that progress can be told."""

    path: str
    seconds: float


@dataclass(frozen=True, slots=True)
class IngestSpec:
    """One channel to pull and record."""

    channel_id: str
    url: str
    username: str | None = None
    password: str | None = None
    transport: Literal["tcp", "udp"] = "tcp"
    plan: RecordingPlan = CONTINUOUS
    download: DownloadTarget | None = None

    def same_source(self, other: IngestSpec) -> bool:
        """Whether ``other`` pulls the same stream the same way (only the plan may differ):
        then a plan change is applied without reconnecting to the camera."""
        return (self.url, self.username, self.password, self.transport) == (
            other.url,
            other.username,
            other.password,
            other.transport,
        ) and (self.channel_id, self.download) == (other.channel_id, other.download)


@dataclass(frozen=True, slots=True)
class StatusChanged:
    channel_id: str
    status: Literal["online", "offline"]
    reason: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class SegmentClosed:
    channel_id: str
    path: str  # relative to the recordings root
    start: datetime
    end: datetime
    bytes: int
    codec: str
    frames: int


@dataclass(frozen=True, slots=True)
class DownloadProgress:
    """How much of a download's media has been written (reported about once a second)."""

    channel_id: str  # the stream key
    seconds: float  # media time written, from the first key frame
    bytes: int


@dataclass(frozen=True, slots=True)
class DownloadFinished:
    """A download's file is closed (the stream ended or was stopped): complete or not, the
    control side decides from ``seconds`` against what it asked for."""

    channel_id: str
    path: str
    seconds: float
    bytes: int
    frames: int
    codec: str
    error: str | None = None


MediaEvent = StatusChanged | SegmentClosed | DownloadProgress | DownloadFinished
