"""Configuration: one TOML file in the data directory, overridden by ``XUELIANG_<SECTION>_<KEY>``.

Validated once at start; an error names the bad key and where it came from (file or variable).
"""

from __future__ import annotations

import contextlib
import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from xueliang.core.errors import ConfigError
from xueliang.gb28181.redirect import parse_nodes

CONFIG_FILE_NAME = "xueliang.toml"
ENV_PREFIX = "XUELIANG_"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HttpConfig(_Section):
    # Loopback by default: exposing the platform is a deliberate act of configuration.
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    # Trust X-Forwarded-For from these proxies when recording the source address in audit.
    trusted_proxies: list[str] = Field(default_factory=list)


class DatabaseConfig(_Section):
    # Empty means SQLite in the data directory.
    url: str = ""
    echo: bool = False


class AuthConfig(_Section):
    max_failed_logins: int = Field(default=5, ge=1)
    lockout_seconds: int = Field(default=900, ge=1)
    token_ttl_minutes: int = Field(default=720, ge=1)
    min_password_length: int = Field(default=10, ge=8)


class RegistryConfig(_Section):
    # 8-digit centre code (administrative division) used when the platform has to invent IDs.
    centre_code: str = Field(default="34020000", pattern=r"^\d{8}$")
    industry_code: str = Field(default="00", pattern=r"^\d{2}$")
    network_code: str = Field(default="0", pattern=r"^\d$")


class StorageTier(_Section):
    """One recordings disk. New recordings go to the first tier; they move on to the next when
    older than ``max_age_days`` or, oldest first, when the tier holds more than ``max_bytes``;
    the last tier keeps them until retention expires them."""

    # Absolute, or relative to the data directory.
    path: str = Field(min_length=1, max_length=1024)
    max_age_days: float | None = Field(default=None, gt=0)
    # 0: no limit. On the last tier, the oldest recordings beyond it are deleted (never held ones).
    max_bytes: int = Field(default=0, ge=0)


class MediaConfig(_Section):
    # Pull and record the registered cameras when the platform runs.
    enabled: bool = True
    segment_seconds: float = Field(default=60.0, ge=1.0, le=3600.0)
    # The site's time zone, for recording schedules (工作日 07:00–19:00 is local time).
    timezone: str = "Asia/Shanghai"
    # Channels per media worker process (one process holds 32-48 1080p streams before its
    # threads contend; more channels start more workers).
    channels_per_worker: int = Field(default=32, ge=1, le=256)
    # RTSP over TCP through Xueliang's own client ("own": a fraction of FFmpeg's system calls,
    # see docs/BENCHMARKS.md) or FFmpeg's ("ffmpeg"). Either way FFmpeg takes UDP, codecs other
    # than H.264/H.265 and streams with B-frames.
    rtsp_client: Literal["own", "ffmpeg"] = "own"
    # Longest wait between reconnect attempts to a camera that is gone.
    reconnect_max_seconds: float = Field(default=30.0, ge=0.1, le=600.0)
    # Days recordings are kept: 30, the regulatory minimum, unless a channel sets its own.
    retention_days: int = Field(default=30, ge=1, le=36500)
    # Bytes of recordings on all tiers together (0: no quota); beyond it the oldest go first.
    quota_bytes: int = Field(default=0, ge=0)
    # Free space kept on every recordings filesystem, deleting the oldest recordings to get it.
    min_free_bytes: int = Field(default=1 << 30, ge=0)
    # Recording disks, fastest first (empty: DATA/recordings alone). In a variable, as JSON.
    tiers: list[StorageTier] = Field(default_factory=list)
    # Seconds between storage sweeps (retention, tier moves, quota).
    storage_sweep_seconds: float = Field(default=60.0, ge=1.0, le=86400.0)
    # Live view straight from the media workers (each listens on its own port; the platform
    # hands viewers a ticket). Off, or unreachable for a browser (a TLS proxy in front), live
    # view is relayed through the HTTP port instead, at a higher cost per viewer.
    live_direct: bool = True
    # Where the workers listen for viewers; empty: the HTTP host.
    live_host: str = ""
    # 0: each worker takes a free port; N: worker k listens on N + k (one range to open).
    live_port: int = Field(default=0, ge=0, le=65000)
    # The host name written into live URLs; empty: the listening host, or, when that is a
    # wildcard (0.0.0.0, ::), the host name the browser used to reach the platform.
    live_public_host: str = ""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (an IANA name: Asia/Shanghai)") from exc
        return value

    @field_validator("tiers", mode="before")
    @classmethod
    def _tiers_from_json(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not JSON: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _tiers_make_sense(self) -> MediaConfig:
        if self.tiers and self.tiers[-1].max_age_days is not None:
            raise ValueError(
                "the last tier keeps recordings until retention expires them; "
                "max_age_days is only for tiers that pass recordings on"
            )
        paths = [t.path for t in self.tiers]
        if len(set(paths)) != len(paths):
            raise ValueError("two tiers have the same path")
        return self


class Gb28181Config(_Section):
    """The platform's GB/T 28181 SIP server, where cameras, NVRs and lower platforms register."""

    enabled: bool = True
    # The platform's 20-digit SIP ID and 10-digit domain; empty: made from registry.centre_code
    # (centre + "00" + "200" + "0000001", and centre + "00").
    id: str = Field(default="", pattern=r"^(\d{20})?$")
    domain: str = Field(default="", pattern=r"^(\d{10})?$")
    # The password devices register with (digest); a device's own password in the register
    # wins. Empty: the one generated at `xueliang init` (DATA/keys/gb28181.password).
    password: str = Field(default="", max_length=128)
    # Loopback unless configured: a SIP server on every interface is a deliberate choice.
    host: str = "127.0.0.1"
    port: int = Field(default=5060, ge=0, le=65535)
    # The address written into SDP for devices to send media to (behind NAT: the public one);
    # empty: the host (or, for a wildcard host, the address a device's request arrived on).
    sdp_ip: str = ""
    # Devices keep alive every keepalive_seconds; this many missed ones mark them offline.
    keepalive_seconds: float = Field(default=60.0, ge=1.0, le=3600.0)
    keepalive_missed: int = Field(default=3, ge=1, le=100)
    # Registration lifetimes a device may ask for are clamped into this range (seconds).
    min_expires: int = Field(default=60, ge=1)
    max_expires: int = Field(default=86400, ge=60)
    # A device that authenticates but is not in the register is added to it (in no area until
    # an administrator places it); off: only registered devices may join.
    auto_add: bool = True
    # Media from devices (PS over RTP): ports of ours handed out per stream (even ones, within
    # this range), the transport asked for first (udp, tcp-passive: the device connects to us,
    # tcp-active: we connect to it; UDP that brings nothing is retried over TCP), and how long
    # a live stream nobody watches (and whose channel's plan does not record) is kept.
    rtp_port_min: int = Field(default=30000, ge=1024, le=65534)
    rtp_port_max: int = Field(default=30999, ge=1024, le=65535)
    media_transport: Literal["udp", "tcp-passive", "tcp-active"] = "udp"
    stream_idle_seconds: float = Field(default=30.0, ge=1.0, le=3600.0)
    invite_timeout: float = Field(default=10.0, ge=1.0, le=60.0)
    media_timeout: float = Field(default=10.0, ge=1.0, le=60.0)
    # Subscriptions the platform makes to every device that registers: catalogue changes,
    # alarms and mobile positions (every position_interval seconds), for subscribe_expires
    # seconds and refreshed before that; devices that refuse are left alone.
    subscribe: tuple[Literal["catalog", "alarm", "position"], ...] = (
        "catalog",
        "alarm",
        "position",
    )
    subscribe_expires: int = Field(default=3600, ge=60, le=86400)
    position_interval: int = Field(default=5, ge=1, le=3600)
    # Clustered mode: this server is a front that answers every REGISTER, once authenticated,
    # with 302 and one of these access nodes ("host:port", "[v6]:port"; always the same node
    # for a device), and registers nobody itself. Empty: devices register here. In a
    # variable: comma-separated, or a JSON list.
    redirect_to: tuple[str, ...] = ()

    @field_validator("redirect_to", mode="before")
    @classmethod
    def _nodes_from_text(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):  # a JSON list, or an IPv6 node: "[2001:db8::1]:5060"
            with contextlib.suppress(json.JSONDecodeError):
                return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]

    @field_validator("redirect_to")
    @classmethod
    def _nodes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(str(node) for node in parse_nodes(value))  # ValueError: which and why

    @model_validator(mode="after")
    def _port_range(self) -> Gb28181Config:
        if self.rtp_port_max <= self.rtp_port_min:
            raise ValueError("rtp_port_max must be above rtp_port_min")
        if f"{self.host}:{self.port}" in self.redirect_to:
            raise ValueError("redirect_to names this server itself (devices would loop)")
        return self

    def platform_id(self, centre_code: str) -> str:
        return self.id or f"{centre_code}002000000001"

    def platform_domain(self, centre_code: str) -> str:
        return self.domain or f"{centre_code}00"


class EventsConfig(_Section):
    """How long the event store keeps what it holds: alarms and other events by the time they
    occurred, the tracks of moving cameras (one point every few seconds per vehicle adds up)
    by the time of the point."""

    retention_days: int = Field(default=180, ge=1, le=36500)
    positions_retention_days: int = Field(default=30, ge=1, le=36500)
    # Seconds between sweeps that delete what is older.
    sweep_seconds: float = Field(default=3600.0, ge=1.0, le=86400.0)


class MapConfig(_Section):
    # The console's map tiles, a URL template with {z}/{x}/{y} (an in-house tile server on a
    # closed network); empty: a plain background with a coordinate grid, usable anywhere.
    tile_url: str = ""
    attribution: str = ""
    max_zoom: int = Field(default=18, ge=1, le=22)
    # Where the map opens, [longitude, latitude], and at which zoom; unset: fit the channels.
    center: tuple[float, float] | None = None
    zoom: int = Field(default=13, ge=1, le=22)


class DemoConfig(_Section):
    enabled: bool = False


class Settings(_Section):
    http: HttpConfig = Field(default_factory=HttpConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    registry: RegistryConfig = Field(default_factory=RegistryConfig)
    media: MediaConfig = Field(default_factory=MediaConfig)
    gb28181: Gb28181Config = Field(default_factory=Gb28181Config)
    events: EventsConfig = Field(default_factory=EventsConfig)
    map: MapConfig = Field(default_factory=MapConfig)
    demo: DemoConfig = Field(default_factory=DemoConfig)


SECTIONS = tuple(Settings.model_fields)

# Variables with the prefix that are not configuration keys.
NON_CONFIG_VARIABLES = frozenset({"XUELIANG_ADMIN_PASSWORD", "XUELIANG_DATA"})


def _env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, str]]:
    overrides: dict[str, dict[str, str]] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name in NON_CONFIG_VARIABLES:
            continue
        rest = name[len(ENV_PREFIX) :].lower()
        section, _, key = rest.partition("_")
        if section not in SECTIONS:
            continue  # other tools' variables (tests, benchmarks) share the prefix
        if not key:
            raise ConfigError(f"environment variable {name} names a section, not a key")
        overrides.setdefault(section, {})[key] = value
    return overrides


def _merge(base: dict[str, Any], overrides: dict[str, dict[str, str]]) -> dict[str, Any]:
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for section, values in overrides.items():
        current = merged.setdefault(section, {})
        if not isinstance(current, dict):
            raise ConfigError(f"configuration key {section!r} must be a table")
        current.update(values)
    return merged


def _describe(error: ValidationError, env_keys: set[tuple[str, str]]) -> str:
    lines = []
    for item in error.errors():
        loc = tuple(str(p) for p in item["loc"])
        key = ".".join(loc)
        where = ""
        if len(loc) >= 2 and (loc[0], loc[1]) in env_keys:
            where = f" (from {ENV_PREFIX}{loc[0].upper()}_{loc[1].upper()})"
        lines.append(f"{key}{where}: {item['msg']}")
    return "invalid configuration: " + "; ".join(lines)


def load_settings(
    data_dir: Path | None = None,
    *,
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    environ = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    path = config_file or (data_dir / CONFIG_FILE_NAME if data_dir else None)
    if path is not None and path.exists():
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    overrides = _env_overrides(environ)
    env_keys = {(s, k) for s, keys in overrides.items() for k in keys}
    try:
        return Settings.model_validate(_merge(raw, overrides))
    except ValidationError as exc:
        raise ConfigError(_describe(exc, env_keys)) from exc


def database_url(settings: Settings, data_dir: Path) -> str:
    if settings.database.url:
        return settings.database.url
    return f"sqlite:///{data_dir / 'xueliang.db'}"


DatabaseKind = Literal["sqlite", "postgresql"]
