"""The RTSP client protocol, sans-I/O: bytes in, events and bytes out (no sockets here)."""

from __future__ import annotations

import base64
import re

import pytest

from xueliang.core.urls import split_userinfo
from xueliang.gb28181.rtp import RtpPacket
from xueliang.gb28181.sip.digest import DigestCredentials, compute_response
from xueliang.rtsp.client import Playing, RtspClient, RtspError
from xueliang.rtsp.depacketize import (
    AacDepacketizer,
    G711Depacketizer,
    H264Depacketizer,
    H265Depacketizer,
    aac_config,
    h264_parameter_sets,
    h265_parameter_sets,
    rtp_payload,
)
from xueliang.rtsp.message import Batch, RtspProtocolError, RtspReader, ServerRequest
from xueliang.rtsp.sdp import SdpError, parse_sdp

SPS = bytes.fromhex("6742c01e95a0f0110bc0")
PPS = bytes.fromhex("68ce3c80")
IDR = b"\x65" + bytes(range(200))
SLICE = b"\x41" + bytes(50)

# As a Hikvision camera describes its main stream (trimmed), with audio.
SPROP = f"{base64.b64encode(SPS).decode()},{base64.b64encode(PPS).decode()}"
CAMERA_SDP = f"""v=0
o=- 1109162014219182 1109162014219192 IN IP4 192.168.1.64
s=Media Presentation
c=IN IP4 0.0.0.0
t=0 0
a=control:*
m=video 0 RTP/AVP 96
a=rtpmap:96 H264/90000
a=fmtp:96 profile-level-id=420029; packetization-mode=1; sprop-parameter-sets={SPROP}
a=control:trackID=1
m=audio 0 RTP/AVP 8
a=control:trackID=2
m=application 0 RTP/AVP 107
a=rtpmap:107 isapi.metadata/90000
a=control:trackID=4
"""


def response(cseq: int, status: str = "200 OK", headers: str = "", body: str = "") -> bytes:
    extra = f"Content-Length: {len(body.encode())}\r\n" if body else ""
    return f"RTSP/1.0 {status}\r\nCSeq: {cseq}\r\n{headers}{extra}\r\n{body}".encode()


def interleaved(channel: int, payload: bytes) -> bytes:
    return b"$" + bytes((channel,)) + len(payload).to_bytes(2, "big") + payload


def rtp(seq: int, ts: int, payload: bytes, *, marker: bool = False, pt: int = 96) -> bytes:
    return RtpPacket(pt, seq, ts, 0x1234, payload, marker=marker).serialise()


# --- messages ------------------------------------------------------------------------------------


def test_reader_splits_responses_and_interleaved_frames_fed_a_byte_at_a_time() -> None:
    stream = (
        response(3, headers="Session: 12345678;timeout=60\r\n", body="v=0\r\n")
        + interleaved(0, b"\x80" * 20)
        + interleaved(1, b"rtcp")
        + response(4)
    )
    reader = RtspReader()
    events = []
    for i in range(len(stream)):
        events += reader.feed(stream[i : i + 1])
    assert [type(e).__name__ for e in events] == ["RtspResponse", "tuple", "tuple", "RtspResponse"]
    first = events[0]
    assert first.status == 200 and first.cseq == 3 and first.body == b"v=0\r\n"  # type: ignore[union-attr]
    assert first.get("session") == "12345678;timeout=60"  # type: ignore[union-attr]
    channel, payload = events[1]  # type: ignore[misc]
    assert channel == 0 and bytes(payload) == b"\x80" * 20


def test_reader_skips_garbage_to_the_next_frame_and_counts_it() -> None:
    reader = RtspReader()
    events = reader.feed(b"\x00\x17junk" + interleaved(0, b"ok"))
    assert [(c, bytes(p)) for c, p in events] == [(0, b"ok")]  # type: ignore[misc]
    assert reader.skipped == 6


@pytest.mark.parametrize(
    "bad",
    [b"RTSP/1.0 200 OK\r\nContent-Length: x\r\n\r\n", b"RTSP/1.0 OK\r\nCSeq: 1\r\n\r\n"],
)
def test_reader_rejects_malformed_messages(bad: bytes) -> None:
    with pytest.raises(RtspProtocolError):
        RtspReader().feed(bad)


def test_reader_reports_a_request_from_the_server() -> None:
    events = RtspReader().feed(b"GET_PARAMETER rtsp://x RTSP/1.0\r\nCSeq: 9\r\n\r\n")
    assert isinstance(events[0], ServerRequest) and events[0].method == "GET_PARAMETER"


# --- session description -------------------------------------------------------------------------


def test_sdp_of_a_camera() -> None:
    sdp = parse_sdp(CAMERA_SDP)
    video, audio, meta = sdp.media
    assert video.kind == "video" and video.formats[0].encoding == "H264"
    assert video.formats[0].clock_rate == 90000
    assert h264_parameter_sets(video.formats[0].parameters) == [SPS, PPS]
    # A static payload type without an rtpmap line.
    assert (audio.formats[0].encoding, audio.formats[0].clock_rate) == ("PCMA", 8000)
    assert meta.kind == "application"
    base = "rtsp://192.168.1.64:554/Streaming/Channels/101/"
    assert sdp.control_url(base, video) == base + "trackID=1"


@pytest.mark.parametrize(
    ("base", "session", "media", "expected"),
    [
        ("rtsp://cam/live", None, "track1", "rtsp://cam/live/track1"),
        ("rtsp://cam/live/", "*", "rtsp://other/abs", "rtsp://other/abs"),
        ("rtsp://cam/live", None, "*", "rtsp://cam/live"),
        ("rtsp://cam/live", "rtsp://cam/agg", "stream=0", "rtsp://cam/agg/stream=0"),
    ],
)
def test_control_urls(base: str, session: str | None, media: str, expected: str) -> None:
    text = "v=0\r\n" + (f"a=control:{session}\r\n" if session else "")
    text += f"m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:{media}\r\n"
    sdp = parse_sdp(text)
    assert sdp.control_url(base, sdp.media[0]) == expected


def test_sdp_without_media_is_an_error() -> None:
    with pytest.raises(SdpError):
        parse_sdp("v=0\r\ns=nothing\r\n")


# --- client --------------------------------------------------------------------------------------


def _choose_all(sdp):  # type: ignore[no-untyped-def]
    return [m for m in sdp.media if m.kind in ("video", "audio")]


def _requests(data: bytes) -> list[tuple[str, str, dict[str, str]]]:
    out = []
    for block in data.decode().split("\r\n\r\n"):
        if not block:
            continue
        first, *lines = block.split("\r\n")
        method, url, _ = first.split(" ")
        out.append((method, url, dict(line.split(": ", 1) for line in lines)))
    return out


def test_client_handshake_with_digest_auth_and_two_tracks() -> None:
    client = RtspClient(
        "rtsp://admin:s%40cret@192.168.1.64:554/Streaming/Channels/101", choose=_choose_all
    )
    assert client.url == "rtsp://192.168.1.64:554/Streaming/Channels/101"  # no credentials sent
    client.start()
    ((method, url, h),) = _requests(client.data_to_send())
    assert method == "OPTIONS" and "Authorization" not in h
    client.receive(response(1, headers="Public: OPTIONS, DESCRIBE, SETUP, PLAY, GET_PARAMETER\r\n"))
    ((method, _url, h),) = _requests(client.data_to_send())
    assert method == "DESCRIBE" and h["CSeq"] == "2"
    challenge = 'WWW-Authenticate: Digest realm="IP Camera", nonce="abc123"\r\n'
    client.receive(response(2, "401 Unauthorized", challenge))
    ((method, url, h),) = _requests(client.data_to_send())
    assert method == "DESCRIBE" and h["CSeq"] == "3"
    creds = DigestCredentials.parse(h["Authorization"])
    expected = compute_response(
        algorithm="MD5",
        username="admin",
        realm="IP Camera",
        password="s@cret",
        method="DESCRIBE",
        uri=url,
        nonce="abc123",
    )
    assert creds.username == "admin" and creds.response == expected
    base = "rtsp://192.168.1.64:554/Streaming/Channels/101/"
    client.receive(
        response(
            3, headers=f"Content-Base: {base}\r\nContent-Type: application/sdp\r\n", body=CAMERA_SDP
        )
    )
    ((method, url, h),) = _requests(client.data_to_send())
    assert (method, url) == ("SETUP", base + "trackID=1")
    assert h["Transport"] == "RTP/AVP/TCP;unicast;interleaved=0-1" and "Authorization" in h
    client.receive(
        response(
            4, headers="Session: 7A1B;timeout=20\r\nTransport: RTP/AVP/TCP;interleaved=0-1\r\n"
        )
    )
    ((method, url, h),) = _requests(client.data_to_send())
    assert (method, url, h["Session"]) == ("SETUP", base + "trackID=2", "7A1B")
    client.receive(
        response(5, headers="Session: 7A1B\r\nTransport: RTP/AVP/TCP;interleaved=2-3\r\n")
    )
    ((method, url, h),) = _requests(client.data_to_send())
    assert method == "PLAY" and h["Session"] == "7A1B"
    events = client.receive(response(6, headers="Session: 7A1B\r\n") + interleaved(0, b"\x80" * 12))
    playing = next(e for e in events if isinstance(e, Playing))
    assert [t.channel for t in playing.tracks] == [0, 2] and playing.session_timeout == 20
    assert any(isinstance(e, tuple) for e in events)  # media right behind the answer
    client.keepalive()
    ((method, _url, h),) = _requests(client.data_to_send())
    assert method == "GET_PARAMETER" and h["Session"] == "7A1B" and "Authorization" in h


def test_client_wrong_password_is_an_authentication_failure() -> None:
    client = RtspClient("rtsp://cam/s", username="u", password="bad", choose=_choose_all)
    client.start()
    client.receive(response(1))
    challenge = 'WWW-Authenticate: Digest realm="r", nonce="n"\r\n'
    client.receive(response(2, "401 Unauthorized", challenge))
    assert _requests(client.data_to_send())[-1][0] == "DESCRIBE"
    with pytest.raises(RtspError, match="authentication failed") as info:
        client.receive(response(3, "401 Unauthorized", challenge))
    assert info.value.status == 401


def test_client_basic_auth_and_not_found() -> None:
    client = RtspClient("rtsp://cam/s", username="u", password="p", choose=_choose_all)
    client.start()
    client.receive(response(1))
    client.data_to_send()
    client.receive(response(2, "401 Unauthorized", 'WWW-Authenticate: Basic realm="cam"\r\n'))
    ((_m, _u, h),) = _requests(client.data_to_send())
    assert h["Authorization"] == "Basic " + base64.b64encode(b"u:p").decode()
    with pytest.raises(RtspError) as info:
        client.receive(response(3, "404 Not Found"))
    assert info.value.status == 404


def test_client_answers_the_servers_own_requests() -> None:
    client = RtspClient("rtsp://cam/s", choose=_choose_all)
    client.start()
    client.data_to_send()
    client.receive(b"OPTIONS rtsp://cam/s RTSP/1.0\r\nCSeq: 77\r\n\r\n")
    assert re.match(rb"RTSP/1.0 200 OK\r\nCSeq: 77\r\n", client.data_to_send())


def test_split_userinfo() -> None:
    assert split_userinfo("rtsp://a%3Ab:p%2Fw@[::1]:8554/x?y=1") == (
        "rtsp://[::1]:8554/x?y=1",
        "a:b",
        "p/w",
    )


# --- depacketizers -------------------------------------------------------------------------------


def _push_all(dep, packets):  # type: ignore[no-untyped-def]
    out = []
    for p in packets:
        out += dep.push(memoryview(p))
    return out


def test_h264_single_stap_and_fragmented_units_make_one_picture() -> None:
    stap = b"\x18" + len(SPS).to_bytes(2, "big") + SPS + len(PPS).to_bytes(2, "big") + PPS
    fu_a = [
        b"\x7c\x85" + IDR[1:70],  # FU indicator (NRI 3, type 28), start, type 5
        b"\x7c\x05" + IDR[70:140],
        b"\x7c\x45" + IDR[140:],  # end
    ]
    units = _push_all(
        H264Depacketizer(),
        [rtp(1, 3000, stap)]
        + [rtp(2 + i, 3000, p, marker=i == 2) for i, p in enumerate(fu_a)]
        + [rtp(5, 6600, SLICE, marker=True)],
    )
    assert len(units) == 2
    key, inter = units
    start = b"\x00\x00\x00\x01"
    assert key.keyframe and key.timestamp == 3000
    assert key.data == start + SPS + start + PPS + start + IDR
    assert not inter.keyframe and inter.data == start + SLICE


def test_h264_parameter_sets_from_the_sdp_go_in_front_of_a_key_frame_without_them() -> None:
    dep = H264Depacketizer([SPS, PPS])
    (unit,) = _push_all(dep, [rtp(1, 0, IDR, marker=True)])
    start = b"\x00\x00\x00\x01"
    assert unit.data == start + SPS + start + PPS + start + IDR


def test_h264_lost_packet_drops_the_picture_and_the_next_one_plays() -> None:
    dep = H264Depacketizer()
    units = _push_all(
        dep,
        [
            rtp(1, 0, b"\x7c\x85" + IDR[1:70]),
            # seq 2 lost
            rtp(3, 0, b"\x7c\x45" + IDR[70:], marker=True),
            rtp(4, 3600, SLICE, marker=True),
        ],
    )
    assert [u.timestamp for u in units] == [3600] and dep.dropped == 1


def test_h264_lost_marker_ends_the_picture_at_the_next_timestamp() -> None:
    units = _push_all(H264Depacketizer(), [rtp(1, 0, SLICE), rtp(2, 3600, SLICE, marker=True)])
    assert [u.timestamp for u in units] == [0, 3600]


def test_fragment_without_its_start_is_dropped() -> None:
    dep = H264Depacketizer()
    assert _push_all(dep, [rtp(1, 0, b"\x7c\x45" + IDR[70:], marker=True)]) == []
    assert dep.dropped == 1


def test_h265_fragmentation_and_aggregation() -> None:
    vps, sps, pps = b"\x40\x01\x0c", b"\x42\x01\x01", b"\x44\x01\xc1"
    idr = b"\x26\x01" + bytes(range(100))  # type 19 (IDR_W_RADL)
    ap = b"\x60\x01" + b"".join(len(n).to_bytes(2, "big") + n for n in (vps, sps, pps))
    fu = [
        b"\x62\x01\x93" + idr[2:50],  # FU (type 49), start, type 19
        b"\x62\x01\x53" + idr[50:],  # end
    ]
    (unit,) = _push_all(
        H265Depacketizer(),
        [rtp(1, 0, ap), rtp(2, 0, fu[0]), rtp(3, 0, fu[1], marker=True)],
    )
    start = b"\x00\x00\x00\x01"
    assert unit.keyframe
    assert unit.data == start + vps + start + sps + start + pps + start + idr
    fmtp = {"sprop-vps": base64.b64encode(vps).decode(), "sprop-sps": "QgEB", "sprop-pps": "RAHB"}
    assert h265_parameter_sets(fmtp) == [vps, sps, pps]


def test_aac_frames_from_au_headers() -> None:
    config = aac_config("1408")  # AAC-LC, 16 kHz, mono
    assert config is not None and (config.sample_rate, config.channels) == (16000, 1)
    frames = [b"\xaa" * 10, b"\xbb" * 7]
    headers = b"".join(((len(f) << 3) | 0).to_bytes(2, "big") for f in frames)
    payload = (16 * len(frames)).to_bytes(2, "big") + headers + b"".join(frames)
    units = AacDepacketizer({"sizelength": "13", "indexlength": "3"}).push(
        memoryview(rtp(1, 5000, payload, marker=True, pt=97))
    )
    assert [(u.data, u.timestamp) for u in units] == [(frames[0], 5000), (frames[1], 6024)]
    adts = config.adts(frames[0])
    assert adts[:2] == b"\xff\xf1" and len(adts) == 17
    assert ((adts[3] & 0x3) << 11 | adts[4] << 3 | adts[5] >> 5) == 17  # frame length


def test_g711_and_malformed_rtp() -> None:
    (unit,) = G711Depacketizer().push(memoryview(rtp(1, 160, b"\xd5" * 160, pt=8)))
    assert unit.data == b"\xd5" * 160 and unit.timestamp == 160
    assert rtp_payload(memoryview(b"\x00" * 20)) is None  # version 0
    assert rtp_payload(memoryview(b"\x80\x60")) is None  # too short
    assert H264Depacketizer().push(memoryview(b"\x40" * 30)) == ()


def _fu_a(nal: bytes, size: int) -> list[bytes]:
    header, body = nal[0], nal[1:]
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    out = []
    for i, piece in enumerate(pieces):
        fu = (header & 0x1F) | (0x80 if i == 0 else 0) | (0x40 if i == len(pieces) - 1 else 0)
        out.append(bytes(((header & 0xE0) | 28, fu)) + piece)
    return out


def _stream() -> list[bytes]:
    """Pictures as a camera sends them, with the awkward cases among them: a lost packet, a
    lost marker, padding, a header extension, a STAP-A, single NAL units."""
    stap = b"\x18" + len(SPS).to_bytes(2, "big") + SPS + len(PPS).to_bytes(2, "big") + PPS
    big = b"\x65" + bytes(i % 251 for i in range(5000))
    packets: list[bytes] = []
    seq = 0
    for frame in range(12):
        ts = frame * 3600
        payloads = [stap, *_fu_a(big, 1000)] if frame % 6 == 0 else _fu_a(b"\x41" + bytes(900), 400)
        if frame == 4:
            payloads = [SLICE]
        for i, payload in enumerate(payloads):
            seq += 1
            if frame == 8 and i == 1:
                continue  # lost
            marker = i == len(payloads) - 1 and frame != 3  # frame 3 loses its marker
            padding = 4 if (frame, i) == (2, 1) else 0
            ext = (0xBEDE, b"\x00" * 4) if (frame, i) == (7, 0) else None
            packets.append(
                RtpPacket(
                    96, seq, ts, 1, payload, marker=marker, padding=padding, extension=ext
                ).serialise()
            )
    return packets


@pytest.mark.parametrize("chunk", [1, 7, 1500, 1 << 20])
def test_a_reads_batch_gives_what_packet_by_packet_gives(chunk: int) -> None:
    packets = _stream()
    expected = _push_all(H264Depacketizer(), packets)
    assert len(expected) == 11  # 12 pictures, less the one that lost a packet
    wire = b"".join(interleaved(0, p) + interleaved(1, b"\x80\xc8rtcp") for p in packets)
    reader = RtspReader()
    reader.batch_channels = frozenset({0})
    dep = H264Depacketizer()
    got = []
    other = 0
    for i in range(0, len(wire), chunk):
        for event in reader.feed(wire[i : i + chunk]):
            if isinstance(event, Batch):
                got += dep.push_batch(event.data, event.spans)
            else:
                other += 1
    assert other == len(packets)  # the RTCP channel, packet by packet
    assert [(u.data, u.timestamp, u.keyframe) for u in got] == [
        (u.data, u.timestamp, u.keyframe) for u in expected
    ]
    assert dep.dropped == 1
