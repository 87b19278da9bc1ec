"""MANSCDP bytes to typed messages; ParseError is the only exception that leaves.

The entry point: ``parse`` reads the document, its root (the kind) and CmdType, and hands the
element to the reader for that message family (read_device, read_events, read_control; the
field readers they share are in fields).
"""

from __future__ import annotations

from collections.abc import Callable

from xueliang.gb28181.errors import ParseError
from xueliang.gb28181.manscdp.document import Node, parse_document
from xueliang.gb28181.manscdp.fields import _HEADER, _Fields, _int
from xueliang.gb28181.manscdp.messages import Kind, Message, Parsed, Result, Unknown
from xueliang.gb28181.manscdp.read_control import (
    _config_download,
    _device_config,
    _device_control,
)
from xueliang.gb28181.manscdp.read_control import config_block as config_block
from xueliang.gb28181.manscdp.read_device import (
    _catalog,
    _device_info,
    _device_status,
    _keepalive,
)
from xueliang.gb28181.manscdp.read_events import (
    _alarm,
    _media_status,
    _mobile_position,
    _record_info,
    _upload_snapshot_finished,
)

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
