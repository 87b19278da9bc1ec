"""Device controls beyond PTZ for GB/T 28181 devices (``device.control``, within the caller's
area; ``reboot`` also needs ``registry.write``).

``POST /devices/{id}/control`` with ``{"action": "reboot" | "guard" | "unguard" | "record" |
"stop_record", "channel_id": "…"}`` sends the matching DeviceControl (TeleBoot, GuardCmd
SetGuard/ResetGuard, RecordCmd Record/StopRecord) to the device, or to one of its channels when
``channel_id`` is given, and answers 200 with the device's Result. Every attempt is audited
(``device.control``) with the action and the result. A device answering ERROR is 422
``device_error``; an offline device or one that does not answer is 422 ``device_unreachable``;
a non-GB device is 422 ``invalid``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, Field

from xueliang.api.deps import PlatformDep, PrincipalDep
from xueliang.api.errors import ERROR_RESPONSES
from xueliang.gb28181.control import Action
from xueliang.registry.schemas import _In

router = APIRouter(tags=["devices"], responses=ERROR_RESPONSES)


class ControlBody(_In):
    action: Action
    channel_id: Annotated[str, Field(min_length=1, max_length=64)] | None = Field(
        default=None, description="One of the device's channels (guard, record); none: the device"
    )


class ControlOut(BaseModel):
    device_id: str
    channel_id: str | None
    action: str
    result: str = Field(description="What the device answered (OK)")


@router.post(
    "/devices/{device_id}/control",
    response_model=ControlOut,
    summary="Reboot, arm/disarm or start/stop recording on a GB/T 28181 device (audited)",
)
async def control(
    device_id: str, body: ControlBody, p: PlatformDep, principal: PrincipalDep
) -> ControlOut:
    done = await p.device_control.control(principal, device_id, body.action, body.channel_id)
    return ControlOut(
        device_id=done.device_id, channel_id=done.channel_id, action=done.action, result=done.result
    )
