"""MANSCDP readers for what devices report: RecordInfo, Alarm, MobilePosition, MediaStatus,
UploadSnapShotFinished."""

from __future__ import annotations

from dataclasses import replace

from xueliang.gb28181.errors import ParseError
from xueliang.gb28181.manscdp.document import Node
from xueliang.gb28181.manscdp.fields import _HEADER, _Fields, _int, _list
from xueliang.gb28181.manscdp.messages import (
    Alarm,
    Kind,
    MediaStatus,
    Message,
    MobilePosition,
    MobilePositionQuery,
    Position,
    RecordInfo,
    RecordInfoQuery,
    RecordItem,
    UploadSnapShotFinished,
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


def _media_status(kind: Kind, device_id: str, sn: int | None, root: Node) -> Message:
    f = _Fields(root, _HEADER)
    return MediaStatus(device_id=device_id, sn=sn, notify_type=f.text("NotifyType"), kind=kind)


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
