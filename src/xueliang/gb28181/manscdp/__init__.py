"""MANSCDP (GB/T 28181 Appendix A): the XML bodies of MESSAGE, SUBSCRIBE and NOTIFY.

``parse`` turns bytes from a device into a typed message (tolerating lying charsets, case
variations, bare ampersands and unknown elements; refusing DTDs); ``to_xml`` turns a message
into bytes in the charset the caller asks for. Sans-I/O: no sockets, no clocks.
"""

from xueliang.gb28181.manscdp.assembly import CatalogAssembly
from xueliang.gb28181.manscdp.document import MAX_BODY_BYTES, decode_bytes
from xueliang.gb28181.manscdp.messages import (
    Alarm,
    AlarmStatus,
    Catalog,
    CatalogItem,
    CatalogQuery,
    DeviceControl,
    DeviceInfo,
    DeviceInfoQuery,
    DeviceStatus,
    DeviceStatusQuery,
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
    cmd_type_of,
    normalise_status,
)
from xueliang.gb28181.manscdp.reader import CMD_TYPES, parse, parse_message
from xueliang.gb28181.manscdp.timefmt import format_time, parse_time
from xueliang.gb28181.manscdp.writer import catalog_pages, record_pages, to_xml

__all__ = [
    "CMD_TYPES",
    "MAX_BODY_BYTES",
    "Alarm",
    "AlarmStatus",
    "Catalog",
    "CatalogAssembly",
    "CatalogItem",
    "CatalogQuery",
    "DeviceControl",
    "DeviceInfo",
    "DeviceInfoQuery",
    "DeviceStatus",
    "DeviceStatusQuery",
    "HomePosition",
    "Keepalive",
    "Kind",
    "MediaStatus",
    "Message",
    "MobilePosition",
    "MobilePositionQuery",
    "Parsed",
    "Position",
    "RecordInfo",
    "RecordInfoQuery",
    "RecordItem",
    "Result",
    "Unknown",
    "catalog_pages",
    "cmd_type_of",
    "decode_bytes",
    "format_time",
    "normalise_status",
    "parse",
    "parse_message",
    "parse_time",
    "record_pages",
    "to_xml",
]
