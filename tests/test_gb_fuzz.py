"""Malformed input for the GB/T 28181 cores and the SIP server (acceptance item "malformed
input"): random bytes and mutations of valid messages go to every parser in xueliang.gb28181,
which must parse them or raise the one ParseError (errors.py); any other exception fails. Then
the real GbServer is blasted with junk over UDP and TCP and must go on serving its devices.

Mutations start from valid samples built with the project's own builders (make_request,
authorize, sdp.Offer, manscdp.to_xml, PsMuxer, RtpPacketizer, ptz.encode) and from bytes the
way devices write them: bytes flipped, inserted, deleted, duplicated, truncated; headers
duplicated or folded, Content-Length wrong or conflicting, charset declarations that lie or name
codecs that are no charset, bare '&' and DTDs in XML, numbers thousands of digits long.

Examples are derandomised and the example database is off, so CI runs the same cases every time
and a failure reproduces. For a deeper local run, XUELIANG_FUZZ_SCALE=20 multiplies the examples
and draws fresh ones on each run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.wait import until
from xueliang.gb28181 import manscdp, ptz, sdp
from xueliang.gb28181.errors import ParseError
from xueliang.gb28181.manscdp import (
    Alarm,
    AlarmStatus,
    Catalog,
    CatalogAssembly,
    CatalogItem,
    CatalogQuery,
    DeviceControl,
    DeviceInfo,
    DeviceStatus,
    HomePosition,
    Keepalive,
    MediaStatus,
    MobilePosition,
    Position,
    RecordInfo,
    RecordInfoQuery,
    RecordItem,
    Result,
)
from xueliang.gb28181.ps import Frame, PsDemuxer
from xueliang.gb28181.ps_mux import PsMuxer
from xueliang.gb28181.registrar import Address
from xueliang.gb28181.rtp import (
    Lost,
    Received,
    Rfc4571Decoder,
    RtpPacket,
    RtpPacketizer,
    RtpReceiver,
    frame_rfc4571,
)
from xueliang.gb28181.server import GbServer
from xueliang.gb28181.sip import (
    CSeq,
    DigestAuthenticator,
    DigestChallenge,
    DigestCredentials,
    NameAddr,
    SipMessage,
    SipRequest,
    SipResponse,
    SipUri,
    StreamFramer,
    TransactionTable,
    Verification,
    Via,
    authorize,
    make_request,
    make_response,
    new_branch,
    new_call_id,
    parse_message,
    stamp_received,
)
from xueliang.gb28181.sip.address import quote

T = TypeVar("T")

SCALE = max(1, int(os.environ.get("XUELIANG_FUZZ_SCALE", "1")))


def fuzz(examples: int) -> settings:
    return settings(
        max_examples=examples * SCALE,
        deadline=None,
        derandomize=SCALE == 1,
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def parsed_or_refused(parse: Callable[[], T]) -> T | None:
    """What ``parse`` returns, or None when it refuses with the module's ParseError. Any other
    exception propagates: that is the failure these tests look for."""
    try:
        return parse()
    except ParseError:
        return None


# --- mutation ------------------------------------------------------------------------------

# (kind, where, size, bytes): where is taken modulo the length at the time the edit applies.
Edit = tuple[str, int, int, bytes]
KINDS = ("flip", "set", "insert", "insert", "delete", "truncate", "duplicate")


def apply_edits(data: bytes, edits: Sequence[Edit]) -> bytes:
    out = bytearray(data)
    for kind, where, size, chunk in edits:
        pos = where % (len(out) + 1)
        if kind == "flip":
            if pos < len(out):
                out[pos] ^= 1 << (size % 8)
        elif kind == "set":
            if pos < len(out):
                out[pos] = chunk[0]
        elif kind == "insert":
            out[pos:pos] = chunk
        elif kind == "delete":
            del out[pos : pos + size]
        elif kind == "truncate":
            del out[pos:]
        else:  # duplicate
            out[pos:pos] = out[pos : pos + size]
    return bytes(out)


def edits(tokens: Sequence[bytes], max_edits: int = 6) -> st.SearchStrategy[list[Edit]]:
    chunk = st.one_of(st.sampled_from(tokens), st.binary(min_size=1, max_size=8))
    edit = st.tuples(st.sampled_from(KINDS), st.integers(0, 1 << 20), st.integers(1, 64), chunk)
    return st.lists(edit, min_size=1, max_size=max_edits)


def random_edits(rng: random.Random, tokens: Sequence[bytes], count: int) -> list[Edit]:
    """The same edits from a plain RNG, for the server test's junk."""
    out: list[Edit] = []
    for _ in range(count):
        chunk = rng.choice(tokens) if rng.random() < 0.6 else rng.randbytes(rng.randint(1, 8))
        out.append((rng.choice(KINDS), rng.randrange(1 << 20), rng.randint(1, 64), chunk))
    return out


def mutated(samples: Sequence[bytes], tokens: Sequence[bytes]) -> st.SearchStrategy[bytes]:
    return st.builds(apply_edits, st.sampled_from(samples), edits(tokens))


def wire_text(data: bytes) -> str:
    """Header text as the SIP parser makes it from bytes (invalid UTF-8 kept as surrogates)."""
    return data.decode("utf-8", "surrogateescape")


HUGE = b"9" * 5000  # past the 4300 digits int() converts from text
# Any code point, lone surrogates included, with the awkward ones drawn often enough to matter.
_ANY_CHARACTER = st.one_of(
    st.characters(exclude_categories=()),
    st.sampled_from(
        ["\ud800", "\udcff", "\udfff", "\x00", "\ufffe", "\ufeff", "\r", "\n", "é", "前"]
    ),
)


def any_text(max_size: int) -> st.SearchStrategy[str]:
    # (st.text() would fold the alphabet into its own intervals and lose the lone surrogates.)
    return st.lists(_ANY_CHARACTER, max_size=max_size).map("".join)


# --- samples -------------------------------------------------------------------------------

DOMAIN = "3402000000"
SERVER_ID = "34020000002000000001"
CAMERA = "34020000001320000001"
NVR = "34020000001110000001"
CHANNEL = "34020000001310000001"
PASSWORD = "12345678"
T0 = 1_780_000_000.0
MANSCDP_TYPE = "Application/MANSCDP+xml"
WHEN = datetime(2026, 1, 5, 8, 3)


class FixedNonces(DigestAuthenticator):
    """Nonces without the random salt, so the samples (and the examples) are the same on every
    run; they verify exactly as the real ones do."""

    def _make_nonce(self, now: float) -> str:
        issued, salt = f"{int(now * 1000):x}", "a1b2c3d4e5f6"
        return f"{issued}.{salt}.{self._sign(issued, salt)}"


AUTH = FixedNonces(DOMAIN, secret=b"xueliang-fuzz-secret-32-bytes!!!")
CHALLENGE = AUTH.challenge(T0)
REGISTER_URI = f"sip:{SERVER_ID}@{DOMAIN}"
CREDENTIALS = authorize(
    CHALLENGE,
    username=CAMERA,
    password=PASSWORD,
    method="REGISTER",
    uri=REGISTER_URI,
    cnonce="0a4f113b",
)
AUTH_HEADER = CREDENTIALS.to_header()

ITEMS = (
    CatalogItem(
        device_id=CHANNEL,
        name="前门东侧",
        manufacturer="Hikvision",
        parent_id=NVR,
        parental=0,
        status="ON",
        longitude=117.28,
        latitude=31.86,
        ptz_type=1,
    ),
    CatalogItem(device_id="34020000002150000001", name="业务分组"),
)
MANSCDP_MESSAGES: list[manscdp.Message] = [
    Keepalive(device_id=CAMERA, sn=43, status="OK", faulty_device_ids=(CHANNEL,)),
    CatalogQuery(device_id=NVR, sn=2),
    Catalog(device_id=NVR, sn=2, sum_num=2, items=ITEMS),
    DeviceInfo(
        device_id=CAMERA,
        sn=3,
        device_name="IPC",
        manufacturer="Hikvision",
        model="DS-2CD3T46",
        firmware="V5.5.0",
        channel=1,
    ),
    DeviceStatus(
        device_id=CAMERA,
        sn=4,
        online="ON",
        status="OK",
        device_time=WHEN,
        alarms=(AlarmStatus(device_id=CHANNEL, duty_status="ONDUTY"),),
    ),
    RecordInfoQuery(device_id=CHANNEL, sn=5, start_time=WHEN, end_time=WHEN.replace(hour=9)),
    RecordInfo(
        device_id=CHANNEL,
        sn=5,
        sum_num=1,
        items=(
            RecordItem(
                device_id=CHANNEL,
                name="录像",
                start_time=WHEN,
                end_time=WHEN.replace(hour=9),
                type="time",
                file_size=1024,
            ),
        ),
    ),
    Alarm(
        device_id=CAMERA,
        sn=6,
        alarm_priority=1,
        alarm_method="5",
        alarm_time=WHEN,
        alarm_description="移动侦测",
        longitude=117.28,
        latitude=31.86,
        alarm_type=2,
        event_type=1,
    ),
    MobilePosition(
        device_id=CAMERA,
        sn=7,
        positions=(
            Position(
                device_id=CAMERA,
                time=WHEN,
                longitude=117.28,
                latitude=31.86,
                speed=1.5,
                direction=90.0,
                altitude=12.0,
            ),
        ),
    ),
    MediaStatus(device_id=CHANNEL, sn=8),
    DeviceControl(
        device_id=CHANNEL,
        sn=9,
        ptz_cmd=ptz.encode_hex(ptz.PtzMove(pan=1, tilt=-1, pan_speed=0x40, tilt_speed=0x20)),
        home_position=HomePosition(enabled=True, reset_time=30, preset_index=1),
    ),
    Result(cmd_type="DeviceControl", device_id=CHANNEL, sn=9, result="ERROR"),
]
MANSCDP_TEXTS = [manscdp.to_xml(m, "UTF-8").decode() for m in MANSCDP_MESSAGES]
MANSCDP_SAMPLES = [
    *(manscdp.to_xml(m) for m in MANSCDP_MESSAGES),
    *(text.encode() for text in MANSCDP_TEXTS[:4]),
    # UTF-8 Chinese under a GB2312 declaration, lower-case tags, a bare '&': as devices send.
    b'<?xml version="1.0" encoding="GB2312"?>\r\n<Response><cmdtype>Catalog</cmdtype><SN>2</SN>'
    b'<DeviceID>34020000001110000001</DeviceID><SumNum>1</SumNum><DeviceList Num="1"><Item>'
    b"<DeviceID>34020000001310000001</DeviceID><Name>\xe5\x89\x8d\xe9\x97\xa8 A&B</Name>"
    b"<Status>ONLINE</Status></Item></DeviceList></Response>\x00",
]
KEEPALIVE_XML = manscdp.to_xml(MANSCDP_MESSAGES[0])

OFFER = sdp.Offer(
    session_type=sdp.SessionType.PLAY,
    platform_id=SERVER_ID,
    address="192.168.1.10",
    port=30000,
    ssrc="0340200001",
).to_bytes()
PLAYBACK_OFFER = sdp.Offer(
    session_type=sdp.SessionType.PLAYBACK,
    platform_id=SERVER_ID,
    address="192.168.1.10",
    port=30002,
    ssrc="1340200002",
    channel_id=CHANNEL,
    transport=sdp.Transport.TCP,
    setup=sdp.Setup.PASSIVE,
    start=1_767_571_200,
    stop=1_767_574_800,
    stream_number=1,
    download_speed=4,
    media_format=sdp.MediaFormat("2", "4", "25", "1", "2048", "1", "8", "1"),
).to_bytes()
ANSWER = sdp.Answer(
    device_id=CHANNEL, address="192.168.1.64", port=15060, ssrc="0340200001", file_size=1024
).to_bytes()
# A camera's answer: LF only, GBK in s=, a media-level c=, y= without its leading zero, f=.
DEVICE_ANSWER = (
    b"v=0\no=34020000001320000001 0 0 IN IP4 192.168.1.64\ns=Play \xc7\xb0\xc3\xc5\n"
    b"c=IN IP4 192.168.1.64\nt=0 0\nm=video 15060 TCP/RTP/AVP 96\nc=IN IP4 192.168.1.65/64\n"
    b"a=sendonly\na=rtpmap:96 PS/90000\na=setup:active\na=connection:new\n"
    b"a=filesize:1024\ny=340200001\nf=v/2/4/25/1/2048a/1/8/1\n"
)
SDP_SAMPLES = [OFFER, PLAYBACK_OFFER, ANSWER, DEVICE_ANSWER]


def _request(
    method: str,
    *,
    body: bytes = b"",
    content_type: str | None = None,
    headers: Sequence[tuple[str, str]] = (),
    cseq: int = 1,
    uri: str = REGISTER_URI,
) -> SipRequest:
    return make_request(
        method,
        uri,
        via=Via("UDP", "192.168.1.64", 5060, {"rport": None, "branch": "z9hG4bK1371463273"}),
        from_=NameAddr(SipUri(DOMAIN, user=CAMERA), params={"tag": "2043466181"}),
        to=NameAddr(SipUri(DOMAIN, user=SERVER_ID)),
        call_id="1011047669@192.168.1.64",
        cseq=cseq,
        contact=NameAddr(SipUri("192.168.1.64", user=CAMERA, port=5060)),
        headers=headers,
        body=body,
        content_type=content_type,
    )


REGISTER = _request("REGISTER", headers=[("Expires", "3600")])
AUTHORIZED_REGISTER = _request(
    "REGISTER", headers=[("Expires", "3600"), ("Authorization", AUTH_HEADER)], cseq=2
)
INVITE = _request(
    "INVITE",
    uri=f"sip:{CHANNEL}@{DOMAIN}",
    headers=[("Subject", f"{CHANNEL}:0340200001,{SERVER_ID}:0")],
    body=OFFER,
    content_type="APPLICATION/SDP",
    cseq=20,
)
SIP_SAMPLES = [
    # A camera's first REGISTER: lower-case names, LF only, no Max-Forwards, expires on Contact.
    b"REGISTER sip:34020000002000000001@3402000000 SIP/2.0\n"
    b"via: SIP/2.0/UDP 192.168.1.64:5060;rport;branch=z9hG4bK1371463273\n"
    b"from: <sip:34020000001320000001@3402000000>;tag=2043466181\n"
    b"to: <sip:34020000001320000001@3402000000>\n"
    b"call-id: 1011047669\ncseq: 1 REGISTER\n"
    b"contact: <sip:34020000001320000001@192.168.1.64:5060>;expires=3600\n"
    b"user-agent: IP Camera\ncontent-length: 0\n\n",
    AUTHORIZED_REGISTER.to_bytes(),
    # A keepalive in compact forms, with extra blanks and a folded Via.
    b"MESSAGE sip:34020000002000000001@3402000000 SIP/2.0\r\n"
    b"v: SIP/2.0/UDP 192.168.1.64:5060\r\n ;rport;branch=z9hG4bK412553914\r\n"
    b"f: <sip:34020000001320000001@3402000000>;tag=1565186430\r\n"
    b"t: <sip:34020000002000000001@3402000000>\r\ni: 1924337462\r\nCSeq:   20   MESSAGE\r\n"
    b"c:   Application/MANSCDP+xml\r\nMax-Forwards: 70\r\n"
    b"l: " + str(len(KEEPALIVE_XML)).encode() + b"\r\n\r\n" + KEEPALIVE_XML,
    _request("MESSAGE", body=MANSCDP_SAMPLES[2], content_type=MANSCDP_TYPE, cseq=3).to_bytes(),
    INVITE.to_bytes(),
    make_response(INVITE, 200, to_tag="a1", body=ANSWER, content_type="application/sdp").to_bytes(),
    make_response(REGISTER, 401, headers=[("WWW-Authenticate", CHALLENGE.to_header())]).to_bytes(),
]

SIP_TOKENS = [
    b"\r\n", b"\n", b"\r", b"\r\n\r\n", b"\n\n", b"\r\n ", b":", b";", b",", b"<", b">", b'"',
    b"\\", b" ", b"\t", b"\x00", b"\xff", b"\xc3", b"=", b"@", b"[", b"]", b"?", b"*", b"sip:",
    b"SIP/2.0", b"z9hG4bK", b";tag=", b";expires=", b";rport", b";received=",
    b"Content-Length: 99999999999\r\n", b"l: 3\r\n", b"Via: SIP/2.0/UDP [::1\r\n",
    b"CSeq: 1\r\n", "１２".encode(), HUGE,
]  # fmt: skip
XML_TOKENS = [
    b"&", b"&amp", b"&#0;", b"&#x110000;", b"&bogus;", b"<", b">", b"</", b"/>", b"<!--",
    b"-->", b"<![CDATA[", b"]]>", b"<!DOCTYPE Notify [<!ENTITY x \"y\">]>", b"<!ENTITY",
    b'<?xml version="1.0" encoding="UTF-16"?>', b"\x00", b"\x0b", b"\xef\xbb\xbf", b"\xff\xfe",
    b"\xb0\xa1", b"\xe5\x89\x8d", b"\x80", b"<Item>", b"</Item>", b'<a:b xmlns:a="urn:x">',
    b'xmlns="urn:x"', b"<SN>", b"</SN>", b'Num="99999999999999999999"', HUGE,
]  # fmt: skip
SDP_TOKENS = [
    b"\r\n", b"\n", b"\r", b"=", b" ", b"/", b":", b"\x00", b"\xff", b"\xc7\xb0", b"v=",
    b"m=video ", b"a=rtpmap:", b"a=setup:", b"y=", b"f=", b"t=", b"c=IN IP4 ", HUGE,
]  # fmt: skip


# --- SIP messages ---------------------------------------------------------------------------

_ACCESSORS = (
    "vias",
    "top_via",
    "from_",
    "to",
    "call_id",
    "cseq",
    "contact_is_wildcard",
    "contacts",
    "expires",
    "registration_expires",
    "max_forwards",
    "content_type",
    "content_type_params",
    "branch",
)


def _use_sip(message: SipMessage) -> None:
    """What the platform does with a message it received: every typed header, the transaction
    table, the answer it would send, the received stamp; each may refuse with ParseError."""
    for accessor in _ACCESSORS:
        parsed_or_refused(partial(getattr, message, accessor))
    table = TransactionTable()
    if isinstance(message, SipRequest):
        parsed_or_refused(lambda: message.request_uri)
        parsed_or_refused(
            lambda: table.on_request(message, reliable=False, now=T0, auto_trying=False)
        )
        parsed_or_refused(lambda: make_response(message, 400, "bad MANSCDP body"))
        authorization = message.headers.get("Authorization")
        if authorization is not None:
            parsed_or_refused(lambda: DigestCredentials.parse(authorization))
    else:
        parsed_or_refused(lambda: table.client_for(message))
        parsed_or_refused(lambda: table.on_response(message, T0))
        challenge = message.headers.get("WWW-Authenticate")
        if challenge is not None:
            parsed_or_refused(lambda: DigestChallenge.parse(challenge))
    # Whatever parsed serialises and reads back the same (Content-Length always written).
    again = parse_message(message.to_bytes())
    assert again.to_bytes() == message.to_bytes()
    if isinstance(again, SipRequest):
        parsed_or_refused(lambda: stamp_received(again, "10.1.2.3", 40000))


def _exercise_sip(raw: bytes) -> None:
    message = parsed_or_refused(lambda: parse_message(raw))
    if message is not None:
        _use_sip(message)


LENGTHS = [
    b"0", b"1", b"7", b"99999999999", b"4294967296", b"-1", b"abc", b"", b"0x10",
    "１２".encode(), b" 7 ", b"1e3", HUGE,
]  # fmt: skip
HEADER_LINES = [
    b" folded continuation", b"\tfolded", b"no colon here", b": empty name", b"Bad Name: x",
    b"X-\xff: y", b"Via: SIP/2.0/UDP [::1;branch=z9hG4bK", b"v: SIP/2.0/TCP host:99999",
    b"Via: , , ,", b'From: "unterminated <sip:a@b>', b"t: sip:a@b c", b"CSeq: 99999999999 X",
    b"CSeq: 1", b"CSeq: 4294967296 MESSAGE", b"i:", b"Call-ID:", b"m: *",
    b"Contact: <sip:a@b>;expires=" + HUGE, b"Expires: -1", b"Max-Forwards: " + HUGE,
    b"Authorization: Digest nonce=\"\xff.a.b\", username=\"\xc3\xa9\"", b"Content-Type: ;",
    b"c: Application/MANSCDP+xml; charset=undefined", b"X-Long: " + b"x" * 20000,
]  # fmt: skip
HEADER_VALUES = [
    b"", b"<", b">", b"<sip:>", b"sip:", b"sip:@", b"sip:a@b:0", b"sip:a@b:65536",
    b"sip:a@[::1", b'"\\', b";;;", b";=", b"\xff\xfe", b"SIP/2.0/UDP", b"SIP/2.0/UDP h;branch",
    b"1 ", "１ MESSAGE".encode(), b"<sip:a@b>;tag=1;tag=2", b"*, <sip:a@b>", HUGE, b"a" * 3000,
]  # fmt: skip
START_LINES = [
    b"", b" ", b"REGISTER", b"REGISTER sip:a@b", b"REGISTER sip:a@b SIP/2.0 extra",
    b"register sip:a@b sip/2.0", b"REG\xffISTER sip:a@b SIP/2.0", b"MESSAGE no-uri SIP/2.0",
    b"MESSAGE sip:a@b SIP/3.0", b"SIP/2.0", b"SIP/2.0 200", b"SIP/2.0 2000 OK",
    b"SIP/2.0 099 Low", b"SIP/2.0 700 High", "SIP/2.0 ٢٠٠ OK".encode(), b"SIP/2.0 abc OK",
    b"\x00\x00\x01\xba",
]  # fmt: skip
_SIP_OPS = ("duplicate", "drop", "length", "second length", "body", "header", "value", "start")


@st.composite
def sip_structural(draw: st.DrawFn) -> bytes:
    """A valid message taken apart at its lines: headers duplicated, dropped, broken, a wrong or
    second Content-Length, another body, another start line, other line ends."""
    head, body = re.split(rb"\r?\n\r?\n", draw(st.sampled_from(SIP_SAMPLES)), maxsplit=1)
    lines = re.split(rb"\r?\n", head)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(_SIP_OPS))
        at = draw(st.integers(1, len(lines)))
        existing = draw(st.integers(1, max(1, len(lines) - 1)))
        if op == "duplicate" and len(lines) > 1:
            lines.insert(at, lines[existing])
        elif op == "drop" and len(lines) > 1:
            del lines[existing]
        elif op == "length":
            lines = [line for line in lines if not re.match(rb"(?i)(l|content-length)\s*:", line)]
            lines.insert(min(at, len(lines)), b"Content-Length: " + draw(st.sampled_from(LENGTHS)))
        elif op == "second length":
            lines.insert(at, b"l: " + draw(st.sampled_from(LENGTHS)))
        elif op == "body":
            body = draw(st.one_of(manscdp_mutated(), st.binary(max_size=200)))
        elif op == "header":
            lines.insert(at, draw(st.sampled_from(HEADER_LINES)))
        elif op == "value" and len(lines) > 1:
            name = lines[existing].partition(b":")[0]
            lines[existing] = name + b": " + draw(st.sampled_from(HEADER_VALUES))
        elif op == "start":
            lines[0] = draw(st.sampled_from(START_LINES))
    eol = draw(st.sampled_from([b"\r\n", b"\n", b"\r"]))
    return eol.join(lines) + eol + eol + body


@fuzz(300)
@given(st.binary(max_size=400))
def test_sip_random_bytes(raw: bytes) -> None:
    _exercise_sip(raw)


@fuzz(500)
@given(mutated(SIP_SAMPLES, SIP_TOKENS))
def test_sip_mutated_messages(raw: bytes) -> None:
    _exercise_sip(raw)


@fuzz(400)
@given(sip_structural())
def test_sip_broken_headers_lengths_and_bodies(raw: bytes) -> None:
    _exercise_sip(raw)


def _framed(stream: bytes, cuts: Sequence[int]) -> tuple[list[bytes], bool]:
    """Messages a framer (small limits, so they are reached) gets from ``stream`` fed in pieces
    of the ``cuts`` sizes, and whether the stream failed; after a failure it stays failed."""
    framer = StreamFramer(max_header_bytes=2048, max_body_bytes=4096)
    out: list[bytes] = []
    pos = index = 0
    while pos < len(stream):
        step = cuts[index % len(cuts)]
        try:
            out += [message.to_bytes() for message in framer.feed(stream[pos : pos + step])]
        except ParseError:
            with pytest.raises(ParseError):
                framer.feed(b"\r\n")
            return out, True
        pos += step
        index += 1
    assert framer.buffered <= 2048 + 4 + 4096
    return out, False


@fuzz(250)
@given(
    st.lists(
        st.one_of(
            st.sampled_from(SIP_SAMPLES),
            mutated(SIP_SAMPLES, SIP_TOKENS),
            sip_structural(),
            st.binary(max_size=100),
        ),
        min_size=1,
        max_size=3,
    ),
    st.sampled_from([b"", b"\r\n", b"\r\n\r\n"]),
    st.lists(st.integers(1, 700), min_size=1, max_size=8),
)
def test_stream_framer_gives_the_same_in_any_chunking(
    messages: list[bytes], keepalive: bytes, cuts: list[int]
) -> None:
    stream = keepalive + keepalive.join(messages)
    whole, whole_failed = _framed(stream, [max(1, len(stream))])
    pieces, pieces_failed = _framed(stream, cuts)
    assert pieces_failed == whole_failed
    if not whole_failed:
        assert pieces == whole
    for raw in pieces:
        _exercise_sip(raw)


# --- SIP header values -----------------------------------------------------------------------

ADDRESS_SAMPLES = [
    b"<sip:34020000001320000001@3402000000>;tag=2043466181",
    b'"Camera \\"1\\"" <sips:34020000001320000001@192.168.1.64:5061;transport=tcp>;expires=60',
    b"sip:34020000001320000001@3402000000;tag=1",
    b"sip:user:secret@[2001:db8::1]:5060;lr;maddr=10.0.0.1?subject=x&priority=urgent",
    b"SIP/2.0/UDP 192.168.1.64:5060;rport=5060;received=10.1.2.3;branch=z9hG4bK1371463273",
    b"SIP / 2.0 / tcp [::1]:5060;branch=z9hG4bKabc;alias",
    b"20 MESSAGE",
]
ADDRESS_TOKENS = [
    b"<", b">", b'"', b"\\", b";", b"=", b":", b"@", b"[", b"]", b"?", b",", b" ", b"\t",
    b"\xff", b"\xc3\xa9", b"sip:", b"sips:", b"tel:", b"SIP/2.0/", b";expires=", b";rport=",
    b"65536", b"0", "１".encode(), HUGE,
]  # fmt: skip
ADDRESS_TEXT = st.text(
    st.sampled_from([*'sip:SIP/2.0UDPtcp@[]<>;=,"\\ .-_0123456789abfAF?&\t*', "é", "\udcff", "١"]),
    max_size=60,
)


@fuzz(400)
@given(
    st.one_of(
        mutated(ADDRESS_SAMPLES, ADDRESS_TOKENS).map(wire_text),
        st.binary(max_size=80).map(wire_text),
        ADDRESS_TEXT,
        any_text(40),
    )
)
def test_address_parsers(text: str) -> None:
    address = parsed_or_refused(lambda: NameAddr.parse(text))
    if address is not None:
        _ = (address.tag, address.uri.transport, str(address), address.with_tag("t1"))
        parsed_or_refused(lambda: address.expires)
        parsed_or_refused(lambda: NameAddr.parse(str(address)))
    via = parsed_or_refused(lambda: Via.parse(text))
    if via is not None:
        _ = (via.branch, via.received, via.has_rport, via.sent_by, str(via))
        parsed_or_refused(lambda: via.rport)
        parsed_or_refused(lambda: Via.parse(str(via.with_received("10.1.2.3", 40000))))
    uri = parsed_or_refused(lambda: SipUri.parse(text))
    if uri is not None:
        _ = (uri.transport, str(uri))
        parsed_or_refused(lambda: SipUri.parse(str(uri)))
    cseq = parsed_or_refused(lambda: CSeq.parse(text))
    if cseq is not None:
        assert CSeq.parse(str(cseq)) == cseq


# --- digest ----------------------------------------------------------------------------------

AUTH_TOKENS = [
    b",", b"=", b'"', b"\\", b" ", b"\xff", b"\xc3\xa9", b"\xe5\x89\x8d", b"Digest ",
    b"Basic ", b"username=", b"nonce=", b'nonce="1.2.3"', b'nonce="\xc3\xa9.a.b"',
    b'nonce="\xff.a.b"', b"qop=auth-int", b"qop=bogus", b"algorithm=SHA-256-sess",
    b"algorithm=bogus", b"nc=", b"cnonce=", b"uri=", b"response=", HUGE[:64],
]  # fmt: skip
_CREDENTIAL_FIELDS = {
    "username": CAMERA,
    "realm": DOMAIN,
    "nonce": CHALLENGE.nonce,
    "uri": REGISTER_URI,
    "response": CREDENTIALS.response,
    "algorithm": "MD5",
    "qop": "auth",
    "nc": CREDENTIALS.nc or "",
    "cnonce": "0a4f113b",
    "opaque": "",
}
GARBAGE_TEXT = st.one_of(
    st.binary(max_size=40).map(wire_text),
    any_text(40),
    st.sampled_from(["", "é", "前", "\udcff", "1.a.é", "0.0.0", "ffffffffffffffffffff.a.b"]),
)


def _verify(value: str | None) -> Verification:
    return AUTH.verify(
        value, method="REGISTER", now=T0 + 1, password_for=lambda _username: PASSWORD
    )


def test_the_digest_samples_verify() -> None:
    assert _verify(AUTH_HEADER).ok
    assert _verify(_header(_CREDENTIAL_FIELDS)).ok


def _header(fields: dict[str, str]) -> str:
    """An Authorization value with every field quoted (and escaped) as RFC 2617 writes it."""
    return "Digest " + ", ".join(f"{name}={quote(value)}" for name, value in fields.items())


@fuzz(400)
@given(
    st.one_of(
        mutated([AUTH_HEADER.encode(), CHALLENGE.to_header().encode()], AUTH_TOKENS).map(wire_text),
        st.binary(max_size=200).map(wire_text),
        any_text(200),
    )
)
def test_digest_garbage_authorization_is_refused_not_raised(value: str) -> None:
    verdict = _verify(value)
    assert isinstance(verdict, Verification)
    parsed_or_refused(lambda: DigestCredentials.parse(value))
    challenge = parsed_or_refused(lambda: DigestChallenge.parse(value))
    if challenge is not None:
        # The device side answers whatever challenge it was given.
        authorize(challenge, username=CAMERA, password=PASSWORD, method="REGISTER", uri="sip:x")


@fuzz(300)
@given(st.sampled_from(sorted(_CREDENTIAL_FIELDS)), GARBAGE_TEXT)
def test_digest_garbage_fields_beside_a_valid_nonce(name: str, value: str) -> None:
    """One field garbage, the rest (the nonce above all) valid: the digest is computed."""
    verdict = _verify(_header({**_CREDENTIAL_FIELDS, name: value}))
    assert isinstance(verdict, Verification)


# --- SDP -------------------------------------------------------------------------------------

SDP_LINES = [
    "t=" + "9" * 5000 + " 0", "v=" + "9" * 5000, "m=video " + "9" * 5000 + " RTP/AVP 96",
    "m=video 99999 RTP/AVP 96", "m=video -1 RTP/AVP 96", "m=video", "m=", "a=rtpmap:96",
    "a=rtpmap:96 PS/" + "9" * 20, "a=rtpmap:٩٦ PS/90000", "a=downloadspeed:" + "9" * 5000,
    "a=filesize:" + "9" * 5000, "a=streamnumber:-1", "a=setup:bogus", "a=sendonly:x",
    "c=IN IP4", "c=IN IP4 /127", "c=", "y=" + "9" * 5000, "y=abc", "y=", "f=v/////a///",
    "f=" + "a/" * 500, "f=v/" + "/" * 500, "o=", "s=", "u=:", "t=1 2 3", "t=x y", "t=",
    "m=audio 0 TCP/RTP/AVP 8 " + "1" * 50, "a=connection:", "x=\x00", "\ufeffv=0", "１=２",
]  # fmt: skip
_SDP_OPS = ("duplicate", "drop", "insert", "value")


@st.composite
def sdp_structural(draw: st.DrawFn) -> bytes:
    text = draw(st.sampled_from(SDP_SAMPLES)).decode("gb18030")
    lines = re.split(r"\r\n|\r|\n", text.rstrip())
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(_SDP_OPS))
        at = draw(st.integers(0, len(lines)))
        existing = draw(st.integers(0, max(0, len(lines) - 1)))
        if op == "duplicate" and lines:
            lines.insert(at, lines[existing])
        elif op == "drop" and lines:
            del lines[existing]
        elif op == "insert":
            lines.insert(at, draw(st.sampled_from(SDP_LINES)))
        elif op == "value" and lines:
            letter = lines[existing].partition("=")[0]
            value = draw(st.sampled_from(SDP_LINES)).partition("=")[2]
            lines[existing] = f"{letter}={value}"
    eol = draw(st.sampled_from(["\r\n", "\n", "\r"]))
    encoding = draw(st.sampled_from(["utf-8", "gb18030", "utf-16", "latin-1"]))
    return (eol.join(lines) + eol).encode(encoding, "replace")


def _exercise_sdp(body: bytes | str) -> None:
    parsed = parsed_or_refused(lambda: sdp.parse(body))
    if parsed is None:
        return
    # Used the way the platform and the simulator use an answer or an offer.
    target = sdp.answer_target(sdp.parse(OFFER), parsed)
    _ = (target.platform_connects, parsed.session_type, parsed.channel_id, parsed.range_unix)
    _ = (parsed.is_history, parsed.ssrc_value, parsed.video())
    if parsed.media_format is not None:
        _ = (parsed.media_format.video_codec_name, parsed.media_format.resolution_name)
    if parsed.first_media() is not None:
        sdp.answer_for(parsed, device_id=CHANNEL, address="192.168.1.64", port=15060).to_bytes()
    if isinstance(body, bytes):  # text from bytes can always be written again
        again = sdp.parse(parsed.to_bytes())
        assert again.media == parsed.media and again.ssrc == parsed.ssrc


@fuzz(300)
@given(st.binary(max_size=400))
def test_sdp_random_bytes(body: bytes) -> None:
    _exercise_sdp(body)


@fuzz(400)
@given(st.one_of(mutated(SDP_SAMPLES, SDP_TOKENS), sdp_structural()))
def test_sdp_mutated_samples(body: bytes) -> None:
    _exercise_sdp(body)


@fuzz(150)
@given(any_text(200))
def test_sdp_text(body: str) -> None:
    _exercise_sdp("v=0\r\n" + body)


# --- MANSCDP ---------------------------------------------------------------------------------

CHARSETS = [
    "GB2312", "gbk", "GB18030", "UTF-8", "utf8", "UTF-16", "utf-32", "ISO-8859-1", "US-ASCII",
    "Big5", "Shift_JIS", "undefined", "unicode_escape", "raw_unicode_escape", "idna",
    "punycode", "utf-7", "base64", "rot13", "zlib", "hex", "mbcs", "bogus-charset", "x" * 40,
    "",
]  # fmt: skip
XML_VALUES = [
    "", " ", "&", "&amp", "&#0;", "&#x110000;", "&#99999999;", "&bogus;", "<", "]]>",
    "9" * 5000, "-" + "9" * 30, "١٢٣", "１２３", "1e999", "nan", "-inf", "0x10", "1_000",
    "2026-13-45T99:99:99", "2026-01-05T08:03:00+99:99", "0000-00-00T00:00:00",
    "9999-12-31T23:59:59.9999999999-23:59", "2026-1-5 8:3:0,5Z", "\x00", "\ufffe", "前门",
    "A5" + "Z" * 14, "A50F01" + "0" * 9, "a50f0100000000b5", "A50F0181000100B6 ", "\u202e",
]  # fmt: skip
ENCODINGS = ["utf-8", "gb18030", "gb2312", "utf-16", "utf-16-le", "utf-32", "big5", "latin-1"]
_XML_OPS = ("declare", "undeclare", "value", "insert", "case", "unclose", "nest")
_TEXT_NODE = re.compile(r">([^<>]*)</")


@st.composite
def manscdp_mutated(draw: st.DrawFn) -> bytes:
    """A valid body with lying or impossible charsets, broken text and markup, then bytes."""
    text = draw(st.sampled_from(MANSCDP_TEXTS))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(_XML_OPS))
        at = draw(st.integers(0, len(text)))
        if op == "declare":
            charset = draw(st.sampled_from(CHARSETS))
            text = re.sub(r'encoding="[^"]*"', f'encoding="{charset}"', text, count=1)
        elif op == "undeclare":
            text = re.sub(r"^<\?xml[^>]*>", "", text)
        elif op == "value":
            nodes = list(_TEXT_NODE.finditer(text))
            if nodes:
                node = nodes[draw(st.integers(0, len(nodes) - 1))]
                value = draw(st.sampled_from(XML_VALUES))
                text = text[: node.start(1)] + value + text[node.end(1) :]
        elif op == "insert":
            text = text[:at] + draw(st.sampled_from(XML_TOKENS)).decode("latin-1") + text[at:]
        elif op == "case":
            text = draw(st.sampled_from([text.lower(), text.upper(), text.swapcase()]))
        elif op == "unclose":
            text = re.sub(r"</[^>]*>", "", text, count=draw(st.integers(1, 3)))
        else:
            depth = draw(st.sampled_from([3, 300]))
            text = text[:at] + "<a>" * depth + text[at:]
    data = text.encode(draw(st.sampled_from(ENCODINGS)), "replace")
    if draw(st.booleans()):
        data = apply_edits(data, draw(edits(XML_TOKENS, 3)))
    return data


def _exercise_manscdp(body: bytes | str) -> None:
    parsed = parsed_or_refused(lambda: manscdp.parse(body))
    if parsed is None:
        return
    message = parsed.message
    # What the server and the simulator do with a message they accepted.
    if isinstance(message, DeviceControl):
        parsed_or_refused(message.decoded_ptz)
    elif isinstance(message, Catalog):
        assembly = CatalogAssembly(message.device_id, message.sn or 0)
        if assembly.accepts(message):
            assembly.add(message)
        for item in message.items:
            _ = (item.type_code, item.online, item.is_business_group)
    for encoding in ("GB2312", "UTF-8"):
        again = manscdp.parse(manscdp.to_xml(message, encoding))
        assert type(again.message) is type(message)


@fuzz(300)
@given(st.binary(max_size=400))
def test_manscdp_random_bytes(body: bytes) -> None:
    _exercise_manscdp(body)


@fuzz(300)
@given(st.one_of(mutated(MANSCDP_SAMPLES, XML_TOKENS), manscdp_mutated()))
def test_manscdp_mutated_samples(body: bytes) -> None:
    _exercise_manscdp(body)


@fuzz(200)
@given(
    st.sampled_from(MANSCDP_TEXTS),
    st.one_of(st.sampled_from(CHARSETS), st.text(max_size=12)),
    st.sampled_from(ENCODINGS),
    st.binary(min_size=1, max_size=4).map(lambda b: bytes([0x80 | b[0]]) + b[1:]),
    st.integers(0, 400),
)
def test_manscdp_any_declared_charset(
    sample: str, charset: str, encoding: str, junk: bytes, at: int
) -> None:
    """Whatever the declaration names (a GB charset, a lie, a codec that is no charset, no
    charset at all) over bytes that are not ASCII, so the declaration is consulted."""
    declared = re.sub(r'encoding="[^"]*"', lambda _: f'encoding="{charset}"', sample, count=1)
    data = declared.encode(encoding, "replace")
    at %= len(data) + 1
    _exercise_manscdp(data[:at] + junk + data[at:])


@fuzz(150)
@given(st.sampled_from(MANSCDP_TEXTS), any_text(30), st.integers(0, 400))
def test_manscdp_text(sample: str, junk: str, at: int) -> None:
    at %= len(sample) + 1
    _exercise_manscdp(sample[:at] + junk + sample[at:])


# --- PTZCmd ----------------------------------------------------------------------------------

_PTZ_COMMANDS: list[tuple[ptz.PtzCommand, int]] = [
    (ptz.STOP, 1),
    (ptz.PtzMove(pan=-1, tilt=1, zoom=1, pan_speed=255, tilt_speed=1, zoom_speed=15), 4095),
    (ptz.FocusIris(focus=1, iris=-1, focus_speed=9, iris_speed=9), 1),
    (ptz.Preset(ptz.PresetOp.CALL, 3), 1),
    (ptz.Cruise(ptz.CruiseOp.SET_DWELL, 2, 4095), 1),
    (ptz.Scan(ptz.ScanOp.SET_SPEED, 1, 300), 1),
    (ptz.Auxiliary(on=True, number=1), 1),
]
PTZ_SAMPLES = [ptz.encode_hex(command, address) for command, address in _PTZ_COMMANDS]


def _exercise_ptz(data: bytes | str) -> None:
    decoded = parsed_or_refused(lambda: ptz.decode(data))
    if decoded is not None:
        assert 0 <= decoded.address <= ptz.ADDRESS_MAX


@fuzz(300)
@given(
    st.one_of(
        st.binary(max_size=10),
        any_text(20),
        mutated([s.encode() for s in PTZ_SAMPLES], [b" ", b"G", b"\x00", b"0", "٣".encode()]).map(
            wire_text
        ),
    )
)
def test_ptz_random_and_mutated(data: bytes | str) -> None:
    _exercise_ptz(data)


@fuzz(300)
@given(st.binary(min_size=5, max_size=5), st.integers(0, 15))
def test_ptz_well_formed_frames_with_any_command(body: bytes, version: int) -> None:
    # Lead byte, check nibble and checksum right, so every command byte reaches the decoder.
    head = [ptz.LEAD, (version << 4) | ((0xA + 0x5 + version) & 0x0F), *body]
    _exercise_ptz(bytes([*head, sum(head) & 0xFF]))


# --- RTP and PS ------------------------------------------------------------------------------

SSRC = 340200001
SPS = b"\x00\x00\x00\x01\x67\x64\x00\x1f\xac\xd9\x40"
PPS = b"\x00\x00\x00\x01\x68\xee\x3c\x80"


def _video(index: int) -> Frame:
    key = index % 4 == 0
    data = (SPS + PPS + b"\x00\x00\x00\x01\x65\x88" + b"\x11" * 300) if key else (
        b"\x00\x00\x00\x01\x41\x9a" + bytes([index + 1]) * 120
    )  # fmt: skip
    return Frame(0xE0, "video", "h264", 900 + 3600 * index, 900 + 3600 * index, key, data)


def _ps_units() -> list[bytes]:
    muxer = PsMuxer(audio_codec="pcm_alaw")
    units: list[bytes] = []
    for index in range(6):
        units.append(muxer.mux(_video(index)))
        audio = Frame(0xC0, "audio", "pcm_alaw", 900 + 3600 * index, 0, True, b"\xd5" * 80)
        units.append(muxer.mux(audio))
    return units


PS_UNITS = _ps_units()
PS_SAMPLE = b"".join(PS_UNITS)
_PACKETIZER = RtpPacketizer(ssrc=SSRC, payload_type=96, mtu=300, sequence=65530)
RTP_STREAM = [
    packet for n, unit in enumerate(PS_UNITS) for packet in _PACKETIZER.packetize(unit, 3600 * n)
]
RTP_SAMPLES = [
    RTP_STREAM[0],
    RtpPacket(
        payload_type=96,
        sequence=7,
        timestamp=3600,
        ssrc=SSRC,
        payload=PS_UNITS[1][:40],
        marker=True,
        csrcs=(1, 2, 3),
        extension=(0xBEDE, b"\x10\xff\x00\x00"),
        padding=4,
    ).serialise(),
]
RTP_TOKENS = [b"\x80", b"\xbf", b"\xff", b"\x00\x00", b"\xff\xff\xff\xff", b"\x0f"]
PS_TOKENS = [
    b"\x00\x00\x01\xba", b"\x00\x00\x01\xbb", b"\x00\x00\x01\xbc", b"\x00\x00\x01\xbd",
    b"\x00\x00\x01\xbe", b"\x00\x00\x01\xb9", b"\x00\x00\x01\xc0\x00\x00",
    b"\x00\x00\x01\xe0\x00\x00", b"\x00\x00\x01\xe0\xff\xff", b"\x00\x00\x00\x01\x65",
    b"\x00\x00\x01\x09\x10", b"\x00\x00\x01\x40\x01", b"\xff" * 16, b"\x00" * 8,
]  # fmt: skip


@fuzz(300)
@given(
    st.one_of(
        st.binary(max_size=120),
        st.binary(min_size=1, max_size=120).map(lambda b: bytes([0x80 | b[0] & 0x3F]) + b[1:]),
        mutated(RTP_SAMPLES, RTP_TOKENS),
    )
)
def test_rtp_packets(data: bytes) -> None:
    packet = parsed_or_refused(lambda: RtpPacket.parse(data))
    if packet is not None:
        assert RtpPacket.parse(packet.serialise()) == packet


@fuzz(200)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2),  # which sender
            st.sampled_from([1, 1, 1, 2, 0, -1, -5, 40, 200, 3001, 30000, -150]),  # seq step
            st.booleans(),  # a timer flush after it
        ),
        max_size=60,
    ),
    st.sampled_from([None, SSRC, 7]),
    st.integers(1, 4),
)
def test_rtp_receiver_any_order(
    steps: list[tuple[int, int, bool]], expected: int | None, window: int
) -> None:
    receiver = RtpReceiver(window=window, expected_ssrc=expected)
    sequence = 65500
    delivered: set[int] = set()
    pushed: list[RtpPacket] = []
    for sender, step, flush in steps:
        sequence = (sequence + step) & 0xFFFF
        packet = RtpPacket(96, sequence, 0, (SSRC, 7, 99)[sender], b"x")
        pushed.append(packet)
        events = receiver.push(packet)
        if flush:
            events += receiver.flush()
        for event in events:
            if isinstance(event, Received):
                assert id(event.packet) not in delivered  # no packet comes out twice
                delivered.add(id(event.packet))
            elif isinstance(event, Lost):
                assert event.count >= 0
    assert delivered <= {id(packet) for packet in pushed}
    assert receiver.stats.foreign >= 0 and receiver.stats.lost >= 0


@fuzz(200)
@given(
    st.lists(st.binary(max_size=300), max_size=8),
    st.binary(max_size=300),
    st.lists(st.integers(1, 400), min_size=1, max_size=6),
)
def test_rfc4571_framing_in_any_chunking(
    packets: list[bytes], junk: bytes, cuts: list[int]
) -> None:
    stream = b"".join(frame_rfc4571(packet) for packet in packets) + junk
    decoder = Rfc4571Decoder()
    out: list[bytes] = []
    pos = index = 0
    while pos < len(stream):
        step = cuts[index % len(cuts)]
        out += decoder.feed(stream[pos : pos + step])
        pos += step
        index += 1
    assert out[: len([p for p in packets if p])] == [p for p in packets if p]
    assert out == [p for p in packets if p] + Rfc4571Decoder().feed(junk)
    assert decoder.pending <= 0xFFFF + 2
    for packet in out:
        parsed_or_refused(partial(RtpPacket.parse, packet))


def _demux(data: bytes, cuts: Sequence[int]) -> list[Frame]:
    """PS fed in pieces, with a loss reported every few pieces; feed itself never raises."""
    demuxer = PsDemuxer()
    frames: list[Frame] = []
    pos = index = 0
    while pos < len(data):
        step = cuts[index % len(cuts)]
        frames += demuxer.feed(data[pos : pos + step])
        if index % 5 == 4:
            frames += demuxer.discontinuity()
        if index % 3 == 2:
            frames += demuxer.end_frame()
        pos += step
        index += 1
    return frames + demuxer.flush()


def _check_frames(frames: list[Frame]) -> None:
    for frame in frames:
        assert frame.kind in ("video", "audio") and isinstance(frame.data, bytes)
        assert frame.dts >= 0 and frame.pts >= 0


@fuzz(150)
@given(
    st.one_of(
        st.binary(max_size=2000),
        st.binary(max_size=2000).map(lambda b: b"\x00\x00\x01\xba" + b),
        mutated([PS_SAMPLE], PS_TOKENS),
    ),
    st.lists(st.integers(1, 700), min_size=1, max_size=6),
)
def test_ps_random_and_mutated_bytes(data: bytes, cuts: list[int]) -> None:
    _check_frames(_demux(data, cuts))


@fuzz(120)
@given(
    st.lists(st.tuples(st.integers(0, len(RTP_STREAM) - 1), edits(RTP_TOKENS + PS_TOKENS, 3))),
    st.lists(st.integers(0, len(RTP_STREAM) - 1), max_size=4),  # lost
    st.lists(st.integers(0, len(RTP_STREAM) - 1), max_size=4),  # sent twice
)
def test_rtp_to_ps_pipeline_with_damaged_packets(
    damage: list[tuple[int, list[Edit]]], lost: list[int], twice: list[int]
) -> None:
    """The path media takes: RTP parsed, put in order, PS demuxed; losses reported."""
    packets = list(RTP_STREAM)
    for index, packet_edits in damage:
        packets[index] = apply_edits(packets[index], packet_edits)
    wire = [p for n, p in enumerate(packets) if n not in lost]
    wire += [packets[n] for n in twice]
    receiver = RtpReceiver(window=4, expected_ssrc=SSRC)
    demuxer = PsDemuxer()
    frames: list[Frame] = []
    for raw in wire:
        packet = parsed_or_refused(partial(RtpPacket.parse, raw))
        if packet is None:
            continue
        for event in receiver.push(packet):
            if isinstance(event, Received):
                frames += demuxer.feed(event.packet.payload)
                if event.packet.marker:
                    frames += demuxer.end_frame()
            elif isinstance(event, Lost):
                frames += demuxer.discontinuity()
    for event in receiver.flush():
        if isinstance(event, Received):
            frames += demuxer.feed(event.packet.payload)
    _check_frames(frames + demuxer.flush())


def test_undamaged_samples_are_valid() -> None:
    """The mutations start from input every parser accepts."""
    for raw in SIP_SAMPLES:
        _use_sip(parse_message(raw))
    for body in SDP_SAMPLES:
        assert sdp.parse(body).media
    for body in MANSCDP_SAMPLES:
        manscdp.parse(body)
    for text in PTZ_SAMPLES:
        ptz.decode(text)
    for raw in RTP_SAMPLES:
        RtpPacket.parse(raw)
    frames = _demux(PS_SAMPLE, [len(PS_SAMPLE)])
    assert len([f for f in frames if f.kind == "video"]) == 6
    assert len([f for f in frames if f.kind == "audio"]) == 6


# --- the server ------------------------------------------------------------------------------

GOOD = "34020000001320000101"
SECOND = "34020000001320000102"
ROGUE = "34020000001320000666"


class MemoryDirectory:
    """The platform's register in memory (server.Directory); called from worker threads."""

    def __init__(self, passwords: dict[str, str]) -> None:
        self.passwords = passwords
        self.online_ids: list[str] = []

    def password_for(self, device_id: str) -> str | None:
        return self.passwords.get(device_id)

    def online(self, device_id: str, address: Address, renewed: bool) -> None:
        self.online_ids.append(device_id)

    def offline(self, device_id: str, reason: str) -> None:
        pass

    def device_info(self, device_id: str, info: manscdp.DeviceInfo) -> None:
        pass

    def catalog(self, device_id: str, items: list[manscdp.CatalogItem], complete: bool) -> None:
        pass

    def keepalive(self, device_id: str, info: manscdp.Keepalive) -> None:
        pass


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, receive: Callable[[bytes], None]) -> None:
        self._receive = receive

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self._receive(data)


class Peer:
    """A device (or a junk sender) on a real socket, UDP or TCP: answers the server's requests
    with 200 and hands each of its own requests the final response to it."""

    def __init__(self, device_id: str, server_port: int) -> None:
        self.device_id = device_id
        self.server = ("127.0.0.1", server_port)
        self.transport = "UDP"
        self.local_port = 0
        self._udp: asyncio.DatagramTransport | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reading: asyncio.Task[None] | None = None
        self._waiting: dict[tuple[str, int], asyncio.Future[SipResponse]] = {}
        self._cseq = 0

    async def open_udp(self) -> Peer:
        loop = asyncio.get_running_loop()
        self._udp, _ = await loop.create_datagram_endpoint(
            lambda: _Datagrams(self._datagram), local_addr=("127.0.0.1", 0)
        )
        self.local_port = self._udp.get_extra_info("sockname")[1]
        return self

    async def open_tcp(self) -> Peer:
        reader, self._writer = await asyncio.open_connection(*self.server)
        self.transport = "TCP"
        self.local_port = self._writer.get_extra_info("sockname")[1]
        self._reading = asyncio.create_task(self._read_tcp(reader))
        return self

    async def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._reading is not None:
            self._reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reading
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError):
                await self._writer.wait_closed()

    async def _read_tcp(self, reader: asyncio.StreamReader) -> None:
        framer = StreamFramer()
        while data := await reader.read(65536):
            for message in framer.feed(data):
                self._handle(message)

    def _datagram(self, data: bytes) -> None:
        message = parsed_or_refused(lambda: parse_message(data))
        if message is not None:
            self._handle(message)

    def _handle(self, message: SipMessage) -> None:
        if isinstance(message, SipRequest):
            if message.method != "ACK":
                self.send(make_response(message, 200).to_bytes())
            return
        key = (message.call_id, message.cseq.seq)
        future = self._waiting.get(key)
        if future is not None and not message.provisional and not future.done():
            future.set_result(message)

    def send(self, data: bytes) -> None:
        if self._writer is not None:
            self._writer.write(data)
        elif self._udp is not None:
            self._udp.sendto(data, self.server)

    def build(
        self,
        method: str,
        *,
        body: bytes = b"",
        headers: Sequence[tuple[str, str]] = (),
        call_id: str | None = None,
    ) -> SipRequest:
        self._cseq += 1
        me = SipUri(DOMAIN, user=self.device_id)
        return make_request(
            method,
            REGISTER_URI,
            via=Via(self.transport, "127.0.0.1", self.local_port, {"branch": new_branch()}),
            from_=NameAddr(me, params={"tag": f"tag{self.device_id[-4:]}"}),
            to=NameAddr(me if method == "REGISTER" else SipUri(DOMAIN, user=SERVER_ID)),
            call_id=call_id or new_call_id("127.0.0.1"),
            cseq=self._cseq,
            contact=NameAddr(SipUri("127.0.0.1", user=self.device_id, port=self.local_port)),
            headers=headers,
            body=body,
            content_type=MANSCDP_TYPE if body else None,
        )

    async def ask(self, request: SipRequest) -> SipResponse:
        key = (request.call_id, request.cseq.seq)
        future = self._waiting[key] = asyncio.get_running_loop().create_future()
        try:
            self.send(request.to_bytes())
            return await asyncio.wait_for(future, 5)
        finally:
            del self._waiting[key]

    async def register(self) -> SipResponse:
        call_id = new_call_id("127.0.0.1")
        first = await self.ask(
            self.build("REGISTER", headers=[("Expires", "3600")], call_id=call_id)
        )
        assert first.status == 401, first
        challenge = DigestChallenge.parse(first.headers.get("WWW-Authenticate") or "")
        credentials = authorize(
            challenge, username=self.device_id, password=PASSWORD, method="REGISTER",
            uri=REGISTER_URI,
        )  # fmt: skip
        headers = [("Expires", "3600"), ("Authorization", credentials.to_header())]
        return await self.ask(self.build("REGISTER", headers=headers, call_id=call_id))

    async def keepalive(self) -> SipResponse:
        body = manscdp.to_xml(Keepalive(device_id=self.device_id, sn=self._cseq, status="OK"))
        return await self.ask(self.build("MESSAGE", body=body))


# Bodies of well-formed MESSAGEs that no MANSCDP reader can make sense of: answered 400.
BROKEN_BODIES = [
    b"",
    b"not xml at all",
    b"\x00\xff\xfe\x01junk",
    b'<?xml version="1.0"?><!DOCTYPE Notify [<!ENTITY x "y">]><Notify>&x;</Notify>',
    b"<Notify><SN>1</SN><DeviceID>34020000001320000101</DeviceID></Notify>",  # no CmdType
    b"<Html><CmdType>Keepalive</CmdType></Html>",
    b'<?xml version="1.0" encoding="undefined"?><Notify>\xff</Notify>',
    b'<?xml version="1.0" encoding="unicode_escape"?><Notify>\\ud800\xff</Notify>',
]
# Authorization values a device may send: none of them may stop the server from answering.
BROKEN_AUTHORIZATIONS = [
    "Basic Zm9vOmJhcg==",
    "Digest",
    'Digest username="u"',
    'Digest username="u", realm="r", nonce="\udcff.a.b", uri="sip:x", response="0"',
    'Digest username="u", realm="r", nonce="1.a.\u00e9", uri="sip:x", response="0"',
]


def _udp_junk(rng: random.Random) -> list[bytes]:
    junk = [rng.randbytes(rng.randint(1, 1400)) for _ in range(60)]
    junk += [
        apply_edits(rng.choice(SIP_SAMPLES), random_edits(rng, SIP_TOKENS, rng.randint(1, 6)))
        for _ in range(150)
    ]
    for sample in SIP_SAMPLES:
        head, body = re.split(rb"\r?\n\r?\n", sample, maxsplit=1)
        junk += [
            head + b"\r\nContent-Length: 99999\r\n\r\n" + body,  # longer than the datagram
            head + b"\r\nl: 1\r\nl: 2\r\n\r\n" + body,  # conflicting
            b"\r\n".join(head.splitlines()[1:]) + b"\r\n\r\n" + body,  # no start line
            b" folded\r\n" + sample,
            sample.replace(b"SIP/2.0", b"SIP/3.0", 1),
        ]
    junk += [
        _request("MESSAGE", body=apply_edits(rng.choice(MANSCDP_SAMPLES), random_edits(
            rng, XML_TOKENS, 4)), content_type=MANSCDP_TYPE).to_bytes()
        for _ in range(40)
    ]  # fmt: skip
    junk += [b"\r\n\r\n"] * 5  # keepalives: ignored, not malformed
    rng.shuffle(junk)
    return junk


def _tcp_junk(rng: random.Random) -> list[list[bytes]]:
    """Streams, each as the writes that make it."""
    head = b"MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKx\r\n"
    streams = [
        [SIP_SAMPLES[1][:60]],  # half a message, then the peer goes away
        [head + b"Content-Length: 500\r\n\r\n" + b"<Notify>"],  # half a body
        [head + b"Content-Length: 99999999\r\n\r\n"],  # a giant body announced
        [b"X" * 70_000],  # no end to the header block
        [rng.randbytes(2000) + b"\r\n\r\n"],
        [SIP_SAMPLES[1] + b"GARBAGE / SIP/9.9\r\n\r\n"],
        [b"\r\n" * 100],
        [sample[:n] for sample in SIP_SAMPLES[:3] for n in (1, 50, 200, len(sample))],
    ]
    for _ in range(20):
        stream = b"".join(
            apply_edits(rng.choice(SIP_SAMPLES), random_edits(rng, SIP_TOKENS, 3))
            for _ in range(rng.randint(1, 3))
        )
        cuts = sorted(rng.sample(range(1, len(stream)), min(4, len(stream) - 1)))
        streams.append([stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)])
    return streams


def _framer_fails(writes: list[bytes]) -> bool:
    framer = StreamFramer()
    try:
        for data in writes:
            framer.feed(data)
    except ParseError:
        return True
    return False


async def _send_stream(port: int, writes: list[bytes], fails: bool) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for data in writes:
            writer.write(data)
            with contextlib.suppress(ConnectionError):
                await writer.drain()
        if fails:  # the server drops a connection whose framing is lost

            async def closed() -> None:
                with contextlib.suppress(ConnectionError):
                    while await reader.read(65536):
                        pass

            await asyncio.wait_for(closed(), 5)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def test_server_keeps_serving_devices_through_malformed_input(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    rng = random.Random(28181)
    udp_junk = _udp_junk(rng)
    tcp_junk = _tcp_junk(rng)

    async def main() -> None:
        directory = MemoryDirectory({GOOD: PASSWORD, SECOND: PASSWORD, CAMERA: PASSWORD})
        server = GbServer(directory, platform_id=SERVER_ID, domain=DOMAIN, port=0, lanes=1)
        await server.start()
        peers: list[Peer] = []
        try:
            good = await Peer(GOOD, server.port).open_udp()
            blaster = await Peer(ROGUE, server.port).open_udp()
            peers += [good, blaster]
            assert (await good.register()).status == 200
            assert (await good.keepalive()).status == 200

            # UDP junk in batches; an OPTIONS from the same socket after each batch is a
            # barrier (datagrams from one socket are read in order) and a sign of life.
            unparseable = 0
            for start in range(0, len(udp_junk), 25):
                for data in udp_junk[start : start + 25]:
                    blaster.send(data)
                    if data.strip() and parsed_or_refused(partial(parse_message, data)) is None:
                        unparseable += 1
                assert (await blaster.ask(blaster.build("OPTIONS"))).status == 200
            assert server.stats().malformed >= unparseable > 100

            # TCP junk, each stream on its own connection; those that lose their framing
            # are dropped by the server, and counted.
            before = server.stats().malformed
            failing = 0
            for writes in tcp_junk:
                fails = _framer_fails(writes)
                failing += fails
                await _send_stream(server.port, writes, fails)
            assert failing >= 5
            assert server.stats().malformed - before >= failing

            # Parseable SIP with a MANSCDP body nobody can read: 400, over UDP and TCP.
            for body in BROKEN_BODIES:
                with pytest.raises(ParseError):
                    manscdp.parse(body)
                assert (await good.ask(good.build("MESSAGE", body=body))).status == 400
            second = await Peer(SECOND, server.port).open_tcp()
            peers.append(second)
            answer = await second.ask(second.build("MESSAGE", body=b"<Notify>&&&"))
            assert answer.status == 400

            # Garbage credentials from a registered device are challenged again, not lost.
            for authorization in BROKEN_AUTHORIZATIONS:
                request = good.build("REGISTER", headers=[("Authorization", authorization)])
                assert (await good.ask(request)).status == 401

            # Still serving: the good device's keepalive and MESSAGE, a second device's
            # registration over TCP on the connection whose MESSAGE was just refused.
            keepalives = server.keepalives
            assert (await good.keepalive()).status == 200
            status = DeviceStatus(device_id=GOOD, sn=99, online="ON", status="OK")
            assert (
                await good.ask(good.build("MESSAGE", body=manscdp.to_xml(status)))
            ).status == 200
            assert server.keepalives == keepalives + 1
            assert (await second.register()).status == 200
            assert (await second.keepalive()).status == 200
            assert GOOD in server.registrar and SECOND in server.registrar
            assert len(server.registrar) == 2
            await until(lambda: SECOND in directory.online_ids, 5, "the second device stored")
        finally:
            for peer in peers:
                await peer.close()
            await server.stop()

    asyncio.run(asyncio.wait_for(main(), 60))
    escaped = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not escaped, [r.getMessage() for r in escaped]
