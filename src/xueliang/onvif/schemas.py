"""Data classes at the ONVIF API boundary."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Self

from pydantic import BaseModel, Field, model_validator

from xueliang.onvif.client import check_service_url, device_service_url
from xueliang.onvif.discovery import MAX_TIMEOUT
from xueliang.onvif.model import DeviceReport, DeviceTarget, DiscoveredDevice, MediaProfile
from xueliang.registry.common import strip_credentials
from xueliang.registry.schemas import DeviceKind, GbIdStr, Name, OrgCode, Transport, _In

HostName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=253,
        pattern=r"^[A-Za-z0-9._:\[\]-]+$",
        description="Host name or IP address of the device",
    ),
]
ServiceUrl = Annotated[
    str,
    Field(
        min_length=8,
        max_length=1024,
        pattern=r"^https?://",
        description="Device management service URL, e.g. http://10.0.0.5/onvif/device_service "
        "(an XAddr from discovery)",
    ),
]
Username = Annotated[str, Field(max_length=128)]
Password = Annotated[str, Field(max_length=256)]
Token = Annotated[str, Field(min_length=1, max_length=64)]


class DiscoverRequest(_In):
    interface_address: Annotated[str, Field(max_length=15)] | None = Field(
        default=None,
        description="IPv4 address of this host's interface on the segment to search; "
        "the default multicast interface when absent",
    )
    timeout_seconds: Annotated[float, Field(gt=0, le=MAX_TIMEOUT)] = Field(
        default=3.0, description="How long to wait for answers"
    )

    @model_validator(mode="after")
    def _ipv4(self) -> Self:
        if self.interface_address is not None:
            try:
                ipaddress.IPv4Address(self.interface_address)
            except ValueError as exc:
                raise ValueError("interface_address must be an IPv4 address") from exc
        return self


class DiscoveredView(BaseModel):
    endpoint: str = Field(description="The device's WS-Addressing endpoint (stable identity)")
    xaddrs: list[str] = Field(description="Device service URLs; give one to probe or register")
    types: list[str]
    scopes: list[str]
    name: str | None
    hardware: str | None
    locations: list[str]
    profiles: list[str] = Field(description="ONVIF profiles claimed (Streaming, T, G, …)")
    metadata_version: int | None
    source: str = Field(description="The address the answer came from")

    @classmethod
    def of(cls, d: DiscoveredDevice) -> DiscoveredView:
        return cls(
            endpoint=d.endpoint,
            xaddrs=list(d.xaddrs),
            types=list(d.types),
            scopes=list(d.scopes),
            name=d.name,
            hardware=d.hardware,
            locations=list(d.locations),
            profiles=list(d.profiles),
            metadata_version=d.metadata_version,
            source=d.source,
        )


class _DeviceAccess(_In):
    url: ServiceUrl | None = None
    host: HostName | None = None
    port: Annotated[int, Field(ge=1, le=65535)] = 80
    username: Username | None = None
    password: Password | None = None

    @model_validator(mode="after")
    def _one_address(self) -> Self:
        if (self.url is None) == (self.host is None):
            raise ValueError("give either url or host (with port), not both")
        return self

    def target(self) -> DeviceTarget:
        url = (
            check_service_url(self.url)
            if self.url is not None
            else device_service_url(self.host or "", self.port)
        )
        return DeviceTarget(url, self.username or None, self.password or None)


class ProbeRequest(_DeviceAccess):
    pass


class RegisterRequest(_DeviceAccess):
    id: GbIdStr | None = Field(default=None, description="20-digit GB ID; generated when absent")
    name: Name | None = Field(
        default=None, description="Device name; the manufacturer and model when absent"
    )
    kind: DeviceKind | None = Field(
        default=None, description="ipc for one video source, nvr for several, when absent"
    )
    org: OrgCode | None = None
    transport: Transport = "tcp"
    profiles: Annotated[list[Token], Field(min_length=1, max_length=256)] | None = Field(
        default=None,
        description="Profile tokens to register, one channel each; when absent, the main "
        "stream (highest resolution) of each video source",
    )


class DeviceInfoView(BaseModel):
    manufacturer: str | None
    model: str | None
    firmware: str | None
    serial: str | None
    hardware_id: str | None


class ProfileView(BaseModel):
    token: str
    name: str | None
    video_source: str | None
    encoding: str | None
    width: int | None
    height: int | None
    frame_rate: float | None
    bitrate_kbps: int | None
    stream_uri: str | None = Field(description="RTSP URI (RTP unicast); without credentials")
    ptz: bool
    main: bool = Field(description="The main stream of its video source (registered by default)")

    @classmethod
    def of(cls, p: MediaProfile, main: bool) -> ProfileView:
        return cls(
            token=p.token,
            name=p.name,
            video_source=p.video_source,
            encoding=p.encoding,
            width=p.width,
            height=p.height,
            frame_rate=p.frame_rate,
            bitrate_kbps=p.bitrate_kbps,
            stream_uri=strip_credentials(p.stream_uri),
            ptz=p.ptz,
            main=main,
        )


class ProbeView(BaseModel):
    service_url: str
    device: DeviceInfoView
    media_service: str
    ptz_service: str | None
    ptz: bool = Field(description="Whether the device has a PTZ service")
    profiles: list[ProfileView]

    @classmethod
    def of(cls, r: DeviceReport) -> ProbeView:
        main = {p.token for p in r.main_profiles()}
        i = r.info
        return cls(
            service_url=r.service_url,
            device=DeviceInfoView(
                manufacturer=i.manufacturer,
                model=i.model,
                firmware=i.firmware,
                serial=i.serial,
                hardware_id=i.hardware_id,
            ),
            media_service=r.media_url,
            ptz_service=r.ptz_url,
            ptz=r.ptz_supported,
            profiles=[ProfileView.of(p, p.token in main) for p in r.profiles],
        )
