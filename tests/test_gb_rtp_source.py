"""GB/T 28181 ingest: RTP carrying MPEG-PS over UDP, TCP passive and TCP active, into a real
ChannelIngest + ChannelHub + SegmentRecorder, the recordings checked with ffprobe.

The streams are FFmpeg's own (x264/x265 into ``-f mpeg``): sent as FFmpeg laid them out (packs
cut anywhere, no marker bits) or re-laid the way GB devices do it (``PsMuxer``: a pack per
frame, PSM before key frames, marker on each frame's last packet), with G.711 or AAC audio
beside the video. A sender thread paces them at four times real time.
"""

from __future__ import annotations

import json
import logging
import random
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.ffprobe import video_stream
from tests.support.rtsp_peer import free_port
from tests.support.wait import wait_until
from xueliang.core.errors import InvalidInput
from xueliang.gb28181.ps import Frame, PsDemuxer
from xueliang.gb28181.ps_mux import PsMuxer
from xueliang.gb28181.rtp import RtpPacket, RtpPacketizer, frame_rfc4571
from xueliang.media.hub import ChannelHub
from xueliang.media.ingest import Backoff, ChannelIngest
from xueliang.media.live import Fragment, InitMessage, LiveItem, LiveMuxer
from xueliang.media.model import IngestSpec, MediaEvent, SegmentClosed, StatusChanged
from xueliang.media.recorder import SegmentRecorder
from xueliang.media.rtp_ports import can_bind
from xueliang.media.sources.gb_rtp import RtpToFrames, parse_gb_rtp_url
from xueliang.media.sources.gb_templates import adts_config, adts_frames
from xueliang.media.sources.gb_transport import GbMediaError, TcpPassiveInput, UdpInput

pytestmark = pytest.mark.media

SPEED = 4.0  # times real time
SSRC = 0x0BEBC201
FPS = 25
SECONDS = 4


# --- streams ------------------------------------------------------------------------------------


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    d = tmp_path_factory.mktemp("gb-media")
    src = ["-f", "lavfi", "-i", f"testsrc2=size=640x360:rate={FPS}", "-t", str(SECONDS)]
    common = ["-g", str(FPS), "-bf", "0", "-f", "mpeg"]
    _ffmpeg(*src, "-c:v", "libx264", *common, str(d / "h264.ps"))
    _ffmpeg(*src, "-c:v", "libx265", "-x265-params", "log-level=error", *common, str(d / "h265.ps"))
    _ffmpeg(
        *("-f", "lavfi", "-i", "sine=f=440:r=8000", "-t", str(SECONDS)),
        *("-c:a", "aac", "-ac", "1", "-f", "adts", str(d / "audio.aac")),
    )
    return {name: (d / name).read_bytes() for name in ("h264.ps", "h265.ps", "audio.aac")}


# A schedule: (media seconds, RTP datagram) in sending order.
Schedule = list[tuple[float, bytes]]


def ffmpeg_layout(ps: bytes) -> Schedule:
    """FFmpeg's PS as it is: each 2 KiB pack one RTP payload, no marker bits."""
    packs = ps.split(b"\x00\x00\x01\xba")[1:]
    rtp = RtpPacketizer(ssrc=SSRC, sequence=65000)  # wraps around early on
    out: Schedule = []
    for n, pack in enumerate(packs):
        at = n * SECONDS / len(packs)
        for dgram in rtp.packetize(b"\x00\x00\x01\xba" + pack, int(at * 90000), marker=False):
            out.append((at, dgram))
    return out


def _video_frames(ps: bytes) -> list[Frame]:
    demuxer = PsDemuxer()
    frames = demuxer.feed(ps) + demuxer.flush()
    assert len(frames) == FPS * SECONDS
    return frames


def gb_layout(ps: bytes, audio: str | None = None, aac: bytes = b"", ssrc: int = SSRC) -> Schedule:
    """The frames of FFmpeg's PS re-laid as a GB device sends them, with audio: G.711 A-law
    in 20 ms frames, or AAC (ADTS) in 1024-sample frames."""
    video = _video_frames(ps)
    base = video[0].dts
    frames = list(video)
    if audio == "pcm_alaw":
        payload = bytes((0xD5 ^ (i % 16)) for i in range(160))
        for n in range(SECONDS * 50):
            t = base + n * 1800
            frames.append(Frame(0xC0, "audio", audio, t, t, True, payload))
    elif audio == "aac":
        pos = 0
        n = 0
        while pos < len(aac):
            length = ((aac[pos + 3] & 3) << 11) | (aac[pos + 4] << 3) | (aac[pos + 5] >> 5)
            t = base + n * 1024 * 90000 // 8000
            frames.append(Frame(0xC0, "audio", "aac", t, t, True, aac[pos : pos + length]))
            pos += length
            n += 1
    frames.sort(key=lambda f: (f.dts, f.kind != "video"))
    muxer = PsMuxer(video_codec=video[0].codec, audio_codec=audio)
    rtp = RtpPacketizer(ssrc=ssrc, sequence=ssrc & 0xFFFF)
    out: Schedule = []
    for frame in frames:
        at = (frame.dts - base) / 90000
        for dgram in rtp.packetize(muxer.mux(frame), frame.dts):
            out.append((at, dgram))
    return out


# --- the device: a sender thread ----------------------------------------------------------------


@dataclass
class Sender:
    """Plays a schedule at SPEED to the source over UDP, or over TCP on a connection it makes
    (``connect``: the source listens) or takes (``listener``: the source connects)."""

    schedule: Schedule
    udp_to: tuple[str, int] | None = None
    connect: tuple[str, int] | None = None
    listener: socket.socket | None = None
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    def start(self) -> None:
        if self.udp_to is not None:
            # Datagrams sent before the source binds its port are lost (as a camera's would
            # be): start once the port is taken, which a bind of our own tells.
            host, port = self.udp_to
            wait_until(lambda: not can_bind(host, port), 10, "the source's UDP port bound")
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def join(self) -> None:
        self._thread.join(10)

    def _tcp(self) -> socket.socket:
        if self.listener is not None:
            self.listener.settimeout(10)
            conn, _ = self.listener.accept()
            return conn
        assert self.connect is not None
        pause = threading.Event()
        for _ in range(200):  # the source listens once its ingest thread gets there
            try:
                return socket.create_connection(self.connect, timeout=5)
            except ConnectionRefusedError:
                pause.wait(0.05)
        raise AssertionError("the source never listened")

    def _run(self) -> None:
        try:
            if self.udp_to is not None:
                udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                to = self.udp_to
                self._play(lambda batch: [udp.sendto(d, to) for d in batch])
                udp.close()
            else:
                conn = self._tcp()
                self._play(lambda batch: conn.sendall(b"".join(map(frame_rfc4571, batch))))
                conn.close()
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            self.done.set()

    def _play(self, send: Callable[[list[bytes]], object]) -> None:
        pause = threading.Event()
        clock = _Clock()
        i = 0
        while i < len(self.schedule):
            at = self.schedule[i][0]
            batch = []
            while i < len(self.schedule) and self.schedule[i][0] == at:
                batch.append(self.schedule[i][1])
                i += 1
            pause.wait(max(0.0, at / SPEED - clock.elapsed()))
            send(batch)


class _Clock:
    def __init__(self) -> None:
        self._start = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self._start


# --- the platform side: ingest, hub, recorder ---------------------------------------------------


class Rig:
    def __init__(self, root: Path, url: str) -> None:
        self.root = root
        self.events: list[MediaEvent] = []
        self.hub = ChannelHub("gb-1")
        self.hub.subscribe(
            SegmentRecorder(root, "gb-1", segment_seconds=1.0, on_segment=self.events.append)
        )
        self.live: list[LiveItem] = []
        self.hub.subscribe(LiveMuxer(self.live.append))
        self.ingest = ChannelIngest(
            IngestSpec("gb-1", url), self.hub, self.events.append, backoff=Backoff(0.2, 0.5)
        )

    def __enter__(self) -> Rig:
        self.ingest.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.ingest.stop()
        self.ingest.join(10)
        assert not self.ingest.is_alive()

    def status(self, status: str, after: int = 0) -> StatusChanged | None:
        for ev in self.events[after:]:
            if isinstance(ev, StatusChanged) and ev.status == status:
                return ev
        return None

    def segments(self, n: int, timeout: float = 15) -> list[SegmentClosed]:
        def enough() -> list[SegmentClosed] | None:
            segs = [e for e in self.events if isinstance(e, SegmentClosed)]
            return segs if len(segs) >= n else None

        return wait_until(enough, timeout, f"{n} segments")


def probe_streams(path: Path) -> dict[str, dict[str, Any]]:
    out = subprocess.run(
        [
            *("ffprobe", "-v", "error", "-of", "json"),
            *("-show_entries", "stream=codec_type,codec_name,sample_rate", str(path)),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {s["codec_type"]: s for s in json.loads(out)["streams"]}


def check_live(rig: Rig, codec: str, prefix: str) -> None:
    """What a live viewer gets: an init segment, then fragments from a key frame on, which
    together make a file ffprobe reads."""
    items = list(rig.live)
    init = items[0]
    assert isinstance(init, InitMessage) and init.codec.startswith(prefix), init
    fragments = [i for i in items[1:] if isinstance(i, Fragment)]
    assert len(fragments) >= FPS and fragments[0].keyframe
    path = rig.root / "live.mp4"
    path.write_bytes(init.segment + b"".join(f.data for f in fragments))
    info = video_stream(path)
    assert (info["codec_name"], info["width"], info["height"]) == (codec, 640, 360)
    assert int(info["nb_read_frames"]) == len(fragments)


def check_segments(rig: Rig, segs: list[SegmentClosed], codec: str, frames: int | None) -> None:
    for seg in segs:
        info = video_stream(rig.root / seg.path)
        assert info["codec_name"] == codec, info
        assert (info["width"], info["height"]) == (640, 360)
        assert int(info["nb_read_frames"]) == seg.frames
        if frames is not None:
            assert seg.frames == frames, [s.frames for s in segs]


@pytest.fixture
def udp_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    yield port


# --- tests: streams -----------------------------------------------------------------------------


def test_udp_h264_records_and_a_silent_device_goes_offline(
    tmp_path: Path, media: dict[str, bytes], udp_port: int
) -> None:
    url = f"rtp://127.0.0.1:{udp_port}?transport=udp&ssrc={SSRC}"
    with Rig(tmp_path, url) as rig:
        sender = Sender(ffmpeg_layout(media["h264.ps"]), udp_to=("127.0.0.1", udp_port))
        sender.start()
        wait_until(lambda: rig.status("online"), 10, "online")
        # A GOP a second, 1 s segments: each closed segment is one GOP of 25 pictures.
        check_segments(rig, rig.segments(3), "h264", FPS)
        check_live(rig, "h264", "avc1.")
        sender.join()
        assert sender.error is None
        marked = len(rig.events)
        offline = wait_until(lambda: rig.status("offline", marked), 8, "offline")
        assert offline.reason == "no RTP from the device for 5 s"


def test_tcp_passive_h265_with_aac(tmp_path: Path, media: dict[str, bytes]) -> None:
    port = free_port()
    url = f"rtp://127.0.0.1:{port}?transport=tcp-passive&ssrc={SSRC}"
    schedule = gb_layout(media["h265.ps"], "aac", media["audio.aac"])
    with Rig(tmp_path, url) as rig:
        sender = Sender(schedule, connect=("127.0.0.1", port))
        sender.start()
        wait_until(lambda: rig.status("online"), 10, "online")
        segs = rig.segments(3)
        check_segments(rig, segs, "hevc", FPS)
        check_live(rig, "hevc", "hvc1.")
        streams = probe_streams(tmp_path / segs[1].path)
        assert streams["audio"]["codec_name"] == "aac"
        assert streams["audio"]["sample_rate"] == "8000"
        sender.join()
        assert sender.error is None
        offline = wait_until(lambda: rig.status("offline"), 5, "offline")
        assert offline.reason == "the device closed the TCP connection"


def test_tcp_active_h264_with_g711(tmp_path: Path, media: dict[str, bytes]) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    url = f"rtp://0.0.0.0:0?transport=tcp-active&peer=127.0.0.1:{port}"
    schedule = gb_layout(media["h264.ps"], "pcm_alaw")
    with Rig(tmp_path, url) as rig:
        sender = Sender(schedule, listener=listener)
        sender.start()
        wait_until(lambda: rig.status("online"), 10, "online")
        segs = rig.segments(3)
        check_segments(rig, segs, "h264", FPS)
        # G.711 cannot go into MP4: the recorder transcodes it to AAC.
        assert probe_streams(tmp_path / segs[1].path)["audio"]["codec_name"] == "aac"
        sender.join()
        assert sender.error is None
        offline = wait_until(lambda: rig.status("offline"), 5, "offline")
        assert offline.reason == "the device closed the TCP connection"
    listener.close()


def test_tcp_active_unreachable_device(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    url = f"rtp://0.0.0.0:0?transport=tcp-active&peer=127.0.0.1:{port}"
    with Rig(tmp_path, url) as rig:
        offline = wait_until(lambda: rig.status("offline"), 10, "offline")
        assert offline.reason == f"could not connect to the device at 127.0.0.1:{port}: " + (
            "Connection refused"
        )


def test_packet_loss_still_records_and_resyncs(
    tmp_path: Path, media: dict[str, bytes], udp_port: int
) -> None:
    schedule = gb_layout(media["h264.ps"])
    # Keep the first GOP whole (the source opens on it); then lose one packet in 40.
    first_gop = next(i for i, (at, _) in enumerate(schedule) if at >= 1.0)
    lossy = schedule[:first_gop] + [
        item for n, item in enumerate(schedule[first_gop:]) if n % 40 != 17
    ]
    url = f"rtp://127.0.0.1:{udp_port}?transport=udp"
    with Rig(tmp_path, url) as rig:
        sender = Sender(lossy, udp_to=("127.0.0.1", udp_port))
        sender.start()
        segs = rig.segments(3)
        check_segments(rig, segs, "h264", None)
        assert segs[0].frames == FPS  # before the loss
        # Broken pictures are dropped, not recorded: later segments hold fewer, and they
        # are there at all because the demuxer found its way back after each loss.
        assert all(0 < s.frames < FPS for s in segs[1:]), [s.frames for s in segs]
        sender.join()
        assert rig.status("offline") is None


def test_device_restarting_its_stream_keeps_recording(
    tmp_path: Path, media: dict[str, bytes], udp_port: int
) -> None:
    # Two seconds, then the device restarts: a new SSRC, sequence and clock from the start.
    first = [item for item in gb_layout(media["h264.ps"]) if item[0] < 2.0]
    again = [(at + 2.0, d) for at, d in gb_layout(media["h264.ps"], ssrc=0x0BEBC202)]
    url = f"rtp://127.0.0.1:{udp_port}?transport=udp"
    with Rig(tmp_path, url) as rig:
        sender = Sender(first + again, udp_to=("127.0.0.1", udp_port))
        sender.start()
        segs = rig.segments(5)
        # Time runs on across the restart: every segment is one GOP, one second long.
        check_segments(rig, segs, "h264", FPS)
        for seg in segs:
            assert 0.9 <= (seg.end - seg.start).total_seconds() <= 1.1, seg
        sender.join()


def test_wrong_ssrc_and_garbage_do_not_corrupt(
    tmp_path: Path,
    media: dict[str, bytes],
    udp_port: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="xueliang.media.sources.gb_rtp")
    rng = random.Random(7)
    mixed: Schedule = []
    stray_seq = rng.randrange(65536)
    for n, (at, dgram) in enumerate(ffmpeg_layout(media["h264.ps"])):
        mixed.append((at, dgram))
        if n % 7 == 3:  # another sender's RTP, looking like PS
            stray = RtpPacket(96, stray_seq, 0, 0x1234, b"\x00\x00\x01\xba" + rng.randbytes(200))
            stray_seq = (stray_seq + 1000) & 0xFFFF
            mixed.append((at, stray.serialise()))
        if n % 11 == 5:  # not RTP at all
            mixed.append((at, rng.randbytes(rng.randrange(1, 600))))
    # The device sends another SSRC than the SDP's: accepted (and said so).
    url = f"rtp://127.0.0.1:{udp_port}?transport=udp&ssrc=12345"
    with Rig(tmp_path, url) as rig:
        sender = Sender(mixed, udp_to=("127.0.0.1", udp_port))
        sender.start()
        check_segments(rig, rig.segments(3), "h264", FPS)
        sender.join()
        assert rig.status("offline") is None  # one session throughout: nothing broke it
    assert f"RTP SSRC {SSRC} is not the negotiated 12345; accepted" in caplog.text
    assert f"RTP of SSRC {0x1234} dropped: the stream is SSRC {SSRC}" in caplog.text


# --- tests: pieces ------------------------------------------------------------------------------


def test_url_parsing() -> None:
    spec = parse_gb_rtp_url(
        "rtp://10.0.0.5:30000?transport=tcp-active&ssrc=0100000001&peer=10.0.0.9:15060"
    )
    assert (spec.bind_host, spec.port, spec.transport) == ("10.0.0.5", 30000, "tcp-active")
    assert spec.ssrc == 100000001 and spec.peer == ("10.0.0.9", 15060)
    plain = parse_gb_rtp_url("rtp://0.0.0.0:30002")
    assert plain.transport == "udp" and plain.ssrc is None and plain.peer is None
    for bad in (
        "rtsp://x:1",
        "rtp://0.0.0.0?transport=udp",
        "rtp://0.0.0.0:1?transport=sctp",
        "rtp://0.0.0.0:1?ssrc=abc",
        "rtp://0.0.0.0:1?ssrc=99999999999",
        "rtp://0.0.0.0:1?transport=tcp-active",
        "rtp://0.0.0.0:1?transport=tcp-active&peer=host",
    ):
        with pytest.raises(InvalidInput):
            parse_gb_rtp_url(bad)


def test_inputs_read_what_arrives_and_say_why_when_nothing_does() -> None:
    udp = UdpInput("127.0.0.1", 0)
    try:
        assert udp.read(0.01) == []
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for n in range(3):
                s.sendto(bytes([n]) * (n + 1), ("127.0.0.1", udp.port))
        assert udp.read(1) == [b"\x00", b"\x01\x01", b"\x02\x02\x02"]
        assert udp.silence(5) == "no RTP from the device for 5 s"
    finally:
        udp.close()
    passive = TcpPassiveInput("127.0.0.1", 0)
    try:
        where = f"127.0.0.1:{passive.port}"
        assert passive.silence(5) == f"the device did not connect to {where} within 5 s"
        assert passive.read(0.01) == []
        with socket.create_connection(("127.0.0.1", passive.port)) as device:
            # Framing split across writes, two packets in one.
            device.sendall(b"\x00\x03ab")
            # Half a packet: nothing to hand over, but the connection is taken.
            accepted = "no RTP from the device for 5 s"
            wait_until(
                lambda: not passive.read(0.05) and passive.silence(5) == accepted, 5, "accept"
            )
            device.sendall(b"c\x00\x01d\x00\x02ef")
            got: list[bytes] = []

            def three() -> bool:
                got.extend(passive.read(0.1))
                return len(got) >= 3

            wait_until(three, 5, "three packets")
        assert got == [b"abc", b"d", b"ef"]
        with pytest.raises(GbMediaError, match="the device closed the TCP connection"):
            wait_until(lambda: passive.read(0.1), 5, "the end")
    finally:
        passive.close()


def test_adts() -> None:
    header = bytes((0xFF, 0xF1, 0x6C, 0x40, 0x02, 0x1F, 0xFC))  # LC, 8 kHz, mono, 16 bytes
    frame = header + bytes(9)
    config = adts_config(frame)
    assert config is not None
    assert (config.sample_rate, config.channels) == (8000, 1)
    assert config.audio_specific_config == bytes((0x15, 0x88))
    assert adts_frames(frame * 2 + frame[:10]) == [bytes(9), bytes(9)]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=30))
def test_datagrams_never_raise(datagrams: list[bytes]) -> None:
    pipeline = RtpToFrames(expected_ssrc=1)
    for data in datagrams:
        assert isinstance(pipeline.feed(data), list)
        adts_frames(data)
        adts_config(data)
    assert isinstance(pipeline.quiet(), list)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_mutated_rtp_never_raises(data: st.DataObject) -> None:
    ps = PsMuxer().mux(Frame(0xE0, "video", "h264", 3600, 3600, True, b"\x00\x00\x01\x65" * 50))
    pipeline = RtpToFrames()
    for dgram in RtpPacketizer(ssrc=5, mtu=200).packetize(ps, 3600):
        mutated = bytearray(dgram)
        for _ in range(data.draw(st.integers(0, 4))):
            mutated[data.draw(st.integers(0, len(mutated) - 1))] = data.draw(st.integers(0, 255))
        assert isinstance(pipeline.feed(bytes(mutated)), list)
