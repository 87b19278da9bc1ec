"""What the API shows of events and tracks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class EventView(BaseModel):
    id: int
    kind: str
    channel_id: str | None
    device_id: str | None
    priority: int | None
    method: str | None
    type: str | None
    description: str | None
    occurred_at: datetime
    received_at: datetime
    longitude: float | None
    latitude: float | None
    detail: dict[str, Any] | None


class TrackPoint(BaseModel):
    at: datetime
    longitude: float
    latitude: float
    speed: float | None
    direction: float | None
    altitude: float | None
