"""Audio in the media plane: AAC copied, G.711 transcoded to AAC, anything else left out.

Against GStreamer's RTSP server (a real peer: video with AAC, G.711 A-law or µ-law audio as a
second RTP stream), everything checked with Debian's ffprobe/ffmpeg; and the transcoder alone
on synthetic G.711 packets.
"""

from __future__ import annotations

import itertools
import json
import logging
import subprocess
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.support.media import Events, add_camera, status
from tests.support.rtsp_peer import RtspPeer
from xueliang.app import Platform
from xueliang.media.audio import G711ToAac, audio_plan
from xueliang.media.model import SegmentClosed
from xueliang.media.recorder import SegmentRecorder
from xueliang.media.sources.rtsp import stream_infos

pytestmark = pytest.mark.media

API = "/api/v1"
RATE = 8000
AAC_FRAME = 1024  # samples per AAC-LC frame


def probe(path: Path) -> dict[str, dict[str, Any]]:
    """codec_type -> {codec_name, duration, sample_rate, channels} of each stream."""
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type,codec_name,duration,sample_rate,channels",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    streams = json.loads(out)["streams"]
    kinds = [s["codec_type"] for s in streams]
    assert len(kinds) == len(set(kinds)), streams  # one track of each kind at most
    return {s["codec_type"]: s for s in streams}


def decode_errors(path: Path) -> str:
    """What FFmpeg reports decoding the audio track (nothing when it is sound)."""
    done = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:a", "-f", "null", "-"],
        capture_output=True,
        text=True,
    )
    return done.stderr.strip() if done.returncode == 0 else f"exit {done.returncode}: {done.stderr}"


def check_av(path: Path) -> None:
    """H.264 video with AAC audio of the same length (within 0.2 s), decoding without errors."""
    streams = probe(path)
    assert set(streams) == {"video", "audio"}, streams
    assert streams["video"]["codec_name"] == "h264"
    audio = streams["audio"]
    assert audio["codec_name"] == "aac" and audio["channels"] == 1, audio
    video_s, audio_s = float(streams["video"]["duration"]), float(audio["duration"])
    assert abs(audio_s - video_s) <= 0.2, (path.name, video_s, audio_s)
    assert decode_errors(path) == ""


# --- recording a real camera -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "rate"), [("/h264-aac", "16000"), ("/h264-pcma", "8000"), ("/h264-pcmu", "8000")]
)
def test_camera_audio_is_recorded_played_back_and_exported_as_aac(
    media_platform: Platform,
    client: TestClient,
    admin_headers: dict[str, str],
    peer: RtspPeer,
    tmp_path: Path,
    path: str,
    rate: str,
) -> None:
    events = Events(media_platform)
    channel = add_camera(client, admin_headers, peer.url(path))
    media_platform.media.start()
    events.wait(status(channel, "online"), 20, "online")
    segs = events.segments(channel, 3, 20)
    root = media_platform.data.recordings
    for seg in segs:
        check_av(root / seg.path)
        assert probe(root / seg.path)["audio"]["sample_rate"] == rate  # AAC at the camera's rate
        # One GOP (25 frames) per 1 s segment: audio between the pieces of a key frame
        # does not split the picture in two.
        assert seg.codec == "h264" and seg.frames == 25

    # An export of the range keeps the track (a regular MP4, remuxed from the segments).
    start, end = segs[0].start, segs[2].end
    r = client.post(
        f"{API}/exports",
        json={
            "channel_id": channel,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "reason": "案件 2025-007：现场录音",
        },
        headers=admin_headers,
    )
    assert r.status_code == 201, r.text
    (exported,) = (media_platform.data.root / "exports").iterdir()
    check_av(exported)
    recorded = sum((s.end - s.start).total_seconds() for s in segs)
    assert abs(float(probe(exported)["audio"]["duration"]) - recorded) <= 0.3

    # So does playback of the range.
    r = client.get(
        f"{API}/channels/{channel}/playback",
        params={"start": start.isoformat(), "end": end.isoformat()},
        headers=admin_headers,
    )
    assert r.status_code == 200, r.text
    # A browser must be told of the audio track too, or it refuses the segment.
    assert r.headers["X-Codec"].startswith("avc1.") and r.headers["X-Codec"].endswith(",mp4a.40.2")
    played = tmp_path / "played.mp4"
    played.write_bytes(r.content)
    check_av(played)


# --- the transcoder alone ----------------------------------------------------------------------


def g711_packets(
    codec: str, seconds: float, *, first_dts: int = 0, per: int = 160
) -> list[av.Packet]:
    """A 440 Hz tone as G.711 RTP-sized packets (20 ms), timed in 1/8000 from ``first_dts``."""
    encoder = av.CodecContext.create(codec, "w")
    encoder.sample_rate = RATE  # type: ignore[attr-defined]
    encoder.layout = "mono"  # type: ignore[attr-defined]
    encoder.format = "s16"  # type: ignore[attr-defined]
    n = int(seconds * RATE)
    pcm = (np.sin(2 * np.pi * 440 * np.arange(n) / RATE) * 8000).astype(np.int16)
    packets: list[av.Packet] = []
    for i in range(0, n, per):
        frame = av.AudioFrame.from_ndarray(pcm[None, i : i + per], format="s16", layout="mono")
        frame.sample_rate = RATE
        for packet in encoder.encode(frame):  # type: ignore[attr-defined]
            packet.time_base = Fraction(1, RATE)
            packet.pts = packet.dts = first_dts + i
            packets.append(packet)
    assert packets and sum(p.size for p in packets) == n
    return packets


def transcode(
    tmp_path: Path, codec: str, packets: list[av.Packet], start: float | None = None
) -> tuple[list[av.Packet], Path]:
    """Transcode into an MP4 file; (the AAC packets, the file)."""
    path = tmp_path / f"{codec}.mp4"
    out: list[av.Packet] = []
    with av.open(str(path), "w", format="mp4") as output:
        tr = G711ToAac(output, codec, RATE, 1)
        for packet in packets:
            out += tr.feed(packet, start)
        out += tr.flush(start)
        # Timed before muxing: the muxer retimes a packet in place.
        timed = [(p.pts, p.duration, p.time_base) for p in out]
        output.mux(out)
    assert all(tb == Fraction(1, RATE) for _, _, tb in timed)
    for p, (pts, duration, _) in zip(out, timed, strict=True):
        p.pts, p.duration = pts, duration
    return out, path


def decoded_samples(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(f.samples for f in c.decode(audio=0))


@pytest.mark.parametrize("codec", ["pcm_alaw", "pcm_mulaw"])
def test_transcoder_output_is_continuous_and_as_long_as_its_input(
    tmp_path: Path, codec: str
) -> None:
    first = 5 * RATE + 40  # the input clock does not start at 0
    packets = g711_packets(codec, 3.0, first_dts=first)
    out, path = transcode(tmp_path, codec, packets)
    pts = [p.pts for p in out]
    # The encoder's priming frame first, then one AAC frame after another without a hole.
    assert pts[0] == first - AAC_FRAME
    assert all(b - a == AAC_FRAME for a, b in itertools.pairwise(pts)), pts
    assert out[-1].pts is not None and out[-1].duration
    # Ends with the input's last sample (the last frame's duration is what is left of it).
    assert out[-1].pts + out[-1].duration == first + 3 * RATE
    streams = probe(path)
    assert streams["audio"]["codec_name"] == "aac" and streams["audio"]["sample_rate"] == "8000"
    assert decode_errors(path) == ""
    assert abs(decoded_samples(path) - (3 * RATE + AAC_FRAME)) <= AAC_FRAME


def test_transcoder_absorbs_jitter_and_fills_lost_packets(tmp_path: Path) -> None:
    packets = g711_packets("pcm_alaw", 4.0)
    # Network jitter of up to ±15 ms on every packet, and 300 ms lost in the middle.
    jitter = itertools.cycle([0, 120, -80, 40, -120])
    kept = [p for i, p in enumerate(packets) if not 100 <= i < 115]
    for p, j in zip(kept, jitter, strict=False):
        assert p.dts is not None
        p.dts = p.pts = max(0, p.dts + j)
    out, path = transcode(tmp_path, "pcm_alaw", kept, start=0.0)
    pts = [p.pts for p in out]
    assert pts[0] == 0  # the priming frame (before ``start``) is left out
    assert all(b - a == AAC_FRAME for a, b in itertools.pairwise(pts)), pts
    end = out[-1].pts + out[-1].duration  # type: ignore[operator]
    # As long as the input, the lost packets filled with silence (up to the last one's jitter).
    assert abs(end - 4 * RATE) <= 160, end
    assert decode_errors(path) == ""


def test_audio_plan() -> None:
    assert audio_plan("aac") == "copy"
    assert audio_plan("pcm_alaw") == audio_plan("pcm_mulaw") == "aac"
    assert audio_plan("g726") == audio_plan("adpcm_ima_wav") == "drop"


# --- audio that MP4 cannot take and that is not G.711 ------------------------------------------


def camera_file(path: Path, audio_codec: str, seconds: int = 3) -> None:
    """H.264 (a key frame every second) with audio in ``audio_codec``, as a camera might send."""
    with av.open(str(path), "w", format="nut") as out:
        video = out.add_stream("libx264", rate=25, options={"g": "25", "preset": "ultrafast"})
        video.width, video.height, video.pix_fmt = 160, 120, "yuv420p"
        audio = out.add_stream(audio_codec, rate=RATE, layout="mono")
        for i in range(seconds * 25):
            img = np.full((120, 160, 3), i * 3 % 256, dtype=np.uint8)
            out.mux(video.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(video.encode(None))
        pcm = (np.sin(np.arange(seconds * RATE) / 3) * 8000).astype(np.int16)
        for i in range(0, len(pcm), 160):
            frame = av.AudioFrame.from_ndarray(pcm[None, i : i + 160], format="s16", layout="mono")
            frame.sample_rate, frame.pts = RATE, i
            out.mux(audio.encode(frame))
        out.mux(audio.encode(None))


def record_file(source: Path, root: Path) -> Iterator[SegmentClosed]:
    """Feed a file's packets to a recorder (1 s segments); the segments it closed."""
    closed: list[SegmentClosed] = []
    recorder = SegmentRecorder(
        root, "34020000001320000001", segment_seconds=1.0, on_segment=closed.append
    )
    with av.open(str(source)) as c:
        recorder.start(stream_infos(c))
        for i, packet in enumerate(c.demux()):
            if packet.size:
                recorder.offer(packet, 1_700_000_000 + i / 100)
        recorder.stop()
    assert recorder.failed is None
    return iter(closed)


def test_unsupported_audio_is_left_out_once_per_session(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = tmp_path / "g726.nut"
    camera_file(source, "adpcm_g726")
    with av.open(str(source)) as c:
        assert [s.codec_context.name for s in c.streams] == ["h264", "g726"]
    with caplog.at_level(logging.WARNING, logger="xueliang.media.recorder"):
        segs = list(record_file(source, tmp_path / "rec"))
    assert len(segs) >= 2
    for seg in segs:
        streams = probe(tmp_path / "rec" / seg.path)
        assert set(streams) == {"video"}, streams  # the video, without the audio
    notes = [r.getMessage() for r in caplog.records if "(g726)" in r.getMessage()]
    assert len(notes) == 1, notes


def test_g711_from_a_camera_file_is_recorded_as_aac(tmp_path: Path) -> None:
    source = tmp_path / "pcma.nut"
    camera_file(source, "pcm_alaw")
    segs = list(record_file(source, tmp_path / "rec"))
    assert len(segs) >= 2
    for seg in segs[:-1]:  # the last holds what came after the last key frame
        check_av(tmp_path / "rec" / seg.path)
