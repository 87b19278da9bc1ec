"""Recording plans per channel, and event triggers (手动录像 / alarm inputs)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from xueliang.api.deps import PlatformDep, PrincipalDep
from xueliang.api.errors import ERROR_RESPONSES
from xueliang.media.recording_plans import PlanUpdate, PlanView, TriggerRequest, TriggerView

router = APIRouter(tags=["media"], responses=ERROR_RESPONSES)

ChannelId = Annotated[str, Path(max_length=20, description="20-digit GB/T 28181 ID")]


@router.get(
    "/channels/{channel_id}/recording-plan",
    response_model=PlanView,
    summary="The channel's recording plan (continuous when never set)",
)
def get_plan(channel_id: ChannelId, p: PlatformDep, principal: PrincipalDep) -> PlanView:
    return p.recording_plans.get(principal, channel_id)


@router.put(
    "/channels/{channel_id}/recording-plan",
    response_model=PlanView,
    summary="Set the channel's recording plan: continuous, schedule (weekly windows in the "
    "site's time zone), event (pre- and post-roll around triggers) or off; applied without "
    "reconnecting to the camera (needs registry.write; audited)",
)
def set_plan(
    channel_id: ChannelId, body: PlanUpdate, p: PlatformDep, principal: PrincipalDep
) -> PlanView:
    return p.recording_plans.set(principal, channel_id, body)


@router.post(
    "/channels/{channel_id}/recording/trigger",
    response_model=TriggerView,
    summary="An event on the channel: an event-mode plan records from its pre-roll until the "
    "post-roll after now (needs device.control; audited with the reason; 409 when the "
    "channel is not pulled)",
)
def trigger(
    channel_id: ChannelId, body: TriggerRequest, p: PlatformDep, principal: PrincipalDep
) -> TriggerView:
    return p.recording_plans.trigger(principal, channel_id, body)
