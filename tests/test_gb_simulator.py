"""The GB/T 28181 device simulator: the sans-I/O device with bytes, then with real peers (SIPp
as the registrar, an in-test registrar built from the SIP core, RTP received on a socket)."""

from __future__ import annotations

import asyncio
import itertools
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.ffprobe import video_stream
from tests.support.wait import until
from xueliang.gb28181 import manscdp, sdp
from xueliang.gb28181.ps import PsDemuxer
from xueliang.gb28181.ptz import PtzMove, encode_hex
from xueliang.gb28181.rtp import Rfc4571Decoder, RtpPacket
from xueliang.gb28181.simulator.catalog import device_id, make_channels
from xueliang.gb28181.simulator.device import (
    Device,
    DeviceConfig,
    Output,
    StartStream,
    StopStream,
    Transmit,
)
from xueliang.gb28181.simulator.media import Clip, StreamPacer, encode_clip
from xueliang.gb28181.simulator.runner import RunnerSettings, SimulatorRunner
from xueliang.gb28181.sip import (
    DigestAuthenticator,
    NameAddr,
    SipMessage,
    SipRequest,
    SipResponse,
    SipUri,
    StreamFramer,
    Via,
    make_request,
    make_response,
    new_branch,
    new_call_id,
    new_tag,
    parse_message,
)

DOMAIN = "3402000000"
SERVER_ID = "34020000002000000001"
PASSWORD = "12345678"
T0 = 1_780_000_000.0
SIPP_DIR = Path(__file__).parent / "sipp"
T = TypeVar("T")


def make_device(channels: int = 1, **overrides: Any) -> Device:
    config = DeviceConfig(
        device_id=device_id(DOMAIN, 0, nvr=channels > 1),
        server_id=SERVER_ID,
        domain=DOMAIN,
        password=PASSWORD,
        channels=make_channels(DOMAIN, 0, channels),
        **overrides,
    )
    return Device(config)


def requests(outputs: list[Output]) -> list[SipRequest]:
    found = []
    for out in outputs:
        if isinstance(out, Transmit):
            message = parse_message(out.data)
            if isinstance(message, SipRequest):
                found.append(message)
    return found


def responses(outputs: list[Output]) -> list[SipResponse]:
    found = []
    for out in outputs:
        if isinstance(out, Transmit):
            message = parse_message(out.data)
            if isinstance(message, SipResponse):
                found.append(message)
    return found


def only(items: list[T]) -> T:
    assert len(items) == 1, items
    return items[0]


def register(device: Device, auth: DigestAuthenticator, now: float, expires: int = 3600) -> None:
    """Play the registrar: 401, then check the digest and answer 200."""
    first = only(requests(device.start(now)))
    challenge = make_response(
        first, 401, headers=[("WWW-Authenticate", auth.challenge(now).to_header())]
    )
    second = only(requests(device.receive(challenge.to_bytes(), now)))
    check = auth.verify(
        second.headers.get("Authorization"), method="REGISTER", now=now, password_for=_passwords
    )
    assert check.ok, check
    device.receive(make_response(second, 200, headers=[("Expires", str(expires))]).to_bytes(), now)
    assert device.registered


def _passwords(username: str) -> str | None:
    return PASSWORD if len(username) == 20 else None


def platform_request(
    method: str, target: str, body: bytes = b"", content_type: str | None = None
) -> SipRequest:
    return make_request(
        method,
        f"sip:{target}@{DOMAIN}",
        via=Via("UDP", "127.0.0.1", 5060, {"branch": new_branch()}),
        from_=NameAddr(SipUri(host=DOMAIN, user=SERVER_ID), params={"tag": new_tag()}),
        to=NameAddr(SipUri(host=DOMAIN, user=target)),
        call_id=new_call_id(),
        cseq=20,
        body=body,
        content_type=content_type,
    )


def query(device: Device, message: manscdp.Message, now: float) -> list[manscdp.Message]:
    """Send a MANSCDP MESSAGE; return the answers (after checking the 200)."""
    request = platform_request(
        "MESSAGE", device.config.device_id, manscdp.to_xml(message), "Application/MANSCDP+xml"
    )
    outputs = device.receive(request.to_bytes(), now, ("127.0.0.1", 5060))
    assert [r.status for r in responses(outputs)] == [200]
    answers = requests(outputs)
    assert all(r.method == "MESSAGE" for r in answers)
    return [manscdp.parse_message(r.body) for r in answers]


# --- the state machine with bytes --------------------------------------------------------------


def test_register_answers_the_challenge_with_a_correct_digest() -> None:
    device = make_device()
    auth = DigestAuthenticator(DOMAIN)
    first = only(requests(device.start(T0)))
    assert first.method == "REGISTER"
    assert first.uri == f"sip:{SERVER_ID}@{DOMAIN}"
    assert "Authorization" not in first.headers
    assert first.expires == 3600
    challenge = make_response(
        first, 401, headers=[("WWW-Authenticate", auth.challenge(T0).to_header())]
    )
    second = only(requests(device.receive(challenge.to_bytes(), T0 + 0.01)))
    assert second.call_id == first.call_id
    assert second.cseq.seq == first.cseq.seq + 1
    assert second.branch != first.branch
    verdict = auth.verify(
        second.headers.get("Authorization"), method="REGISTER", now=T0, password_for=_passwords
    )
    assert verdict.ok and verdict.username == device.config.device_id
    assert not device.registered
    device.receive(make_response(second, 200).to_bytes(), T0 + 0.02)
    assert device.registered and device.counters.registrations == 1


def test_wrong_password_backs_off_instead_of_looping() -> None:
    device = make_device()
    auth = DigestAuthenticator(DOMAIN)
    outputs = device.start(T0)
    sent = 0
    while (regs := requests(outputs)) and sent < 10:
        sent += 1
        # The server keeps refusing, each time with a fresh nonce (the password is wrong).
        refusal = make_response(
            regs[0], 401, headers=[("WWW-Authenticate", auth.challenge(T0).to_header())]
        )
        outputs = device.receive(refusal.to_bytes(), T0)
    assert sent <= 4  # the first REGISTER and at most three answered challenges
    assert not device.registered
    deadline = device.next_register
    assert deadline is not None and T0 + 1.5 <= deadline <= T0 + 2.5


def test_registration_failures_retry_with_growing_back_off() -> None:
    device = make_device()
    now = T0
    outputs = device.start(now)
    delays = []
    for _ in range(4):
        reg = only(requests(outputs))
        device.receive(make_response(reg, 403).to_bytes(), now)
        deadline = device.next_register
        assert deadline is not None
        delays.append(deadline - now)
        assert requests(device.tick(deadline - 0.01)) == []
        now = deadline
        outputs = device.tick(now)
    assert 1.8 <= delays[0] <= 2.2
    assert all(later > earlier * 1.5 for earlier, later in itertools.pairwise(delays))


def test_registration_timeout_retries_after_back_off() -> None:
    device = make_device()
    reg = only(requests(device.start(T0)))
    # Unanswered over UDP: retransmitted (same branch), then Timer F gives up after 32 s.
    retransmitted = requests(device.tick(T0 + 0.5))
    assert [r.branch for r in retransmitted] == [reg.branch]
    now = T0
    while (deadline := device.next_deadline) is not None and deadline < T0 + 32.1:
        now = deadline
        device.tick(now)
    assert device.counters.register_failures == 1
    retry = device.next_register
    assert retry is not None and retry > now + 1.5
    again = only(requests(device.tick(retry)))
    assert again.method == "REGISTER" and again.branch != reg.branch


def test_refreshes_registration_before_expiry() -> None:
    device = make_device(keepalive_interval=1000)
    register(device, DigestAuthenticator(DOMAIN), T0, expires=100)
    assert requests(device.tick(T0 + 79)) == []
    refresh = only(requests(device.tick(T0 + 80)))
    assert refresh.method == "REGISTER" and refresh.expires == 3600
    assert device.registered  # still registered while the refresh runs


def test_keepalive_every_interval_and_lost_registration_on_404() -> None:
    device = make_device(keepalive_interval=10)
    register(device, DigestAuthenticator(DOMAIN), T0)
    assert requests(device.tick(T0 + 9.9)) == []
    sns = []
    for n in (1, 2, 3):
        keepalive = only(requests(device.tick(T0 + 10 * n)))
        assert keepalive.method == "MESSAGE"
        body = manscdp.parse_message(keepalive.body)
        assert isinstance(body, manscdp.Keepalive)
        assert body.device_id == device.config.device_id and body.status == "OK"
        sns.append(body.sn)
        device.receive(make_response(keepalive, 200).to_bytes(), T0 + 10 * n)
    assert device.counters.keepalives_ok == 3
    assert len(set(sns)) == 3
    # The server restarted and forgot the device: a 4xx to the keepalive means register again.
    keepalive = only(requests(device.tick(T0 + 40)))
    device.receive(make_response(keepalive, 404).to_bytes(), T0 + 40)
    assert not device.registered
    deadline = device.next_register
    assert deadline is not None and deadline < T0 + 43
    assert only(requests(device.tick(deadline))).method == "REGISTER"


def test_three_unanswered_keepalives_mean_registering_again() -> None:
    device = make_device(keepalive_interval=5)
    register(device, DigestAuthenticator(DOMAIN), T0)
    now = T0
    registers: list[SipRequest] = []
    while now < T0 + 80 and not registers:
        deadline = device.next_deadline
        assert deadline is not None
        now = deadline
        registers = [r for r in requests(device.tick(now)) if r.method == "REGISTER"]
    assert registers, "the device never gave up on the silent server"
    assert device.counters.keepalives_sent >= 3 and device.counters.keepalives_ok == 0


def test_stop_unregisters_answering_the_challenge() -> None:
    device = make_device()
    auth = DigestAuthenticator(DOMAIN)
    register(device, auth, T0)
    unregister = only(requests(device.stop(T0 + 5)))
    assert unregister.method == "REGISTER" and unregister.expires == 0
    assert device.unregistering and not device.registered
    challenge = make_response(
        unregister, 401, headers=[("WWW-Authenticate", auth.challenge(T0).to_header())]
    )
    answered = only(requests(device.receive(challenge.to_bytes(), T0 + 5)))
    assert answered.expires == 0 and "Authorization" in answered.headers
    device.receive(make_response(answered, 200).to_bytes(), T0 + 5)
    assert not device.unregistering and not device.registered
    assert device.next_register is None


def test_catalog_of_an_nvr_with_40_channels_comes_in_pages_of_20() -> None:
    device = make_device(channels=40)
    assert device.config.device_id[10:13] == "118"
    query_msg = manscdp.CatalogQuery(device_id=device.config.device_id, sn=17)
    pages = query(device, query_msg, T0)
    assert len(pages) == 2
    items: list[manscdp.CatalogItem] = []
    for page in pages:
        assert isinstance(page, manscdp.Catalog)
        assert page.sn == 17 and page.sum_num == 40 and page.list_num == 20
        items += page.items
    assert len({item.device_id for item in items}) == 40
    assert all(item.device_id[10:13] == "131" for item in items)
    assert all(item.parent_id == device.config.device_id for item in items)
    # Names in Chinese, survive the GB2312 round trip.
    assert all(item.name and any("\u4e00" <= c <= "\u9fff" for c in item.name) for item in items)
    assert {item.ptz_type for item in items} == {1, 3}
    assert all(item.longitude and 120 < item.longitude < 121 for item in items)
    assert all(item.latitude and 30 < item.latitude < 31 for item in items)


def test_ipc_has_one_channel_and_answers_device_info_and_status() -> None:
    device = make_device()
    (catalog,) = query(device, manscdp.CatalogQuery(device_id=device.config.device_id, sn=1), T0)
    assert isinstance(catalog, manscdp.Catalog) and catalog.sum_num == 1
    (info,) = query(device, manscdp.DeviceInfoQuery(device_id=device.config.device_id, sn=2), T0)
    assert isinstance(info, manscdp.DeviceInfo)
    assert info.channel == 1 and info.manufacturer == "Xueliang" and info.sn == 2
    (status,) = query(
        device, manscdp.DeviceStatusQuery(device_id=device.config.device_id, sn=3), T0
    )
    assert isinstance(status, manscdp.DeviceStatus)
    assert status.online == "ON" and status.status == "OK"
    assert status.device_time == datetime(2026, 5, 29, 4, 26, 40)  # Beijing time


def test_record_info_covers_the_range_in_pages() -> None:
    device = make_device(channels=4, record_page_size=4)
    channel = device.config.channels[2].channel_id
    start, end = datetime(2026, 1, 5, 8, 10), datetime(2026, 1, 5, 11, 0)
    pages = query(
        device, manscdp.RecordInfoQuery(device_id=channel, sn=9, start_time=start, end_time=end), T0
    )
    assert len(pages) == 2
    records = [page for page in pages if isinstance(page, manscdp.RecordInfo)]
    assert len(records) == 2 and all(page.sum_num == 6 for page in records)
    items = [item for page in records for item in page.items]
    assert items[0].start_time == start and items[-1].end_time == end
    assert all(a.end_time == b.start_time for a, b in itertools.pairwise(items))
    assert all(item.device_id == channel for item in items)


def test_ptz_command_is_decoded_and_acknowledged() -> None:
    device = make_device(channels=4)
    channel = device.config.channels[0].channel_id
    command = PtzMove(pan=1, tilt=-1, pan_speed=100, tilt_speed=50)
    control = manscdp.DeviceControl(device_id=channel, sn=5, ptz_cmd=encode_hex(command))
    answers = query(device, control, T0)
    assert answers == []  # PTZ has no Result message, only the 200
    ((target, decoded),) = device.ptz_commands
    assert target == channel and decoded.command == command


def offer_bytes(
    transport: sdp.Transport = sdp.Transport.UDP,
    setup: sdp.Setup | None = None,
    session: sdp.SessionType = sdp.SessionType.PLAY,
    port: int = 30000,
    ssrc: str = "0200000001",
    start: int = 0,
    stop: int = 0,
    channel_id: str | None = None,
) -> bytes:
    return sdp.Offer(
        session_type=session,
        platform_id=SERVER_ID,
        address="127.0.0.1",
        port=port,
        ssrc=ssrc,
        transport=transport,
        setup=setup,
        start=start,
        stop=stop,
        channel_id=channel_id,
    ).to_bytes()


def ack_for(invite: SipRequest, ok: SipResponse) -> SipRequest:
    return make_request(
        "ACK",
        invite.uri,
        via=Via("UDP", "127.0.0.1", 5060, {"branch": new_branch()}),
        from_=invite.from_,
        to=ok.to,
        call_id=invite.call_id,
        cseq=invite.cseq.seq,
    )


def bye_for(invite: SipRequest, ok: SipResponse) -> SipRequest:
    return make_request(
        "BYE",
        invite.uri,
        via=Via("UDP", "127.0.0.1", 5060, {"branch": new_branch()}),
        from_=invite.from_,
        to=ok.to,
        call_id=invite.call_id,
        cseq=invite.cseq.seq + 1,
    )


def test_invite_is_answered_with_sdp_streams_after_ack_and_bye_stops() -> None:
    device = make_device(channels=2, media_host="192.0.2.7")
    channel = device.config.channels[1].channel_id
    invite = platform_request("INVITE", channel, offer_bytes(), "application/sdp")
    outputs = device.receive(invite.to_bytes(), T0, ("127.0.0.1", 5060))
    statuses = [r.status for r in responses(outputs)]
    assert statuses == [100, 200]
    ok = responses(outputs)[1]
    assert all(isinstance(o, Transmit) and o.to == ("127.0.0.1", 5060) for o in outputs)
    answer = sdp.parse(ok.body)
    target = sdp.answer_target(sdp.parse(invite.body), answer)
    assert target.warnings == () and not target.refused
    assert answer.ssrc == "0200000001" and answer.origin is not None
    assert answer.origin.username == channel
    assert target.address == "192.0.2.7" and target.port == 9000
    assert target.encoding == "PS" and target.transport is sdp.Transport.UDP
    assert ok.to.tag and ok.contacts
    assert device.counters.invites == 1
    # Streaming starts with the ACK.
    start = only(device.receive(ack_for(invite, ok).to_bytes(), T0 + 0.1, ("127.0.0.1", 5060)))
    assert isinstance(start, StartStream)
    assert start.remote == ("127.0.0.1", 30000) and start.ssrc == 200000001
    assert start.channel_id == channel and start.duration is None
    outputs = device.receive(bye_for(invite, ok).to_bytes(), T0 + 5, ("127.0.0.1", 5060))
    assert [r.status for r in responses(outputs)] == [200]
    assert StopStream(invite.call_id) in outputs
    assert device.dialogs == {}


@pytest.mark.parametrize(
    ("offered", "answered"),
    [(sdp.Setup.PASSIVE, sdp.Setup.ACTIVE), (sdp.Setup.ACTIVE, sdp.Setup.PASSIVE)],
)
def test_tcp_invite_takes_the_opposite_role(offered: sdp.Setup, answered: sdp.Setup) -> None:
    device = make_device()
    channel = device.config.channels[0].channel_id
    body = offer_bytes(sdp.Transport.TCP, offered)
    invite = platform_request("INVITE", channel, body, "application/sdp")
    ok = responses(device.receive(invite.to_bytes(), T0, ("127.0.0.1", 5060)))[-1]
    media = sdp.parse(ok.body).first_media()
    assert media is not None and media.is_tcp and media.setup is answered
    start = only(device.receive(ack_for(invite, ok).to_bytes(), T0, ("127.0.0.1", 5060)))
    assert isinstance(start, StartStream) and start.setup is answered


def test_playback_invite_carries_the_range_and_unknown_channel_is_404() -> None:
    device = make_device(channels=2)
    channel = device.config.channels[0].channel_id
    body = offer_bytes(
        session=sdp.SessionType.PLAYBACK,
        ssrc="1200000002",
        start=1_767_600_000,
        stop=1_767_600_060,
        channel_id=channel,
    )
    invite = platform_request("INVITE", channel, body, "application/sdp")
    ok = responses(device.receive(invite.to_bytes(), T0))[-1]
    assert ok.status == 200 and sdp.parse(ok.body).session_type is sdp.SessionType.PLAYBACK
    start = only(device.receive(ack_for(invite, ok).to_bytes(), T0))
    assert isinstance(start, StartStream) and start.duration == 60
    # The end of the range: MediaStatus 121 to the platform.
    (status,) = requests(device.media_finished(invite.call_id, T0 + 60))
    notify = manscdp.parse_message(status.body)
    assert isinstance(notify, manscdp.MediaStatus) and notify.end_of_file
    stranger = platform_request("INVITE", "34020000001310009999", offer_bytes(), "application/sdp")
    assert responses(device.receive(stranger.to_bytes(), T0))[-1].status == 404


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600))
def test_garbage_never_breaks_the_device(data: bytes) -> None:
    device = make_device()
    outputs = device.receive(b"MESSAGE sip:x@y SIP/2.0\r\n" + data, T0)
    assert all(isinstance(o, Transmit) for o in outputs)
    device.receive(data, T0)


# --- media -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clip() -> Clip:
    return encode_clip(320, 180, fps=25, seconds=2, gop=25)


def test_clip_has_a_key_frame_every_25_frames(clip: Clip) -> None:
    assert len(clip.frames) == 50
    assert [n for n, (key, _) in enumerate(clip.frames) if key] == [0, 25]


def test_pacer_sends_in_real_time_and_catches_up_without_a_flood(clip: Clip) -> None:
    pacer = StreamPacer(clip, ssrc=7, started=T0)
    assert pacer.due(T0 - 0.01) == []
    assert pacer.due(T0) and pacer.sent_frames == 1
    pacer.due(T0 + 0.999)
    assert pacer.sent_frames == 25
    pacer.due(T0 + 100)  # a 100 s stall: at most one second of media goes out
    assert pacer.sent_frames == 50
    history = StreamPacer(clip, ssrc=8, started=T0, duration=2.0)
    for second in range(1, 5):
        history.due(T0 + second)
    assert history.finished and history.sent_frames == 50


# --- real peers --------------------------------------------------------------------------


def run_async(main: Callable[[], Coroutine[Any, Any, T]], timeout: float = 20) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(main(), timeout)

    return asyncio.run(bounded())


@dataclass
class Registrar:
    """A tiny GB registrar from the SIP core: digest-checked REGISTER, keepalives counted,
    requests (INVITE, BYE) sent to a device and their final responses awaited. The transport
    is a subclass's: one UDP socket, or a TCP server keeping each device's connection."""

    auth: DigestAuthenticator = field(default_factory=lambda: DigestAuthenticator(DOMAIN))
    registered: dict[str, tuple[str, int]] = field(default_factory=dict)
    keepalives: dict[str, int] = field(default_factory=dict)
    challenges: int = 0
    bad_digests: int = 0
    waiting: dict[str, asyncio.Future[SipResponse]] = field(default_factory=dict)
    ended: list[str] = field(default_factory=list)  # MediaStatus 121 senders

    def answer(self, message: SipMessage, source: tuple[str, int]) -> SipResponse | None:
        if isinstance(message, SipResponse):
            future = self.waiting.get(message.call_id)
            if future is not None and not future.done() and message.status >= 200:
                future.set_result(message)
            return None
        now = asyncio.get_running_loop().time()
        if message.method == "REGISTER":
            verdict = self.auth.verify(
                message.headers.get("Authorization"),
                method="REGISTER",
                now=now,
                password_for=_passwords,
            )
            if verdict.ok:
                self.registered[message.from_.uri.user or ""] = source
                return make_response(message, 200, headers=[("Expires", "3600")])
            self.challenges += 1
            self.bad_digests += "Authorization" in message.headers
            challenge = self.auth.challenge(now)
            return make_response(
                message, 401, headers=[("WWW-Authenticate", challenge.to_header())]
            )
        if message.method == "MESSAGE":
            body = manscdp.parse_message(message.body)
            if isinstance(body, manscdp.Keepalive):
                self.keepalives[body.device_id] = self.keepalives.get(body.device_id, 0) + 1
            elif isinstance(body, manscdp.MediaStatus) and body.end_of_file:
                self.ended.append(body.device_id)
        return make_response(message, 200)

    def send(self, request: SipRequest, to: tuple[str, int]) -> None:
        raise NotImplementedError

    async def request(self, request: SipRequest, to: tuple[str, int]) -> SipResponse:
        future: asyncio.Future[SipResponse] = asyncio.get_running_loop().create_future()
        self.waiting[request.call_id] = future
        self.send(request, to)
        return await asyncio.wait_for(future, 5)


@dataclass
class UdpRegistrar(Registrar, asyncio.DatagramProtocol):
    transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def datagram_received(self, data: bytes, addr: tuple[str | bytes, int]) -> None:
        source = (str(addr[0]), int(addr[1]))
        reply = self.answer(parse_message(data), source)
        if reply is not None:
            self.send(reply, source)

    def send(self, request: SipMessage, to: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(request.to_bytes(), to)


@dataclass
class TcpRegistrar(Registrar):
    """Requests go down the connection the device registered on (found by its address)."""

    writers: dict[tuple[str, int], asyncio.StreamWriter] = field(default_factory=dict)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        source = (str(peer[0]), int(peer[1]))
        self.writers[source] = writer
        framer = StreamFramer()
        while data := await reader.read(65536):
            for message in framer.feed(data):
                reply = self.answer(message, source)
                if reply is not None:
                    writer.write(reply.to_bytes())
        writer.close()

    def send(self, request: SipMessage, to: tuple[str, int]) -> None:
        self.writers[to].write(request.to_bytes())


def settings_for(port: int, **overrides: Any) -> RunnerSettings:
    values: dict[str, Any] = {
        "server": ("127.0.0.1", port),
        "server_id": SERVER_ID,
        "domain": DOMAIN,
        "password": PASSWORD,
        "advertise_host": "127.0.0.1",
        "bind_host": "127.0.0.1",
        "keepalive": 1.0,
        "ramp_rate": 1000.0,
    }
    values.update(overrides)
    return RunnerSettings(**values)


def test_200_devices_register_and_keep_alive_against_a_registrar() -> None:
    async def main() -> tuple[Registrar, SimulatorRunner]:
        loop = asyncio.get_running_loop()
        transport, registrar = await loop.create_datagram_endpoint(
            UdpRegistrar, local_addr=("127.0.0.1", 0)
        )
        runner = SimulatorRunner(settings_for(registrar.port, devices=200))
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run(stop))
        try:
            await until(lambda: len(registrar.registered) == 200, 10, "200 registrations")
            await until(
                lambda: len(registrar.keepalives) == 200, 5, "a keepalive from every device"
            )
            await until(lambda: runner.snapshot().keepalives_ok >= 200, 5, "keepalives answered")
        finally:
            stop.set()
            await task
            transport.close()
        return registrar, runner

    registrar, runner = run_async(main)
    stats = runner.stats
    assert stats.registered == 200 and stats.devices == 200
    # (a REGISTER retransmitted while the loop was busy is challenged again)
    assert registrar.challenges >= 200 and registrar.bad_digests == 0
    # Every device came from the one shared socket.
    assert len(set(registrar.registered.values())) == 1


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.skipif(shutil.which("sipp") is None, reason="SIPp is not installed")
@pytest.mark.parametrize("password", [PASSWORD, "wrong"])
def test_registers_with_digest_and_keeps_alive_against_sipp(tmp_path: Path, password: str) -> None:
    port = free_port()
    sipp = subprocess.Popen(
        [
            "sipp",
            "-sf",
            str(SIPP_DIR / "gb_registrar.xml"),
            "-i",
            "127.0.0.1",
            "-p",
            str(port),
            "-m",
            "3" if password == PASSWORD else "1",
            "-deadcall_wait",
            "0",
            "-timeout",
            "15",
            "-timeout_error",
            "-nostdin",
            "-trace_err",
            "-error_file",
            str(tmp_path / "errors.log"),
            "-set",
            "user",
            device_id(DOMAIN, 0, nvr=False),
            "-set",
            "password",
            PASSWORD,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )

    async def main() -> SimulatorRunner:
        runner = SimulatorRunner(
            settings_for(port, keepalive=1.0, retry_base=0.3, password=password)
        )
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run(stop))
        try:
            if password == PASSWORD:
                await until(
                    lambda: runner.devices and runner.devices[0].counters.keepalives_ok,
                    10,
                    "a keepalive answered",
                )
                stop.set()  # unregisters: SIPp's third call
            await until(lambda: sipp.poll() is not None, 15, "SIPp to finish its scenario")
        finally:
            stop.set()
            await task
        return runner

    try:
        runner = run_async(main)
    finally:
        if sipp.poll() is None:
            sipp.kill()
        _, stderr = sipp.communicate(timeout=5)
    errors = (tmp_path / "errors.log").read_text() if (tmp_path / "errors.log").exists() else ""
    device = runner.devices[0]
    if password != PASSWORD:
        # SIPp's verifyauth refused the digest: the run fails, the device never registered.
        assert sipp.returncode != 0
        assert device.counters.registrations == 0 and device.counters.register_failures >= 1
        return
    assert sipp.returncode == 0, f"SIPp failed: {stderr.decode()[-2000:]} {errors[-3000:]}"
    assert device.counters.registrations >= 1 and device.counters.register_failures == 0
    assert device.counters.keepalives_ok >= 1


def test_live_stream_over_udp_decodes_with_key_frames_every_second(
    tmp_path: Path, clip: Clip
) -> None:
    async def main() -> tuple[list[RtpPacket], SimulatorRunner, int]:
        loop = asyncio.get_running_loop()
        transport, registrar = await loop.create_datagram_endpoint(
            UdpRegistrar, local_addr=("127.0.0.1", 0)
        )
        rtp_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtp_sock.bind(("127.0.0.1", 0))
        rtp_sock.setblocking(False)
        rtp_port = rtp_sock.getsockname()[1]
        runner = SimulatorRunner(settings_for(registrar.port, keepalive=30.0), clip=clip)
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run(stop))
        packets: list[RtpPacket] = []
        try:
            await until(lambda: registrar.registered, 5, "the registration")
            device = runner.devices[0]
            where = registrar.registered[device.config.device_id]
            channel = device.config.channels[0].channel_id
            invite = platform_request(
                "INVITE", channel, offer_bytes(port=rtp_port), "application/sdp"
            )
            ok = await registrar.request(invite, where)
            assert ok.status == 200
            target = sdp.answer_target(sdp.parse(invite.body), sdp.parse(ok.body))
            assert target.port == runner.rtp_port and target.address == "127.0.0.1"
            registrar.send(ack_for(invite, ok), where)
            # 52 whole frames hold the key frames at 0, 25 and 50.
            while sum(p.marker for p in packets) < 52:
                data = await loop.sock_recv(rtp_sock, 2048)
                packets.append(RtpPacket.parse(data))
            assert runner.snapshot().streams == 1
            bye = await registrar.request(bye_for(invite, ok), where)
            assert bye.status == 200
            await until(lambda: runner.snapshot().streams == 0, 2, "the stream to stop")
        finally:
            stop.set()
            await task
            transport.close()
            rtp_sock.close()
        return packets, runner, rtp_port

    packets, _runner, _ = run_async(main)
    assert {p.ssrc for p in packets} == {200000001}
    assert {p.payload_type for p in packets} == {96}
    sequences = [p.sequence for p in packets]
    assert all((b - a) % 65536 == 1 for a, b in itertools.pairwise(sequences))
    ps = b"".join(p.payload for p in packets)
    demuxer = PsDemuxer()
    frames = demuxer.feed(ps) + demuxer.flush()
    video = [f for f in frames if f.kind == "video"]
    assert video and all(f.codec == "h264" for f in video)
    stamps = [f.pts for f in video]
    assert all(b - a == 3600 for a, b in itertools.pairwise(stamps))
    rtp_stamps = sorted({p.timestamp for p in packets})
    assert all(b - a == 3600 for a, b in itertools.pairwise(rtp_stamps))
    keys = [n for n, f in enumerate(video) if f.keyframe]
    assert keys[:3] == [0, 25, 50]
    path = tmp_path / "stream.ps"
    path.write_bytes(ps)
    probed = video_stream(path)
    assert probed["codec_name"] == "h264"
    assert (probed["width"], probed["height"]) == (320, 180)
    assert int(probed["nb_read_frames"]) >= 50


def test_playback_sends_the_range_then_media_status_121(clip: Clip) -> None:
    async def main() -> tuple[int, UdpRegistrar, str]:
        loop = asyncio.get_running_loop()
        transport, registrar = await loop.create_datagram_endpoint(
            UdpRegistrar, local_addr=("127.0.0.1", 0)
        )
        rtp_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtp_sock.bind(("127.0.0.1", 0))
        rtp_sock.setblocking(False)
        runner = SimulatorRunner(settings_for(registrar.port, keepalive=30.0), clip=clip)
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run(stop))
        frames = 0
        try:
            await until(lambda: registrar.registered, 5, "the registration")
            device = runner.devices[0]
            where = registrar.registered[device.config.device_id]
            channel = device.config.channels[0].channel_id
            body = offer_bytes(
                session=sdp.SessionType.PLAYBACK,
                port=rtp_sock.getsockname()[1],
                ssrc="1200000009",
                start=1_767_600_000,
                stop=1_767_600_001,  # one second of recording
                channel_id=channel,
            )
            invite = platform_request("INVITE", channel, body, "application/sdp")
            ok = await registrar.request(invite, where)
            registrar.send(ack_for(invite, ok), where)
            await until(lambda: registrar.ended, 5, "MediaStatus 121")
            while True:  # everything sent before the notify is already in the socket
                try:
                    frames += RtpPacket.parse(rtp_sock.recv(2048)).marker
                except BlockingIOError:
                    break
        finally:
            stop.set()
            await task
            transport.close()
            rtp_sock.close()
        return frames, registrar, channel

    frames, registrar, channel = run_async(main)
    assert frames == 25  # one second at 25 fps, then the end
    assert registrar.ended == [channel]


@pytest.mark.parametrize("offered", [sdp.Setup.PASSIVE, sdp.Setup.ACTIVE])
def test_tcp_signalling_and_tcp_media_in_both_roles(offered: sdp.Setup, clip: Clip) -> None:
    """Each device keeps its own TCP connection; the INVITE goes down it. PASSIVE offered: the
    platform listens and the device connects; ACTIVE offered: the device listens."""

    async def main() -> list[bytes]:
        registrar = TcpRegistrar()
        server = await asyncio.start_server(registrar.serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        connected: asyncio.Future[asyncio.StreamReader] = asyncio.get_running_loop().create_future()

        finished = asyncio.Event()

        async def on_media(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            connected.set_result(reader)
            await finished.wait()  # the connection stays open until the test is done

        media_server = await asyncio.start_server(on_media, "127.0.0.1", 0)
        media_port = media_server.sockets[0].getsockname()[1]
        runner = SimulatorRunner(
            settings_for(port, transport="tcp", devices=5, channels=2, keepalive=0.5), clip=clip
        )
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run(stop))
        packets: list[bytes] = []
        try:
            await until(lambda: len(registrar.registered) == 5, 5, "5 registrations over TCP")
            await until(lambda: len(registrar.keepalives) == 5, 5, "keepalives over TCP")
            assert len(set(registrar.registered.values())) == 5  # a connection each
            device = runner.devices[2]
            where = registrar.registered[device.config.device_id]
            channel = device.config.channels[1].channel_id
            body = offer_bytes(sdp.Transport.TCP, offered, port=media_port)
            invite = platform_request("INVITE", channel, body, "application/sdp")
            ok = await registrar.request(invite, where)
            assert ok.status == 200
            target = sdp.answer_target(sdp.parse(invite.body), sdp.parse(ok.body))
            assert target.transport is sdp.Transport.TCP and target.port > 0
            if offered is sdp.Setup.ACTIVE:
                assert target.platform_connects
                reader, _writer = await asyncio.open_connection(target.address, target.port)
            else:
                assert not target.platform_connects
            registrar.send(ack_for(invite, ok), where)
            if offered is sdp.Setup.PASSIVE:
                reader = await asyncio.wait_for(connected, 5)
            decoder = Rfc4571Decoder()
            while sum(RtpPacket.parse(p).marker for p in packets) < 27:
                packets += decoder.feed(await reader.read(65536))
            bye = await registrar.request(bye_for(invite, ok), where)
            assert bye.status == 200
            await until(lambda: runner.snapshot().streams == 0, 2, "the stream to stop")
        finally:
            finished.set()
            stop.set()
            await task
            server.close()
            media_server.close()
        return packets

    packets = run_async(main)
    parsed = [RtpPacket.parse(p) for p in packets]
    assert {p.ssrc for p in parsed} == {200000001}
    demuxer = PsDemuxer()
    video = [f for f in demuxer.feed(b"".join(p.payload for p in parsed)) if f.kind == "video"]
    assert len(video) >= 25
    assert [n for n, f in enumerate(video) if f.keyframe][:2] == [0, 25]


@pytest.mark.skipif(shutil.which("sipp") is None, reason="SIPp is not installed")
def test_cli_registers_a_device_with_sipp_and_prints_a_summary(tmp_path: Path) -> None:
    port = free_port()
    sipp = subprocess.Popen(
        [
            *("sipp", "-sf", str(SIPP_DIR / "gb_registrar.xml"), "-i", "127.0.0.1"),
            *("-p", str(port), "-m", "3", "-deadcall_wait", "0", "-nostdin"),
            *("-timeout", "15", "-timeout_error"),
            *("-set", "user", device_id(DOMAIN, 0, nvr=False), "-set", "password", PASSWORD),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    try:
        result = subprocess.run(
            [
                *(sys.executable, "-m", "xueliang", "simulate", "gb28181"),
                *("--server", f"127.0.0.1:{port}", "--server-id", SERVER_ID),
                *("--domain", DOMAIN, "--password", PASSWORD, "--local-ip", "127.0.0.1"),
                # One keepalive (at 1.5 s) before the stop at 2 s: SIPp's three calls are the
                # registration, that keepalive and the unregistration.
                *("--keepalive", "1.5", "--duration", "2"),
            ],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        sipp.wait(timeout=10)
    finally:
        if sipp.poll() is None:
            sipp.kill()
        sipp.communicate()
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("1 devices x 1 channels")
    assert any(line.startswith("registered 1/1  keepalives 1/1") for line in lines), lines
    assert sipp.returncode == 0
