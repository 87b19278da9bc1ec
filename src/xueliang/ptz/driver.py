"""What a protocol driver gets and must do: the seam between the PTZ service and a device.

A driver is told where the device is and as whom to speak (:class:`PtzTarget`, built by the
service from the registry) and carries out already-validated commands. It raises only the
platform's device errors (DeviceUnreachable, DeviceAuthFailed, DeviceProtocolError) for what
the device does, and InvalidInput for a target it cannot use (no address, a bad preset token
for its protocol). Permissions, area scope and audit are the service's, never a driver's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from xueliang.ptz.commands import Move, Preset


@dataclass(frozen=True, slots=True)
class PtzTarget:
    """One steerable channel of a registered device."""

    device_id: str  # the platform's 20-digit device ID
    channel_id: str  # the platform's 20-digit channel ID
    protocol: str  # the device's protocol: "onvif", "gb28181", …
    remote_id: str | None  # the device's own name for the channel (ONVIF profile token)
    url: str | None  # the device's address as registered (ONVIF device service URL)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ip: str | None = None
    port: int | None = None


@dataclass(frozen=True, slots=True)
class PresetView:
    token: str
    name: str | None


class PtzDriver(Protocol):
    async def move(self, target: PtzTarget, move: Move) -> None:
        """Start moving at ``move``'s speeds; the device stops by itself after its timeout."""
        ...

    async def stop(self, target: PtzTarget) -> None:
        """Stop panning, tilting and zooming."""
        ...

    async def presets(self, target: PtzTarget) -> list[PresetView]:
        """The presets saved on the device for this channel."""
        ...

    async def preset(self, target: PtzTarget, preset: Preset) -> str | None:
        """Go to, set or remove a preset; for ``set``, the token of the saved preset."""
        ...
