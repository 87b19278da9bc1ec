"""Typed MANSCDP messages: what the reader returns and the writer takes.

Every message has ``device_id`` and ``sn`` (None when a device left SN out). Fields a device may
omit are Optional; elements this module does not model are kept in ``extra`` (tag as sent ->
text) so nothing a device says is lost. Times are datetimes from the lenient reader; a time that
cannot be read is None in the typed field and its text stays in ``extra``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from xueliang.gb28181 import ptz as ptz_codec
from xueliang.gb28181.manscdp.configs import ConfigBlock, block_tag


class Kind(StrEnum):
    QUERY = "Query"
    RESPONSE = "Response"
    NOTIFY = "Notify"
    CONTROL = "Control"


# Status spellings seen in catalogues and DeviceStatus answers, to one canonical pair.
_ON = frozenset({"ON", "ONLINE", "OK", "TRUE", "1"})
_OFF = frozenset({"OFF", "OFFLINE", "FALSE", "0"})


def normalise_status(value: str | None) -> str | None:
    """ "ON"/"OFF" for the spellings devices use, the text as sent otherwise."""
    if value is None:
        return None
    upper = value.strip().upper()
    if upper in _ON:
        return "ON"
    if upper in _OFF:
        return "OFF"
    return value.strip()


Extra = dict[str, str]


@dataclass(frozen=True, kw_only=True)
class CatalogItem:
    device_id: str
    name: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    owner: str | None = None
    civil_code: str | None = None
    block: str | None = None
    address: str | None = None
    parental: int | None = None
    parent_id: str | None = None
    business_group_id: str | None = None
    safety_way: int | None = None
    register_way: int | None = None
    cert_num: str | None = None
    certifiable: int | None = None
    err_code: int | None = None
    end_time: datetime | None = None
    secrecy: int | None = None
    ip_address: str | None = None
    port: int | None = None
    password: str | None = None
    status: str | None = None  # "ON"/"OFF" when recognised
    longitude: float | None = None
    latitude: float | None = None
    ptz_type: int | None = None  # Info/PTZType: 1 dome, 2 half dome, 3 fixed, 4 remote-control
    # Other Info children (2016 PositionType ... 2022 StreamNumberList, MAC, ...), tag -> text.
    info: Extra = field(default_factory=dict)
    event: str | None = None  # catalogue notify: ON, OFF, VLOST, DEFECT, ADD, DEL, UPDATE
    extra: Extra = field(default_factory=dict)

    @property
    def type_code(self) -> str:
        """Digits 11-13 of the ID: 131 camera, 215 business group, 216 virtual organisation."""
        return self.device_id[10:13] if len(self.device_id) == 20 else ""

    @property
    def is_business_group(self) -> bool:
        return self.type_code == "215"

    @property
    def is_virtual_organisation(self) -> bool:
        return self.type_code == "216"

    @property
    def online(self) -> bool | None:
        return {"ON": True, "OFF": False}.get(self.status or "")


@dataclass(frozen=True, kw_only=True)
class Keepalive:
    device_id: str
    sn: int | None
    status: str | None = "OK"
    faulty_device_ids: tuple[str, ...] = ()  # Info/DeviceID: channels reported faulty
    extra: Extra = field(default_factory=dict)
    kind: Kind = Kind.NOTIFY


@dataclass(frozen=True, kw_only=True)
class CatalogQuery:
    """Catalog query; with start/end time it is also the body of a catalogue SUBSCRIBE."""

    device_id: str
    sn: int | None
    start_time: datetime | None = None
    end_time: datetime | None = None
    extra: Extra = field(default_factory=dict)
    kind: Kind = Kind.QUERY


@dataclass(frozen=True, kw_only=True)
class Catalog:
    """One page of a catalogue (Response) or a catalogue change (Notify)."""

    device_id: str
    sn: int | None
    sum_num: int | None  # the device's total over all pages
    items: tuple[CatalogItem, ...] = ()
    list_num: int | None = None  # DeviceList Num="": items on this page as the device says
    extra: Extra = field(default_factory=dict)
    kind: Kind = Kind.RESPONSE


@dataclass(frozen=True, kw_only=True)
class DeviceInfoQuery:
    device_id: str
    sn: int | None
    kind: Kind = Kind.QUERY


@dataclass(frozen=True, kw_only=True)
class DeviceInfo:
    device_id: str
    sn: int | None
    result: str | None = "OK"
    device_name: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    firmware: str | None = None
    channel: int | None = None  # number of video inputs
    extra: Extra = field(default_factory=dict)
    kind: Kind = Kind.RESPONSE


@dataclass(frozen=True, kw_only=True)
class DeviceStatusQuery:
    device_id: str
    sn: int | None
    kind: Kind = Kind.QUERY


@dataclass(frozen=True, kw_only=True)
class AlarmStatus:
    device_id: str
    duty_status: str | None  # ONDUTY, OFFDUTY, ALARM


@dataclass(frozen=True, kw_only=True)
class DeviceStatus:
    device_id: str
    sn: int | None
    result: str | None = "OK"
    online: str | None = None  # "ON"/"OFF" (sent as ONLINE/OFFLINE)
    status: str | None = None  # OK / ERROR
    reason: str | None = None
    encode: str | None = None  # ON / OFF
    record: str | None = None  # ON / OFF
    device_time: datetime | None = None
    alarms: tuple[AlarmStatus, ...] = ()
    extra: Extra = field(default_factory=dict)
    kind: Kind = Kind.RESPONSE


@dataclass(frozen=True, kw_only=True)
class RecordInfoQuery:
    device_id: str
    sn: int | None
    start_time: datetime
    end_time: datetime
    # Dahua answers only when Type is present, so it is always written ("all" unless set).
    type: str = "all"
    file_path: str | None = None
    address: str | None = None
    secrecy: int | None = 0
    recorder_id: str | None = None
    indistinct_query: int | None = None
    extra: Extra = field(default_factory=dict)
    kind: Kind = Kind.QUERY


@dataclass(frozen=True, kw_only=True)
class RecordItem:
    device_id: str
    name: str | None = None
    file_path: str | None = None
    address: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    secrecy: int | None = None
    type: str | None = None  # time, alarm, manual, all
    recorder_id: str | None = None
    file_size: int | None = None
    extra: Extra = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class RecordInfo:
    device_id: str
    sn: int | None
    sum_num: int | None
    items: tuple[RecordItem, ...] = ()
    name: str | None = None
    list_num: int | None = None
    extra: Extra = field(default_factory=dict)
    kind: Kind = Kind.RESPONSE


@dataclass(frozen=True, kw_only=True)
class Alarm:
    device_id: str
    sn: int | None
    alarm_priority: int | None = None  # 1 first-level (highest) .. 4
    alarm_method: str | None = None  # 1 phone 2 device 3 SMS 4 GPS 5 video 6 fault 7 other
    alarm_time: datetime | None = None
    alarm_description: str | None = None
    longitude: float | None = None
    latitude: float | None = None
    alarm_type: int | None = None  # Info/AlarmType, meaning depends on the method
    event_type: int | None = None  # Info/AlarmTypeParam/EventType
    extra: Extra = field(default_factory=dict)
    kind: Kind = Kind.NOTIFY


@dataclass(frozen=True, kw_only=True)
class Position:
    device_id: str | None  # per point in the 2022 list form, else the message's device
    time: datetime | None
    longitude: float | None
    latitude: float | None
    speed: float | None = None
    direction: float | None = None
    altitude: float | None = None


@dataclass(frozen=True, kw_only=True)
class MobilePositionQuery:
    """Query or SUBSCRIBE body for positions; interval in seconds."""

    device_id: str
    sn: int | None
    interval: int | None = None
    kind: Kind = Kind.QUERY


@dataclass(frozen=True, kw_only=True)
class MobilePosition:
    device_id: str
    sn: int | None
    positions: tuple[Position, ...] = ()
    extra: Extra = field(default_factory=dict)
    kind: Kind = Kind.NOTIFY


@dataclass(frozen=True, kw_only=True)
class HomePosition:
    enabled: bool
    reset_time: int | None = None  # seconds
    preset_index: int | None = None


@dataclass(frozen=True, kw_only=True)
class DeviceControl:
    device_id: str
    sn: int | None
    ptz_cmd: str | None = None  # 16 hex digits, see ptz
    tele_boot: str | None = None  # Boot
    record_cmd: str | None = None  # Record / StopRecord
    guard_cmd: str | None = None  # SetGuard / ResetGuard
    alarm_cmd: str | None = None  # ResetAlarm
    iframe_cmd: str | None = None  # Send: ask for a key frame
    home_position: HomePosition | None = None
    stream_number: int | None = None  # 2022: which stream RecordCmd applies to
    control_priority: int | None = None  # Info/ControlPriority
    extra: Extra = field(default_factory=dict)
    kind: Kind = Kind.CONTROL

    def decoded_ptz(self) -> ptz_codec.DecodedPtz | None:
        """The decoded PTZ command; ParseError when the hex string is malformed."""
        return ptz_codec.decode(self.ptz_cmd) if self.ptz_cmd is not None else None


@dataclass(frozen=True, kw_only=True)
class MediaStatus:
    device_id: str
    sn: int | None
    notify_type: str | None = "121"  # 121: the file being played back or downloaded has ended
    kind: Kind = Kind.NOTIFY

    @property
    def end_of_file(self) -> bool:
        return self.notify_type == "121"


@dataclass(frozen=True, kw_only=True)
class DeviceConfig:
    """DeviceConfig control: set one or more configuration blocks of a device or a channel.
    The device answers a :class:`Result` (CmdType DeviceConfig)."""

    device_id: str
    sn: int | None
    configs: tuple[ConfigBlock, ...] = ()
    kind: Kind = Kind.CONTROL


@dataclass(frozen=True, kw_only=True)
class ConfigDownloadQuery:
    """ConfigDownload query: the configuration types to read, sent as ``A/B/C``."""

    device_id: str
    sn: int | None
    config_types: tuple[str, ...] = ()
    kind: Kind = Kind.QUERY


@dataclass(frozen=True, kw_only=True)
class ConfigDownload:
    """ConfigDownload answer: the blocks the device sent, typed where modelled."""

    device_id: str
    sn: int | None
    result: str | None = "OK"
    configs: tuple[ConfigBlock, ...] = ()
    extra: Extra = field(default_factory=dict)
    kind: Kind = Kind.RESPONSE

    def config(self, tag: str) -> ConfigBlock | None:
        """The block called ``tag`` (BasicParam, OSDConfig, FrameMirror, …), if sent."""
        return next((c for c in self.configs if block_tag(c) == tag), None)


@dataclass(frozen=True, kw_only=True)
class UploadSnapShotFinished:
    """A device's report that the pictures of a snapshot session are uploaded (2022)."""

    device_id: str
    sn: int | None
    session_id: str | None
    file_ids: tuple[str, ...] = ()  # SnapShotList/SnapShotFileID, in the order sent
    extra: Extra = field(default_factory=dict)
    kind: Kind = Kind.NOTIFY


@dataclass(frozen=True, kw_only=True)
class Result:
    """A response that only says OK or ERROR: DeviceControl, DeviceConfig, Alarm, subscriptions.

    Hikvision answers some controls with ERROR inside a 200 OK: that is the command's result.
    """

    cmd_type: str
    device_id: str
    sn: int | None
    result: str | None = "OK"
    extra: Extra = field(default_factory=dict)
    kind: Kind = Kind.RESPONSE

    @property
    def ok(self) -> bool:
        return (self.result or "").strip().upper() == "OK"


@dataclass(frozen=True, kw_only=True)
class Unknown:
    """A CmdType (or a kind for it) this module does not model: answered 200 and logged."""

    kind: Kind
    cmd_type: str
    device_id: str
    sn: int | None
    fields: Extra = field(default_factory=dict)  # top-level leaf elements, tag -> text
    xml: str = ""  # the decoded body, to pass on as it came


Message = (
    Keepalive
    | CatalogQuery
    | Catalog
    | DeviceInfoQuery
    | DeviceInfo
    | DeviceStatusQuery
    | DeviceStatus
    | RecordInfoQuery
    | RecordInfo
    | Alarm
    | MobilePositionQuery
    | MobilePosition
    | DeviceControl
    | MediaStatus
    | DeviceConfig
    | ConfigDownloadQuery
    | ConfigDownload
    | UploadSnapShotFinished
    | Result
    | Unknown
)


@dataclass(frozen=True)
class Parsed:
    message: Message
    encoding: str  # what the body was read as; answer the device in the same
    repaired: bool  # the body needed fixing (bad characters, recovering parser): log it


_CMD_TYPES: dict[type, str] = {
    Keepalive: "Keepalive",
    CatalogQuery: "Catalog",
    Catalog: "Catalog",
    DeviceInfoQuery: "DeviceInfo",
    DeviceInfo: "DeviceInfo",
    DeviceStatusQuery: "DeviceStatus",
    DeviceStatus: "DeviceStatus",
    RecordInfoQuery: "RecordInfo",
    RecordInfo: "RecordInfo",
    Alarm: "Alarm",
    MobilePositionQuery: "MobilePosition",
    MobilePosition: "MobilePosition",
    DeviceControl: "DeviceControl",
    MediaStatus: "MediaStatus",
    DeviceConfig: "DeviceConfig",
    ConfigDownloadQuery: "ConfigDownload",
    ConfigDownload: "ConfigDownload",
    UploadSnapShotFinished: "UploadSnapShotFinished",
}


def cmd_type_of(message: Message) -> str | None:
    """The CmdType a message travels under (a query and its answer share one)."""
    if isinstance(message, Result | Unknown):
        return message.cmd_type
    return _CMD_TYPES.get(type(message))
