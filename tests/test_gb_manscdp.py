from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xueliang.gb28181 import manscdp, ptz
from xueliang.gb28181.errors import ParseError
from xueliang.gb28181.manscdp import (
    Alarm,
    Catalog,
    CatalogItem,
    CatalogQuery,
    DeviceControl,
    DeviceInfo,
    DeviceInfoQuery,
    DeviceStatus,
    HomePosition,
    Keepalive,
    Kind,
    MediaStatus,
    MobilePosition,
    MobilePositionQuery,
    Position,
    RecordInfo,
    RecordInfoQuery,
    RecordItem,
    Result,
    Unknown,
)

NVR = "34020000001180000001"
CAMERA = "34020000001320000001"
PLATFORM = "34020000002000000001"


GB_DECLARATION = '<?xml version="1.0" encoding="GB2312"?>'
KEEPALIVE_WITH_ID = "<Notify><CmdType>Keepalive</CmdType><DeviceID>{}</DeviceID></Notify>"


def _gb(text: str) -> bytes:
    return text.encode("gb2312")


# --- samples in the shape real devices send them ---------------------------------------------

HIKVISION_KEEPALIVE = _gb(
    '<?xml version="1.0" encoding="GB2312"?>\r\n'
    "<Notify>\r\n"
    "<CmdType>Keepalive</CmdType>\r\n"
    "<SN>43</SN>\r\n"
    f"<DeviceID>{CAMERA}</DeviceID>\r\n"
    "<Status>OK</Status>\r\n"
    "</Notify>\r\n"
)

# Dahua NVR: GB2312 bytes with Chinese names, first page of three items, two per page.
DAHUA_CATALOG_PAGE_1 = _gb(
    '<?xml version="1.0" encoding="GB2312"?>\n'
    "<Response>\n"
    "  <CmdType>Catalog</CmdType>\n"
    "  <SN>17</SN>\n"
    f"  <DeviceID>{NVR}</DeviceID>\n"
    "  <SumNum>3</SumNum>\n"
    '  <DeviceList Num="2">\n'
    "    <Item>\n"
    "      <DeviceID>34020000001310000001</DeviceID>\n"
    "      <Name>前门东侧</Name>\n"
    "      <Manufacturer>Dahua</Manufacturer>\n"
    "      <Model>DH-NVR4208</Model>\n"
    "      <Owner>0</Owner>\n"
    "      <CivilCode>340200</CivilCode>\n"
    "      <Address>合肥市蜀山区</Address>\n"
    "      <Parental>0</Parental>\n"
    f"      <ParentID>{NVR}</ParentID>\n"
    "      <SafetyWay>0</SafetyWay>\n"
    "      <RegisterWay>1</RegisterWay>\n"
    "      <Secrecy>0</Secrecy>\n"
    "      <Status>ON</Status>\n"
    "      <Longitude>117.2272</Longitude>\n"
    "      <Latitude>31.8206</Latitude>\n"
    "      <Info><PTZType>1</PTZType><Resolution>6/4</Resolution></Info>\n"
    "    </Item>\n"
    "    <Item>\n"
    "      <DeviceID>34020000001310000002</DeviceID>\n"
    "      <Name>停车场入口</Name>\n"
    "      <Manufacturer>Dahua</Manufacturer>\n"
    "      <Status>OFF</Status>\n"
    "      <Longitude></Longitude>\n"
    "    </Item>\n"
    "  </DeviceList>\n"
    "</Response>\n"
)
DAHUA_CATALOG_PAGE_2 = _gb(
    '<?xml version="1.0" encoding="GB2312"?>\n'
    "<Response><CmdType>Catalog</CmdType><SN>17</SN>"
    f"<DeviceID>{NVR}</DeviceID><SumNum>3</SumNum>"
    '<DeviceList Num="1"><Item><DeviceID>34020000001310000003</DeviceID>'
    "<Name>后门</Name><Status>OFFLINE</Status></Item></DeviceList></Response>"
)

# Uniview lower platform: declares GB2312 but sends UTF-8, writes DeviceId/Cmdtype/Sn,
# and lists a business group (215) and a virtual organisation (216).
UNIVIEW_CATALOG = (
    '<?xml version="1.0" encoding="GB2312"?>\r\n'
    "<Response>\r\n"
    "<Cmdtype>Catalog</Cmdtype>\r\n"
    "<Sn>5</Sn>\r\n"
    "<DeviceId>34020000002000000002</DeviceId>\r\n"
    "<Sumnum>3</Sumnum>\r\n"
    '<Devicelist num="3">\r\n'
    "<item><DeviceId>34020000002150000001</DeviceId><Name>宇视治安业务分组</Name></item>\r\n"
    "<item><DeviceId>34020000002160000001</DeviceId><Name>城东派出所</Name>"
    "<ParentId>34020000002000000002</ParentId>"
    "<BusinessGroupID>34020000002150000001</BusinessGroupID></item>\r\n"
    "<item><DeviceId>34020000001320000009</DeviceId><Name>宇视摄像机 IPC-B2</Name>"
    "<Status>Online</Status><Parental>0</Parental>"
    "<ParentId>34020000002160000001</ParentId>"
    "<Info><PTZType>3</PTZType><StreamNumberList>0/1/2</StreamNumberList></Info>"
    "<VendorFlag>x</VendorFlag></item>\r\n"
    "</Devicelist>\r\n"
    "</Response>\r\n"
).encode()

DEVICE_INFO = _gb(
    '<?xml version="1.0" encoding="GB2312"?>\n'
    "<Response><CmdType>DeviceInfo</CmdType><SN>3</SN>"
    f"<DeviceID>{CAMERA}</DeviceID><DeviceName>IP CAMERA</DeviceName><Result>OK</Result>"
    "<Manufacturer>Hikvision</Manufacturer><Model>DS-2CD3T46WD</Model>"
    "<Firmware>V5.5.82</Firmware><Channel>1</Channel></Response>"
)

DEVICE_STATUS = _gb(
    '<?xml version="1.0" encoding="GB2312"?>\n'
    "<Response><CmdType>DeviceStatus</CmdType><SN>4</SN>"
    f"<DeviceID>{NVR}</DeviceID><Result>OK</Result><Online>ONLINE</Online>"
    "<Status>OK</Status><Encode>ON</Encode><Record>OFF</Record>"
    "<DeviceTime>2026-1-5T8:3:0</DeviceTime>"
    '<Alarmstatus Num="1"><Item><DeviceID>34020000001340000001</DeviceID>'
    "<DutyStatus>ONDUTY</DutyStatus></Item></Alarmstatus></Response>"
)

RECORD_INFO = _gb(
    '<?xml version="1.0" encoding="GB2312"?>\n'
    "<Response><CmdType>RecordInfo</CmdType><SN>9</SN>"
    f"<DeviceID>{CAMERA}</DeviceID><Name>Camera 01</Name><SumNum>2</SumNum>"
    '<RecordList Num="2">'
    f"<Item><DeviceID>{CAMERA}</DeviceID><Name>Camera 01</Name>"
    "<FilePath>ch01_20260105080000</FilePath><Address>Address 1</Address>"
    "<StartTime>2026-01-05T08:00:00</StartTime><EndTime>2026-01-05T08:30:00</EndTime>"
    "<Secrecy>0</Secrecy><Type>time</Type><FileSize>104857600</FileSize></Item>"
    f"<Item><DeviceID>{CAMERA}</DeviceID><StartTime>2026-01-05 08:30:00.120</StartTime>"
    "<EndTime>bogus</EndTime><Type>alarm</Type></Item>"
    "</RecordList></Response>"
)

ALARM = _gb(
    '<?xml version="1.0" encoding="GB2312"?>\n'
    "<Notify><CmdType>Alarm</CmdType><SN>11</SN>"
    f"<DeviceID>{CAMERA}</DeviceID><AlarmPriority>1</AlarmPriority>"
    "<AlarmMethod>5</AlarmMethod><AlarmTime>2026-01-05T08:03:00</AlarmTime>"
    "<AlarmDescription>区域入侵</AlarmDescription>"
    "<Longitude>117.2272</Longitude><Latitude>31.8206</Latitude>"
    "<Info><AlarmType>6</AlarmType><AlarmTypeParam><EventType>1</EventType></AlarmTypeParam>"
    "</Info></Notify>"
)

MOBILE_POSITION = _gb(
    '<?xml version="1.0" encoding="GB2312"?>\n'
    "<Notify><CmdType>MobilePosition</CmdType><SN>12</SN>"
    f"<DeviceID>{CAMERA}</DeviceID><Time>2026-01-05T08:03:00</Time>"
    "<Longitude>117.2272</Longitude><Latitude>31.8206</Latitude>"
    "<Speed>12.5</Speed><Direction>90</Direction><Altitude>30</Altitude></Notify>"
)

MEDIA_STATUS = _gb(
    '<?xml version="1.0" encoding="GB2312"?>\n'
    "<Notify><CmdType>MediaStatus</CmdType><SN>13</SN>"
    f"<DeviceID>{CAMERA}</DeviceID><NotifyType>121</NotifyType></Notify>"
)

HIKVISION_CONTROL_ERROR = _gb(
    '<?xml version="1.0" encoding="GB2312"?>\n'
    "<Response><CmdType>DeviceControl</CmdType><SN>14</SN>"
    f"<DeviceID>{CAMERA}</DeviceID><Result>ERROR</Result></Response>"
)

SAMPLES = [
    HIKVISION_KEEPALIVE,
    DAHUA_CATALOG_PAGE_1,
    DAHUA_CATALOG_PAGE_2,
    UNIVIEW_CATALOG,
    DEVICE_INFO,
    DEVICE_STATUS,
    RECORD_INFO,
    ALARM,
    MOBILE_POSITION,
    MEDIA_STATUS,
    HIKVISION_CONTROL_ERROR,
]


# --- reading ----------------------------------------------------------------------------------


def test_keepalive() -> None:
    parsed = manscdp.parse(HIKVISION_KEEPALIVE)
    assert parsed.encoding == "GB2312" and not parsed.repaired
    assert parsed.message == Keepalive(device_id=CAMERA, sn=43, status="OK")


def test_keepalive_variants_without_status_and_with_info() -> None:
    body = (
        b"<Notify><cmdtype>keepalive</cmdtype><sn>1</sn><deviceid>"
        + CAMERA.encode()
        + b"</deviceid>"
        b"<Info><DeviceID>34020000001310000001</DeviceID><DeviceID>34020000001310000002</DeviceID>"
        b"</Info></Notify>"
    )
    message = manscdp.parse_message(body)
    assert isinstance(message, Keepalive)
    assert message.status is None
    assert message.faulty_device_ids == ("34020000001310000001", "34020000001310000002")


def test_catalog_gb2312_with_chinese_names_and_paging() -> None:
    first = manscdp.parse_message(DAHUA_CATALOG_PAGE_1)
    second = manscdp.parse_message(DAHUA_CATALOG_PAGE_2)
    assert isinstance(first, Catalog) and isinstance(second, Catalog)
    assert (first.sum_num, first.list_num, len(first.items)) == (3, 2, 2)
    gate = first.items[0]
    assert gate.name == "前门东侧" and gate.address == "合肥市蜀山区"
    assert gate.manufacturer == "Dahua" and gate.model == "DH-NVR4208"
    assert gate.parent_id == NVR and gate.parental == 0
    assert (gate.safety_way, gate.register_way, gate.secrecy) == (0, 1, 0)
    assert gate.online is True and gate.ptz_type == 1
    assert gate.longitude == pytest.approx(117.2272) and gate.latitude == pytest.approx(31.8206)
    assert gate.info == {"Resolution": "6/4"}
    assert first.items[1].online is False and first.items[1].longitude is None
    assert second.items[0].status == "OFF"  # OFFLINE spelled out

    assembly = manscdp.CatalogAssembly(NVR, 17)
    assert not assembly.add(first)
    assert assembly.add(second)
    assert [i.name for i in assembly.items] == ["前门东侧", "停车场入口", "后门"]


def test_catalog_assembly_partial_and_foreign_pages() -> None:
    first = manscdp.parse_message(DAHUA_CATALOG_PAGE_1)
    assert isinstance(first, Catalog)
    assembly = manscdp.CatalogAssembly(NVR, 17)
    assembly.add(first)
    assembly.add(first)  # a resent page does not count twice
    assert not assembly.complete and len(assembly.items) == 2
    with pytest.raises(ValueError):
        manscdp.CatalogAssembly(NVR, 18).add(first)


def test_utf8_declared_gb2312_and_case_variations() -> None:
    parsed = manscdp.parse(UNIVIEW_CATALOG)
    assert parsed.encoding == "UTF-8"
    message = parsed.message
    assert isinstance(message, Catalog)
    assert message.device_id == "34020000002000000002" and message.sn == 5
    assert (message.sum_num, message.list_num) == (3, 3)
    group, organisation, camera = message.items
    assert group.is_business_group and group.name == "宇视治安业务分组"
    assert organisation.is_virtual_organisation
    assert organisation.business_group_id == "34020000002150000001"
    assert organisation.parent_id == "34020000002000000002"
    assert camera.type_code == "132" and camera.name == "宇视摄像机 IPC-B2"
    assert camera.status == "ON" and camera.ptz_type == 3
    assert camera.info == {"StreamNumberList": "0/1/2"}
    assert camera.extra == {"VendorFlag": "x"}


def test_gbk_declared_utf8_and_undeclared_gbk() -> None:
    name = "东门岗亭摄像机"
    template = "<Notify><CmdType>Keepalive</CmdType><SN>1</SN><DeviceID>{}</DeviceID></Notify>"
    gbk_no_declaration = template.format(name).encode("gbk")
    parsed = manscdp.parse(gbk_no_declaration)
    assert parsed.encoding == "GB18030"
    assert isinstance(parsed.message, Keepalive) and parsed.message.device_id == name

    utf8_claims_gbk = ('<?xml version="1.0" encoding="GBK"?>' + template.format(name)).encode()
    assert manscdp.parse(utf8_claims_gbk).message.device_id == name

    gb_claims_utf8 = ('<?xml version="1.0" encoding="UTF-8"?>' + template.format(name)).encode(
        "gbk"
    )
    assert manscdp.parse(gb_claims_utf8).message.device_id == name


def test_why_utf8_is_tried_before_a_declared_gb_charset() -> None:
    # UTF-8 Chinese can decode as GB18030 without error (into the wrong characters), so a
    # declared GB charset cannot expose the lie; GB bytes are rarely valid UTF-8.
    text = "前门东侧"
    assert text.encode("utf-8").decode("gb18030") == "鍓嶉棬涓滀晶"
    body = f"{GB_DECLARATION}{KEEPALIVE_WITH_ID.format(text)}"
    assert manscdp.parse(body.encode()).message.device_id == text


def test_short_gb_text_that_is_also_valid_utf8_follows_the_declaration() -> None:
    # "隆" in GB2312 is C2 A1, which is also UTF-8 for "¡"; Chinese wins over Latin-1.
    body = f"{GB_DECLARATION}{KEEPALIVE_WITH_ID.format('隆')}"
    parsed = manscdp.parse(body.encode("gb2312"))
    assert parsed.message.device_id == "隆" and parsed.encoding == "GB2312"


def test_undecodable_bytes_are_replaced_not_fatal() -> None:
    body = b"<Notify><CmdType>Keepalive</CmdType><SN>1</SN><DeviceID>\x80\xff1</DeviceID></Notify>"
    parsed = manscdp.parse(body)
    assert parsed.repaired
    assert parsed.message.device_id.endswith("1")


def test_bare_ampersand_and_control_characters_are_repaired() -> None:
    body = _gb(
        '<?xml version="1.0" encoding="GB2312"?><Response><CmdType>Catalog</CmdType><SN>2</SN>'
        f'<DeviceID>{NVR}</DeviceID><SumNum>1</SumNum><DeviceList Num="1"><Item>'
        "<DeviceID>34020000001310000001</DeviceID><Name>A&B 路口 &amp; 桥\x01</Name>"
        "</Item></DeviceList></Response>\x00\x00"
    )
    parsed = manscdp.parse(body)
    assert parsed.repaired
    assert isinstance(parsed.message, Catalog)
    assert parsed.message.items[0].name == "A&B 路口 & 桥"


def test_unescaped_markup_falls_back_to_the_recovering_parser() -> None:
    body = (
        b"<Notify><CmdType>Keepalive</CmdType><SN>7</SN><DeviceID>"
        + CAMERA.encode()
        + b"</DeviceID>"
        b"<Status>OK</Status><Info><x></Info></Notify>"
    )
    parsed = manscdp.parse(body)
    assert parsed.repaired
    assert isinstance(parsed.message, Keepalive) and parsed.message.sn == 7


def test_device_info_and_status() -> None:
    info = manscdp.parse_message(DEVICE_INFO)
    assert info == DeviceInfo(
        device_id=CAMERA,
        sn=3,
        result="OK",
        device_name="IP CAMERA",
        manufacturer="Hikvision",
        model="DS-2CD3T46WD",
        firmware="V5.5.82",
        channel=1,
    )
    status = manscdp.parse_message(DEVICE_STATUS)
    assert isinstance(status, DeviceStatus)
    assert status.online == "ON" and status.encode == "ON" and status.record == "OFF"
    assert status.device_time == datetime(2026, 1, 5, 8, 3, 0)
    assert status.alarms[0].duty_status == "ONDUTY"


def test_record_info_with_lenient_times() -> None:
    message = manscdp.parse_message(RECORD_INFO)
    assert isinstance(message, RecordInfo)
    assert (message.sum_num, message.list_num, message.name) == (2, 2, "Camera 01")
    first, second = message.items
    assert first.start_time == datetime(2026, 1, 5, 8, 0)
    assert first.end_time == datetime(2026, 1, 5, 8, 30)
    assert (first.type, first.file_size, first.file_path) == (
        "time",
        104857600,
        "ch01_20260105080000",
    )
    assert second.start_time == datetime(2026, 1, 5, 8, 30, 0, 120000)
    assert second.end_time is None and second.extra == {"EndTime": "bogus"}


def test_alarm_mobile_position_media_status_and_result() -> None:
    alarm = manscdp.parse_message(ALARM)
    assert isinstance(alarm, Alarm)
    assert (alarm.alarm_priority, alarm.alarm_method, alarm.alarm_type, alarm.event_type) == (
        1,
        "5",
        6,
        1,
    )
    assert alarm.alarm_description == "区域入侵"
    assert alarm.alarm_time == datetime(2026, 1, 5, 8, 3)

    position = manscdp.parse_message(MOBILE_POSITION)
    assert isinstance(position, MobilePosition)
    assert position.positions == (
        Position(
            device_id=CAMERA,
            time=datetime(2026, 1, 5, 8, 3),
            longitude=117.2272,
            latitude=31.8206,
            speed=12.5,
            direction=90.0,
            altitude=30.0,
        ),
    )
    media = manscdp.parse_message(MEDIA_STATUS)
    assert isinstance(media, MediaStatus) and media.end_of_file

    result = manscdp.parse_message(HIKVISION_CONTROL_ERROR)
    assert isinstance(result, Result)
    assert result.cmd_type == "DeviceControl" and not result.ok


def test_mobile_position_list_form() -> None:
    body = (
        "<Notify><CmdType>MobilePosition</CmdType><SN>1</SN><DeviceID>" + NVR + "</DeviceID>"
        '<PositionList Num="2">'
        "<Item><DeviceID>34020000001320000001</DeviceID><Time>2026-01-05T08:03:00</Time>"
        "<Longitude>117.1</Longitude><Latitude>31.1</Latitude></Item>"
        "<Item><DeviceID>34020000001320000002</DeviceID><Time>2026-01-05T08:03:05</Time>"
        "<Longitude>117.2</Longitude><Latitude>31.2</Latitude></Item>"
        "</PositionList></Notify>"
    )
    message = manscdp.parse_message(body)
    assert isinstance(message, MobilePosition)
    assert [p.device_id for p in message.positions] == [
        "34020000001320000001",
        "34020000001320000002",
    ]
    assert message.positions[1].latitude == 31.2
    again = manscdp.parse_message(manscdp.to_xml(message))
    assert again == message


def test_device_control_ptz_from_platform() -> None:
    body = (
        '<?xml version="1.0" encoding="GB2312"?>\r\n<Control>\r\n<CmdType>DeviceControl</CmdType>'
        f"\r\n<SN>15</SN>\r\n<DeviceID>{CAMERA}</DeviceID>\r\n<PTZCmd>A50F0182000300B9</PTZCmd>\r\n"
        "<Info>\r\n<ControlPriority>5</ControlPriority>\r\n</Info>\r\n</Control>\r\n"
    ).encode()
    message = manscdp.parse_message(body)
    assert isinstance(message, DeviceControl)
    assert message.control_priority == 5
    with pytest.raises(ParseError, match="checksum"):
        message.decoded_ptz()
    good = DeviceControl(
        device_id=CAMERA, sn=16, ptz_cmd=ptz.encode_hex(ptz.Preset(ptz.PresetOp.CALL, 3))
    )
    decoded = manscdp.parse_message(manscdp.to_xml(good))
    assert isinstance(decoded, DeviceControl)
    assert decoded.decoded_ptz() == ptz.DecodedPtz(1, ptz.Preset(ptz.PresetOp.CALL, 3))


def test_catalog_subscription_notify_with_events() -> None:
    subscribe = CatalogQuery(
        device_id=NVR, sn=40, start_time=datetime(2026, 1, 5), end_time=datetime(2026, 1, 6)
    )
    raw = manscdp.to_xml(subscribe)
    assert b"<Query>" in raw and b"<StartTime>2026-01-05T00:00:00</StartTime>" in raw
    body = _gb(
        '<?xml version="1.0" encoding="GB2312"?><Notify><CmdType>Catalog</CmdType><SN>41</SN>'
        f'<DeviceID>{NVR}</DeviceID><SumNum>2</SumNum><DeviceList Num="2">'
        "<Item><DeviceID>34020000001310000001</DeviceID><Event>OFF</Event></Item>"
        "<Item><DeviceID>34020000001310000004</DeviceID><Name>新增通道</Name><Event>ADD</Event>"
        "<Status>ON</Status></Item></DeviceList></Notify>"
    )
    message = manscdp.parse_message(body)
    assert isinstance(message, Catalog) and message.kind is Kind.NOTIFY
    assert [(i.device_id[-1], i.event) for i in message.items] == [("1", "OFF"), ("4", "ADD")]
    again = manscdp.parse_message(manscdp.to_xml(message))
    assert isinstance(again, Catalog) and again.kind is Kind.NOTIFY
    assert [i.event for i in again.items] == ["OFF", "ADD"]


def test_device_control_aliases_and_trailing_nuls() -> None:
    body = (
        b"<Control><CmdType>DeviceControl</CmdType><SN>1</SN><DeviceID>" + CAMERA.encode()
        + b"</DeviceID><IFrameCmd>Send</IFrameCmd></Control>\x00\x00"
    )  # fmt: skip
    parsed = manscdp.parse(body)
    assert not parsed.repaired
    assert isinstance(parsed.message, DeviceControl) and parsed.message.iframe_cmd == "Send"


def test_text_input_is_accepted() -> None:
    message = manscdp.parse_message(HIKVISION_KEEPALIVE.decode("gb2312"))
    assert isinstance(message, Keepalive) and message.sn == 43


def test_unknown_cmd_type_is_kept_whole() -> None:
    body = _gb(
        '<?xml version="1.0" encoding="GB2312"?><Response><CmdType>PresetQuery</CmdType>'
        f"<SN>20</SN><DeviceID>{CAMERA}</DeviceID>"
        '<PresetList Num="1"><Item><PresetID>1</PresetID><PresetName>大门</PresetName></Item>'
        "</PresetList></Response>"
    )
    message = manscdp.parse_message(body)
    assert isinstance(message, Unknown)
    assert message.cmd_type == "PresetQuery" and message.kind is Kind.RESPONSE
    assert message.fields["PresetList/Item/PresetName"] == "大门"
    assert "<PresetName>大门</PresetName>" in message.xml


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"", "empty"),
        (b"   \r\n", "empty"),
        (b"not xml at all", "not XML|no root"),
        (b"<Message><CmdType>Keepalive</CmdType></Message>", "not Query"),
        (b"<Notify><SN>1</SN></Notify>", "no CmdType"),
        (b"<Query><CmdType>RecordInfo</CmdType><SN>1</SN></Query>", "StartTime"),
        (b"<a>" * 300 + b"</a>" * 300, "not XML|not Query"),
        (b"x" * (manscdp.MAX_BODY_BYTES + 1), "limit"),
    ],
)
def test_refuses(body: bytes, why: str) -> None:
    with pytest.raises(ParseError, match=why):
        manscdp.parse(body)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<Notify><CmdType>Keepalive</CmdType><DeviceID>&lol4;</DeviceID></Notify>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0" encoding="GB2312"?>
<!DOCTYPE Notify [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Notify><CmdType>Keepalive</CmdType><DeviceID>&xxe;</DeviceID></Notify>"""


# The same external entity with NULs between the characters of the markup.
HIDDEN_BEHIND_NULS = EXTERNAL_ENTITY.replace(b"<!DOCTYPE", b"<\x00!\x00D\x00OCTYPE")


@pytest.mark.parametrize("body", [BILLION_LAUGHS, EXTERNAL_ENTITY, HIDDEN_BEHIND_NULS])
def test_dtds_and_entities_are_refused(body: bytes) -> None:
    with pytest.raises(ParseError, match="DTD"):
        manscdp.parse(body)


def test_undeclared_entity_reference_stays_text() -> None:
    body = b"<Notify><CmdType>Keepalive</CmdType><DeviceID>&xxe;</DeviceID></Notify>"
    assert manscdp.parse_message(body).device_id == "&xxe;"


# --- writing ----------------------------------------------------------------------------------


def test_query_bodies_platforms_send() -> None:
    record_query = RecordInfoQuery(
        device_id=CAMERA,
        sn=21,
        start_time=datetime(2026, 1, 5, 0, 0),
        end_time=datetime(2026, 1, 5, 23, 59, 59),
    )
    raw = manscdp.to_xml(record_query)
    assert raw.startswith(b'<?xml version="1.0" encoding="GB2312"?>\r\n<Query>\r\n')
    assert b"<Type>all</Type>" in raw  # Dahua answers only when Type is present
    assert b"<StartTime>2026-01-05T00:00:00</StartTime>" in raw
    assert manscdp.parse_message(raw) == record_query

    for query in (
        DeviceInfoQuery(device_id=CAMERA, sn=1),
        CatalogQuery(device_id=NVR, sn=2),
        CatalogQuery(
            device_id=NVR,
            sn=3,
            start_time=datetime(2026, 1, 5),
            end_time=datetime(2026, 1, 6),
        ),
        MobilePositionQuery(device_id=CAMERA, sn=4, interval=5),
    ):
        assert manscdp.parse_message(manscdp.to_xml(query)) == query


def test_round_trips_in_both_encodings() -> None:
    messages: list[manscdp.Message] = [
        manscdp.parse_message(sample)
        for sample in (DEVICE_INFO, DEVICE_STATUS, ALARM, MEDIA_STATUS)
    ]
    messages += [
        Keepalive(device_id=CAMERA, sn=1, faulty_device_ids=("34020000001310000001",)),
        DeviceControl(
            device_id=CAMERA,
            sn=2,
            guard_cmd="SetGuard",
            record_cmd="Record",
            stream_number=1,
            home_position=HomePosition(enabled=True, reset_time=30, preset_index=2),
            control_priority=5,
        ),
        DeviceControl(device_id=CAMERA, sn=3, tele_boot="Boot", iframe_cmd="Send"),
        Result(cmd_type="DeviceConfig", device_id=CAMERA, sn=4, result="OK"),
        MobilePosition(
            device_id=CAMERA,
            sn=5,
            positions=(
                Position(
                    device_id=CAMERA,
                    time=datetime(2026, 1, 5, 8, 3),
                    longitude=117.1,
                    latitude=31.1,
                ),
            ),
        ),
    ]
    for message in messages:
        for encoding in ("GB2312", "UTF-8", "GB18030"):
            raw = manscdp.to_xml(message, encoding=encoding)
            assert raw.startswith(f'<?xml version="1.0" encoding="{encoding}"?>'.encode())
            parsed = manscdp.parse(raw)
            assert parsed.message == message, (encoding, message)
            assert not parsed.repaired


@pytest.mark.parametrize("sample", SAMPLES)
def test_writing_what_was_read_is_stable(sample: bytes) -> None:
    # Reading fills defaults and drops sub-second precision once; after that nothing changes.
    once = manscdp.parse_message(manscdp.to_xml(manscdp.parse_message(sample)))
    twice = manscdp.parse_message(manscdp.to_xml(once))
    assert twice == once


def test_gb2312_output_bytes_and_characters_outside_it() -> None:
    item = CatalogItem(device_id="34020000001310000001", name="前门东侧 镕")  # 镕 is not GB2312
    raw = manscdp.to_xml(Catalog(device_id=NVR, sn=1, sum_num=1, items=(item,)))
    assert "前门东侧".encode("gb2312") in raw
    assert b"&#38229;" in raw  # written as a character reference rather than lost
    parsed = manscdp.parse_message(raw)
    assert isinstance(parsed, Catalog) and parsed.items[0].name == "前门东侧 镕"
    utf8 = manscdp.to_xml(Catalog(device_id=NVR, sn=1, sum_num=1, items=(item,)), "UTF-8")
    assert "前门东侧 镕".encode() in utf8


def test_catalog_items_are_written_complete() -> None:
    camera = CatalogItem(device_id="34020000001310000001", name="前门")
    group = CatalogItem(device_id="34020000002150000001", name="业务分组")
    raw = manscdp.to_xml(Catalog(device_id=NVR, sn=1, sum_num=2, items=(camera, group)))
    text = raw.decode("gb2312")
    camera_part, group_part = text.split("</Item>")[:2]
    for tag in ("Manufacturer", "Model", "Owner", "CivilCode", "Address", "Parental"):
        assert f"<{tag}>" in camera_part
    for tag in ("SafetyWay", "RegisterWay", "Secrecy", "Status"):
        assert f"<{tag}>" in camera_part
    assert "<CivilCode>340200</CivilCode>" in camera_part
    assert "<Manufacturer>" not in group_part and "<Status>" not in group_part


def test_catalog_round_trip_keeps_everything() -> None:
    parsed = manscdp.parse_message(UNIVIEW_CATALOG)
    again = manscdp.parse_message(manscdp.to_xml(parsed, "UTF-8"))
    assert isinstance(parsed, Catalog) and isinstance(again, Catalog)
    camera = again.items[2]
    assert camera.info == {"StreamNumberList": "0/1/2"}
    assert camera.extra == {"VendorFlag": "x"}
    assert [i.name for i in again.items] == [i.name for i in parsed.items]
    full = manscdp.parse_message(DAHUA_CATALOG_PAGE_1)
    assert isinstance(full, Catalog)
    written = manscdp.parse_message(manscdp.to_xml(full))
    assert isinstance(written, Catalog) and written.items[0] == full.items[0]


@pytest.mark.parametrize("count", [0, 1, 2, 5])
def test_catalog_pages(count: int) -> None:
    items = [
        CatalogItem(device_id=f"3402000000131{i:07d}", name=f"通道{i}", status="ON")
        for i in range(count)
    ]
    pages = manscdp.catalog_pages(NVR, 30, items, per_page=2)
    assert len(pages) == max(1, (count + 1) // 2)
    assembly = manscdp.CatalogAssembly(NVR, 30)
    for page in pages:
        parsed = manscdp.parse_message(manscdp.to_xml(page))
        assert isinstance(parsed, Catalog)
        assert parsed.sum_num == count and parsed.list_num == len(page.items)
        assembly.add(parsed)
    assert assembly.complete
    assert [i.name for i in assembly.items] == [i.name for i in items]


def test_record_pages() -> None:
    items = [
        RecordItem(
            device_id=CAMERA,
            start_time=datetime(2026, 1, 5, h),
            end_time=datetime(2026, 1, 5, h, 59, 59),
            type="time",
        )
        for h in range(10)
    ]
    pages = manscdp.record_pages(CAMERA, 31, items, per_page=4, name="Camera 01")
    assert [len(p.items) for p in pages] == [4, 4, 2]
    parsed = [manscdp.parse_message(manscdp.to_xml(p)) for p in pages]
    answers = [p for p in parsed if isinstance(p, RecordInfo) and p.sum_num == 10]
    assert len(answers) == 3
    assert [i for p in answers for i in p.items] == items


def test_writer_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="encoding"):
        manscdp.to_xml(Keepalive(device_id=CAMERA, sn=1), encoding="no-such-charset")
    with pytest.raises(ValueError, match="element name"):
        manscdp.to_xml(Keepalive(device_id=CAMERA, sn=1, extra={"bad tag": "x"}))


def test_text_is_escaped() -> None:
    message = Alarm(device_id=CAMERA, sn=1, alarm_description='<b>&"x"</b>')
    raw = manscdp.to_xml(message)
    assert b"&lt;b&gt;&amp;&quot;x&quot;&lt;/b&gt;" in raw
    assert manscdp.parse_message(raw) == message


# --- times ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-05T08:03:00", datetime(2026, 1, 5, 8, 3)),
        ("2026-1-5T8:3:0", datetime(2026, 1, 5, 8, 3)),
        ("2026-01-05 08:03:00", datetime(2026, 1, 5, 8, 3)),
        ("2026-01-05T08:03:00.5", datetime(2026, 1, 5, 8, 3, 0, 500000)),
        ("2026-01-05T08:03", datetime(2026, 1, 5, 8, 3)),
        ("2026-01-05", datetime(2026, 1, 5)),
        ("2026-01-05T08:03:00Z", datetime(2026, 1, 5, 8, 3, tzinfo=UTC)),
        (
            "2026-01-05T08:03:00+08:00",
            datetime(2026, 1, 5, 8, 3, tzinfo=timezone(timedelta(hours=8))),
        ),
    ],
)
def test_lenient_times(text: str, expected: datetime) -> None:
    assert manscdp.parse_time(text) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "2026-13-01T00:00:00", "2026-01-05T25:00:00"])
def test_bad_times(text: str) -> None:
    with pytest.raises(ParseError):
        manscdp.parse_time(text)


def test_time_format() -> None:
    assert manscdp.format_time(datetime(2026, 1, 5, 8, 3, 0, 999)) == "2026-01-05T08:03:00"


# --- fuzzing ----------------------------------------------------------------------------------


def _mutate(base: bytes, data: st.DataObject) -> bytes:
    raw = bytearray(base)
    for _ in range(data.draw(st.integers(1, 10))):
        where = data.draw(st.integers(0, len(raw)))
        action = data.draw(st.sampled_from(["flip", "insert", "delete", "markup"]))
        if action == "markup":
            raw[where:where] = data.draw(st.sampled_from([b"<", b">", b"&", b"</Item>", b"<Item>"]))
        elif action == "insert" or not raw:
            raw[where:where] = data.draw(st.binary(min_size=1, max_size=4))
        elif action == "delete":
            del raw[min(where, len(raw) - 1) : where + data.draw(st.integers(1, 20))]
        else:
            raw[min(where, len(raw) - 1)] = data.draw(st.integers(0, 255))
    return bytes(raw)


def _exercise(body: bytes) -> None:
    try:
        parsed = manscdp.parse(body)
    except ParseError:
        return
    # Whatever is accepted can be written back and read again as the same kind of message.
    # UTF-8 output reads back exactly; GB output of random characters can be valid UTF-8 too
    # (the charset guess is a guess), so there only the kind of message is compared.
    for encoding in ("GB2312", "UTF-8"):
        again = manscdp.parse(manscdp.to_xml(parsed.message, encoding)).message
        assert type(again) is type(parsed.message)
        if encoding == "UTF-8":
            assert again.device_id == parsed.message.device_id.strip()


_FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_FUZZ
@given(st.binary(max_size=300))
def test_fuzz_random_bytes(body: bytes) -> None:
    _exercise(body)


@_FUZZ
@given(st.sampled_from(SAMPLES), st.data())
def test_fuzz_mutated_samples(base: bytes, data: st.DataObject) -> None:
    _exercise(_mutate(base, data))


@_FUZZ
@given(st.text(max_size=40))
def test_fuzz_text_in_fields_round_trips(name: str) -> None:
    message = Alarm(device_id=CAMERA, sn=1, alarm_description=name)
    parsed = manscdp.parse_message(manscdp.to_xml(message, "UTF-8"))
    assert isinstance(parsed, Alarm)
    # Control characters XML cannot carry are dropped; surrounding blanks are not significant.
    expected = "".join(c for c in name if c >= " " or c in "\t\n\r").strip() or None
    assert parsed.alarm_description == expected or parsed.alarm_description is None


def _keepalive_declaring(charset: str, status: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="{charset}"?><Notify><CmdType>Keepalive</CmdType>'
        f"<SN>1</SN><DeviceID>{CAMERA}</DeviceID><Status>{status}</Status></Notify>"
    ).encode("gb18030")


@pytest.mark.parametrize("charset", ["undefined", "rot13", "no-such-charset"])
def test_declared_codecs_that_are_no_charset_fall_back_to_gb18030(charset: str) -> None:
    # Found by test_gb_fuzz.py: decoding with Python's "undefined" codec raises a plain
    # UnicodeError, which is not the UnicodeDecodeError that was caught.
    parsed = manscdp.parse(_keepalive_declaring(charset, "前门 OK"))
    assert parsed.encoding == "GB18030"
    assert parsed.message == Keepalive(device_id=CAMERA, sn=1, status="前门 OK")


def test_lone_surrogates_are_dropped_as_repairs() -> None:
    # Found by test_gb_fuzz.py: a declared escape codec can make lone surrogates out of bytes,
    # and str input can carry them; encoding them for lxml raised UnicodeEncodeError.
    escaped = manscdp.parse(_keepalive_declaring("unicode_escape", "OK\\ud800 前门"))
    assert isinstance(escaped.message, Keepalive) and escaped.repaired
    assert "\ud800" not in (escaped.message.status or "")
    text = f"<Notify><CmdType>Keepalive</CmdType><SN>1</SN><DeviceID>{CAMERA}\ud800</DeviceID>"
    parsed = manscdp.parse(text + "<Status>\udcffOK</Status></Notify>")
    assert parsed.message == Keepalive(device_id=CAMERA, sn=1, status="OK") and parsed.repaired
