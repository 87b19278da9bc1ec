"""Control of GB/T 28181 devices through the platform: PTZ and the DeviceControl commands.

:class:`GbControl` sends a DeviceControl MESSAGE to a registered device from the loop the SIP
server runs on (a caller on another loop, such as a test client or a second ASGI server, is
marshalled onto it) and turns what happens into the platform's device errors:

- not registered (offline, or the SIP server not running): DeviceUnreachable;
- no SIP answer, or no Result, within the deadline: DeviceUnreachable;
- a non-2xx answer: DeviceProtocolError;
- ``<Result>ERROR</Result>`` (Hikvision answers record and guard controls so, inside a 200):
  the command's result; the caller decides (:func:`check_result` raises DeviceError).

PTZ has no MANSCDP answer on most devices: the 200 to the MESSAGE is taken as done.

:class:`GbPtzDriver` is the PtzDriver for ``gb28181`` devices. Speeds in [-1, 1] become the
PTZCmd's 0..255 pan/tilt and 0..15 zoom speeds. GB/T 28181 has no move timeout, so the driver
sends the stop itself after the move's timeout unless another move or a stop came first (a lost
stop request still leaves the camera turning: the device's own PTZ timeout, if any, applies).
Presets are numbers 1..255. The preset list is the device's answer to PresetQuery (GB/T
28181-2022 A.2.4.11, answered with a PresetList of PresetID and PresetName items): a device
that is offline or does not answer is DeviceUnreachable, one that refuses the query or answers
``<Result>ERROR</Result>`` a DeviceError; never an empty list in their place.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar, get_args

from sqlalchemy import select

from xueliang.access.audit import AuditLog
from xueliang.access.permissions import Permission
from xueliang.access.principal import Principal
from xueliang.core.aio import on_loop
from xueliang.core.errors import DeviceError, DeviceProtocolError, DeviceUnreachable, InvalidInput
from xueliang.gb28181 import manscdp
from xueliang.gb28181 import ptz as codec
from xueliang.gb28181.endpoint import DeviceRefused
from xueliang.gb28181.errors import ParseError
from xueliang.gb28181.manscdp.document import parse_document
from xueliang.ptz.commands import Move, Preset
from xueliang.ptz.driver import PresetView, PtzTarget
from xueliang.registry.common import visible_channel, visible_device
from xueliang.store.db import Database
from xueliang.store.models import Channel, Device

if TYPE_CHECKING:
    from xueliang.gb28181.server import GbServer

log = logging.getLogger(__name__)

T = TypeVar("T")

PROTOCOL = "gb28181"
AUDIT_ACTION = "device.control"
DEFAULT_DEADLINE = 5.0  # an operator at a joystick: fail fast rather than move late
PRESET_QUERY = "PresetQuery"
_PRESET_QUERY_WHAT = "the preset query (PresetQuery)"
_PRESET_OPS = {
    "goto": codec.PresetOp.CALL,
    "set": codec.PresetOp.SET,
    "remove": codec.PresetOp.DELETE,
}


def check_result(device_id: str, what: str, result: manscdp.Result) -> None:
    """DeviceError naming the device and the command when it answered anything but OK."""
    if not result.ok:
        answer = (result.result or "").strip() or "no result"
        raise DeviceError(
            f"device {device_id} answered {answer} to {what}: it did not carry out the command",
            details={"result": answer},
        )


class GbControl:
    def __init__(
        self,
        server: Callable[[], GbServer | None],
        loop: Callable[[], asyncio.AbstractEventLoop | None],
        *,
        deadline: float = DEFAULT_DEADLINE,
    ) -> None:
        self._server = server
        self._loop = loop
        self.deadline = deadline

    async def on_loop(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` on the SIP server's loop (where its futures are woken)."""
        return await on_loop(self._loop(), work)

    def _running(self, device_id: str) -> GbServer:
        server = self._server()
        if server is None:
            raise DeviceUnreachable(
                f"device {device_id} cannot be reached: the GB/T 28181 server is not running"
            )
        return server

    async def ptz(self, device_id: str, remote_id: str, command: codec.PtzCommand) -> None:
        """Send a PTZCmd for the channel ``remote_id`` to the device; done on its 200."""
        await self.on_loop(self.send_ptz(device_id, remote_id, command))

    async def send_ptz(self, device_id: str, remote_id: str, command: codec.PtzCommand) -> None:
        """:meth:`ptz` for a caller already on the server's loop."""
        server = self._running(device_id)
        message = manscdp.DeviceControl(
            device_id=remote_id, sn=server.next_sn(), ptz_cmd=codec.encode_hex(command)
        )
        try:
            response = await asyncio.wait_for(server.query(device_id, message), self.deadline)
        except Exception as exc:
            raise self._failure(device_id, "PTZ", exc) from exc
        if not response.success:
            raise DeviceProtocolError(
                f"device {device_id} refused the PTZ command: {response.status} {response.reason}",
                details={"status": response.status},
            )

    async def control(self, device_id: str, target_id: str, **fields: Any) -> manscdp.Result:
        """Send a DeviceControl with ``fields`` (tele_boot, record_cmd, guard_cmd, …) for
        ``target_id`` (the device or one of its channels) and return the device's Result."""
        return await self.on_loop(self._control(device_id, target_id, fields))

    async def _control(
        self, device_id: str, target_id: str, fields: dict[str, Any]
    ) -> manscdp.Result:
        server = self._running(device_id)
        message = manscdp.DeviceControl(device_id=target_id, sn=server.next_sn(), **fields)
        try:
            answer = await asyncio.wait_for(server.ask(device_id, message), self.deadline)
        except Exception as exc:
            raise self._failure(device_id, "the control", exc) from exc
        if not isinstance(answer, manscdp.Result):
            raise DeviceProtocolError(
                f"device {device_id} answered the control with {type(answer).__name__}, "
                "not a Result"
            )
        return answer

    async def presets(self, device_id: str, remote_id: str) -> list[tuple[int, str | None]]:
        """Ask the device for the presets of its channel ``remote_id`` (PresetQuery): (number,
        name) pairs by number."""
        return await self.on_loop(self._presets(device_id, remote_id))

    async def _presets(self, device_id: str, remote_id: str) -> list[tuple[int, str | None]]:
        server = self._running(device_id)
        query = manscdp.Unknown(
            kind=manscdp.Kind.QUERY, cmd_type=PRESET_QUERY, device_id=remote_id, sn=server.next_sn()
        )
        try:
            answer = await asyncio.wait_for(server.ask(device_id, query), self.deadline)
        except Exception as exc:
            raise self._failure(device_id, _PRESET_QUERY_WHAT, exc) from exc
        return read_presets(device_id, answer)

    def _failure(self, device_id: str, what: str, exc: Exception) -> Exception:
        if isinstance(exc, LookupError):
            return DeviceUnreachable(f"device {device_id} is offline (not registered)")
        if isinstance(exc, TimeoutError):
            return DeviceUnreachable(
                f"device {device_id} did not answer {what} within {self.deadline:g} s"
            )
        if isinstance(exc, DeviceRefused):
            return DeviceProtocolError(
                f"device {device_id} refused {what}: {exc}", details={"status": exc.status}
            )
        if isinstance(exc, DeviceError | InvalidInput):
            return exc
        log.warning("GB/T 28181 control of %s failed", device_id, exc_info=exc)
        return DeviceProtocolError(f"device {device_id}: {what} failed ({exc})")


def _preset_id(text: str | None) -> int | None:
    value = (text or "").strip()
    if not value.isascii() or not value.isdigit() or len(value) > 3:
        return None
    number = int(value)
    return number if 1 <= number <= 255 else None


def read_presets(device_id: str, answer: manscdp.Message) -> list[tuple[int, str | None]]:
    """The (number, name) pairs of a PresetQuery answer, by number. Items whose PresetID is not
    a preset number (1..255) are left out; a number listed twice keeps its first name.
    DeviceError when the device answered anything but OK; DeviceProtocolError when the answer
    is not a PresetQuery response."""
    if not isinstance(answer, manscdp.Unknown) or answer.kind is not manscdp.Kind.RESPONSE:
        raise DeviceProtocolError(
            f"device {device_id} answered {_PRESET_QUERY_WHAT} with {type(answer).__name__}, "
            "not a PresetQuery response"
        )
    result = (answer.fields.get("Result") or "").strip()
    if result and result.upper() != "OK":
        raise DeviceError(
            f"device {device_id} answered {result} to {_PRESET_QUERY_WHAT}: "
            "it did not list its presets",
            details={"result": result},
        )
    try:
        root = parse_document(answer.xml).root
    except ParseError as exc:
        raise DeviceProtocolError(
            f"device {device_id} answered {_PRESET_QUERY_WHAT} unreadably: {exc}"
        ) from None
    found: dict[int, str | None] = {}
    listed = root.child("PresetList")
    for item in listed.children_named("Item") if listed is not None else ():
        number = _preset_id(item.text_of("PresetID"))
        if number is not None and number not in found:
            found[number] = (item.text_of("PresetName") or "").strip() or None
    return sorted(found.items())


def _axis(value: float, top: int) -> tuple[int, int]:
    """Direction (-1, 0, 1) and speed 1..top for a normalised speed."""
    if value == 0:
        return 0, 0
    return (1 if value > 0 else -1), max(1, min(top, round(abs(value) * top)))


def ptz_move(move: Move) -> codec.PtzMove:
    pan, pan_speed = _axis(move.pan, codec.SPEED_MAX)
    tilt, tilt_speed = _axis(move.tilt, codec.SPEED_MAX)
    zoom, zoom_speed = _axis(move.zoom, codec.ZOOM_SPEED_MAX)
    return codec.PtzMove(pan, tilt, zoom, pan_speed, tilt_speed, zoom_speed)


def preset_number(token: str | None) -> int:
    if token is None:
        raise InvalidInput("GB/T 28181 presets are numbered: give the preset number (1..255)")
    try:
        number = int(token, 10)
    except ValueError:
        number = 0
    if not 1 <= number <= 255:
        raise InvalidInput(f"a GB/T 28181 preset is a number from 1 to 255, not {token!r}")
    return number


class GbPtzDriver:
    """PTZ for ``gb28181`` devices: DeviceControl with a PTZCmd to the channel's device."""

    def __init__(self, control: GbControl) -> None:
        self._control = control
        # channel ID -> the stop that ends the current move at its timeout
        self._stops: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @staticmethod
    def _ids(target: PtzTarget) -> tuple[str, str]:
        return target.device_id, target.remote_id or target.channel_id

    def _cancel_stop(self, channel_id: str) -> None:
        handle = self._stops.pop(channel_id, None)
        if handle is not None:
            handle.cancel()

    def _stop_later(self, target: PtzTarget, delay: float) -> None:
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._stops.pop(target.channel_id, None)
            task = loop.create_task(self._timed_stop(target))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        self._stops[target.channel_id] = loop.call_later(delay, fire)

    async def _timed_stop(self, target: PtzTarget) -> None:
        try:
            await self._control.send_ptz(*self._ids(target), codec.STOP)
        except DeviceError as exc:
            log.warning("stopping channel %s after its move: %s", target.channel_id, exc)

    # The timers live on the server's loop, as do the sends: each method runs there whole.

    async def _send(
        self, target: PtzTarget, command: codec.PtzCommand, stop_after: float | None
    ) -> None:
        self._cancel_stop(target.channel_id)
        await self._control.send_ptz(*self._ids(target), command)
        if stop_after is not None:
            self._stop_later(target, stop_after)

    async def move(self, target: PtzTarget, move: Move) -> None:
        await self._control.on_loop(self._send(target, ptz_move(move), move.timeout))

    async def stop(self, target: PtzTarget) -> None:
        await self._control.on_loop(self._send(target, codec.STOP, None))

    async def presets(self, target: PtzTarget) -> list[PresetView]:
        listed = await self._control.presets(*self._ids(target))
        return [PresetView(str(number), name) for number, name in listed]

    async def preset(self, target: PtzTarget, preset: Preset) -> str | None:
        number = preset_number(preset.preset)
        command = codec.Preset(_PRESET_OPS[preset.op], number)
        await self._control.on_loop(self._send(target, command, None))
        return str(number) if preset.op == "set" else None


# --- device controls beyond PTZ ---------------------------------------------------------------

Action = Literal["reboot", "guard", "unguard", "record", "stop_record"]
ACTIONS: tuple[str, ...] = get_args(Action)

# action -> (DeviceControl field, its value, what it is called in messages)
_CONTROLS: dict[str, tuple[str, str, str]] = {
    "reboot": ("tele_boot", "Boot", "the reboot (TeleBoot)"),
    "guard": ("guard_cmd", "SetGuard", "arming (SetGuard)"),
    "unguard": ("guard_cmd", "ResetGuard", "disarming (ResetGuard)"),
    "record": ("record_cmd", "Record", "the record start (Record)"),
    "stop_record": ("record_cmd", "StopRecord", "the record stop (StopRecord)"),
}


@dataclass(frozen=True, slots=True)
class ControlDone:
    device_id: str
    channel_id: str | None
    action: str
    result: str


def command_target(
    db: Database, principal: Principal, device_id: str, channel_id: str | None, what: str
) -> str:
    """The ID a command to a GB/T 28181 device names: the device's own, or the ID the device
    uses for one of its channels; the device (and channel) must be in the caller's area."""
    with db.read() as s:
        device = visible_device(s, principal, device_id)
        if device.protocol != PROTOCOL:
            raise InvalidInput(
                f"{what} is only for GB/T 28181 devices; {device_id} is {device.protocol}",
                details={"protocol": device.protocol},
            )
        if channel_id is None:
            return device.gb_id
        channel = visible_channel(s, principal, channel_id)
        owner = s.scalar(select(Device.gb_id).where(Device.pk == channel.device_pk))
        if owner != device.gb_id:
            raise InvalidInput(f"channel {channel_id} is not a channel of device {device_id}")
        remote = s.scalar(select(Channel.remote_id).where(Channel.pk == channel.pk))
        return remote or channel.gb_id


def audit_command(
    db: Database,
    audit: AuditLog,
    principal: Principal,
    action: str,
    device_id: str,
    detail: dict[str, Any],
    *,
    channel_id: str | None,
    result: str | None,
    error: DeviceError | None,
) -> None:
    """One audit record of a command to a device: what was asked, what the device answered,
    or why it failed."""
    detail = dict(detail)
    if channel_id is not None:
        detail["channel_id"] = channel_id
    if result is not None:
        detail["result"] = result
    with db.transaction() as s:
        audit.append(
            s,
            principal,
            action,
            target=f"device:{device_id}",
            outcome="ok" if error is None else "failed",
            reason="" if error is None else f"{error.code}: {error.message}"[:256],
            detail=detail,
        )


class DeviceControlService:
    """Reboot, arm/disarm and record start/stop of GB/T 28181 devices (``device.control``
    within the caller's area; a reboot also needs ``registry.write``, device management).
    Every attempt is audited with the action and what the device answered."""

    def __init__(self, db: Database, audit: AuditLog, control: GbControl) -> None:
        self._db = db
        self._audit = audit
        self._control = control

    def _resolve(
        self, principal: Principal, device_id: str, action: str, channel_id: str | None
    ) -> str:
        """The ID the DeviceControl names: the device's own, or its channel's."""
        if channel_id is not None and action == "reboot":
            raise InvalidInput("reboot applies to the whole device: give no channel_id")
        return command_target(self._db, principal, device_id, channel_id, "device control")

    def _record(
        self,
        principal: Principal,
        device_id: str,
        action: str,
        channel_id: str | None,
        result: str | None,
        error: DeviceError | None,
    ) -> None:
        audit_command(
            self._db,
            self._audit,
            principal,
            AUDIT_ACTION,
            device_id,
            {"action": action},
            channel_id=channel_id,
            result=result,
            error=error,
        )

    async def control(
        self, principal: Principal, device_id: str, action: str, channel_id: str | None = None
    ) -> ControlDone:
        if action not in _CONTROLS:
            raise InvalidInput(f"action must be one of {', '.join(ACTIONS)}, not {action!r}")
        principal.require(Permission.DEVICE_CONTROL)
        if action == "reboot":
            principal.require(Permission.REGISTRY_WRITE)
        target_id = await asyncio.to_thread(self._resolve, principal, device_id, action, channel_id)
        field, value, what = _CONTROLS[action]
        result: str | None = None
        try:
            answer = await self._control.control(device_id, target_id, **{field: value})
            result = (answer.result or "").strip() or None
            check_result(device_id, what, answer)
        except DeviceError as exc:
            await asyncio.to_thread(
                self._record, principal, device_id, action, channel_id, result, exc
            )
            raise
        await asyncio.to_thread(
            self._record, principal, device_id, action, channel_id, result, None
        )
        return ControlDone(device_id, channel_id, action, result or "OK")
