"""PTZ as the platform offers it: permission, area scope and audit, then the device's driver.

The order of checks is the order of what the caller may learn: without ``ptz.control`` nothing
is looked up; a channel outside the caller's area answers exactly as a missing permission does
(ChannelService.get); only then is the channel's kind (a fixed camera cannot be steered) and
its device's protocol considered. Moves and preset operations are audited, failed ones too;
a Stop is not (it follows every move and only ever makes a camera safer).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from sqlalchemy import select

from xueliang.access.audit import AuditLog
from xueliang.access.permissions import Permission
from xueliang.access.principal import Principal
from xueliang.core.errors import DeviceError, InvalidInput, NotFound
from xueliang.core.secretbox import SecretBox
from xueliang.ptz.commands import Command, Move, Preset, Stop
from xueliang.ptz.driver import PresetView, PtzDriver, PtzTarget
from xueliang.registry.channels import ChannelService
from xueliang.store.db import Database
from xueliang.store.models import Device

AUDIT_ACTION = "ptz.control"


def default_drivers() -> dict[str, PtzDriver]:
    """The drivers that need nothing but themselves. GB/T 28181's (``"gb28181"``, DeviceControl
    with a PTZCmd over SIP, xueliang.gb28181.control) needs the platform's SIP server: the
    platform's composition (xueliang.app) adds it."""
    from xueliang.onvif.ptz import OnvifPtzDriver

    return {"onvif": OnvifPtzDriver()}


class PtzService:
    def __init__(
        self,
        db: Database,
        audit: AuditLog,
        channels: ChannelService,
        secrets: SecretBox,
        drivers: Mapping[str, PtzDriver] | None = None,
    ) -> None:
        self._db = db
        self._audit = audit
        self._channels = channels
        self._secrets = secrets
        self._drivers: dict[str, PtzDriver] = dict(
            default_drivers() if drivers is None else drivers
        )

    def register_driver(self, protocol: str, driver: PtzDriver) -> None:
        """Steer ``protocol`` devices with ``driver`` (e.g. gb28181, once the SIP side runs)."""
        self._drivers[protocol] = driver

    def _target(self, principal: Principal, channel_id: str) -> PtzTarget:
        channel = self._channels.get(principal, channel_id)  # scope: PermissionDenied / NotFound
        if not channel.ptz:
            raise InvalidInput(
                f"channel {channel_id} is a {channel.ptz_type} camera: it has no PTZ to control",
                details={"ptz_type": channel.ptz_type},
            )
        with self._db.read() as s:
            device = s.scalar(select(Device).where(Device.gb_id == channel.device_id))
            if device is None:  # deleted since the lookup above
                raise NotFound(f"channel {channel_id} does not exist")
            # Opened only here, for the driver: credentials never leave the platform otherwise.
            password = self._secrets.open(device.password_enc) if device.password_enc else None
            return PtzTarget(
                device_id=device.gb_id,
                channel_id=channel_id,
                protocol=device.protocol,
                remote_id=channel.remote_id,
                url=device.url,
                username=device.username,
                password=password,
                ip=device.ip,
                port=device.port,
            )

    def _driver(self, target: PtzTarget) -> PtzDriver:
        driver = self._drivers.get(target.protocol)
        if driver is None:
            raise InvalidInput(
                f"PTZ is not available for {target.protocol} devices yet",
                details={"protocol": target.protocol},
            )
        return driver

    async def _resolve(self, principal: Principal, channel_id: str) -> tuple[PtzTarget, PtzDriver]:
        principal.require(Permission.PTZ_CONTROL)
        target = await asyncio.to_thread(self._target, principal, channel_id)
        return target, self._driver(target)

    def _record(
        self,
        principal: Principal,
        target: PtzTarget,
        command: Move | Preset,
        token: str | None,
        error: DeviceError | None,
    ) -> None:
        detail = command.describe()
        if isinstance(command, Preset) and command.op == "set" and token is not None:
            detail["preset"] = token  # the token the device gave the new preset
        with self._db.transaction() as s:
            self._audit.append(
                s,
                principal,
                AUDIT_ACTION,
                target=f"channel:{target.channel_id}",
                outcome="ok" if error is None else "failed",
                reason="" if error is None else f"{error.code}: {error.message}"[:256],
                detail=detail,
            )

    async def control(self, principal: Principal, channel_id: str, command: Command) -> str | None:
        """Carry out ``command`` on the channel; for a preset ``set``, the saved preset's
        token (None otherwise)."""
        target, driver = await self._resolve(principal, channel_id)
        if isinstance(command, Stop):
            await driver.stop(target)
            return None
        token: str | None = None
        try:
            if isinstance(command, Move):
                await driver.move(target, command)
            else:
                token = await driver.preset(target, command)
        except DeviceError as exc:
            await asyncio.to_thread(self._record, principal, target, command, None, exc)
            raise
        await asyncio.to_thread(self._record, principal, target, command, token, None)
        return token if isinstance(command, Preset) and command.op == "set" else None

    async def presets(self, principal: Principal, channel_id: str) -> list[PresetView]:
        target, driver = await self._resolve(principal, channel_id)
        return await driver.presets(target)
