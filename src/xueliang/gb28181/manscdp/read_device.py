"""MANSCDP readers for devices and their channels: Keepalive, Catalog, DeviceInfo, DeviceStatus."""

from __future__ import annotations

from xueliang.gb28181.manscdp.document import Node
from xueliang.gb28181.manscdp.fields import _HEADER, _Fields, _int, _list
from xueliang.gb28181.manscdp.messages import (
    AlarmStatus,
    Catalog,
    CatalogItem,
    CatalogQuery,
    DeviceInfo,
    DeviceInfoQuery,
    DeviceStatus,
    DeviceStatusQuery,
    Keepalive,
    Kind,
    Message,
    normalise_status,
)


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
