"""MANSCDP bytes to typed messages; ParseError is the only exception that leaves."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, time

from xueliang.gb28181.errors import ParseError
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
from xueliang.gb28181.manscdp.document import (
    Node,
    element_from_node,
    fragment,
    parse_document,
)
from xueliang.gb28181.manscdp.messages import (
    Alarm,
    AlarmStatus,
    Catalog,
    CatalogItem,
    CatalogQuery,
    ConfigDownload,
    ConfigDownloadQuery,
    DeviceConfig,
    DeviceControl,
    DeviceInfo,
    DeviceInfoQuery,
    DeviceStatus,
    DeviceStatusQuery,
    Extra,
    HomePosition,
    Keepalive,
    Kind,
    MediaStatus,
    Message,
    MobilePosition,
    MobilePositionQuery,
    Parsed,
    Position,
    RecordInfo,
    RecordInfoQuery,
    RecordItem,
    Result,
    Unknown,
    UploadSnapShotFinished,
    normalise_status,
)
from xueliang.gb28181.manscdp.timefmt import parse_time

# CmdType spellings to the standard's, so callers compare against one form.
CMD_TYPES = {
    name.lower(): name
    for name in (
        "Keepalive",
        "Catalog",
        "DeviceInfo",
        "DeviceStatus",
        "RecordInfo",
        "Alarm",
        "MobilePosition",
        "DeviceControl",
        "DeviceConfig",
        "ConfigDownload",
        "MediaStatus",
        "PresetQuery",
        "HomePositionQuery",
        "CruiseTrackListQuery",
        "CruiseTrackQuery",
        "PTZPositionQuery",
        "SDCardStatusQuery",
        "UploadSnapShotFinished",
        "Broadcast",
    )
}
_KINDS = {kind.value.lower(): kind for kind in Kind}
_RESULT_ONLY = frozenset({"DeviceControl", "DeviceConfig", "Alarm", "Broadcast"})


class _Fields:
    """Reads children of one element and remembers which were used; the rest become extra."""

    def __init__(self, node: Node, consumed: tuple[str, ...] = ()) -> None:
        self.node = node
        self.used: set[str] = {name.lower() for name in consumed}

    def text(self, name: str) -> str | None:
        self.used.add(name.lower())
        return self.node.text_of(name)

    def int(self, name: str) -> int | None:
        value = self.node.text_of(name)
        number = _int(value)
        if number is not None or value is None:
            self.used.add(name.lower())
        return number

    def float(self, name: str) -> float | None:
        value = self.node.text_of(name)
        number = _float(value)
        if number is not None or value is None:
            self.used.add(name.lower())
        return number

    def bool(self, name: str) -> bool | None:
        value = self.node.text_of(name)
        flag = _bool(value)
        if flag is not None or value is None:
            self.used.add(name.lower())
        return flag

    def time(self, name: str) -> datetime | None:
        value = self.node.text_of(name)
        if value is None:
            self.used.add(name.lower())
            return None
        try:
            parsed = parse_time(value)
        except ParseError:
            return None  # left unused: the text stays in extra
        self.used.add(name.lower())
        return parsed

    def child(self, name: str) -> Node | None:
        self.used.add(name.lower())
        return self.node.child(name)

    def extra(self) -> Extra:
        out: Extra = {}
        for child in self.node.children:
            if child.name not in self.used:
                _flatten(child, "", out)
        return out


def _flatten(node: Node, prefix: str, out: Extra) -> None:
    key = f"{prefix}{node.tag}"
    if not node.children:
        out.setdefault(key, node.text)
        return
    for child in node.children:
        _flatten(child, f"{key}/", out)


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    text = value.strip()
    if text[:1] in ("+", "-"):
        sign, digits = text[:1], text[1:]
    else:
        sign, digits = "", text
    if not digits.isascii() or not digits.isdigit() or len(digits) > 18:
        return None
    return int(sign + digits)


_TRUE = frozenset({"1", "TRUE", "ON", "YES"})
_FALSE = frozenset({"0", "FALSE", "OFF", "NO"})


def _bool(value: str | None) -> bool | None:
    """1/0 as the standard writes switches (and the spellings devices use); None otherwise."""
    if value is None:
        return None
    upper = value.strip().upper()
    return True if upper in _TRUE else False if upper in _FALSE else None


def _float(value: str | None) -> float | None:
    if value is None:
        return None
    text = value.strip()
    if not text.isascii() or len(text) > 40:
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


_HEADER = ("CmdType", "SN", "DeviceID")


def _catalog_item(node: Node) -> CatalogItem:
    f = _Fields(node)
    info = f.child("Info")
    info_fields = _Fields(info) if info is not None else None
    ptz_type = info_fields.int("PTZType") if info_fields else None
    business_group = f.text("BusinessGroupID")
    if business_group is None and info_fields is not None:
        business_group = info_fields.text("BusinessGroupID")
    info_extra = info_fields.extra() if info_fields else {}
    return CatalogItem(
        device_id=f.text("DeviceID") or "",
        name=f.text("Name"),
        manufacturer=f.text("Manufacturer"),
        model=f.text("Model"),
        owner=f.text("Owner"),
        civil_code=f.text("CivilCode"),
        block=f.text("Block"),
        address=f.text("Address"),
        parental=f.int("Parental"),
        parent_id=f.text("ParentID"),
        business_group_id=business_group,
        safety_way=f.int("SafetyWay"),
        register_way=f.int("RegisterWay"),
        cert_num=f.text("CertNum"),
        certifiable=f.int("Certifiable"),
        err_code=f.int("ErrCode"),
        end_time=f.time("EndTime"),
        secrecy=f.int("Secrecy"),
        ip_address=f.text("IPAddress"),
        port=f.int("Port"),
        password=f.text("Password"),
        status=normalise_status(f.text("Status")),
        longitude=f.float("Longitude"),
        latitude=f.float("Latitude"),
        ptz_type=ptz_type,
        info=info_extra,
        event=f.text("Event"),
        extra=f.extra(),
    )


def _list(root: Node, name: str) -> tuple[Node, list[Node]]:
    """The list element (or the root when a device leaves it out) and its items."""
    container = root.child(name) or root
    return container, list(container.children_named("Item"))


def _catalog(kind: Kind, device_id: str, sn: int | None, root: Node) -> Message:
    f = _Fields(root, _HEADER)
    if kind is Kind.QUERY:
        return CatalogQuery(
            device_id=device_id,
            sn=sn,
            start_time=f.time("StartTime"),
            end_time=f.time("EndTime"),
            extra=f.extra(),
        )
    container, items = _list(root, "DeviceList")
    f.used.update({"devicelist", "item"})
    return Catalog(
        device_id=device_id,
        sn=sn,
        sum_num=f.int("SumNum"),
        items=tuple(_catalog_item(item) for item in items),
        list_num=_int(container.attributes.get("num")) if container is not root else None,
        extra=f.extra(),
        kind=kind,
    )


def _record_item(node: Node) -> RecordItem:
    f = _Fields(node)
    return RecordItem(
        device_id=f.text("DeviceID") or "",
        name=f.text("Name"),
        file_path=f.text("FilePath"),
        address=f.text("Address"),
        start_time=f.time("StartTime"),
        end_time=f.time("EndTime"),
        secrecy=f.int("Secrecy"),
        type=f.text("Type"),
        recorder_id=f.text("RecorderID"),
        file_size=f.int("FileSize"),
        extra=f.extra(),
    )


def _record_info(kind: Kind, device_id: str, sn: int | None, root: Node) -> Message:
    f = _Fields(root, _HEADER)
    if kind is Kind.QUERY:
        start, end = f.time("StartTime"), f.time("EndTime")
        if start is None or end is None:
            raise ParseError("RecordInfo query needs a readable StartTime and EndTime")
        return RecordInfoQuery(
            device_id=device_id,
            sn=sn,
            start_time=start,
            end_time=end,
            type=f.text("Type") or "all",
            file_path=f.text("FilePath"),
            address=f.text("Address"),
            secrecy=f.int("Secrecy"),
            recorder_id=f.text("RecorderID"),
            indistinct_query=f.int("IndistinctQuery"),
            extra=f.extra(),
        )
    container, items = _list(root, "RecordList")
    f.used.update({"recordlist", "item"})
    return RecordInfo(
        device_id=device_id,
        sn=sn,
        sum_num=f.int("SumNum"),
        items=tuple(_record_item(item) for item in items),
        name=f.text("Name"),
        list_num=_int(container.attributes.get("num")) if container is not root else None,
        extra=f.extra(),
        kind=kind,
    )


def _keepalive(kind: Kind, device_id: str, sn: int | None, root: Node) -> Message:
    f = _Fields(root, _HEADER)
    info = f.child("Info")
    faulty = tuple(n.text for n in info.children_named("DeviceID") if n.text) if info else ()
    return Keepalive(
        device_id=device_id,
        sn=sn,
        status=f.text("Status"),
        faulty_device_ids=faulty,
        extra=f.extra(),
        kind=kind,
    )


def _device_info(kind: Kind, device_id: str, sn: int | None, root: Node) -> Message:
    if kind is Kind.QUERY:
        return DeviceInfoQuery(device_id=device_id, sn=sn)
    f = _Fields(root, _HEADER)
    return DeviceInfo(
        device_id=device_id,
        sn=sn,
        result=f.text("Result"),
        device_name=f.text("DeviceName"),
        manufacturer=f.text("Manufacturer"),
        model=f.text("Model"),
        firmware=f.text("Firmware"),
        channel=f.int("Channel"),
        extra=f.extra(),
        kind=kind,
    )


def _device_status(kind: Kind, device_id: str, sn: int | None, root: Node) -> Message:
    if kind is Kind.QUERY:
        return DeviceStatusQuery(device_id=device_id, sn=sn)
    f = _Fields(root, _HEADER)
    alarm_list = f.child("Alarmstatus")
    alarms = tuple(
        AlarmStatus(
            device_id=item.text_of("DeviceID") or "", duty_status=item.text_of("DutyStatus")
        )
        for item in (alarm_list.children_named("Item") if alarm_list else ())
    )
    return DeviceStatus(
        device_id=device_id,
        sn=sn,
        result=f.text("Result"),
        online=normalise_status(f.text("Online")),
        status=f.text("Status"),
        reason=f.text("Reason"),
        encode=normalise_status(f.text("Encode")),
        record=normalise_status(f.text("Record")),
        device_time=f.time("DeviceTime"),
        alarms=alarms,
        extra=f.extra(),
        kind=kind,
    )


def _alarm(kind: Kind, device_id: str, sn: int | None, root: Node) -> Message:
    f = _Fields(root, _HEADER)
    info = f.child("Info")
    info_fields = _Fields(info) if info is not None else None
    # 2016 puts AlarmType under Info; some devices put it at the top level.
    alarm_type = info_fields.int("AlarmType") if info_fields else None
    if alarm_type is None:
        alarm_type = f.int("AlarmType")
    param = info_fields.child("AlarmTypeParam") if info_fields else None
    event_type = _int(param.text_of("EventType")) if param is not None else None
    message = Alarm(
        device_id=device_id,
        sn=sn,
        alarm_priority=f.int("AlarmPriority"),
        alarm_method=f.text("AlarmMethod"),
        alarm_time=f.time("AlarmTime"),
        alarm_description=f.text("AlarmDescription"),
        longitude=f.float("Longitude"),
        latitude=f.float("Latitude"),
        alarm_type=alarm_type,
        event_type=event_type,
        kind=kind,
    )
    # Extra last: it is what no read above used.
    extra = f.extra()
    if info_fields is not None:
        extra.update({f"Info/{k}": v for k, v in info_fields.extra().items()})
    return replace(message, extra=extra)


def _position(node: Node, device_id: str | None) -> Position:
    f = _Fields(node)
    return Position(
        device_id=f.text("DeviceID") or device_id,
        time=f.time("Time"),
        longitude=f.float("Longitude"),
        latitude=f.float("Latitude"),
        speed=f.float("Speed"),
        direction=f.float("Direction"),
        altitude=f.float("Altitude"),
    )


def _mobile_position(kind: Kind, device_id: str, sn: int | None, root: Node) -> Message:
    f = _Fields(root, _HEADER)
    if kind is Kind.QUERY:
        return MobilePositionQuery(device_id=device_id, sn=sn, interval=f.int("Interval"))
    positions: list[Position] = []
    if root.child("Longitude") is not None or root.child("Latitude") is not None:
        positions.append(_position(root, device_id))
        f.used.update({"time", "longitude", "latitude", "speed", "direction", "altitude"})
    # 2022: several points in one notify, as Item elements of a list.
    for child in root.children:
        items = [n for n in child.children_named("Item") if n.child("Longitude") is not None]
        if items:
            f.used.add(child.name)
            positions.extend(_position(item, None) for item in items)
    return MobilePosition(
        device_id=device_id, sn=sn, positions=tuple(positions), extra=f.extra(), kind=kind
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


def _media_status(kind: Kind, device_id: str, sn: int | None, root: Node) -> Message:
    f = _Fields(root, _HEADER)
    return MediaStatus(device_id=device_id, sn=sn, notify_type=f.text("NotifyType"), kind=kind)


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


def _upload_snapshot_finished(kind: Kind, device_id: str, sn: int | None, root: Node) -> Message:
    f = _Fields(root, _HEADER)
    listed = f.child("SnapShotList")
    # Some devices leave the list element out and put the IDs at the top level.
    holder = listed if listed is not None else root
    f.used.add("snapshotfileid")
    file_ids = tuple(n.text for n in holder.children_named("SnapShotFileID") if n.text)
    return UploadSnapShotFinished(
        device_id=device_id,
        sn=sn,
        session_id=f.text("SessionID"),
        file_ids=file_ids,
        extra=f.extra(),
        kind=kind,
    )


_Reader = Callable[[Kind, str, int | None, Node], Message]
_READERS: dict[tuple[str, Kind | None], _Reader] = {
    ("Keepalive", None): _keepalive,
    ("Catalog", None): _catalog,
    ("DeviceInfo", Kind.QUERY): _device_info,
    ("DeviceInfo", Kind.RESPONSE): _device_info,
    ("DeviceStatus", Kind.QUERY): _device_status,
    ("DeviceStatus", Kind.RESPONSE): _device_status,
    ("RecordInfo", Kind.QUERY): _record_info,
    ("RecordInfo", Kind.RESPONSE): _record_info,
    ("Alarm", Kind.NOTIFY): _alarm,
    ("MobilePosition", None): _mobile_position,
    ("DeviceControl", Kind.CONTROL): _device_control,
    ("MediaStatus", Kind.NOTIFY): _media_status,
    ("DeviceConfig", Kind.CONTROL): _device_config,
    ("ConfigDownload", Kind.QUERY): _config_download,
    ("ConfigDownload", Kind.RESPONSE): _config_download,
    ("UploadSnapShotFinished", Kind.NOTIFY): _upload_snapshot_finished,
}


def _unknown(
    kind: Kind, cmd_type: str, device_id: str, sn: int | None, root: Node, xml: str
) -> Unknown:
    return Unknown(
        kind=kind,
        cmd_type=cmd_type,
        device_id=device_id,
        sn=sn,
        fields=_Fields(root, _HEADER).extra(),
        xml=xml,
    )


def parse(data: bytes | str) -> Parsed:
    """Parse a MANSCDP body into a typed message, with the charset it was written in."""
    document = parse_document(data)
    root = document.root
    kind = _KINDS.get(root.name)
    if kind is None:
        raise ParseError(
            f"MANSCDP root element <{root.tag[:40]}> is not Query/Response/Notify/Control"
        )
    raw_cmd = root.text_of("CmdType")
    if raw_cmd is None:
        raise ParseError(f"MANSCDP <{root.tag}> has no CmdType")
    cmd_type = CMD_TYPES.get(raw_cmd.lower(), raw_cmd)
    device_id = root.text_of("DeviceID") or ""
    sn = _int(root.text_of("SN"))
    reader = _READERS.get((cmd_type, kind)) or _READERS.get((cmd_type, None))
    message: Message
    if reader is not None:
        message = reader(kind, device_id, sn, root)
    elif kind is Kind.RESPONSE and cmd_type in _RESULT_ONLY:
        f = _Fields(root, _HEADER)
        result = f.text("Result")
        message = Result(
            cmd_type=cmd_type, device_id=device_id, sn=sn, result=result, extra=f.extra()
        )
    else:
        message = _unknown(kind, cmd_type, device_id, sn, root, document.text)
    return Parsed(message, document.encoding, document.repaired)


def parse_message(data: bytes | str) -> Message:
    return parse(data).message
