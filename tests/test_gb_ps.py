from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import av
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xueliang.gb28181 import ps
from xueliang.gb28181.ps import Frame, PsDemuxer, sniff_video_codec
from xueliang.gb28181.ps_mux import PsMuxer, _crc32_mpeg
from xueliang.gb28181.rtp import Received, RtpPacket, RtpPacketizer, RtpReceiver

SPS = b"\x00\x00\x00\x01\x67\x64\x00\x1f\xac\xd9\x40"
PPS = b"\x00\x00\x00\x01\x68\xee\x3c\x80"


def idr(body: bytes = b"\x11" * 40) -> bytes:
    return SPS + PPS + b"\x00\x00\x00\x01\x65\x88" + body  # first_mb_in_slice = 0


def p_frame(body: bytes = b"\x22" * 30) -> bytes:
    return b"\x00\x00\x00\x01\x41\x9a" + body


def video(pts: int, data: bytes, key: bool, dts: int | None = None) -> Frame:
    return Frame(0xE0, "video", "h264", pts, pts if dts is None else dts, key, data)


def synthetic(n: int = 10, start: int = 900) -> list[Frame]:
    return [
        video(start + 3600 * i, idr() if i % 5 == 0 else p_frame(bytes([i + 1]) * 50), i % 5 == 0)
        for i in range(n)
    ]


def demux_all(data: bytes, chunk: int = 1400) -> tuple[list[Frame], PsDemuxer]:
    d = PsDemuxer()
    out: list[Frame] = []
    for i in range(0, len(data), chunk):
        out += d.feed(data[i : i + chunk])
    return out + d.flush(), d


def mux_all(frames: list[Frame], muxer: PsMuxer | None = None) -> bytes:
    muxer = muxer or PsMuxer()
    return b"".join(muxer.mux(f) for f in frames)


def same(a: Frame, b: Frame) -> bool:
    return (a.kind, a.codec, a.pts, a.dts, a.keyframe, a.data) == (
        b.kind,
        b.codec,
        b.pts,
        b.dts,
        b.keyframe,
        b.data,
    )


# --- synthetic streams ---------------------------------------------------------------------


def test_round_trip_synthetic() -> None:
    frames = synthetic()
    out, d = demux_all(mux_all(frames), chunk=37)
    assert len(out) == len(frames)
    assert all(same(a, b) for a, b in zip(frames, out, strict=True))
    assert d.streams[0].codec == "h264"
    assert d.stream_types == {0xE0: 0x1B}


def test_large_frames_span_many_pes() -> None:
    big = idr(bytes(range(1, 256)) * 1000)  # 255 kB: four PES packets of at most 64 kB
    frames = [video(0, big, True), video(3600, p_frame(), False)]
    ps = mux_all(frames)
    assert ps.count(b"\x00\x00\x01\xe0") >= 4 + 3  # SPS, PPS, 4 slice pieces, P slice
    out, _ = demux_all(ps)
    assert [f.data for f in out] == [big, p_frame()]


def test_b_frames_keep_pts_and_dts() -> None:
    frames = [video(7200, idr(), True, dts=3600), video(18000, p_frame(), False, dts=7200)]
    out, _ = demux_all(mux_all(frames))
    assert [(f.pts, f.dts) for f in out] == [(7200, 3600), (18000, 7200)]


def test_missing_timestamps_are_filled_from_the_previous_frame() -> None:
    muxer = PsMuxer()
    first = muxer.mux(video(1000, idr(), True))
    # Two more pictures in PES packets with no PTS (as FFmpeg writes when a frame starts
    # inside a PES): they continue at the stream's frame interval.
    untimed = b"".join(
        PsMuxer._pes(0xE0, p_frame(), video(0, b"", False), timed=False) for _ in range(2)
    )
    out, _ = demux_all(first + untimed + muxer.mux(video(11800, p_frame(), False)))
    assert [f.pts for f in out] == [1000, 4600, 8200, 11800]
    assert [f.keyframe for f in out] == [True, False, False, False]


def test_timestamps_unwrap_past_33_bits() -> None:
    start = 2**33 - 2 * 3600
    frames = [video(start + 3600 * i, p_frame() if i else idr(), i == 0) for i in range(5)]
    out, _ = demux_all(mux_all(frames))
    assert [f.pts for f in out] == [f.pts for f in frames]
    assert out[-1].pts > 2**33


def test_marker_ends_the_frame_without_waiting_for_the_next() -> None:
    muxer = PsMuxer()
    d = PsDemuxer()
    assert d.feed(muxer.mux(video(0, idr(), True))) == []  # not known complete yet
    frames = d.end_frame()
    assert [f.keyframe for f in frames] == [True]
    assert d.feed(muxer.mux(video(3600, p_frame(), False))) == []
    assert [f.pts for f in d.end_frame()] == [3600]
    assert d.flush() == []


def test_multi_slice_pictures_stay_together() -> None:
    second_slice = b"\x00\x00\x01\x41\x40" + b"\x33" * 20  # first_mb_in_slice != 0
    frames = [video(0, idr() + second_slice, True), video(3600, p_frame() + second_slice, False)]
    out, _ = demux_all(mux_all(frames))
    assert [f.data for f in out] == [f.data for f in frames]


def test_hikvision_layout_every_pes_timed_and_private_data() -> None:
    # Each NAL unit in its own PES, every one carrying the frame's PTS, and a private
    # stream (0xBD) of vendor data after the picture: the frames come out the same.
    frames = synthetic(6)
    muxer = PsMuxer()
    private = b"\x00\x00\x01\xbd\x00\x08\x80\x00\x00HIKV\x00"
    stream = b""
    for f in frames:
        stream += muxer.pack_header(f.dts)
        if f.keyframe:
            stream += muxer.system_header() + muxer.program_stream_map()
        for unit in _units(f.data):
            stream += PsMuxer._pes(0xE0, unit, f, timed=True)
        stream += private
    out, d = demux_all(stream, chunk=100)
    assert all(same(a, b) for a, b in zip(frames, out, strict=True))
    assert d.stats.skipped_pes == len(frames)


def _units(data: bytes) -> list[bytes]:
    parts = data.split(b"\x00\x00\x00\x01")
    return [b"\x00\x00\x00\x01" + p for p in parts if p]


def test_muxer_layout() -> None:
    muxer = PsMuxer(audio_codec="pcm_alaw")
    key = muxer.mux(video(0, idr(), True))
    delta = muxer.mux(video(3600, p_frame(), False))
    assert key.startswith(b"\x00\x00\x01\xba")
    assert key.count(b"\x00\x00\x01\xbb") == key.count(b"\x00\x00\x01\xbc") == 1
    assert key.count(b"\x00\x00\x01\xe0") == 3  # SPS, PPS, slice: one PES each
    assert b"\x00\x00\x01\xbc" not in delta
    psm = muxer.program_stream_map()
    assert psm[12:20] == bytes((0x1B, 0xE0, 0, 0, 0x90, 0xC0, 0, 0))
    assert _crc32_mpeg(psm) == 0  # the CRC covers the whole section: residue 0


def test_oversized_frame_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ps.tracks, "MAX_FRAME", 5000)
    frames = [video(0, idr(b"\x11" * 9000), True), video(3600, p_frame(), False)]
    frames.append(video(7200, idr(), True))
    out, d = demux_all(mux_all(frames))
    assert [f.pts for f in out] == [3600, 7200]  # only the oversized one goes
    assert d.stats.dropped_frames >= 1


def test_psm_names_the_codec() -> None:
    hevc_idr = (
        b"\x00\x00\x00\x01\x40\x01\x0c"  # VPS
        + b"\x00\x00\x00\x01\x42\x01\x01"  # SPS
        + b"\x00\x00\x00\x01\x44\x01\xc1"  # PPS
        + b"\x00\x00\x00\x01\x26\x01\xaf"
        + b"\x55" * 30  # IDR_W_RADL, first slice
    )
    trail = b"\x00\x00\x00\x01\x02\x01\xd0" + b"\x66" * 20  # TRAIL_R, first slice
    frames = [
        Frame(0xE0, "video", "hevc", 0, 0, True, hevc_idr),
        Frame(0xE0, "video", "hevc", 3600, 3600, False, trail),
    ]
    out, d = demux_all(mux_all(frames, PsMuxer(video_codec="hevc")))
    assert d.stream_types == {0xE0: 0x24}
    assert [(f.codec, f.keyframe, f.data) for f in out] == [
        ("hevc", True, hevc_idr),
        ("hevc", False, trail),
    ]


def test_unparsed_video_codec_is_framed_by_pts() -> None:
    # SVAC (stream_type 0x80) is not parsed: frames are the PES sharing one PTS, and a PSM
    # before a frame marks it as a key frame.
    muxer = PsMuxer(video_codec="svac")
    stream = b""
    for n, key in enumerate([True, False, True]):
        f = Frame(0xE0, "video", "svac", 3600 * n, 3600 * n, key, b"")
        stream += muxer.pack_header(f.dts)
        if key:
            stream += muxer.system_header() + muxer.program_stream_map()
        stream += PsMuxer._pes(0xE0, b"head%d" % n, f, timed=True)
        stream += PsMuxer._pes(0xE0, b"tail%d" % n, f, timed=True)
    out, _ = demux_all(stream)
    assert [(f.codec, f.pts, f.keyframe, f.data) for f in out] == [
        ("svac", 0, True, b"head0tail0"),
        ("svac", 3600, False, b"head1tail1"),
        ("svac", 7200, True, b"head2tail2"),
    ]


def test_sniffing_without_psm() -> None:
    assert sniff_video_codec(idr()) == "h264"
    assert sniff_video_codec(b"\x00\x00\x00\x01\x40\x01\x0c\x01\xff") == "hevc"
    assert sniff_video_codec(b"\x00\x00\x01\x41\x9a\x00\x00") is None


def test_unbounded_video_pes() -> None:
    # PES_packet_length 0: the PES runs to the next PS start code.
    muxer = PsMuxer()
    pes = b"\x00\x00\x01\xe0\x00\x00\x80\x80\x05" + bytes((0x21, 0, 1, 0, 1)) + idr()
    stream = muxer.pack_header(0) + muxer.program_stream_map() + pes
    stream += muxer.mux(video(3600, p_frame(), False))
    out, _ = demux_all(stream)
    assert [f.data for f in out] == [idr(), p_frame()]
    assert out[0].pts == 0


def test_audio_waits_for_the_psm() -> None:
    muxer = PsMuxer(audio_codec="pcm_alaw")
    alaw = Frame(0xC0, "audio", "pcm_alaw", 0, 0, True, b"\xd5" * 320)
    d = PsDemuxer()
    # Audio before any PSM: its codec is unknown (A-law, not the MPEG audio its stream id
    # suggests), so it is held back until the key frame's PSM says what it is.
    assert d.feed(muxer.pack_header(0) + muxer._pes(0xC0, alaw.data, alaw, timed=True)) == []
    d.feed(muxer.mux(video(0, idr(), True)))
    out = d.feed(muxer.mux(Frame(0xC0, "audio", "pcm_alaw", 2880, 2880, True, b"\xd5" * 320)))
    assert [(f.codec, f.pts) for f in out] == [("pcm_alaw", 2880)]
    assert d.stats.skipped_pes == 1


def test_loss_drops_only_the_broken_frame() -> None:
    frames = synthetic(10)
    muxer = PsMuxer()
    parts = [muxer.mux(f) for f in frames]
    d = PsDemuxer()
    out: list[Frame] = []
    for i, part in enumerate(parts):
        if i == 3:
            out += d.feed(part[: len(part) // 2])
            out += d.discontinuity()  # the rest of frame 3 was lost
            out += d.feed(part[len(part) // 2 + 7 :])
            continue
        out += d.feed(part)
    out += d.flush()
    assert [f.pts for f in out] == [f.pts for i, f in enumerate(frames) if i != 3]
    assert all(
        same(a, b) for a, b in zip([f for i, f in enumerate(frames) if i != 3], out, strict=True)
    )
    assert d.stats.dropped_frames == 1


def test_garbage_between_packs_is_skipped() -> None:
    frames = synthetic(6)
    muxer = PsMuxer()
    parts = [muxer.mux(f) for f in frames]
    stream = parts[0] + b"\x12\x34\x00\x00\x01\x55junk" + b"".join(parts[1:])
    out, d = demux_all(stream, chunk=100)
    assert d.stats.resyncs >= 1
    assert [f.pts for f in out] == [f.pts for f in frames[1:]]  # frame 0 ended in garbage


def test_rtp_path_with_packet_loss() -> None:
    frames = synthetic(12)
    muxer = PsMuxer()
    packetizer = RtpPacketizer(ssrc=7, mtu=60)
    wire = [p for f in frames for p in packetizer.packetize(muxer.mux(f), f.pts)]
    frame_of = [i for i, f in enumerate(frames) for _ in packetizer.packetize(muxer.mux(f), 0)]
    lost = next(i for i, n in enumerate(frame_of) if n == 5) + 2  # inside frame 5
    rx, d = RtpReceiver(window=4), PsDemuxer()
    out: list[Frame] = []
    for i, data in enumerate(wire):
        if i == lost:
            continue
        for event in rx.push(RtpPacket.parse(data)):
            if isinstance(event, Received):
                out += d.feed(event.packet.payload)
                if event.packet.marker:
                    out += d.end_frame()
            else:
                out += d.discontinuity()
    out += d.flush()
    assert rx.stats.lost == 1
    assert [f.pts for f in out] == [f.pts for i, f in enumerate(frames) if i != 5]


# --- fuzzing: feed never raises ------------------------------------------------------------


def _feed_chunks(data: bytes, cuts: list[int]) -> list[Frame]:
    d = PsDemuxer()
    out: list[Frame] = []
    pos = i = 0
    while pos < len(data):
        step = cuts[i % len(cuts)]
        out += d.feed(data[pos : pos + step])
        if i % 7 == 3:
            out += d.discontinuity()
        pos += step
        i += 1
    return out + d.flush() + d.end_frame()


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=3000), st.lists(st.integers(1, 700), min_size=1, max_size=8))
def test_fuzz_random_bytes(data: bytes, cuts: list[int]) -> None:
    for frame in _feed_chunks(b"\x00\x00\x01\xba" + data, cuts):
        assert frame.kind in ("video", "audio")


SAMPLE = mux_all(synthetic(4)) + mux_all(
    [Frame(0xC0, "audio", "pcm_alaw", 0, 0, True, b"\xd5" * 80)], PsMuxer(audio_codec="pcm_alaw")
)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(st.integers(0, len(SAMPLE) - 1), st.integers(0, 255)), max_size=10),
    st.lists(st.integers(1, 500), min_size=1, max_size=6),
)
def test_fuzz_mutated_ps(edits: list[tuple[int, int]], cuts: list[int]) -> None:
    data = bytearray(SAMPLE)
    for where, value in edits:
        data[where] = value
    frames = _feed_chunks(bytes(data), cuts)
    assert len(frames) <= 6


@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.booleans(), st.binary(min_size=1, max_size=3000)), min_size=1, max_size=6
    ),
    st.integers(1, 2000),
)
def test_round_trip_random_frames(pictures: list[tuple[bool, bytes]], chunk: int) -> None:
    # Slice payloads with no zero bytes cannot contain a start code.
    frames = [
        video(
            i * 3600,
            (idr() if key or i == 0 else p_frame()) + body.replace(b"\x00", b"\x01"),
            key or i == 0,
        )
        for i, (key, body) in enumerate(pictures)
    ]
    out, _ = demux_all(mux_all(frames), chunk=chunk)
    assert [f.data for f in out] == [f.data for f in frames]
    assert [f.keyframe for f in out] == [f.keyframe for f in frames]


# --- against FFmpeg ------------------------------------------------------------------------


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-loglevel", "fatal", "-y", *args], check=True)


def ffprobe_packets(path: Path, stream: str) -> list[dict[str, str]]:
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            stream,
            "-show_entries",
            "packet=pts,dts,flags",
            "-of",
            "json",
            str(path),
        ],
        check=True,
        capture_output=True,
    ).stdout
    packets: list[dict[str, str]] = json.loads(out)["packets"]
    return packets


TESTSRC = ["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25"]


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("ps")
    tone = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=8000"]
    paths = {name: d / name for name in ("h264.ps", "h265.ps", "aac.adts", "alaw.raw")}
    ffmpeg(*TESTSRC, *tone, "-t", "2", "-c:v", "libx264", "-bf", "0", "-g", "25",
           "-c:a", "mp2", "-ar", "48000", "-f", "mpeg", str(paths["h264.ps"]))  # fmt: skip
    ffmpeg(*TESTSRC, "-t", "2", "-c:v", "libx265", "-x265-params", "log-level=none",
           "-bf", "0", "-g", "25", "-f", "mpeg", str(paths["h265.ps"]))  # fmt: skip
    ffmpeg(*tone, "-t", "2", "-c:a", "aac", "-f", "adts", str(paths["aac.adts"]))
    ffmpeg(*tone, "-t", "2", "-c:a", "pcm_alaw", "-f", "alaw", str(paths["alaw.raw"]))
    return paths


@pytest.mark.media
@pytest.mark.parametrize(("name", "codec"), [("h264.ps", "h264"), ("h265.ps", "hevc")])
def test_ffmpeg_program_stream(samples: dict[str, Path], name: str, codec: str) -> None:
    path = samples[name]
    out, d = demux_all(path.read_bytes())
    frames = [f for f in out if f.kind == "video"]
    probe = ffprobe_packets(path, "v")
    assert len(frames) == len(probe) == 50
    assert {f.codec for f in frames} == {codec}
    assert [i for i, f in enumerate(frames) if f.keyframe] == [
        i for i, p in enumerate(probe) if "K" in p["flags"]
    ] == [0, 25]  # fmt: skip
    for i, (mine, theirs) in enumerate(zip(frames, probe, strict=True)):
        if "pts" in theirs:
            assert (mine.pts, mine.dts) == (int(theirs["pts"]), int(theirs["dts"]))
        else:  # a frame that starts inside a PES has no PTS of its own
            assert mine.pts == frames[i - 1].pts + 3600
    with av.open(str(path), "r", format="mpeg") as container:
        packets = [bytes(p) for p in container.demux(video=0) if p.size]
    assert [f.data for f in frames] == packets
    assert d.stats.resyncs == d.stats.bad_pes == 0


@pytest.mark.media
def test_ffmpeg_mpeg_audio(samples: dict[str, Path]) -> None:
    path = samples["h264.ps"]
    out, _ = demux_all(path.read_bytes())
    audio = [f for f in out if f.kind == "audio"]
    with av.open(str(path), "r", format="mpeg") as container:
        packets = [p for p in container.demux(audio=0) if p.size]
        assert packets[0].pts is not None
        assert audio[0].pts == packets[0].pts
    assert {f.codec for f in audio} == {"mp2"}
    assert b"".join(f.data for f in audio) == b"".join(bytes(p) for p in packets)


def adts_frames(data: bytes) -> list[bytes]:
    frames, pos = [], 0
    while pos + 7 <= len(data):
        length = ((data[pos + 3] & 3) << 11) | (data[pos + 4] << 3) | (data[pos + 5] >> 5)
        frames.append(data[pos : pos + length])
        pos += length
    return frames


@pytest.mark.media
def test_muxer_output_read_by_ffmpeg(samples: dict[str, Path], tmp_path: Path) -> None:
    source, _ = demux_all(samples["h264.ps"].read_bytes())
    pictures = [f for f in source if f.kind == "video"]
    aac = adts_frames(samples["aac.adts"].read_bytes())
    sounds = [
        Frame(0xC0, "audio", "aac", 45000 + i * 11520, 45000 + i * 11520, True, a)
        for i, a in enumerate(aac)
    ]
    merged = sorted(pictures + sounds, key=lambda f: f.dts)
    path = tmp_path / "mine.ps"
    path.write_bytes(mux_all(merged, PsMuxer(video_codec="h264", audio_codec="aac")))
    with av.open(str(path), "r", format="mpeg") as container:
        codecs = sorted(s.codec_context.name for s in container.streams)
        # (kind, pts, key) read while the container is open: a packet's stream dies with it.
        packets = [(p.stream.type, p.pts, p.is_keyframe) for p in container.demux() if p.size]
    assert codecs == ["aac", "h264"]
    got_video = [(pts, key) for kind, pts, key in packets if kind == "video"]
    assert got_video == [(f.pts, f.keyframe) for f in pictures]
    assert len(got_video) == 50
    assert sum(kind == "audio" for kind, _, _ in packets) == len(aac)
    probe = ffprobe_packets(path, "v")
    assert len(probe) == 50
    assert sum("K" in p["flags"] for p in probe) == 2


@pytest.mark.media
@pytest.mark.parametrize("name", ["h264.ps", "h265.ps"])
def test_alaw_and_video_round_trip(samples: dict[str, Path], name: str) -> None:
    # FFmpeg's PS muxer refuses A-law and its demuxer does not map stream_type 0x90, so the
    # A-law comes from FFmpeg as raw bytes and goes through our muxer and demuxer only.
    source, _ = demux_all(samples[name].read_bytes())
    pictures = [f for f in source if f.kind == "video"]
    raw = samples["alaw.raw"].read_bytes()
    sounds = [
        Frame(0xC0, "audio", "pcm_alaw", 45000 + 3600 * i, 45000 + 3600 * i, True, raw[j : j + 320])
        for i, j in enumerate(range(0, len(raw), 320))
    ]
    merged = sorted(pictures + sounds, key=lambda f: (f.dts, f.kind != "video"))
    muxer = PsMuxer(video_codec=pictures[0].codec, audio_codec="pcm_alaw")
    ps = mux_all(merged, muxer)
    packetizer = RtpPacketizer(ssrc=1, mtu=1400)
    rx, d = RtpReceiver(), PsDemuxer()
    out: list[Frame] = []
    for packet in packetizer.packetize(ps, 0):
        for event in rx.push(RtpPacket.parse(packet)):
            assert isinstance(event, Received)
            out += d.feed(event.packet.payload)
    out += d.flush()
    assert [f.data for f in out if f.kind == "audio"] == [f.data for f in sounds]
    assert [f.pts for f in out if f.kind == "audio"] == [f.pts for f in sounds]
    assert all(
        same(a, b) for a, b in zip(pictures, [f for f in out if f.kind == "video"], strict=True)
    )
    assert len([f for f in out if f.kind == "video"]) == 50
    with av.open(io.BytesIO(ps), "r", format="mpeg") as container:
        assert len([p for p in container.demux(video=0) if p.size]) == 50
