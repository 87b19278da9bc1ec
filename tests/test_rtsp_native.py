"""Xueliang's own RTSP client against GStreamer's RTSP server (a real peer nobody here wrote):
what it records, what it hands to FFmpeg's client, and a camera that goes silent."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.support.rtsp_peer import RtspPeer
from tests.support.wait import wait_until
from xueliang.media.hub import ChannelHub, StreamInfo
from xueliang.media.ingest import Backoff, ChannelIngest
from xueliang.media.model import IngestSpec, MediaEvent, SegmentClosed, StatusChanged
from xueliang.media.recorder import SegmentRecorder
from xueliang.media.sources.base import Packet
from xueliang.media.sources.rtsp_native import NativeUnsupported, open_native_rtsp_source

pytestmark = pytest.mark.media


class Packets:
    """A hub consumer keeping each packet's stream, times and key flag."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, int, int, bool]] = []
        self.streams: list[StreamInfo] = []
        self.lock = threading.Lock()

    def start(self, streams: Sequence[StreamInfo]) -> None:
        self.streams = list(streams)

    def offer(self, packet: Packet, wallclock: float) -> bool:
        with self.lock:
            self.seen.append(
                (packet.stream_index, packet.pts or 0, packet.dts or 0, packet.is_keyframe)
            )
        return True

    def stop(self) -> None:
        pass

    def count(self) -> int:
        with self.lock:
            return len(self.seen)


class Rig:
    def __init__(self, root: Path, url: str, rtsp_client: str = "own", **spec: str) -> None:
        self.events: list[MediaEvent] = []
        self.hub = ChannelHub("c1")
        self.packets = Packets()
        self.hub.subscribe(self.packets)
        self.hub.subscribe(
            SegmentRecorder(root, "c1", segment_seconds=1.0, on_segment=self.events.append)
        )
        self.ingest = ChannelIngest(
            IngestSpec("c1", url, **spec),  # type: ignore[arg-type]
            self.hub,
            self.events.append,
            backoff=Backoff(0.2, 0.5),
            rtsp_client=rtsp_client,
        )

    def statuses(self) -> list[StatusChanged]:
        return [e for e in self.events if isinstance(e, StatusChanged)]

    def segments(self) -> list[SegmentClosed]:
        return [e for e in self.events if isinstance(e, SegmentClosed)]


@pytest.fixture
def rig_for(tmp_path: Path) -> Iterator[list[Rig]]:
    rigs: list[Rig] = []
    yield rigs
    for rig in rigs:
        rig.ingest.stop()
        rig.ingest.join(15)
        assert not rig.ingest.is_alive()


def _probe(path: Path) -> dict[str, object]:
    out = subprocess.run(
        [
            *("ffprobe", "-v", "error", "-count_packets", "-of", "json"),
            *("-show_entries", "stream=codec_type,codec_name,width,nb_read_packets", str(path)),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("path", "codecs"),
    [
        ("/h264", ["h264"]),
        ("/h265", ["hevc"]),
        ("/h264-aac", ["h264", "aac"]),
        ("/h264-pcmu", ["h264", "aac"]),  # G.711 is recorded as AAC (MP4 cannot hold it)
    ],
)
def test_own_client_records_what_the_camera_sends(
    peer: RtspPeer, tmp_path: Path, rig_for: list[Rig], path: str, codecs: list[str]
) -> None:
    rig = Rig(tmp_path, peer.url(path))
    rig_for.append(rig)
    rig.ingest.start()
    wait_until(lambda: len(rig.segments()) >= 2, 20, "two segments")
    assert rig.ingest.ffmpeg_because is None  # Xueliang's own client did it
    assert [s.status for s in rig.statuses()] == ["online"]
    video = [p for p in rig.packets.seen if p[0] == 0]
    assert video[0][3], "the first picture is a key frame"
    dts = [p[2] for p in video]
    assert all(b > a for a, b in itertools.pairwise(dts)), "video times only go on"
    # 25 pictures a second at 90 kHz.
    steps = sorted(b - a for a, b in itertools.pairwise(dts))
    assert steps[len(steps) // 2] == 3600
    for seg in rig.segments():
        info = _probe(tmp_path / seg.path)
        streams = info["streams"]
        assert [s["codec_name"] for s in streams] == codecs  # type: ignore[attr-defined]
        assert int(streams[0]["nb_read_packets"]) >= 20  # type: ignore[index]


def test_b_frames_go_to_ffmpegs_client_without_an_outage(
    tmp_path: Path, rig_for: list[Rig]
) -> None:
    source = tmp_path / "bframes.ts"
    subprocess.run(
        [
            *("ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"),
            *("-t", "60", "-c:v", "libx264", "-preset", "ultrafast", "-bf", "2", "-g", "25"),
            *("-pix_fmt", "yuv420p", "-f", "mpegts", str(source)),
        ],
        check=True,
    )
    peer = RtspPeer(file=source)
    peer.start()
    try:
        spec = IngestSpec("c1", peer.url("/file"))
        with (
            pytest.raises(NativeUnsupported, match="B-frames"),
            open_native_rtsp_source(spec, threading.Event()),
        ):
            pass
        rig = Rig(tmp_path, peer.url("/file"))
        rig_for.append(rig)
        rig.ingest.start()
        wait_until(lambda: len(rig.segments()) >= 1, 20, "a segment")
        assert rig.ingest.ffmpeg_because is not None and "B-frames" in rig.ingest.ffmpeg_because
        assert [s.status for s in rig.statuses()] == ["online"]  # never offline for the switch
        info = _probe(tmp_path / rig.segments()[0].path)
        assert info["streams"][0]["codec_name"] == "h264"  # type: ignore[index]
    finally:
        peer.kill()


def test_ffmpegs_client_when_configured(peer: RtspPeer, tmp_path: Path, rig_for: list[Rig]) -> None:
    rig = Rig(tmp_path, peer.url("/h264-aac"), rtsp_client="ffmpeg")
    rig_for.append(rig)
    rig.ingest.start()
    wait_until(lambda: len(rig.segments()) >= 1, 20, "a segment")
    assert rig.ingest.ffmpeg_because == "configured"
    info = _probe(tmp_path / rig.segments()[0].path)
    assert [s["codec_name"] for s in info["streams"]] == ["h264", "aac"]  # type: ignore[attr-defined]


def test_udp_transport_goes_to_ffmpegs_client(
    peer: RtspPeer, tmp_path: Path, rig_for: list[Rig]
) -> None:
    rig = Rig(tmp_path, peer.url("/h264"), transport="udp")
    rig_for.append(rig)
    rig.ingest.start()
    wait_until(lambda: rig.packets.count() >= 25, 20, "a second of video")
    assert rig.ingest.ffmpeg_because is None  # not switched: UDP never tries the own client
    assert [s.status for s in rig.statuses()] == ["online"]


def test_a_camera_that_goes_silent_is_offline_within_ten_seconds_and_comes_back(
    peer: RtspPeer, tmp_path: Path, rig_for: list[Rig]
) -> None:
    rig = Rig(tmp_path, peer.url("/h264"))
    rig_for.append(rig)
    rig.ingest.start()
    wait_until(lambda: rig.packets.count() >= 25, 20, "a second of video")
    assert peer.proc is not None
    # Frozen, not killed: the connection stays open and nothing more arrives (a hung camera).
    os.kill(peer.proc.pid, signal.SIGSTOP)
    try:
        offline = wait_until(
            lambda: next((s for s in rig.statuses() if s.status == "offline"), None),
            10,
            "offline",
        )
        assert offline.reason == "no data from the camera (timed out)"
    finally:
        os.kill(peer.proc.pid, signal.SIGCONT)
    wait_until(lambda: [s.status for s in rig.statuses()][-1] == "online", 30, "online again")
    before = rig.packets.count()
    wait_until(lambda: rig.packets.count() > before + 25, 20, "video again")


def test_wrong_password_and_unknown_path_say_so(tmp_path: Path, rig_for: list[Rig]) -> None:
    peer = RtspPeer(user="admin", password="right")
    peer.start()
    try:
        wrong = Rig(tmp_path / "a", peer.url("/h264"), username="admin", password="wrong")
        missing = Rig(tmp_path / "b", peer.url("/nothing"), username="admin", password="right")
        right = Rig(tmp_path / "c", peer.url("/h264"), username="admin", password="right")
        rig_for.extend([wrong, missing, right])
        for r in (wrong, missing, right):
            r.ingest.start()

        def reason(r: Rig) -> str | None:
            return next((s.reason for s in r.statuses() if s.status == "offline"), None)

        assert wait_until(lambda: reason(wrong), 15, "wrong password") == "authentication failed"
        assert (
            wait_until(lambda: reason(missing), 15, "unknown path")
            == "stream not found on the camera"
        )
        wait_until(lambda: right.packets.count() >= 25, 20, "video with the right password")
        assert right.ingest.ffmpeg_because is None
    finally:
        peer.kill()


def _h264_pictures(n: int) -> list[bytes]:
    """n pictures of a 64x64 H.264 stream (Annex B), the first a key frame."""
    import av
    import numpy as np

    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = 64, 64, "yuv420p"
    enc.options = {"bframes": "0", "g": "50"}
    out: list[bytes] = []
    for i in range(n):
        frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), i * 7 % 255, np.uint8), "rgb24")
        frame.pts = i
        out += [bytes(p) for p in enc.encode(frame.reformat(format="yuv420p"))]
    out += [bytes(p) for p in enc.encode(None)]
    return out[:n]


def test_a_clock_that_jumps_runs_on_and_a_duplicate_is_left_out() -> None:
    from xueliang.media.sources.rtsp_native import _Session
    from xueliang.rtsp.client import Playing, Track
    from xueliang.rtsp.depacketize import Unit
    from xueliang.rtsp.sdp import parse_sdp

    sdp = parse_sdp("v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n")
    session = _Session(Playing([Track(sdp.media[0], 0, "rtsp://x/t")], 60))
    pictures = _h264_pictures(8)
    units = [Unit(data, 1000 + 3600 * i, i == 0) for i, data in enumerate(pictures[:4])]
    session.open([(session.video, units[0], 0.0)])
    try:
        times = []
        for unit in units:
            packet = session.packet(session.video, unit, 0.0)
            assert packet is not None
            times.append(packet.dts)
        # The same picture again: left out, nothing counted.
        assert session.packet(session.video, units[-1], 0.0) is None
        # The camera restarts its stream: its clock is 5 minutes back. Then 40 s ahead.
        back = Unit(pictures[4], 1000 - 90000 * 300, False)
        ahead = Unit(pictures[5], 1000 - 90000 * 300 + 90000 * 40, False)
        for unit in (back, ahead):
            packet = session.packet(session.video, unit, 0.0)
            assert packet is not None
            times.append(packet.dts)
        assert times == [0, 3600, 7200, 10800, 14400, 18000]  # one frame later each time
        assert session.rebased == 2 and session.backwards == 0
        # Pictures slightly out of order, again and again: B-frames, for FFmpeg's client.
        base = 1000 - 90000 * 300 + 90000 * 40
        with pytest.raises(NativeUnsupported, match="B-frames"):
            for i, unit_time in enumerate(
                [base + 7200, base + 3600, base + 14400, base + 10800, base + 21600, base + 18000]
            ):
                session.packet(session.video, Unit(pictures[6 + i % 2], unit_time, False), 0.0)
    finally:
        session.close()
