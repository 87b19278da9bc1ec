"""WS-Discovery (the ONVIF flavour): find NetworkVideoTransmitter devices on one segment.

Sans-I/O at the core: :func:`build_probe` makes the Probe datagram, :func:`parse_probe_matches`
reads one answer (bytes in, dataclasses out). :func:`discover` is the small asyncio UDP adapter
around them: it sends the Probe to 239.255.255.250:3702 out of one chosen interface address,
collects ProbeMatches sent back to its port until the deadline, and ignores (with a log line)
anything it cannot read.

Why not the ``wsdiscovery`` package: its licence (LGPL-3.0+) is accepted here as a library, but
it cannot be confined to one interface (it joins and sends on every address of the host, found by
a monitoring thread), it binds port 3702 itself, and its search is a thread plus a fixed sleep.
A platform that probes when an operator asks, out of one interface, needs none of that.
"""

from __future__ import annotations

import asyncio
import io
import ipaddress
import logging
import socket
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from urllib.parse import unquote, urlsplit

from xueliang.core.errors import InvalidInput
from xueliang.onvif.model import DiscoveredDevice

log = logging.getLogger(__name__)

MULTICAST_GROUP = "239.255.255.250"
PORT = 3702
MAX_TIMEOUT = 10.0
MAX_DATAGRAM = 65535
MAX_DEVICES = 4096  # a segment with more answers than this is not a camera segment
MAX_LOGGED = 20  # unreadable replies logged one by one per discovery; the rest only counted

NS_SOAP = "http://www.w3.org/2003/05/soap-envelope"
NS_WSA = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
NS_WSD = "http://schemas.xmlsoap.org/ws/2005/04/discovery"
NS_DN = "http://www.onvif.org/ver10/network/wsdl"
# Answers are also read in WS-Discovery 1.1 and WS-Addressing 1.0 namespaces (some firmware).
NS_WSD_11 = "http://docs.oasis-open.org/ws-dd/ns/discovery/2009/01"
NS_WSA_10 = "http://www.w3.org/2005/08/addressing"
_DISCOVERY = (NS_WSD, NS_WSD_11)
_ADDRESSING = (NS_WSA, NS_WSA_10)

ACTION_PROBE = f"{NS_WSD}/Probe"
_PROBE_MATCHES_ACTIONS = {f"{NS_WSD}/ProbeMatches", f"{NS_WSD_11}/ProbeMatches"}
NVT = f"{{{NS_DN}}}NetworkVideoTransmitter"

_ONVIF_SCOPE = "onvif://www.onvif.org/"


class MalformedMessage(ValueError):
    """A datagram that is not a ProbeMatches answer to our Probe."""


def new_message_id() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def build_probe(message_id: str) -> bytes:
    """A Probe for NetworkVideoTransmitter devices (ONVIF Core, WS-Discovery 2005/04)."""
    if any(c in message_id for c in "<>&\"'"):
        raise ValueError("message id must be a plain URI")
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<s:Envelope xmlns:s="{NS_SOAP}" xmlns:a="{NS_WSA}" xmlns:d="{NS_WSD}" xmlns:dn="{NS_DN}">'
        "<s:Header>"
        f'<a:Action s:mustUnderstand="1">{ACTION_PROBE}</a:Action>'
        f"<a:MessageID>{message_id}</a:MessageID>"
        f"<a:ReplyTo><a:Address>{NS_WSA}/role/anonymous</a:Address></a:ReplyTo>"
        '<a:To s:mustUnderstand="1">urn:schemas-xmlsoap-org:ws:2005:04:discovery</a:To>'
        "</s:Header>"
        "<s:Body><d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types></d:Probe></s:Body>"
        "</s:Envelope>"
    ).encode()


def _parse_xml(data: bytes) -> ET.Element:
    # SOAP 1.2 forbids a document type declaration; refusing any keeps entity tricks out too.
    if b"<!DOCTYPE" in data.upper() or b"<!ENTITY" in data.upper():
        raise MalformedMessage("a SOAP message must not carry a DTD")
    try:
        return ET.fromstring(data)  # noqa: S314 - no DTD (checked above), so no entities
    except ET.ParseError as exc:
        raise MalformedMessage(f"not XML: {exc}") from exc


def _child(parent: ET.Element, namespaces: tuple[str, ...], local: str) -> ET.Element | None:
    for ns in namespaces:
        found = parent.find(f"{{{ns}}}{local}")
        if found is not None:
            return found
    return None


def _text(element: ET.Element | None) -> str:
    return (element.text or "").strip() if element is not None else ""


@dataclass(frozen=True, slots=True)
class _Scopes:
    name: str | None
    hardware: str | None
    locations: tuple[str, ...]
    profiles: tuple[str, ...]


def parse_scopes(scopes: tuple[str, ...]) -> _Scopes:
    """Read the ONVIF scopes (onvif://www.onvif.org/<kind>/<value>); others are kept raw only."""
    name = hardware = None
    locations: list[str] = []
    profiles: list[str] = []
    for scope in scopes:
        if not scope.startswith(_ONVIF_SCOPE):
            continue
        kind, _, value = scope[len(_ONVIF_SCOPE) :].partition("/")
        value = unquote(value).strip("/")
        if not value:
            continue
        match kind.lower():
            case "name" if name is None:
                name = value
            case "hardware" if hardware is None:
                hardware = value
            case "location":
                locations.append(value)
            case "profile":
                profiles.append(value)
    return _Scopes(name, hardware, tuple(locations), tuple(profiles))


def _resolve_qname(token: str, namespaces: dict[str, str]) -> str:
    prefix, sep, local = token.rpartition(":")
    if not sep:
        return token
    ns = namespaces.get(prefix)
    return f"{{{ns}}}{local}" if ns else token


def _declared_namespaces(data: bytes) -> dict[str, str]:
    """Prefix → namespace for every declaration in the document (Types are QNames whose
    prefixes ElementTree does not keep). A prefix declared twice keeps its first meaning."""
    out: dict[str, str] = {}
    try:
        for _event, (prefix, uri) in ET.iterparse(  # noqa: S314 - same input as _parse_xml
            io.BytesIO(data), events=("start-ns",)
        ):
            out.setdefault(prefix, uri)
    except ET.ParseError as exc:
        raise MalformedMessage(f"not XML: {exc}") from exc
    return out


def parse_probe_matches(
    data: bytes, *, relates_to: str, source: str = ""
) -> list[DiscoveredDevice]:
    """The devices in one ProbeMatches datagram that answers the Probe ``relates_to``.

    Raises MalformedMessage for anything else: not XML, not SOAP 1.2, another action, an
    answer to another probe, a match without an endpoint or without a usable XAddr.
    Devices that are not NetworkVideoTransmitters are left out without complaint.
    """
    root = _parse_xml(data)
    if root.tag != f"{{{NS_SOAP}}}Envelope":
        raise MalformedMessage(f"not a SOAP 1.2 envelope: {root.tag}")
    header = root.find(f"{{{NS_SOAP}}}Header")
    body = root.find(f"{{{NS_SOAP}}}Body")
    if header is None or body is None:
        raise MalformedMessage("envelope without header or body")
    action = _text(_child(header, _ADDRESSING, "Action"))
    if action not in _PROBE_MATCHES_ACTIONS:
        raise MalformedMessage(f"not a ProbeMatches message: action {action!r}")
    answered = _text(_child(header, _ADDRESSING, "RelatesTo"))
    if answered != relates_to:
        raise MalformedMessage(f"answers another probe ({answered!r})")
    matches = _child(body, _DISCOVERY, "ProbeMatches")
    if matches is None:
        raise MalformedMessage("ProbeMatches element missing")
    namespaces = _declared_namespaces(data)
    devices = []
    for match in list(matches):
        if match.tag not in {f"{{{ns}}}ProbeMatch" for ns in _DISCOVERY}:
            continue
        epr = _child(match, _DISCOVERY, "EndpointReference")
        if epr is None:
            epr = _child(match, _ADDRESSING, "EndpointReference")
        endpoint = _text(_child(epr, _ADDRESSING, "Address")) if epr is not None else ""
        if not endpoint:
            raise MalformedMessage("ProbeMatch without an endpoint reference")
        types = tuple(_text(_child(match, _DISCOVERY, "Types")).split())
        if types and NVT not in {_resolve_qname(t, namespaces) for t in types}:
            log.debug("ignoring %s from %s: not a NetworkVideoTransmitter", endpoint, source)
            continue
        xaddrs = tuple(
            x
            for x in _text(_child(match, _DISCOVERY, "XAddrs")).split()
            if urlsplit(x).scheme in ("http", "https") and urlsplit(x).hostname
        )
        if not xaddrs:
            raise MalformedMessage(f"ProbeMatch for {endpoint} without an http(s) XAddr")
        scopes = tuple(_text(_child(match, _DISCOVERY, "Scopes")).split())
        parsed = parse_scopes(scopes)
        version_text = _text(_child(match, _DISCOVERY, "MetadataVersion"))
        devices.append(
            DiscoveredDevice(
                endpoint=endpoint,
                xaddrs=xaddrs,
                types=types,
                scopes=scopes,
                name=parsed.name,
                hardware=parsed.hardware,
                locations=parsed.locations,
                profiles=parsed.profiles,
                metadata_version=int(version_text) if version_text.isdigit() else None,
                source=source,
            )
        )
    return devices


# --- the asyncio adapter ----------------------------------------------------------------------


class _Collector(asyncio.DatagramProtocol):
    def __init__(self, relates_to: str) -> None:
        self.relates_to = relates_to
        self.devices: dict[str, DiscoveredDevice] = {}
        self.ignored = 0

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        source = str(addr[0])
        try:
            found = parse_probe_matches(data, relates_to=self.relates_to, source=source)
        except MalformedMessage as exc:
            self.ignored += 1
            if self.ignored <= MAX_LOGGED:  # a hostile segment must not flood the log
                log.warning("ignoring a WS-Discovery reply from %s: %s", source, exc)
            return
        for device in found:
            if device.endpoint not in self.devices and len(self.devices) >= MAX_DEVICES:
                self.ignored += 1
                return
            known = self.devices.get(device.endpoint)
            if known is not None:
                # Repeated answers (the probe is sent twice): keep every XAddr seen once.
                extra = tuple(x for x in device.xaddrs if x not in known.xaddrs)
                if not extra:
                    continue
                device = replace(known, xaddrs=known.xaddrs + extra)
            self.devices[device.endpoint] = device

    def error_received(self, exc: Exception) -> None:
        log.warning("WS-Discovery socket error: %s", exc)


def _socket(interface_address: str | None) -> socket.socket:
    if interface_address is not None:
        try:
            address = ipaddress.IPv4Address(interface_address)
        except ValueError as exc:
            raise InvalidInput(f"{interface_address!r} is not an IPv4 address") from exc
        if address.is_multicast or address.is_unspecified:
            raise InvalidInput(f"{interface_address} is not an interface address")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        sock.setblocking(False)
        # The local segment only: a Probe must not be routed beyond it.
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
        try:
            sock.bind((interface_address or "0.0.0.0", 0))  # noqa: S104 - the default interface
            if interface_address is not None:
                sock.setsockopt(
                    socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(interface_address)
                )
        except OSError as exc:
            raise InvalidInput(
                f"cannot send from {interface_address}: {exc.strerror or exc}"
            ) from exc
    except BaseException:
        sock.close()
        raise
    return sock


async def discover(
    interface_address: str | None = None,
    listen_seconds: float = 3.0,
    *,
    group: str = MULTICAST_GROUP,
    port: int = PORT,
    repeat_gap: float = 0.2,
) -> list[DiscoveredDevice]:
    """Probe the segment of ``interface_address`` (the host's default multicast interface when
    None) and return the devices that answered within ``listen_seconds``, by endpoint.

    The Probe goes out twice (UDP may drop one; WS-Discovery repeats multicast messages), the
    second ``repeat_gap`` seconds after the first. Raises InvalidInput when the address is not
    one of this host's.
    """
    if not 0 < listen_seconds <= MAX_TIMEOUT:
        raise InvalidInput(f"listen_seconds must be more than 0 and at most {MAX_TIMEOUT} seconds")
    sock = _socket(interface_address)
    message_id = new_message_id()
    probe = build_probe(message_id)
    try:
        # The first send is made directly, so that "no route", "network down" and the like
        # come back as an error here rather than to the protocol's error_received.
        sock.sendto(probe, (group, port))
    except OSError as exc:
        sock.close()
        where = interface_address or "the default interface"
        raise InvalidInput(
            f"cannot send a WS-Discovery probe from {where}: {exc.strerror or exc}"
        ) from exc
    loop = asyncio.get_running_loop()
    deadline = loop.time() + listen_seconds
    transport, collector = await loop.create_datagram_endpoint(
        lambda: _Collector(message_id), sock=sock
    )
    try:
        await asyncio.sleep(min(repeat_gap, listen_seconds))
        if loop.time() < deadline:
            transport.sendto(probe, (group, port))
        await asyncio.sleep(max(0.0, deadline - loop.time()))
    finally:
        transport.close()
    log.info(
        "WS-Discovery from %s: %d device(s), %d reply(ies) ignored",
        interface_address or "default interface",
        len(collector.devices),
        collector.ignored,
    )
    return sorted(collector.devices.values(), key=lambda d: (d.source, d.endpoint))
