"""Configuration of GB/T 28181 devices (DeviceConfig, 2022).

:class:`DeviceConfigService` sends a ``DeviceConfig`` control with one configuration block
(BasicParam, OSDConfig, PictureMask, SnapShotConfig, VideoRecordPlan, or any other block as raw
XML) to a device or one of its channels, waits for the device's ``<Result>`` and audits the
attempt (``device.config``). Failures are those of device control: offline or silent is
DeviceUnreachable, a refused MESSAGE DeviceProtocolError, ``<Result>ERROR</Result>`` DeviceError.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xueliang.access.audit import AuditLog
from xueliang.access.permissions import Permission
from xueliang.access.principal import Principal
from xueliang.core.aio import on_loop
from xueliang.core.errors import (
    DeviceError,
    DeviceProtocolError,
    DeviceUnreachable,
    InvalidInput,
)
from xueliang.gb28181 import manscdp
from xueliang.gb28181.control import audit_command, check_result, command_target
from xueliang.gb28181.endpoint import DeviceRefused
from xueliang.store.db import Database

if TYPE_CHECKING:
    from xueliang.gb28181.server import GbServer

log = logging.getLogger(__name__)

PROTOCOL = "gb28181"
AUDIT_CONFIG = "device.config"
DEFAULT_DEADLINE = 10.0


def _blocks_needing_management(block: manscdp.ConfigBlock) -> bool:
    """Registration settings (BasicParam) and blocks passed through unread can take a device
    off the platform: they need device management as well, as a reboot does."""
    return isinstance(block, manscdp.BasicParam | manscdp.RawConfig)


def config_type(block: manscdp.ConfigBlock) -> str:
    return "raw" if isinstance(block, manscdp.RawConfig) else block.type


@dataclass(frozen=True, slots=True)
class ConfigDone:
    device_id: str
    channel_id: str | None
    type: str
    tag: str  # the element sent: the type, or the raw block's name
    result: str


class DeviceConfigService:
    """DeviceConfig to GB/T 28181 devices (``device.control`` within the caller's area;
    BasicParam and raw blocks also ``registry.write``); every attempt audited."""

    def __init__(
        self,
        db: Database,
        audit: AuditLog,
        server: Callable[[], GbServer | None],
        loop: Callable[[], asyncio.AbstractEventLoop | None],
        *,
        deadline: float = DEFAULT_DEADLINE,
    ) -> None:
        self._db = db
        self._audit = audit
        self._server = server
        self._loop = loop
        self.deadline = deadline

    # --- sending (shared with the snapshot sessions) ------------------------------------------

    async def send(
        self, device_id: str, target_id: str, blocks: tuple[manscdp.ConfigBlock, ...]
    ) -> manscdp.Result:
        """Send a DeviceConfig for ``target_id`` through ``device_id``; the device's Result."""
        server = self._server()
        if server is None:
            raise DeviceUnreachable(
                f"device {device_id} cannot be reached: the GB/T 28181 server is not running"
            )

        async def ask() -> manscdp.Message:
            message = manscdp.DeviceConfig(device_id=target_id, sn=server.next_sn(), configs=blocks)
            return await asyncio.wait_for(server.ask(device_id, message), self.deadline)

        try:
            answer = await on_loop(self._loop(), ask())
        except LookupError:
            raise DeviceUnreachable(f"device {device_id} is offline (not registered)") from None
        except TimeoutError:
            raise DeviceUnreachable(
                f"device {device_id} did not answer the configuration within {self.deadline:g} s"
            ) from None
        except DeviceRefused as exc:
            raise DeviceProtocolError(
                f"device {device_id} refused the configuration: {exc}",
                details={"status": exc.status},
            ) from None
        if not isinstance(answer, manscdp.Result):
            raise DeviceProtocolError(
                f"device {device_id} answered the configuration with {type(answer).__name__}, "
                "not a Result"
            )
        return answer

    # --- the audited operation --------------------------------------------------------------

    def resolve(self, principal: Principal, device_id: str, channel_id: str | None) -> str:
        """The ID the DeviceConfig names: the device's own, or its channel's."""
        return command_target(self._db, principal, device_id, channel_id, "device configuration")

    def _record(
        self,
        principal: Principal,
        device_id: str,
        channel_id: str | None,
        block: manscdp.ConfigBlock,
        result: str | None,
        error: DeviceError | None,
    ) -> None:
        detail: dict[str, Any] = {"type": config_type(block)}
        if isinstance(block, manscdp.RawConfig):
            detail["tag"] = block.tag
        audit_command(
            self._db,
            self._audit,
            principal,
            AUDIT_CONFIG,
            device_id,
            detail,
            channel_id=channel_id,
            result=result,
            error=error,
        )

    async def configure(
        self,
        principal: Principal,
        device_id: str,
        block: manscdp.ConfigBlock,
        channel_id: str | None = None,
    ) -> ConfigDone:
        principal.require(Permission.DEVICE_CONTROL)
        if _blocks_needing_management(block):
            principal.require(Permission.REGISTRY_WRITE)
        try:
            manscdp.config_element(block)  # a raw block must be one well-formed element
        except ValueError as exc:
            raise InvalidInput(f"the configuration block is not valid XML: {exc}") from None
        target = await asyncio.to_thread(self.resolve, principal, device_id, channel_id)
        tag = manscdp.block_tag(block)
        result: str | None = None
        try:
            answer = await self.send(device_id, target, (block,))
            result = (answer.result or "").strip() or None
            check_result(device_id, f"the configuration ({tag})", answer)
        except DeviceError as exc:
            await asyncio.to_thread(
                self._record, principal, device_id, channel_id, block, result, exc
            )
            raise
        await asyncio.to_thread(self._record, principal, device_id, channel_id, block, result, None)
        return ConfigDone(device_id, channel_id, config_type(block), tag, result or "OK")
