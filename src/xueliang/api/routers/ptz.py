"""PTZ: steer a channel's camera and use its presets (``ptz.control``, within the caller's area).

``POST /channels/{id}/ptz`` takes one command, chosen by ``action``:

- ``{"action": "move", "pan": 0.5, "tilt": 0, "zoom": 0, "timeout": 1.0}``: speeds in [-1, 1]
  (pan > 0 right, tilt > 0 up, zoom > 0 in); the camera stops by itself after ``timeout``
  seconds (at most 10) if no stop comes first;
- ``{"action": "stop"}``;
- ``{"action": "preset", "op": "goto" | "set" | "remove", "preset": "1", "name": "大门"}``:
  ``set`` without ``preset`` saves a new one.

Answers 204, or 200 with ``{"token"}`` for a preset ``set``. A fixed camera, or a device whose
protocol has no PTZ driver, is 422 ``invalid``; a device that does not answer, refuses the
credentials or faults is 422 ``device_unreachable`` / ``device_unauthorized`` /
``device_protocol``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from xueliang.api.deps import PlatformDep, PrincipalDep
from xueliang.api.errors import ERROR_RESPONSES
from xueliang.ptz.commands import (
    DEFAULT_MOVE_TIMEOUT,
    MAX_MOVE_TIMEOUT,
    MAX_PRESET_NAME,
    MAX_TOKEN,
    Command,
    Move,
    Preset,
    PresetOp,
    Stop,
)
from xueliang.registry.schemas import _In

router = APIRouter(tags=["ptz"], responses=ERROR_RESPONSES)

Speed = Annotated[float, Field(ge=-1, le=1, allow_inf_nan=False)]


class MoveBody(_In):
    action: Literal["move"]
    pan: Speed = 0.0
    tilt: Speed = 0.0
    zoom: Speed = 0.0
    timeout: Annotated[float, Field(gt=0, le=MAX_MOVE_TIMEOUT, allow_inf_nan=False)] = Field(
        default=DEFAULT_MOVE_TIMEOUT, description="Seconds after which the camera stops by itself"
    )

    def command(self) -> Move:
        return Move(self.pan, self.tilt, self.zoom, self.timeout)


class StopBody(_In):
    action: Literal["stop"]

    def command(self) -> Stop:
        return Stop()


class PresetBody(_In):
    action: Literal["preset"]
    op: PresetOp
    preset: Annotated[str, Field(max_length=MAX_TOKEN)] | Annotated[int, Field(ge=0)] | None = (
        Field(default=None, description="The preset's token (a number on most cameras)")
    )
    name: Annotated[str, Field(max_length=MAX_PRESET_NAME)] | None = Field(
        default=None, description="Only with op set"
    )

    def command(self) -> Preset:
        token = str(self.preset) if self.preset is not None else None
        return Preset(self.op, token, self.name)


PtzBody = Annotated[MoveBody | StopBody | PresetBody, Field(discriminator="action")]


class PresetSaved(BaseModel):
    token: str


class PresetOut(BaseModel):
    token: str
    name: str | None


@router.post(
    "/channels/{channel_id}/ptz",
    status_code=status.HTTP_204_NO_CONTENT,
    response_model=None,
    responses={200: {"model": PresetSaved, "description": "Preset saved (op set)"}},
    summary="Move, stop, or use a preset of the channel's camera (moves and presets audited)",
)
async def control(
    channel_id: str, body: PtzBody, p: PlatformDep, principal: PrincipalDep
) -> Response:
    command: Command = body.command()
    token = await p.ptz.control(principal, channel_id, command)
    if isinstance(command, Preset) and command.op == "set" and token is not None:
        return JSONResponse(PresetSaved(token=token).model_dump(), status_code=200)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/channels/{channel_id}/ptz/presets",
    response_model=list[PresetOut],
    summary="The presets saved on the channel's camera",
)
async def presets(channel_id: str, p: PlatformDep, principal: PrincipalDep) -> list[PresetOut]:
    return [
        PresetOut(token=x.token, name=x.name) for x in await p.ptz.presets(principal, channel_id)
    ]
