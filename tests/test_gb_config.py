"""Device configuration (GB/T 28181-2022 DeviceConfig / ConfigDownload).

Sans-I/O first: the modelled blocks as the bytes a device receives (GB2312 and UTF-8) and back,
answers from devices parsed into typed blocks or kept as raw XML. Then through the platform
against the project's simulator on a loop of its own: OK, ERROR, offline, permissions, audit,
and reading back with ConfigDownload through the query endpoint.
"""

from __future__ import annotations

from datetime import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import login
from tests.support.gb import SimThread, online_channels, stop_and_unregister
from tests.support.wait import wait_until
from xueliang.access.principal import SYSTEM
from xueliang.access.schemas import RoleCreate, ScopeSpec, UserCreate
from xueliang.app import Platform
from xueliang.gb28181 import manscdp
from xueliang.gb28181.simulator.device import Device

API = "/api/v1"
CAMERA = "34020000001320000001"
PASSWORD = "Operator-Passw0rd-1"

OSD = manscdp.OSDConfig(
    length=1920,
    width=1080,
    time_enable=True,
    time_type=1,
    time_x=10,
    time_y=10,
    text_enable=True,
    texts=(manscdp.OsdText(text="东门 入口", x=10, y=34), manscdp.OsdText(text="R&D", x=10, y=70)),
)
MASK = manscdp.PictureMask(
    on=True,
    regions=(
        manscdp.MaskRegion(seq=1, left=20, top=30, right=50, bottom=60),
        manscdp.MaskRegion(seq=2, left=100, top=120, right=200, bottom=220),
    ),
)
PLAN = manscdp.VideoRecordPlan(
    record_enable=True,
    schedules=(
        manscdp.RecordSchedule(
            week_day=1,
            segments=(
                manscdp.TimeSegment(start=time(8), stop=time(12, 30)),
                manscdp.TimeSegment(start=time(13), stop=time(23, 59, 59)),
            ),
        ),
        manscdp.RecordSchedule(week_day=7),
    ),
    stream_number=0,
)
BASIC = manscdp.BasicParam(
    name="大门摄像机", expiration=3600, heartbeat_interval=60, heartbeat_count=3
)
SNAP = manscdp.SnapShotConfig(
    snap_num=3,
    interval=2,
    upload_url="http://192.0.2.1:8080/api/v1/device-snapshots/upload/tok?a=1&b=2",
    session_id="0123456789abcdef0123456789abcdef",
)


# --- sans-I/O ------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["GB2312", "UTF-8"])
def test_every_modelled_block_survives_the_wire(encoding: str) -> None:
    raw = manscdp.RawConfig(tag="FrameMirror", xml="<FrameMirror>1</FrameMirror>")
    message = manscdp.DeviceConfig(
        device_id=CAMERA, sn=17, configs=(BASIC, OSD, MASK, SNAP, PLAN, raw)
    )
    body = manscdp.to_xml(message, encoding)
    assert body.startswith(f'<?xml version="1.0" encoding="{encoding}"?>\r\n<Control>'.encode())
    assert "<Name>大门摄像机</Name>".encode(encoding) in body
    assert "<Text>东门 入口</Text>".encode(encoding) in body
    for fragment in (
        b"<CmdType>DeviceConfig</CmdType>\r\n<SN>17</SN>",
        b"<HeartBeatInterval>60</HeartBeatInterval>\r\n<HeartBeatCount>3</HeartBeatCount>",
        b"<TimeEnable>1</TimeEnable>",
        b"<Text>R&amp;D</Text>",
        b'<SumNum>2</SumNum>\r\n<RegionList Num="2">',
        b"<Seq>1</Seq>\r\n<Point>20,30,50,60</Point>",
        b"<SnapNum>3</SnapNum>\r\n<Interval>2</Interval>",
        b"/upload/tok?a=1&amp;b=2</UploadURL>",
        b"<SessionID>0123456789abcdef0123456789abcdef</SessionID>",
        b"<RecordEnable>1</RecordEnable>\r\n<RecordScheduleSumNum>2</RecordScheduleSumNum>",
        b"<WeekDayNum>1</WeekDayNum>\r\n<TimeSegmentSumNum>2</TimeSegmentSumNum>",
        b"<StopHour>12</StopHour>\r\n<StopMin>30</StopMin>\r\n<StopSec>0</StopSec>",
        b"<StreamNumber>0</StreamNumber>\r\n</VideoRecordPlan>\r\n<FrameMirror>1</FrameMirror>",
    ):
        assert fragment in body, fragment
    parsed = manscdp.parse(body)
    assert parsed.encoding == encoding and not parsed.repaired
    assert parsed.message == message
    assert manscdp.cmd_type_of(parsed.message) == "DeviceConfig"


def _answer(encoding: str, blocks: str, result: str = "OK") -> bytes:
    return (
        f'<?xml version="1.0" encoding="{encoding}"?>\r\n<Response>\r\n'
        "<CmdType>ConfigDownload</CmdType>\r\n<SN>7</SN>\r\n"
        f"<DeviceID>{CAMERA}</DeviceID>\r\n<Result>{result}</Result>\r\n{blocks}</Response>\r\n"
    ).encode("gb18030" if encoding == "GB2312" else "utf-8")


BLOCKS = (
    "<BasicParam><Name>南门</Name><Expiration>3600</Expiration>"
    "<HeartBeatInterval>60</HeartBeatInterval><HeartBeatCount>3</HeartBeatCount>"
    "<PositionCapability>1</PositionCapability></BasicParam>\r\n"
    "<OSDConfig><Length>1920</Length><Width>1080</Width><TimeX>10</TimeX><TimeY>10</TimeY>"
    "<TimeEnable>1</TimeEnable><TextEnable>0</TextEnable><SumNum>1</SumNum>"
    "<Item><Text>通道1</Text><X>10</X><Y>34</Y></Item></OSDConfig>\r\n"
    '<PictureMask><On>0</On><SumNum>0</SumNum><RegionList Num="0"></RegionList></PictureMask>\r\n'
    "<VideoRecordPlan><RecordEnable>1</RecordEnable><RecordScheduleSumNum>1"
    "</RecordScheduleSumNum><RecordSchedule><WeekDayNum>3</WeekDayNum><TimeSegmentSumNum>1"
    "</TimeSegmentSumNum><TimeSegment><StartHour>0</StartHour><StartMin>0</StartMin>"
    "<StartSec>0</StartSec><StopHour>24</StopHour><StopMin>0</StopMin><StopSec>0</StopSec>"
    "</TimeSegment></RecordSchedule><StreamNumber>1</StreamNumber></VideoRecordPlan>\r\n"
    "<FrameMirror>2</FrameMirror>\r\n"
    '<VideoParamAttribute Num="1"><Item><StreamID>0</StreamID><VideoFormat>H.265'
    "</VideoFormat><Resolution>1920*1080</Resolution></Item></VideoParamAttribute>\r\n"
)


@pytest.mark.parametrize("encoding", ["GB2312", "UTF-8"])
def test_a_config_download_answer_is_typed_where_modelled_and_xml_otherwise(
    encoding: str,
) -> None:
    parsed = manscdp.parse(_answer(encoding, BLOCKS))
    answer = parsed.message
    assert isinstance(answer, manscdp.ConfigDownload)
    assert parsed.encoding.startswith("GB") if encoding == "GB2312" else parsed.encoding == "UTF-8"
    assert (answer.device_id, answer.sn, answer.result) == (CAMERA, 7, "OK")
    assert manscdp.cmd_type_of(answer) == "ConfigDownload"
    assert answer.config("BasicParam") == manscdp.BasicParam(
        name="南门",
        expiration=3600,
        heartbeat_interval=60,
        heartbeat_count=3,
        extra={"PositionCapability": "1"},
    )
    assert answer.config("OSDConfig") == manscdp.OSDConfig(
        length=1920,
        width=1080,
        time_enable=True,
        time_x=10,
        time_y=10,
        text_enable=False,
        texts=(manscdp.OsdText(text="通道1", x=10, y=34),),
    )
    assert answer.config("PictureMask") == manscdp.PictureMask(on=False)
    # 24:00:00 ends the day: the last second of it as a time of day.
    assert answer.config("VideoRecordPlan") == manscdp.VideoRecordPlan(
        record_enable=True,
        schedules=(
            manscdp.RecordSchedule(
                week_day=3,
                segments=(manscdp.TimeSegment(start=time(0), stop=time(23, 59, 59)),),
            ),
        ),
        stream_number=1,
    )
    mirror = answer.config("FrameMirror")
    assert mirror == manscdp.RawConfig(tag="FrameMirror", xml="<FrameMirror>2</FrameMirror>")
    video = answer.config("VideoParamAttribute")
    assert isinstance(video, manscdp.RawConfig)
    assert video.xml.startswith('<VideoParamAttribute num="1">') and "H.265" in video.xml
    assert [manscdp.block_tag(c) for c in answer.configs] == [
        "BasicParam",
        "OSDConfig",
        "PictureMask",
        "VideoRecordPlan",
        "FrameMirror",
        "VideoParamAttribute",
    ]


def test_a_lying_charset_and_broken_blocks_lose_nothing() -> None:
    # Declared GB2312, sent as UTF-8, with a bare & in the text.
    body = _answer(
        "UTF-8",
        "<OSDConfig><TimeEnable>1</TimeEnable><SumNum>1</SumNum>"
        "<Item><Text>东门&西门</Text></Item></OSDConfig>\r\n",
    )
    body = body.replace(b'encoding="UTF-8"', b'encoding="GB2312"')
    parsed = manscdp.parse(body)
    assert parsed.encoding == "UTF-8" and parsed.repaired
    answer = parsed.message
    assert isinstance(answer, manscdp.ConfigDownload)
    assert answer.config("OSDConfig") == manscdp.OSDConfig(
        time_enable=True, texts=(manscdp.OsdText(text="东门&西门"),)
    )
    # A modelled block whose required parts cannot be read is kept as it came.
    broken = manscdp.parse_message(
        _answer(
            "GB2312",
            "<PictureMask><On>1</On><RegionList><Item><Seq>1</Seq>"
            "<Point>1,2,x</Point></Item></RegionList></PictureMask>\r\n",
            result="ERROR",
        )
    )
    assert isinstance(broken, manscdp.ConfigDownload) and broken.result == "ERROR"
    mask = broken.config("PictureMask")
    assert isinstance(mask, manscdp.RawConfig) and "<Point>1,2,x</Point>" in mask.xml


def test_the_config_download_query_and_raw_blocks() -> None:
    query = manscdp.ConfigDownloadQuery(
        device_id=CAMERA, sn=3, config_types=("BasicParam", "OSDConfig")
    )
    body = manscdp.to_xml(query)
    assert b"<Query>" in body and b"<ConfigType>BasicParam/OSDConfig</ConfigType>" in body
    assert manscdp.parse_message(body) == query
    # Raw blocks: one element, names and attributes as given; no DTD, no second root.
    element = manscdp.element_from_xml('<VideoParamAttribute Num="1"><Item/></VideoParamAttribute>')
    assert element.tag == "VideoParamAttribute" and element.attributes == {"Num": "1"}
    for bad in (
        "<A>1</A><B>2</B>",
        "<!DOCTYPE a [<!ENTITY x 'y'>]><a>&x;</a>",
        "not xml",
        "<a:b xmlns:a='urn:x'>1</a:b>",
        "",
    ):
        with pytest.raises(ValueError):
            manscdp.element_from_xml(bad)


# --- through the platform, against the simulator --------------------------------------------------


@pytest.fixture
def channel(device: Device, client: TestClient, admin_headers: dict[str, str]) -> dict[str, Any]:
    """The NVR's first channel, registered and online."""
    channels = sorted(online_channels(client, admin_headers), key=lambda c: c["id"])
    assert channels[0]["device_id"] == device.config.device_id
    return channels[0]


def _config(client: TestClient, headers: dict[str, str], device: str, **body: Any) -> Any:
    return client.post(f"{API}/devices/{device}/config", headers=headers, json=body)


def _audit(client: TestClient, headers: dict[str, str], action: str) -> list[dict[str, Any]]:
    r = client.get(f"{API}/audit", headers=headers, params={"action": action})
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return sorted(items, key=lambda x: x["seq"])


def _received(device: Device, count: int) -> list[manscdp.DeviceConfig]:
    got: list[manscdp.DeviceConfig] = []

    def arrived() -> bool:
        got[:] = list(device.device_configs)
        return len(got) >= count

    wait_until(arrived, 10, f"{count} DeviceConfig(s) at the device")
    return got


def test_osd_mask_and_record_plan_are_set_and_read_back(
    device: Device, channel: dict[str, Any], client: TestClient, admin_headers: dict[str, str]
) -> None:
    dev = device.config.device_id
    remote = device.config.channels[0].channel_id
    osd = {
        "type": "OSDConfig",
        "channel_id": channel["id"],
        "length": 1920,
        "width": 1080,
        "time_enable": True,
        "time_x": 10,
        "time_y": 10,
        "text_enable": True,
        "texts": [{"text": "东门 入口", "x": 10, "y": 34}],
    }
    r = _config(client, admin_headers, dev, **osd)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "device_id": dev,
        "channel_id": channel["id"],
        "type": "OSDConfig",
        "tag": "OSDConfig",
        "result": "OK",
    }
    mask = {
        "type": "PictureMask",
        "channel_id": channel["id"],
        "on": True,
        "regions": [{"seq": 1, "left": 20, "top": 30, "right": 50, "bottom": 60}],
    }
    assert _config(client, admin_headers, dev, **mask).status_code == 200
    plan = {
        "type": "VideoRecordPlan",
        "channel_id": channel["id"],
        "record_enable": True,
        "schedules": [{"week_day": 2, "segments": [{"start": "08:00", "stop": "18:30:00"}]}],
        "stream_number": 0,
    }
    assert _config(client, admin_headers, dev, **plan).status_code == 200
    raw = {"type": "raw", "channel_id": channel["id"], "xml": "<FrameMirror>1</FrameMirror>"}
    assert _config(client, admin_headers, dev, **raw).status_code == 200
    sent = _received(device, 4)
    assert [m.device_id for m in sent] == [remote] * 4
    assert sent[0].configs == (
        manscdp.OSDConfig(
            length=1920,
            width=1080,
            time_enable=True,
            time_x=10,
            time_y=10,
            text_enable=True,
            texts=(manscdp.OsdText(text="东门 入口", x=10, y=34),),
        ),
    )
    assert sent[1].configs == (
        manscdp.PictureMask(
            on=True, regions=(manscdp.MaskRegion(seq=1, left=20, top=30, right=50, bottom=60),)
        ),
    )
    assert sent[2].configs == (
        manscdp.VideoRecordPlan(
            record_enable=True,
            schedules=(
                manscdp.RecordSchedule(
                    week_day=2,
                    segments=(manscdp.TimeSegment(start=time(8), stop=time(18, 30)),),
                ),
            ),
            stream_number=0,
        ),
    )
    assert sent[3].configs == (
        manscdp.RawConfig(tag="FrameMirror", xml="<FrameMirror>1</FrameMirror>"),
    )
    records = _audit(client, admin_headers, "device.config")
    assert [(x["outcome"], x["target"], x["detail"]) for x in records] == [
        ("ok", f"device:{dev}", {"type": t, "channel_id": channel["id"], "result": "OK"})
        for t in ("OSDConfig", "PictureMask", "VideoRecordPlan")
    ] + [
        (
            "ok",
            f"device:{dev}",
            {"type": "raw", "tag": "FrameMirror", "channel_id": channel["id"], "result": "OK"},
        )
    ]
    # Read back with ConfigDownload through the query endpoint: typed where modelled.
    r = client.post(
        f"{API}/devices/{dev}/query",
        json={
            "cmd_type": "ConfigDownload",
            "channel_id": channel["id"],
            "config_type": "OSDConfig/PictureMask/VideoRecordPlan/FrameMirror",
        },
        headers=admin_headers,
    )
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["cmd_type"] == "ConfigDownload" and answer["result"] == "OK"
    assert answer["device_id"] == remote and answer["xml"] is None
    configs = {
        c["type"] if c["type"] != "raw" else c["tag"]: c for c in answer["fields"]["configs"]
    }
    assert configs["OSDConfig"]["texts"] == [{"text": "东门 入口", "x": 10, "y": 34}]
    assert configs["OSDConfig"]["time_enable"] is True
    assert configs["PictureMask"]["regions"] == [
        {"seq": 1, "left": 20, "top": 30, "right": 50, "bottom": 60}
    ]
    assert configs["VideoRecordPlan"]["schedules"] == [
        {"week_day": 2, "segments": [{"start": "08:00:00", "stop": "18:30:00"}]}
    ]
    assert configs["FrameMirror"]["xml"] == "<FrameMirror>1</FrameMirror>"
    # The device's own BasicParam, from its registration settings.
    r = client.post(
        f"{API}/devices/{dev}/query",
        json={"cmd_type": "ConfigDownload", "config_type": "BasicParam"},
        headers=admin_headers,
    )
    assert r.status_code == 200, r.text
    (basic,) = r.json()["fields"]["configs"]
    assert basic["type"] == "BasicParam" and basic["heartbeat_interval"] == 2


def test_basic_param_is_sent_to_the_device(
    device: Device, channel: dict[str, Any], client: TestClient, admin_headers: dict[str, str]
) -> None:
    dev = device.config.device_id
    r = _config(client, admin_headers, dev, type="BasicParam", name="大门", heartbeat_interval=30)
    assert r.status_code == 200 and r.json()["channel_id"] is None, r.text
    (sent,) = _received(device, 1)
    assert sent.device_id == dev
    assert sent.configs == (manscdp.BasicParam(name="大门", heartbeat_interval=30),)


def test_a_device_answering_error_is_a_device_error(
    device: Device, channel: dict[str, Any], client: TestClient, admin_headers: dict[str, str]
) -> None:
    dev = device.config.device_id
    # The simulator knows the standard's types; an unknown block is answered ERROR.
    r = _config(client, admin_headers, dev, type="raw", xml="<Bogus><A>1</A></Bogus>")
    assert r.status_code == 422, r.text
    body = r.json()["error"]
    assert body["code"] == "device_error", body
    assert body["message"] == (
        f"device {dev} answered ERROR to the configuration (Bogus): "
        "it did not carry out the command"
    )
    device.config_result = "ERROR"
    r = _config(client, admin_headers, dev, type="PictureMask", on=False, channel_id=channel["id"])
    assert r.status_code == 422 and r.json()["error"]["code"] == "device_error", r.text
    records = _audit(client, admin_headers, "device.config")
    assert [(x["outcome"], x["detail"]) for x in records] == [
        ("failed", {"type": "raw", "tag": "Bogus", "result": "ERROR"}),
        ("failed", {"type": "PictureMask", "channel_id": channel["id"], "result": "ERROR"}),
    ]
    assert all(x["reason"].startswith("device_error: ") for x in records)
    assert len(_received(device, 2)) == 2


def test_invalid_bodies_are_refused_before_anything_is_sent(
    device: Device, channel: dict[str, Any], client: TestClient, admin_headers: dict[str, str]
) -> None:
    dev = device.config.device_id
    bad_bodies: list[dict[str, Any]] = [
        {"type": "raw", "xml": "<A>1</A><B>2</B>"},
        {"type": "raw", "xml": "<!DOCTYPE a [<!ENTITY x 'y'>]><a>&x;</a>"},
        {"type": "raw", "xml": "<SN>1</SN>"},
        {
            "type": "PictureMask",
            "on": True,
            "regions": [{"seq": 5, "left": 0, "top": 0, "right": 1, "bottom": 1}],
        },
        {
            "type": "PictureMask",
            "on": True,
            "regions": [{"seq": 1, "left": 9, "top": 0, "right": 1, "bottom": 1}],
        },
        {
            "type": "VideoRecordPlan",
            "record_enable": True,
            "schedules": [{"week_day": 8, "segments": []}],
        },
        {
            "type": "VideoRecordPlan",
            "record_enable": True,
            "schedules": [{"week_day": 1, "segments": [{"start": "10:00", "stop": "09:00"}]}],
        },
        {"type": "OSDConfig", "texts": [{"text": "x", "x": -1}]},
        {"type": "Frobnicate"},
        {"type": "BasicParam", "surprise": 1},
    ]
    for body in bad_bodies:
        r = _config(client, admin_headers, dev, **body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["error"]["code"] == "invalid", r.text
    # Another device's channel.
    r = client.post(
        f"{API}/devices",
        json={"protocol": "gb28181", "name": "other", "kind": "nvr"},
        headers=admin_headers,
    )
    assert r.status_code == 201, r.text
    r = _config(
        client,
        admin_headers,
        r.json()["id"],
        type="PictureMask",
        on=False,
        channel_id=channel["id"],
    )
    assert r.status_code == 422 and "not a channel of device" in r.json()["error"]["message"]
    assert list(device.device_configs) == []


def test_permissions(
    gb: Platform, device: Device, channel: dict[str, Any], client: TestClient
) -> None:
    dev = device.config.device_id
    gb.users.create_role(
        SYSTEM,
        RoleCreate(name="controller", permissions=["registry.read", "device.control"]),
    )
    for name, roles in (("watcher", ["viewer"]), ("duty", ["controller"])):
        gb.users.create_user(
            SYSTEM,
            UserCreate(username=name, password=PASSWORD, roles=roles, scope=ScopeSpec(all=True)),
        )
    viewer, operator = login(client, "watcher", PASSWORD), login(client, "duty", PASSWORD)
    r = _config(client, viewer, dev, type="PictureMask", on=False, channel_id=channel["id"])
    assert r.status_code == 403, r.text
    # Controlling devices without managing them: no BasicParam, no raw blocks.
    r = _config(client, operator, dev, type="BasicParam", name="x")
    assert r.status_code == 403, r.text
    r = _config(client, operator, dev, type="raw", xml="<FrameMirror>1</FrameMirror>")
    assert r.status_code == 403, r.text
    r = _config(client, operator, dev, type="PictureMask", on=False, channel_id=channel["id"])
    assert r.status_code == 200, r.text
    assert len(_received(device, 1)) == 1


def test_an_offline_device_is_a_clear_error(
    gb: Platform,
    sim: SimThread,
    device: Device,
    channel: dict[str, Any],
    client: TestClient,
    admin_headers: dict[str, str],
) -> None:
    dev = device.config.device_id
    stop_and_unregister(gb, sim, dev)
    r = _config(client, admin_headers, dev, type="OSDConfig", time_enable=False)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == {
        "code": "device_unreachable",
        "message": f"device {dev} is offline (not registered)",
        "details": None,
    }
    (record,) = _audit(client, admin_headers, "device.config")
    assert record["outcome"] == "failed" and record["reason"].startswith("device_unreachable")
    assert record["detail"] == {"type": "OSDConfig"}
