"""MANSCDP readers for control and configuration: DeviceControl, DeviceConfig, ConfigDownload
and the configuration blocks they carry."""

from __future__ import annotations

from collections.abc import Callable
from datetime import time

from xueliang.gb28181.manscdp.configs import (
    BasicParam,
    ConfigBlock,
    MaskRegion,
    OSDConfig,
    OsdText,
    PictureMask,
    RawConfig,
    RecordSchedule,
    SnapShotConfig,
    TimeSegment,
    VideoRecordPlan,
)
from xueliang.gb28181.manscdp.document import Node, element_from_node, fragment
from xueliang.gb28181.manscdp.fields import _HEADER, _Fields, _int
from xueliang.gb28181.manscdp.messages import (
    ConfigDownload,
    ConfigDownloadQuery,
    DeviceConfig,
    DeviceControl,
    HomePosition,
    Kind,
    Message,
)


def _device_control(kind: Kind, device_id: str, sn: int | None, root: Node) -> Message:
    f = _Fields(root, _HEADER)
    home = f.child("HomePosition")
    home_position = None
    if home is not None:
        home_position = HomePosition(
            enabled=(home.text_of("Enabled") or "0").strip() == "1",
            reset_time=_int(home.text_of("ResetTime")),
            preset_index=_int(home.text_of("PresetIndex")),
        )
    info = f.child("Info")
    return DeviceControl(
        device_id=device_id,
        sn=sn,
        ptz_cmd=f.text("PTZCmd"),
        tele_boot=f.text("TeleBoot"),
        record_cmd=f.text("RecordCmd"),
        guard_cmd=f.text("GuardCmd"),
        alarm_cmd=f.text("AlarmCmd"),
        iframe_cmd=f.text("IFameCmd") or f.text("IFrameCmd"),
        home_position=home_position,
        stream_number=f.int("StreamNumber"),
        control_priority=_int(info.text_of("ControlPriority")) if info else None,
        extra=f.extra(),
        kind=kind,
    )


# --- configuration (DeviceConfig, ConfigDownload) ---------------------------------------------
# A block whose required parts cannot be read is kept as RawConfig: nothing a device sent is lost.


def _basic_param(node: Node) -> ConfigBlock | None:
    f = _Fields(node)
    return BasicParam(
        name=f.text("Name"),
        expiration=f.int("Expiration"),
        heartbeat_interval=f.int("HeartBeatInterval"),
        heartbeat_count=f.int("HeartBeatCount"),
        extra=f.extra(),
    )


def _osd_config(node: Node) -> ConfigBlock | None:
    f = _Fields(node, ("SumNum", "Item"))
    texts = []
    for item in node.children_named("Item"):
        x, y = item.text_of("X"), item.text_of("Y")
        if (x is not None and _int(x) is None) or (y is not None and _int(y) is None):
            return None
        texts.append(OsdText(text=item.text_of("Text") or "", x=_int(x), y=_int(y)))
    return OSDConfig(
        length=f.int("Length"),
        width=f.int("Width"),
        time_enable=f.bool("TimeEnable"),
        time_type=f.int("TimeType"),
        time_x=f.int("TimeX"),
        time_y=f.int("TimeY"),
        text_enable=f.bool("TextEnable"),
        texts=tuple(texts),
        extra=f.extra(),
    )


def _picture_mask(node: Node) -> ConfigBlock | None:
    f = _Fields(node, ("SumNum", "RegionList", "Item"))
    on = f.bool("On")
    if on is None:
        return None
    container = node.child("RegionList") or node
    regions = []
    for item in container.children_named("Item"):
        seq = _int(item.text_of("Seq"))
        corners = [_int(part) for part in (item.text_of("Point") or "").split(",")]
        if seq is None or len(corners) != 4 or any(c is None for c in corners):
            return None
        left, top, right, bottom = (c or 0 for c in corners)
        regions.append(MaskRegion(seq=seq, left=left, top=top, right=right, bottom=bottom))
    return PictureMask(on=on, regions=tuple(regions), extra=f.extra())


def _snapshot_config(node: Node) -> ConfigBlock | None:
    f = _Fields(node)
    snap_num, interval = f.int("SnapNum"), f.int("Interval")
    url, session = f.text("UploadURL"), f.text("SessionID")
    if snap_num is None or interval is None or url is None or session is None:
        return None
    return SnapShotConfig(
        snap_num=snap_num, interval=interval, upload_url=url, session_id=session, extra=f.extra()
    )


_SEGMENT = ("StartHour", "StartMin", "StartSec", "StopHour", "StopMin", "StopSec")


def _segment(node: Node) -> TimeSegment | None:
    values = [_int(node.text_of(name) or "0") for name in _SEGMENT]
    if any(v is None for v in values):
        return None
    h1, m1, s1, h2, m2, s2 = (v or 0 for v in values)
    try:
        # 24:00:00 ends a day in schedules; a time of day stops at 23:59:59.
        stop = time(23, 59, 59) if (h2, m2, s2) == (24, 0, 0) else time(h2, m2, s2)
        return TimeSegment(start=time(h1, m1, s1), stop=stop)
    except ValueError:
        return None


def _video_record_plan(node: Node) -> ConfigBlock | None:
    f = _Fields(node, ("RecordScheduleSumNum", "RecordSchedule"))
    enable = f.bool("RecordEnable")
    if enable is None:
        return None
    schedules = []
    for schedule in node.children_named("RecordSchedule"):
        day = _int(schedule.text_of("WeekDayNum"))
        segments = [_segment(s) for s in schedule.children_named("TimeSegment")]
        if day is None or any(s is None for s in segments):
            return None
        schedules.append(
            RecordSchedule(week_day=day, segments=tuple(s for s in segments if s is not None))
        )
    return VideoRecordPlan(
        record_enable=enable,
        schedules=tuple(schedules),
        stream_number=f.int("StreamNumber"),
        extra=f.extra(),
    )


_CONFIG_READERS: dict[str, Callable[[Node], ConfigBlock | None]] = {
    "basicparam": _basic_param,
    "osdconfig": _osd_config,
    "picturemask": _picture_mask,
    "snapshotconfig": _snapshot_config,
    "videorecordplan": _video_record_plan,
}


def config_block(node: Node) -> ConfigBlock:
    """One configuration element: typed where modelled and readable, RawConfig otherwise."""
    reader = _CONFIG_READERS.get(node.name)
    block = reader(node) if reader is not None else None
    if block is not None:
        return block
    return RawConfig(tag=node.tag, xml=fragment(element_from_node(node)))


def _config_blocks(root: Node, skip: tuple[str, ...]) -> tuple[ConfigBlock, ...]:
    names = {name.lower() for name in skip}
    return tuple(config_block(child) for child in root.children if child.name not in names)


def _device_config(kind: Kind, device_id: str, sn: int | None, root: Node) -> Message:
    return DeviceConfig(device_id=device_id, sn=sn, configs=_config_blocks(root, _HEADER))


def _config_download(kind: Kind, device_id: str, sn: int | None, root: Node) -> Message:
    if kind is Kind.QUERY:
        wanted = (root.text_of("ConfigType") or "").split("/")
        return ConfigDownloadQuery(
            device_id=device_id,
            sn=sn,
            config_types=tuple(t.strip() for t in wanted if t.strip()),
        )
    return ConfigDownload(
        device_id=device_id,
        sn=sn,
        result=root.text_of("Result"),
        configs=_config_blocks(root, (*_HEADER, "Result")),
        kind=kind,
    )
