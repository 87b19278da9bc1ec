"""Recording plans of channels (stored, checked, audited) and event triggers.

A plan is kept with its channel as JSON; a missing plan means continuous recording. Changing a
plan reaches the channel's media worker through the registry's change signal and takes effect
without reconnecting to the camera. A trigger (an operator's 手动录像, an alarm input, later
analytics) makes an event-mode channel record from its pre-roll on.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from xueliang.access.audit import AuditLog
from xueliang.access.permissions import Permission
from xueliang.access.principal import Principal
from xueliang.core.errors import Conflict
from xueliang.core.events import Signal
from xueliang.media.plans import PlanMode, RecordingPlan, Window
from xueliang.registry.common import visible_channel
from xueliang.store.db import Database

if TYPE_CHECKING:
    from xueliang.media.service import MediaService

HHMM = Annotated[str, StringConstraints(pattern=r"^(?:[01]\d|2[0-3]):[0-5]\d$|^24:00$")]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class ScheduleWindow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    days: list[Annotated[int, Field(ge=1, le=7)]] = Field(
        min_length=1, max_length=7, description="1 = Monday … 7 = Sunday"
    )
    start: HHMM = Field(description="Local time HH:MM")
    end: HHMM = Field(description="Local time HH:MM; at or before start: ends the next day")

    def window(self) -> Window:
        return Window(frozenset(self.days), _minutes(self.start), _minutes(self.end) % 1440)


class PlanUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: PlanMode = Field(
        description="continuous | schedule (inside the windows) | event (around triggers, "
        "with pre- and post-roll) | off (live only)"
    )
    schedule: list[ScheduleWindow] = Field(default_factory=list, max_length=28)
    pre_roll_seconds: int = Field(default=10, ge=0, le=60)
    post_roll_seconds: int = Field(default=30, ge=0, le=3600)

    @model_validator(mode="after")
    def _schedule_needs_windows(self) -> PlanUpdate:
        if self.mode == "schedule" and not self.schedule:
            raise ValueError("a schedule plan needs at least one window")
        return self


class PlanView(PlanUpdate):
    channel_id: str
    timezone: str = Field(description="The site's time zone the windows are in")


class TriggerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason = Field(description="Why (an alarm, a call, an operator's observation)")
    post_roll_seconds: int | None = Field(
        default=None, ge=0, le=3600, description="Record this long after now (default: plan's)"
    )


class TriggerView(BaseModel):
    channel_id: str
    mode: PlanMode
    until: datetime = Field(description="Event recording runs at least until then")


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def stored_plan(data: dict[str, Any] | None) -> PlanUpdate:
    return PlanUpdate.model_validate(data) if data else PlanUpdate(mode="continuous")


def plan_of(data: dict[str, Any] | None, timezone: str) -> RecordingPlan:
    """The worker-side plan of a channel's stored plan."""
    p = stored_plan(data)
    return RecordingPlan(
        mode=p.mode,
        windows=tuple(w.window() for w in p.schedule),
        timezone=timezone,
        pre_roll=float(p.pre_roll_seconds),
        post_roll=float(p.post_roll_seconds),
    )


class RecordingPlanService:
    def __init__(
        self,
        db: Database,
        audit: AuditLog,
        media: MediaService,
        *,
        timezone: str,
        changed: Signal | None = None,
    ) -> None:
        self._db = db
        self._audit = audit
        self._media = media
        self._timezone = timezone
        self.changed = changed

    def get(self, principal: Principal, channel_id: str) -> PlanView:
        principal.require(Permission.REGISTRY_READ)
        with self._db.read() as s:
            channel = visible_channel(s, principal, channel_id)
            plan = stored_plan(channel.recording_plan)
        return PlanView(channel_id=channel_id, timezone=self._timezone, **plan.model_dump())

    def set(self, principal: Principal, channel_id: str, body: PlanUpdate) -> PlanView:
        principal.require(Permission.REGISTRY_WRITE)
        with self._db.transaction() as s:
            channel = visible_channel(s, principal, channel_id)
            before = stored_plan(channel.recording_plan).model_dump()
            channel.recording_plan = body.model_dump()
            self._audit.append(
                s,
                principal,
                "recording.plan",
                target=f"channel:{channel_id}",
                detail={"before": before, "after": body.model_dump()},
            )
        if self.changed is not None:
            self.changed.emit()  # the media worker picks the plan up
        return PlanView(channel_id=channel_id, timezone=self._timezone, **body.model_dump())

    def trigger(self, principal: Principal, channel_id: str, body: TriggerRequest) -> TriggerView:
        """Record now (event mode): from the pre-roll until the post-roll after now."""
        principal.require(Permission.DEVICE_CONTROL)
        with self._db.read() as s:
            channel = visible_channel(s, principal, channel_id)
            plan = stored_plan(channel.recording_plan)
        # The media plane times packets by their arrival on the wall clock: so does this.
        now = time.time()
        post = body.post_roll_seconds
        until = datetime.fromtimestamp(now, UTC) + timedelta(
            seconds=plan.post_roll_seconds if post is None else post
        )
        if not self._media.trigger(channel_id, now, None if post is None else float(post)):
            raise Conflict(f"channel {channel_id} is not being pulled: nothing to record")
        with self._db.transaction() as s:
            self._audit.append(
                s,
                principal,
                "recording.trigger",
                target=f"channel:{channel_id}",
                reason=body.reason,
                detail={"mode": plan.mode, "until": until.astimezone(UTC).isoformat()},
            )
        return TriggerView(channel_id=channel_id, mode=plan.mode, until=until)
