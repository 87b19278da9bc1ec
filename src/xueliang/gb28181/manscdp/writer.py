"""Typed MANSCDP messages to bytes, in the element order of the standard's examples.

Devices of the 2016 edition expect GB2312, so that is the default; pass ``encoding="UTF-8"``
for those that declare UTF-8 (answer a device in the charset its last body was read as).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from xueliang.gb28181.manscdp.configs import (
    BasicParam,
    ConfigBlock,
    OSDConfig,
    PictureMask,
    RawConfig,
    SnapShotConfig,
    TimeSegment,
    VideoRecordPlan,
)
from xueliang.gb28181.manscdp.document import (
    Element,
    element_from_xml,
    is_element_name,
    serialise,
)
from xueliang.gb28181.manscdp.messages import (
    Alarm,
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
    Keepalive,
    Kind,
    MediaStatus,
    Message,
    MobilePosition,
    MobilePositionQuery,
    RecordInfo,
    RecordInfoQuery,
    RecordItem,
    Result,
    Unknown,
    UploadSnapShotFinished,
)
from xueliang.gb28181.manscdp.timefmt import format_time


def _time(value: datetime | None) -> str | None:
    return format_time(value) if value is not None else None


def _float(value: float | None) -> str | None:
    return repr(value) if value is not None else None


def _root(kind: Kind, cmd_type: str, sn: int | None, device_id: str) -> Element:
    root = Element(kind.value)
    root.add("CmdType", cmd_type)
    root.add("SN", sn if sn is not None else 0)
    root.add("DeviceID", device_id)
    return root


def _add_extra(element: Element, extra: Extra) -> None:
    """Write back elements kept as ``Tag`` or ``Parent/Tag`` keys, nesting as they came."""
    for key, value in extra.items():
        parent = element
        *path, leaf = key.split("/")
        for tag in (*path, leaf):
            if not is_element_name(tag):
                raise ValueError(f"not an XML element name: {tag!r}")
        for tag in path:
            existing = next((c for c in parent.children if c.tag == tag and c.children), None)
            parent = existing or parent.append(Element(tag))
        parent.add(leaf, value)


def _list(root: Element, tag: str, count: int) -> Element:
    return root.append(Element(tag, attributes={"Num": str(count)}))


# Items for devices and channels are sent complete: upper platforms answer 400 when fields
# are missing. Business groups (215) and virtual organisations (216) carry only their own.
def _catalog_item(item: CatalogItem) -> Element:
    e = Element("Item")
    e.add("DeviceID", item.device_id)
    e.add("Name", item.name if item.name is not None else "")
    grouping = item.type_code in ("215", "216")
    if not grouping:
        e.add("Manufacturer", item.manufacturer or "")
        e.add("Model", item.model or "")
        e.add("Owner", item.owner or "")
        e.add("CivilCode", item.civil_code or item.device_id[:6])
    else:
        e.add("Manufacturer", item.manufacturer)
        e.add("Model", item.model)
        e.add("Owner", item.owner)
        e.add("CivilCode", item.civil_code)
    e.add("Block", item.block)
    e.add("Address", item.address if item.address is not None or grouping else "")
    e.add("Parental", item.parental if item.parental is not None or grouping else 0)
    e.add("ParentID", item.parent_id)
    e.add("BusinessGroupID", item.business_group_id)
    e.add("SafetyWay", item.safety_way if item.safety_way is not None or grouping else 0)
    e.add("RegisterWay", item.register_way if item.register_way is not None or grouping else 1)
    e.add("CertNum", item.cert_num)
    e.add("Certifiable", item.certifiable)
    e.add("ErrCode", item.err_code)
    e.add("EndTime", _time(item.end_time))
    e.add("Secrecy", item.secrecy if item.secrecy is not None or grouping else 0)
    e.add("IPAddress", item.ip_address)
    e.add("Port", item.port)
    e.add("Password", item.password)
    e.add("Status", item.status if item.status is not None or grouping else "ON")
    e.add("Longitude", _float(item.longitude))
    e.add("Latitude", _float(item.latitude))
    e.add("Event", item.event)
    if item.ptz_type is not None or item.info:
        info = e.append(Element("Info"))
        info.add("PTZType", item.ptz_type)
        _add_extra(info, item.info)
    _add_extra(e, item.extra)
    return e


def _record_item(item: RecordItem) -> Element:
    e = Element("Item")
    e.add("DeviceID", item.device_id)
    e.add("Name", item.name)
    e.add("FilePath", item.file_path)
    e.add("Address", item.address)
    e.add("StartTime", _time(item.start_time))
    e.add("EndTime", _time(item.end_time))
    e.add("Secrecy", item.secrecy)
    e.add("Type", item.type)
    e.add("RecorderID", item.recorder_id)
    e.add("FileSize", item.file_size)
    _add_extra(e, item.extra)
    return e


def _segment(segment: TimeSegment, into: Element) -> None:
    e = into.append(Element("TimeSegment"))
    for prefix, moment in (("Start", segment.start), ("Stop", segment.stop)):
        e.add(f"{prefix}Hour", moment.hour)
        e.add(f"{prefix}Min", moment.minute)
        e.add(f"{prefix}Sec", moment.second)


def config_element(block: ConfigBlock) -> Element:
    """One configuration block as its element (a RawConfig's XML is parsed again: ValueError
    when it is not one well-formed element)."""
    match block:
        case BasicParam():
            e = Element("BasicParam")
            e.add("Name", block.name)
            e.add("Expiration", block.expiration)
            e.add("HeartBeatInterval", block.heartbeat_interval)
            e.add("HeartBeatCount", block.heartbeat_count)
        case OSDConfig():
            e = Element("OSDConfig")
            e.add("Length", block.length)
            e.add("Width", block.width)
            e.add("TimeX", block.time_x)
            e.add("TimeY", block.time_y)
            e.add("TimeEnable", block.time_enable)
            e.add("TimeType", block.time_type)
            e.add("TextEnable", block.text_enable)
            e.add("SumNum", len(block.texts))
            for text in block.texts:
                item = e.append(Element("Item"))
                item.add("Text", text.text)
                item.add("X", text.x)
                item.add("Y", text.y)
        case PictureMask():
            e = Element("PictureMask")
            e.add("On", block.on)
            e.add("SumNum", len(block.regions))
            regions = _list(e, "RegionList", len(block.regions))
            for region in block.regions:
                item = regions.append(Element("Item"))
                item.add("Seq", region.seq)
                corners = (region.left, region.top, region.right, region.bottom)
                item.add("Point", ",".join(str(c) for c in corners))
        case SnapShotConfig():
            e = Element("SnapShotConfig")
            e.add("SnapNum", block.snap_num)
            e.add("Interval", block.interval)
            e.add("UploadURL", block.upload_url)
            e.add("SessionID", block.session_id)
        case VideoRecordPlan():
            e = Element("VideoRecordPlan")
            e.add("RecordEnable", block.record_enable)
            e.add("RecordScheduleSumNum", len(block.schedules))
            for schedule in block.schedules:
                day = e.append(Element("RecordSchedule"))
                day.add("WeekDayNum", schedule.week_day)
                day.add("TimeSegmentSumNum", len(schedule.segments))
                for segment in schedule.segments:
                    _segment(segment, day)
            e.add("StreamNumber", block.stream_number)
        case RawConfig():
            return element_from_xml(block.xml)
    _add_extra(e, block.extra)
    return e


def _element(message: Message) -> Element:
    match message:
        case Keepalive():
            root = _root(message.kind, "Keepalive", message.sn, message.device_id)
            root.add("Status", message.status)
            if message.faulty_device_ids:
                info = root.append(Element("Info"))
                for device_id in message.faulty_device_ids:
                    info.add("DeviceID", device_id)
        case CatalogQuery():
            root = _root(message.kind, "Catalog", message.sn, message.device_id)
            root.add("StartTime", _time(message.start_time))
            root.add("EndTime", _time(message.end_time))
        case Catalog():
            root = _root(message.kind, "Catalog", message.sn, message.device_id)
            root.add(
                "SumNum", message.sum_num if message.sum_num is not None else len(message.items)
            )
            device_list = _list(root, "DeviceList", len(message.items))
            for item in message.items:
                device_list.append(_catalog_item(item))
        case DeviceInfoQuery():
            root = _root(message.kind, "DeviceInfo", message.sn, message.device_id)
        case DeviceInfo():
            root = _root(message.kind, "DeviceInfo", message.sn, message.device_id)
            root.add("DeviceName", message.device_name)
            root.add("Result", message.result)
            root.add("Manufacturer", message.manufacturer)
            root.add("Model", message.model)
            root.add("Firmware", message.firmware)
            root.add("Channel", message.channel)
        case DeviceStatusQuery():
            root = _root(message.kind, "DeviceStatus", message.sn, message.device_id)
        case DeviceStatus():
            root = _root(message.kind, "DeviceStatus", message.sn, message.device_id)
            root.add("Result", message.result)
            online = {"ON": "ONLINE", "OFF": "OFFLINE"}.get(message.online or "", message.online)
            root.add("Online", online)
            root.add("Status", message.status)
            root.add("Reason", message.reason)
            root.add("Encode", message.encode)
            root.add("Record", message.record)
            root.add("DeviceTime", _time(message.device_time))
            if message.alarms:
                alarms = _list(root, "Alarmstatus", len(message.alarms))
                for alarm in message.alarms:
                    entry = alarms.append(Element("Item"))
                    entry.add("DeviceID", alarm.device_id)
                    entry.add("DutyStatus", alarm.duty_status)
        case RecordInfoQuery():
            root = _root(message.kind, "RecordInfo", message.sn, message.device_id)
            root.add("StartTime", _time(message.start_time))
            root.add("EndTime", _time(message.end_time))
            root.add("FilePath", message.file_path)
            root.add("Address", message.address)
            root.add("Secrecy", message.secrecy)
            root.add("Type", message.type or "all")
            root.add("RecorderID", message.recorder_id)
            root.add("IndistinctQuery", message.indistinct_query)
        case RecordInfo():
            root = _root(message.kind, "RecordInfo", message.sn, message.device_id)
            root.add("Name", message.name)
            root.add(
                "SumNum", message.sum_num if message.sum_num is not None else len(message.items)
            )
            record_list = _list(root, "RecordList", len(message.items))
            for record in message.items:
                record_list.append(_record_item(record))
        case Alarm():
            root = _root(message.kind, "Alarm", message.sn, message.device_id)
            root.add("AlarmPriority", message.alarm_priority)
            root.add("AlarmMethod", message.alarm_method)
            root.add("AlarmTime", _time(message.alarm_time))
            root.add("AlarmDescription", message.alarm_description)
            root.add("Longitude", _float(message.longitude))
            root.add("Latitude", _float(message.latitude))
            if message.alarm_type is not None or message.event_type is not None:
                info = root.append(Element("Info"))
                info.add("AlarmType", message.alarm_type)
                if message.event_type is not None:
                    info.append(Element("AlarmTypeParam")).add("EventType", message.event_type)
        case MobilePositionQuery():
            root = _root(message.kind, "MobilePosition", message.sn, message.device_id)
            root.add("Interval", message.interval)
        case MobilePosition():
            root = _root(message.kind, "MobilePosition", message.sn, message.device_id)
            single = len(message.positions) == 1 and message.positions[0].device_id in (
                None,
                message.device_id,
            )
            target = root if single else _list(root, "PositionList", len(message.positions))
            for position in message.positions:
                point = target if single else target.append(Element("Item"))
                if not single:
                    point.add("DeviceID", position.device_id)
                point.add("Time", _time(position.time))
                point.add("Longitude", _float(position.longitude))
                point.add("Latitude", _float(position.latitude))
                point.add("Speed", _float(position.speed))
                point.add("Direction", _float(position.direction))
                point.add("Altitude", _float(position.altitude))
        case DeviceControl():
            root = _root(message.kind, "DeviceControl", message.sn, message.device_id)
            root.add("PTZCmd", message.ptz_cmd)
            root.add("TeleBoot", message.tele_boot)
            root.add("RecordCmd", message.record_cmd)
            root.add("StreamNumber", message.stream_number)
            root.add("GuardCmd", message.guard_cmd)
            root.add("AlarmCmd", message.alarm_cmd)
            root.add("IFameCmd", message.iframe_cmd)
            if message.home_position is not None:
                home = root.append(Element("HomePosition"))
                home.add("Enabled", 1 if message.home_position.enabled else 0)
                home.add("ResetTime", message.home_position.reset_time)
                home.add("PresetIndex", message.home_position.preset_index)
            if message.control_priority is not None:
                root.append(Element("Info")).add("ControlPriority", message.control_priority)
        case MediaStatus():
            root = _root(message.kind, "MediaStatus", message.sn, message.device_id)
            root.add("NotifyType", message.notify_type)
        case DeviceConfig():
            root = _root(message.kind, "DeviceConfig", message.sn, message.device_id)
            for block in message.configs:
                root.append(config_element(block))
        case ConfigDownloadQuery():
            root = _root(message.kind, "ConfigDownload", message.sn, message.device_id)
            root.add("ConfigType", "/".join(message.config_types))
        case ConfigDownload():
            root = _root(message.kind, "ConfigDownload", message.sn, message.device_id)
            root.add("Result", message.result)
            for block in message.configs:
                root.append(config_element(block))
        case UploadSnapShotFinished():
            root = _root(message.kind, "UploadSnapShotFinished", message.sn, message.device_id)
            root.add("SessionID", message.session_id)
            listed = root.append(Element("SnapShotList"))
            for file_id in message.file_ids:
                listed.add("SnapShotFileID", file_id)
        case Result():
            root = _root(message.kind, message.cmd_type, message.sn, message.device_id)
            root.add("Result", message.result)
        case Unknown():
            root = _root(message.kind, message.cmd_type, message.sn, message.device_id)
            _add_extra(root, message.fields)
            return root
    extra = getattr(message, "extra", None)
    if extra:
        _add_extra(root, extra)
    return root


def to_xml(message: Message, encoding: str = "GB2312") -> bytes:
    """The body for ``message`` in ``encoding`` (GB2312 for 2016 devices, UTF-8 on request)."""
    return serialise(_element(message), encoding)


def catalog_pages(
    device_id: str,
    sn: int,
    items: Sequence[CatalogItem],
    per_page: int = 2,
    kind: Kind = Kind.RESPONSE,
) -> list[Catalog]:
    """A catalogue split into MESSAGE-sized pages; every page carries the total in SumNum.

    A UDP MESSAGE must stay under the MTU, so a page holds few items (two, as devices send).
    """
    if per_page < 1:
        raise ValueError("per_page must be at least 1")
    pages = [items[i : i + per_page] for i in range(0, len(items), per_page)] or [[]]
    return [
        Catalog(
            device_id=device_id,
            sn=sn,
            sum_num=len(items),
            items=tuple(page),
            list_num=len(page),
            kind=kind,
        )
        for page in pages
    ]


def record_pages(
    device_id: str,
    sn: int,
    items: Sequence[RecordItem],
    per_page: int = 8,
    name: str | None = None,
) -> list[RecordInfo]:
    """RecordInfo answers split into pages, SumNum the total on each."""
    if per_page < 1:
        raise ValueError("per_page must be at least 1")
    pages = [items[i : i + per_page] for i in range(0, len(items), per_page)] or [[]]
    return [
        RecordInfo(
            device_id=device_id,
            sn=sn,
            sum_num=len(items),
            items=tuple(page),
            name=name,
            list_num=len(page),
        )
        for page in pages
    ]
