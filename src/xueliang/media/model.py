"""Data classes crossing the media plane's boundary: what to pull, and what happened."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from xueliang.media.plans import CONTINUOUS, RecordingPlan


@dataclass(frozen=True, slots=True)
class IngestSpec:
    """One channel to pull and record."""

    channel_id: str
    url: str
    username: str | None = None
    password: str | None = None
    transport: Literal["tcp", "udp"] = "tcp"
    plan: RecordingPlan = CONTINUOUS

    def same_source(self, other: IngestSpec) -> bool:
        """Whether ``other`` pulls the same stream the same way (only the plan may differ):
        then a plan change is applied without reconnecting to the camera."""
        return (self.url, self.username, self.password, self.transport) == (
            other.url,
            other.username,
            other.password,
            other.transport,
        ) and self.channel_id == other.channel_id


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


MediaEvent = StatusChanged | SegmentClosed
