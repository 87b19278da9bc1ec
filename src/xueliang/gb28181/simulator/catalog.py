"""What a simulated device reports about itself: IDs, channels, catalogue items, recordings.

Everything is derived from the device's index and the configuration, so a thousand devices
need no stored state and the same run always describes the same cameras.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from xueliang.gb28181.manscdp import CatalogItem, RecordItem

# 8-digit centre code + 2-digit industry, then the 3-digit type and a 7-digit serial.
TYPE_IPC = "132"
TYPE_NVR = "118"
TYPE_CAMERA = "131"
SERIAL_SPACE = 10_000_000

_PLACES = (
    "东门路口",
    "人民广场北侧",
    "实验小学南门",
    "滨江大道",
    "火车站出站口",
    "中心医院急诊",
    "农贸市场",
    "新华书店",
    "体育馆停车场",
    "派出所门前",
    "长途汽车站",
    "城南派出所",
)
_DIRECTIONS = ("东向西", "西向东", "南向北", "北向南")
# A fixed spot to scatter the cameras around (Hangzhou), a few kilometres wide.
_BASE_LONGITUDE = 120.15
_BASE_LATITUDE = 30.27
# Synthetic recordings are cut into files of this length, as NVRs do.
RECORD_FILE_SECONDS = 30 * 60
MAX_RECORD_ITEMS = 500


def device_id(prefix: str, index: int, *, nvr: bool) -> str:
    """The 20-digit ID of device ``index`` (0-based) under a 10-digit centre+industry prefix."""
    _check_prefix(prefix)
    return f"{prefix}{TYPE_NVR if nvr else TYPE_IPC}{(index + 1) % SERIAL_SPACE:07d}"


def channel_id(prefix: str, device_index: int, channel: int, channels_per_device: int) -> str:
    """Channel IDs are unique across the run: serials follow device by device."""
    _check_prefix(prefix)
    serial = (device_index * channels_per_device + channel + 1) % SERIAL_SPACE
    return f"{prefix}{TYPE_CAMERA}{serial:07d}"


def _check_prefix(prefix: str) -> None:
    if len(prefix) != 10 or not prefix.isascii() or not prefix.isdigit():
        raise ValueError(f"ID prefix must be 10 digits (centre + industry), got {prefix!r}")


@dataclass(frozen=True)
class Channel:
    channel_id: str
    name: str
    ptz_type: int  # 1 dome, 3 fixed
    longitude: float
    latitude: float


def make_channels(prefix: str, device_index: int, count: int) -> tuple[Channel, ...]:
    channels = []
    for n in range(count):
        serial = device_index * count + n
        place = _PLACES[serial % len(_PLACES)]
        direction = _DIRECTIONS[(serial // len(_PLACES)) % len(_DIRECTIONS)]
        channels.append(
            Channel(
                channel_id=channel_id(prefix, device_index, n, count),
                name=f"{place}{direction}{n + 1:02d}",
                # Every third camera is a dome that answers PTZ; the rest are fixed.
                ptz_type=1 if serial % 3 == 0 else 3,
                longitude=round(_BASE_LONGITUDE + ((serial * 37) % 1000) / 20000, 6),
                latitude=round(_BASE_LATITUDE + ((serial * 53) % 1000) / 20000, 6),
            )
        )
    return tuple(channels)


def catalog_items(
    device_id: str, civil_code: str, channels: tuple[Channel, ...]
) -> list[CatalogItem]:
    """Complete items (upper platforms answer 400 on missing fields), names in Chinese."""
    return [
        CatalogItem(
            device_id=ch.channel_id,
            name=ch.name,
            manufacturer="Xueliang",
            model="SIM-1",
            owner="Owner",
            civil_code=civil_code,
            address=ch.name,
            parental=0,
            parent_id=device_id,
            safety_way=0,
            register_way=1,
            secrecy=0,
            status="ON",
            longitude=ch.longitude,
            latitude=ch.latitude,
            ptz_type=ch.ptz_type,
        )
        for ch in channels
    ]


def record_items(
    channel: Channel, start: datetime, end: datetime, *, record_type: str = "time"
) -> list[RecordItem]:
    """Recordings covering [start, end) in files aligned on the half hour, cut to the range."""
    if end <= start:
        return []
    step = timedelta(seconds=RECORD_FILE_SECONDS)
    day = start.replace(hour=0, minute=0, second=0, microsecond=0)
    slot = day + step * ((start - day) // step)
    items: list[RecordItem] = []
    while slot < end and len(items) < MAX_RECORD_ITEMS:
        begin = max(slot, start)
        finish = min(slot + step, end)
        items.append(
            RecordItem(
                device_id=channel.channel_id,
                name=channel.name,
                file_path=f"/record/{channel.channel_id}/{slot:%Y%m%d%H%M%S}.mp4",
                address=channel.name,
                start_time=begin,
                end_time=finish,
                secrecy=0,
                type=record_type if record_type != "all" else "time",
                file_size=int((finish - begin).total_seconds()) * 250_000,
            )
        )
        slot += step
    return items
