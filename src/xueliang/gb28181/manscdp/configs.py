"""Device configuration blocks of GB/T 28181-2022 (A.2.1 configuration types): what a
``DeviceConfig`` control sets and a ``ConfigDownload`` answer carries.

The types the platform's console works with are modelled (BasicParam, OSDConfig, PictureMask,
SnapShotConfig, VideoRecordPlan); every other block (VideoParamAttribute, VideoAlarmRecord,
FrameMirror, AlarmReport, SVACEncodeConfig, …) travels as :class:`RawConfig`: its tag and its
XML, passed on as given. Counts the standard repeats beside a list (SumNum, Num="") are derived
from the list when written and are not stored. Each block has ``type``, its element name, so a
JSON rendering says what it is; children a device adds that are not modelled stay in ``extra``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import time
from typing import Literal

Extra = dict[str, str]


@dataclass(frozen=True, kw_only=True)
class BasicParam:
    """BasicParam (basicParamCfgType): the device's name and its registration and keepalive."""

    name: str | None = None
    expiration: int | None = None  # seconds a registration lasts
    heartbeat_interval: int | None = None  # seconds between keepalives
    heartbeat_count: int | None = None  # keepalives missed before the device is offline
    extra: Extra = field(default_factory=dict)
    type: Literal["BasicParam"] = "BasicParam"


@dataclass(frozen=True, kw_only=True)
class OsdText:
    text: str
    x: int | None = None
    y: int | None = None


@dataclass(frozen=True, kw_only=True)
class OSDConfig:
    """OSDConfig: the time and text overlays. Positions are pixels in a picture of ``length`` x
    ``width`` (the standard's names for width and height)."""

    length: int | None = None
    width: int | None = None
    time_enable: bool | None = None
    time_type: int | None = None  # the time format, device specific
    time_x: int | None = None
    time_y: int | None = None
    text_enable: bool | None = None
    texts: tuple[OsdText, ...] = ()
    extra: Extra = field(default_factory=dict)
    type: Literal["OSDConfig"] = "OSDConfig"


@dataclass(frozen=True, kw_only=True)
class MaskRegion:
    """One masked rectangle: Point is ``left,top,right,bottom`` on the wire."""

    seq: int
    left: int
    top: int
    right: int
    bottom: int


@dataclass(frozen=True, kw_only=True)
class PictureMask:
    """PictureMask (pictureMaskCfgType): privacy masking on or off, up to four rectangles."""

    on: bool
    regions: tuple[MaskRegion, ...] = ()
    extra: Extra = field(default_factory=dict)
    type: Literal["PictureMask"] = "PictureMask"


@dataclass(frozen=True, kw_only=True)
class SnapShotConfig:
    """SnapShotConfig (snapShotCfgType): take ``snap_num`` pictures ``interval`` seconds apart,
    upload them to ``upload_url`` and report them with UploadSnapShotFinished for
    ``session_id``."""

    snap_num: int
    interval: int
    upload_url: str
    session_id: str
    extra: Extra = field(default_factory=dict)
    type: Literal["SnapShotConfig"] = "SnapShotConfig"


@dataclass(frozen=True, kw_only=True)
class TimeSegment:
    start: time
    stop: time


@dataclass(frozen=True, kw_only=True)
class RecordSchedule:
    week_day: int  # WeekDayNum: 1 Monday … 7 Sunday
    segments: tuple[TimeSegment, ...] = ()


@dataclass(frozen=True, kw_only=True)
class VideoRecordPlan:
    """VideoRecordPlan: recording on the device by weekly schedule."""

    record_enable: bool
    schedules: tuple[RecordSchedule, ...] = ()
    stream_number: int | None = None  # 0 main stream, 1 sub stream, …
    extra: Extra = field(default_factory=dict)
    type: Literal["VideoRecordPlan"] = "VideoRecordPlan"


@dataclass(frozen=True, kw_only=True)
class RawConfig:
    """A configuration block this module does not model: its element name and its XML (one
    element, without a declaration), passed through as it is."""

    tag: str
    xml: str
    type: Literal["raw"] = "raw"


ConfigBlock = BasicParam | OSDConfig | PictureMask | SnapShotConfig | VideoRecordPlan | RawConfig

MODELLED: dict[str, type[ConfigBlock]] = {
    "BasicParam": BasicParam,
    "OSDConfig": OSDConfig,
    "PictureMask": PictureMask,
    "SnapShotConfig": SnapShotConfig,
    "VideoRecordPlan": VideoRecordPlan,
}

# The configuration types of GB/T 28181-2016 and -2022 (ConfigType values).
STANDARD_TYPES = (
    "BasicParam",
    "VideoParamOpt",
    "SVACEncodeConfig",
    "SVACDecodeConfig",
    "VideoParamAttribute",
    "VideoRecordPlan",
    "VideoAlarmRecord",
    "PictureMask",
    "FrameMirror",
    "AlarmReport",
    "OSDConfig",
    "SnapShotConfig",
)


def block_tag(block: ConfigBlock) -> str:
    """The element name a block travels as."""
    return block.tag if isinstance(block, RawConfig) else block.type
