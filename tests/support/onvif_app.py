"""The app with the ONVIF router, and an ONVIF service that never touches the network."""

from __future__ import annotations

from fastapi import Depends, FastAPI

from tests.support.onvif_peer import PeerConfig
from xueliang.api import app as api_app
from xueliang.api.routers import onvif
from xueliang.app import Platform
from xueliang.onvif.model import (
    DeviceInformation,
    DeviceReport,
    DeviceTarget,
    DiscoveredDevice,
    MediaProfile,
)
from xueliang.onvif.service import OnvifService


def with_onvif(app: FastAPI) -> FastAPI:
    """Include the ONVIF router as api/app.py does, unless the app has it already."""
    if not any(getattr(r, "path", "") == "/api/v1/onvif/probe" for r in app.routes):
        app.include_router(
            onvif.router,
            prefix=api_app.API_PREFIX,
            dependencies=[Depends(api_app._no_nul_in_url)],
        )
    return app


def canned_report(target: DeviceTarget) -> DeviceReport:
    """What the stand-in device would report, for any target."""
    config = PeerConfig()
    return DeviceReport(
        service_url=target.service_url,
        info=DeviceInformation(
            config.manufacturer, config.model, config.firmware, config.serial, None
        ),
        media_url="http://192.0.2.1/onvif/media_service",
        ptz_url="http://192.0.2.1/onvif/ptz_service",
        profiles=tuple(
            MediaProfile(
                token=p.token,
                name=p.name,
                video_source=p.source,
                encoding=p.encoding,
                width=p.width,
                height=p.height,
                frame_rate=float(p.fps),
                bitrate_kbps=p.bitrate,
                stream_uri=f"rtsp://192.0.2.1:554/{p.token}",
                ptz=p.ptz,
            )
            for p in config.profiles
        ),
    )


def offline_onvif(platform: Platform) -> OnvifService:
    """The real service (permissions, audit, registration) over canned network answers: for
    the API fuzz, whose made-up hosts and interfaces must not be probed for real."""

    async def discover(_interface: str | None, _seconds: float) -> list[DiscoveredDevice]:
        return [
            DiscoveredDevice(
                endpoint="urn:uuid:00000000-0000-4000-8000-000000000001",
                xaddrs=("http://192.0.2.1/onvif/device_service",),
                types=("dn:NetworkVideoTransmitter",),
                scopes=(),
            )
        ]

    async def read(target: DeviceTarget, _deadline: float) -> DeviceReport:
        return canned_report(target)

    return OnvifService(platform.db, platform.audit, platform.devices, discover=discover, read=read)
