"""The ONVIF PTZ driver: ContinuousMove, Stop and presets on the device's PTZ service.

Each command opens a session on the device (WS-UsernameToken digest, offline WSDLs, faults
turned into the platform's device errors; see :mod:`xueliang.onvif.client`), calls the PTZ
service for the channel's media profile (its ``remote_id``) and closes. The PTZ service's
address is asked of the device once (GetServices, or GetCapabilities on older firmware) and
remembered per device, so a stream of moves from a joystick costs one request each; it is
asked again after any failure, in case the device moved or changed.

ContinuousMove always carries a Timeout: a camera whose Stop is lost on the way stops by
itself after the move's timeout (ONVIF PTZ 5.3.3).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

from xueliang.core.errors import DeviceError, DeviceProtocolError, InvalidInput
from xueliang.onvif import client
from xueliang.onvif.model import DeviceTarget
from xueliang.ptz.commands import Move, Preset
from xueliang.ptz.driver import PresetView, PtzTarget

DEFAULT_DEADLINE = 5.0  # an operator at a joystick: fail fast rather than move late
_CACHE_SIZE = 4096
_PRESET_OPERATIONS = {"goto": "GotoPreset", "set": "SetPreset", "remove": "RemovePreset"}

T = TypeVar("T")
_Request = Callable[[client.DeviceSession, Any, str], Awaitable[T]]


def velocity(move: Move) -> dict[str, Any]:
    """A PTZSpeed in the generic velocity spaces; an axis at zero is left out (not moved)."""
    out: dict[str, Any] = {}
    if move.pan or move.tilt:
        out["PanTilt"] = {"x": move.pan, "y": move.tilt}
    if move.zoom:
        out["Zoom"] = {"x": move.zoom}
    return out


class OnvifPtzDriver:
    def __init__(self, *, deadline: float = DEFAULT_DEADLINE) -> None:
        self.deadline = deadline
        # (device service URL, username) -> PTZ service address
        self._xaddrs: OrderedDict[tuple[str, str | None], str] = OrderedDict()

    async def _run(self, target: PtzTarget, request: _Request[T]) -> T:
        if not target.url:
            raise InvalidInput(f"device {target.device_id} has no ONVIF device service URL")
        if not target.remote_id:
            raise InvalidInput(
                f"channel {target.channel_id} has no ONVIF profile token (register it again "
                "from the device)"
            )
        device = DeviceTarget(target.url, target.username, target.password)
        key = (target.url, target.username)
        async with client.open_session(device, deadline=self.deadline) as session:
            try:
                xaddr = self._xaddrs.get(key)
                if xaddr is None:
                    xaddr = await client.service_xaddr(session, client.NS_PTZ, "PTZ service")
                    if xaddr is None:
                        host = urlsplit(target.url).netloc
                        raise DeviceProtocolError(f"{host} has no ONVIF PTZ service")
                    self._remember(key, xaddr)
                ptz = await session.service("ptz", xaddr)
                return await request(session, ptz, xaddr)
            except DeviceError:
                self._xaddrs.pop(key, None)
                raise

    def _remember(self, key: tuple[str, str | None], xaddr: str) -> None:
        self._xaddrs[key] = xaddr
        self._xaddrs.move_to_end(key)
        while len(self._xaddrs) > _CACHE_SIZE:
            self._xaddrs.popitem(last=False)

    async def move(self, target: PtzTarget, move: Move) -> None:
        token = target.remote_id

        async def request(session: client.DeviceSession, ptz: Any, xaddr: str) -> None:
            params = {
                "ProfileToken": token,
                "Velocity": velocity(move),
                "Timeout": timedelta(seconds=move.timeout),
            }
            await session.call(
                "ContinuousMove", xaddr, lambda: session.op(ptz, "ContinuousMove")(params)
            )

        await self._run(target, request)

    async def stop(self, target: PtzTarget) -> None:
        token = target.remote_id

        async def request(session: client.DeviceSession, ptz: Any, xaddr: str) -> None:
            params = {"ProfileToken": token, "PanTilt": True, "Zoom": True}
            await session.call("Stop", xaddr, lambda: session.op(ptz, "Stop")(params))

        await self._run(target, request)

    async def presets(self, target: PtzTarget) -> list[PresetView]:
        token = target.remote_id

        async def request(session: client.DeviceSession, ptz: Any, xaddr: str) -> list[PresetView]:
            answer = await session.call(
                "GetPresets",
                xaddr,
                lambda: session.op(ptz, "GetPresets")({"ProfileToken": token}),
            )
            out = []
            for raw in answer or ():
                preset_token = client._str(client._get(raw, "token"))
                if preset_token is not None:  # a preset with no token cannot be used
                    out.append(PresetView(preset_token, client._str(client._get(raw, "Name"))))
            return out

        return await self._run(target, request)

    async def preset(self, target: PtzTarget, preset: Preset) -> str | None:
        token = target.remote_id

        async def request(session: client.DeviceSession, ptz: Any, xaddr: str) -> str | None:
            params: dict[str, Any] = {"ProfileToken": token}
            if preset.preset is not None:
                params["PresetToken"] = preset.preset
            if preset.name is not None:
                params["PresetName"] = preset.name
            operation = _PRESET_OPERATIONS[preset.op]
            answer = await session.call(
                operation, xaddr, lambda: session.op(ptz, operation)(params)
            )
            if preset.op != "set":
                return preset.preset
            # SetPresetResponse holds only the token: zeep hands back the token itself.
            saved = client._str(
                answer if isinstance(answer, str) else client._get(answer, "PresetToken")
            )
            if saved is None:
                raise DeviceProtocolError("the device saved the preset but gave no token for it")
            return saved

        return await self._run(target, request)
