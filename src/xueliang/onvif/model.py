"""What ONVIF tells about a device: plain, immutable data with no library types in it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class DiscoveredDevice:
    """One device that answered a WS-Discovery Probe (one ProbeMatch)."""

    endpoint: str  # EndpointReference address, e.g. "urn:uuid:…": the device's stable identity
    xaddrs: tuple[str, ...]  # device service URLs, e.g. "http://10.0.0.5/onvif/device_service"
    types: tuple[str, ...]  # as announced, e.g. ("dn:NetworkVideoTransmitter", "tds:Device")
    scopes: tuple[str, ...]  # every scope URI, raw
    name: str | None = None  # onvif://www.onvif.org/name/…, percent-decoded
    hardware: str | None = None  # onvif://www.onvif.org/hardware/…
    locations: tuple[str, ...] = ()  # onvif://www.onvif.org/location/… (one per scope)
    profiles: tuple[str, ...] = ()  # onvif://www.onvif.org/Profile/… (Streaming, T, G, …)
    metadata_version: int | None = None
    source: str = ""  # the address the answer came from


@dataclass(frozen=True, slots=True)
class DeviceTarget:
    """Where and as whom to talk to a device."""

    service_url: str  # the device management service, http(s)://host[:port]/onvif/device_service
    username: str | None = field(default=None)
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class DeviceInformation:
    manufacturer: str | None
    model: str | None
    firmware: str | None
    serial: str | None
    hardware_id: str | None


@dataclass(frozen=True, slots=True)
class MediaProfile:
    """A media profile: one video source encoded one way, with its RTSP URI."""

    token: str
    name: str | None
    video_source: str | None  # the physical input (sensor, NVR input) it encodes
    encoding: str | None  # H264, H265, JPEG, MPEG4
    width: int | None
    height: int | None
    frame_rate: float | None
    bitrate_kbps: int | None
    stream_uri: str | None  # RTP-Unicast over RTSP; None when the device would not give one
    ptz: bool  # the profile has a PTZ configuration (and the device a PTZ service)

    @property
    def pixels(self) -> int:
        return (self.width or 0) * (self.height or 0)


@dataclass(frozen=True, slots=True)
class DeviceReport:
    """Everything a probe read from one device."""

    service_url: str
    info: DeviceInformation
    media_url: str
    ptz_url: str | None  # the PTZ service, when the device has one
    profiles: tuple[MediaProfile, ...]

    @property
    def ptz_supported(self) -> bool:
        return self.ptz_url is not None

    def main_profiles(self) -> tuple[MediaProfile, ...]:
        """The main stream of each video source: its highest-resolution profile with a stream
        URI (the first such in the device's order on a tie). What an integrator registers as
        the channels of a camera or an NVR; sub-streams are left out."""
        best: dict[str | None, MediaProfile] = {}
        for profile in self.profiles:
            if profile.stream_uri is None:
                continue
            current = best.get(profile.video_source)
            if current is None or profile.pixels > current.pixels:
                best[profile.video_source] = profile
        return tuple(best.values())
