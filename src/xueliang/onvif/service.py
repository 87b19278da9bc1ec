"""ONVIF operations as the platform offers them: checked, audited, registered.

Discovery and probing touch the network only after the caller's permission was checked, and
every operation leaves an audit record, failed probes included (who tried which device with
which username). Registration reads the device first, then creates the device and its channels
in one transaction through the registry (the same scope checks, IDs and audit as any device).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from pydantic import ValidationError

from xueliang.access.audit import AuditLog
from xueliang.access.permissions import Permission
from xueliang.access.principal import Principal
from xueliang.core.errors import DeviceError, DeviceProtocolError, InvalidInput
from xueliang.onvif import client, discovery
from xueliang.onvif.model import DeviceReport, DeviceTarget, DiscoveredDevice, MediaProfile
from xueliang.onvif.schemas import RegisterRequest
from xueliang.registry.devices import DeviceService, NewChannel
from xueliang.registry.schemas import DeviceCreate, DeviceView
from xueliang.store.db import Database

Discover = Callable[[str | None, float], Awaitable[list[DiscoveredDevice]]]
ReadDevice = Callable[[DeviceTarget, float], Awaitable[DeviceReport]]


async def _discover(interface_address: str | None, listen_seconds: float) -> list[DiscoveredDevice]:
    return await discovery.discover(interface_address, listen_seconds)


async def _read(target: DeviceTarget, deadline: float) -> DeviceReport:
    return await client.read_device(target, deadline=deadline)


def _clip(value: str | None, n: int) -> str | None:
    return value[:n] if value else None


class OnvifService:
    def __init__(
        self,
        db: Database,
        audit: AuditLog,
        devices: DeviceService,
        *,
        discover: Discover = _discover,
        read: ReadDevice = _read,
        deadline: float = client.DEFAULT_TIMEOUT,
    ) -> None:
        self._db = db
        self._audit = audit
        self._devices = devices
        self._discover = discover
        self._read = read
        self.deadline = deadline

    def _record(
        self,
        principal: Principal,
        action: str,
        target: str,
        detail: dict[str, object],
        error: DeviceError | None = None,
    ) -> None:
        with self._db.transaction() as s:
            self._audit.append(
                s,
                principal,
                action,
                target=target,
                outcome="ok" if error is None else "failed",
                reason="" if error is None else f"{error.code}: {error.message}"[:256],
                detail=detail,
            )

    async def discover(
        self, principal: Principal, interface_address: str | None, listen_seconds: float
    ) -> list[DiscoveredDevice]:
        principal.require(Permission.REGISTRY_WRITE)
        found = await self._discover(interface_address, listen_seconds)
        await asyncio.to_thread(
            self._record,
            principal,
            "onvif.discover",
            f"segment:{interface_address or 'default'}",
            {
                "interface_address": interface_address,
                "timeout_seconds": listen_seconds,
                "found": len(found),
                "endpoints": [d.endpoint for d in found][:100],
            },
        )
        return found

    async def _probe(self, principal: Principal, target: DeviceTarget, action: str) -> DeviceReport:
        where = f"onvif:{urlsplit(target.service_url).netloc}"
        detail: dict[str, object] = {"url": target.service_url, "username": target.username}
        try:
            report = await self._read(target, self.deadline)
        except DeviceError as exc:
            await asyncio.to_thread(self._record, principal, action, where, detail, exc)
            raise
        detail["profiles"] = [p.token for p in report.profiles]
        detail["ptz"] = report.ptz_supported
        await asyncio.to_thread(self._record, principal, action, where, detail)
        return report

    async def probe(self, principal: Principal, target: DeviceTarget) -> DeviceReport:
        principal.require(Permission.REGISTRY_WRITE)
        return await self._probe(principal, target, "onvif.probe")

    async def register(self, principal: Principal, spec: RegisterRequest) -> DeviceView:
        principal.require(Permission.REGISTRY_WRITE)
        target = spec.target()
        report = await self._probe(principal, target, "onvif.probe")
        chosen = _chosen_profiles(report, spec.profiles)
        info = report.info
        name = spec.name or _clip(
            " ".join(x for x in (info.manufacturer, info.model) if x) or None, 128
        )
        name = (name or urlsplit(target.service_url).hostname or "ONVIF device").strip()
        sources = {p.video_source for p in report.profiles if p.video_source}
        try:
            device = self._device_spec(spec, target, report, name, len(sources))
        except ValidationError as exc:
            raise DeviceProtocolError(
                "the device reported values that cannot be registered",
                details=[e.get("msg", "") for e in exc.errors()],
            ) from exc
        channels = [
            NewChannel(
                name=name if len(chosen) == 1 else f"{name[:120]} {n}",
                remote_id=p.token if len(p.token) <= 64 else None,
                stream_url=p.stream_uri,
                ptz_type="dome" if p.ptz else "fixed",
            )
            for n, p in enumerate(chosen, start=1)
        ]
        return await asyncio.to_thread(self._devices.create, principal, device, channels)

    @staticmethod
    def _device_spec(
        spec: RegisterRequest, target: DeviceTarget, report: DeviceReport, name: str, sources: int
    ) -> DeviceCreate:
        info = report.info
        parts = urlsplit(target.service_url)
        return DeviceCreate(
            id=spec.id,
            name=name,
            kind=spec.kind or ("nvr" if sources > 1 else "ipc"),
            protocol="onvif",
            url=target.service_url,
            username=target.username,
            password=target.password,
            transport=spec.transport,
            manufacturer=_clip(info.manufacturer, 64),
            model=_clip(info.model, 64),
            firmware=_clip(info.firmware, 64),
            ip=_clip(parts.hostname, 64),
            port=parts.port or (443 if parts.scheme == "https" else 80),
            org=spec.org,
        )


def _chosen_profiles(report: DeviceReport, tokens: list[str] | None) -> list[MediaProfile]:
    usable = {p.token: p for p in report.profiles if p.stream_uri is not None}
    if tokens is None:
        chosen = list(report.main_profiles())
        if not chosen:
            raise InvalidInput("the device offers no profile with an RTSP stream")
        return chosen
    unknown = [t for t in tokens if t not in usable]
    if unknown:
        raise InvalidInput(
            "no such profile with an RTSP stream on the device: " + ", ".join(unknown[:10]),
            details={"profiles": sorted(usable)},
        )
    return [usable[t] for t in dict.fromkeys(tokens)]
