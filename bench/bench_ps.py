"""Benchmark of GB/T 28181 media parsing: RTP + MPEG-PS demux throughput on one core.

    .venv/bin/python bench/bench_ps.py               # 20 s of 1080p25 at 4 Mbit/s
    .venv/bin/python bench/bench_ps.py --seconds 10 --repeat 5

FFmpeg encodes a 1080p25 H.264 stream at 4 Mbit/s (no B-frames, GOP 50, as IPCs send) into a
temporary directory. Xueliang's muxer lays it out the way a Hikvision camera does (a pack per
frame, PSM before key frames, one PES per NAL unit) and cuts it into 1400-byte RTP packets.
Then, on one core, each of these is timed over the whole stream:

- xueliang RTP+PS: RtpPacket.parse, RtpReceiver (ordering) and PsDemuxer, packet by packet,
  as a GB/T 28181 UDP media port runs;
- xueliang PS: PsDemuxer alone over the same PS bytes, and over FFmpeg's own ``-f mpeg``
  output (2 KiB MPEG-1 packs, frames cut across PES packets);
- PyAV mpeg: FFmpeg's program stream demuxer (with its H.264 parser, which delimits frames
  as ours does) over the same two PS files, read from memory.

Printed: frames and Mbit/s per second of one core, and how many 4 Mbit/s streams one core
keeps up with (stream bit rate / throughput; parsing only, no sockets).
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av

from xueliang.gb28181.ps import PsDemuxer
from xueliang.gb28181.ps_mux import PsMuxer
from xueliang.gb28181.rtp import Received, RtpPacket, RtpPacketizer, RtpReceiver

STREAM_BPS = 4_000_000


def encode(directory: Path, seconds: int) -> Path:
    out = directory / "ffmpeg.ps"
    subprocess.run(
        [
            "ffmpeg",
            "-loglevel",
            "fatal",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1920x1080:rate=25",
            "-t",
            str(seconds),
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-b:v",
            "4M",
            "-maxrate",
            "4M",
            "-bufsize",
            "8M",
            "-bf",
            "0",
            "-g",
            "50",
            "-f",
            "mpeg",
            str(out),
        ],
        check=True,
    )
    return out


def gb_layout(ffmpeg_ps: bytes) -> tuple[bytes, list[bytes]]:
    """The same frames as a GB device sends them: PS bytes and their RTP packets."""
    demuxer = PsDemuxer()
    frames = demuxer.feed(ffmpeg_ps) + demuxer.flush()
    muxer = PsMuxer(video_codec="h264")
    packetizer = RtpPacketizer(ssrc=0x0100000001, payload_type=96, mtu=1400)
    ps_parts, packets = [], []
    for frame in frames:
        ps = muxer.mux(frame)
        ps_parts.append(ps)
        packets += packetizer.packetize(ps, frame.pts)
    return b"".join(ps_parts), packets


def run_rtp_ps(packets: list[bytes]) -> int:
    receiver = RtpReceiver()
    demuxer = PsDemuxer()
    frames = 0
    parse = RtpPacket.parse
    for data in packets:
        for event in receiver.push(parse(data)):
            if isinstance(event, Received):
                frames += len(demuxer.feed(event.packet.payload))
            else:
                frames += len(demuxer.discontinuity())
    return frames + len(demuxer.flush())


def run_ps(ps: bytes, chunk: int = 1388) -> int:
    demuxer = PsDemuxer()
    frames = 0
    for start in range(0, len(ps), chunk):
        frames += len(demuxer.feed(ps[start : start + chunk]))
    return frames + len(demuxer.flush())


def run_pyav(ps: bytes) -> int:
    with av.open(io.BytesIO(ps), "r", format="mpeg") as container:
        return len([p for p in container.demux(video=0) if p.size])


def best_of(repeat: int, work: Callable[[], int]) -> tuple[int, float]:
    """Frames and the best CPU time of ``repeat`` runs (process time: one core's work)."""
    best = float("inf")
    frames = 0
    for _ in range(repeat):
        start = time.process_time()
        frames = work()
        best = min(best, time.process_time() - start)
    return frames, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20, help="length of the test stream")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; the best counts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ps-") as tmp:
        print(f"encoding {args.seconds} s of 1080p25 H.264 at 4 Mbit/s …", flush=True)
        ffmpeg_ps = encode(Path(tmp), args.seconds).read_bytes()
    gb_ps, packets = gb_layout(ffmpeg_ps)
    bits = {"gb": len(gb_ps) * 8, "ffmpeg": len(ffmpeg_ps) * 8}
    cases: list[tuple[str, str, Callable[[], int]]] = [
        ("xueliang RTP+PS (GB layout)", "gb", lambda: run_rtp_ps(packets)),
        ("xueliang PS (GB layout)", "gb", lambda: run_ps(gb_ps)),
        ("PyAV mpeg (GB layout)", "gb", lambda: run_pyav(gb_ps)),
        ("xueliang PS (ffmpeg -f mpeg)", "ffmpeg", lambda: run_ps(ffmpeg_ps)),
        ("PyAV mpeg (ffmpeg -f mpeg)", "ffmpeg", lambda: run_pyav(ffmpeg_ps)),
    ]
    print(
        f"stream: {len(packets)} RTP packets, {len(gb_ps) / 1e6:.1f} MB GB-style PS, "
        f"{len(ffmpeg_ps) / 1e6:.1f} MB ffmpeg PS, {args.seconds} s; one core, best of "
        f"{args.repeat}\n"
    )
    header = f"{'demuxer':<31} {'frames':>7} {'CPU s':>7} {'frames/s':>9} {'Mbit/s':>8}"
    print(header + f" {'streams/core @4M':>17}")
    print("-" * (len(header) + 18))
    for name, layout, work in cases:
        frames, seconds = best_of(args.repeat, work)
        mbps = bits[layout] / seconds / 1e6
        streams = bits[layout] / seconds / STREAM_BPS
        print(
            f"{name:<31} {frames:>7} {seconds:>7.3f} {frames / seconds:>9.0f} {mbps:>8.0f} "
            f"{streams:>17.0f}"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
