"""The camera simulator: a synthetic moving scene, encoded live, with a burned-in clock and frame
counter, so a fresh installation shows working cameras and tests and benchmarks can read the
picture's own time (glass-to-glass latency) and frame number.

A channel whose URL is ``sim://<codec>/<width>x<height>@<fps>[?seed=N]`` (for example
``sim://h264/640x360@25``) is fed by this instead of a network camera; everything after the
source (hub, recorder, live view) is the same.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from typing import TYPE_CHECKING, cast
from urllib.parse import parse_qs, urlsplit

import av
import numpy as np
from av.stream import Stream
from av.video.stream import VideoStream

from xueliang.core.errors import InvalidInput
from xueliang.media.hub import StreamInfo
from xueliang.media.sources.base import OpenSource, StopFlag

if TYPE_CHECKING:
    Packet = av.Packet[Stream]
else:
    Packet = av.Packet

ENCODERS = {"h264": "libx264", "h265": "libx265", "hevc": "libx265"}


@dataclass(frozen=True, slots=True)
class SimSpec:
    codec: str
    width: int
    height: int
    fps: int
    seed: int = 0
    gop: int = 50
    bitrate: int = 0


def parse_sim_url(url: str) -> SimSpec:
    parts = urlsplit(url)
    if parts.scheme != "sim":
        raise InvalidInput(f"not a simulator URL: {url!r}")
    codec = parts.netloc or "h264"
    if codec not in ENCODERS:
        raise InvalidInput(f"simulator codec must be one of {sorted(ENCODERS)}")
    size, _, fps = parts.path.strip("/").partition("@")
    try:
        w, h = (int(v) for v in (size or "640x360").split("x"))
        rate = int(fps or 25)
    except ValueError as exc:
        raise InvalidInput(f"simulator URL: expected <width>x<height>@<fps> in {url!r}") from exc
    if not (16 <= w <= 3840 and 16 <= h <= 2160 and 1 <= rate <= 60) or w % 2 or h % 2:
        raise InvalidInput("simulator picture: even sizes up to 3840x2160, 1–60 fps")
    q = parse_qs(parts.query)
    seed = int(q.get("seed", ["0"])[0])
    gop = int(q.get("gop", [str(rate * 2)])[0])
    bitrate = int(q.get("bitrate", ["0"])[0])
    return SimSpec("h265" if codec == "hevc" else codec, w, h, rate, seed, gop, bitrate)


# Seven-segment digits: segments a b c d e f g.
_SEGMENTS = {
    "0": "abcdef",
    "1": "bc",
    "2": "abdeg",
    "3": "abcdg",
    "4": "bcfg",
    "5": "acdfg",
    "6": "acdefg",
    "7": "abc",
    "8": "abcdefg",
    "9": "abcdfg",
    "-": "g",
    ":": "",
    ".": "",
}


def _draw_text(y: np.ndarray, text: str, x0: int, y0: int, h: int, value: int = 235) -> None:
    """Burn digits into the luma plane as seven-segment glyphs (no font needed)."""
    w = max(4, h // 2)
    t = max(2, h // 10)
    x = x0
    for ch in text:
        if ch in ":.":
            dots = (h // 3, 2 * h // 3) if ch == ":" else (h - t,)
            for dy in dots:
                y[y0 + dy : y0 + dy + t, x : x + t] = value
            x += t * 3
            continue
        segs = _SEGMENTS.get(ch, "")
        half = h // 2
        boxes = {
            "a": (0, t, 0, w),
            "d": (h - t, h, 0, w),
            "g": (half - t // 2, half + t - t // 2, 0, w),
            "f": (0, half, 0, t),
            "e": (half, h, 0, t),
            "b": (0, half, w - t, w),
            "c": (half, h, w - t, w),
        }
        for s in segs:
            r0, r1, c0, c1 = boxes[s]
            y[y0 + r0 : y0 + r1, x + c0 : x + c1] = value
        x += w + t * 2


class SyntheticScene:
    """A still backdrop per camera, a moving block, and the burned-in clock and frame number.

    The backdrop is drawn once: per frame only the block and the digits change, which keeps a
    simulated camera at a few percent of a core (a fresh machine's demo runs sixteen).
    """

    def __init__(self, spec: SimSpec) -> None:
        self.spec = spec
        w, h = spec.width, spec.height
        cols = np.arange(w, dtype=np.uint16)[None, :]
        ramp = cols + np.arange(h, dtype=np.uint16)[:, None] * 2 + spec.seed * 40
        self._backdrop = ((ramp % 160) + 30).astype(np.uint8)
        self._y = self._backdrop.copy()
        self._u = np.full((h // 2, w // 2), 128 + (spec.seed * 37) % 64 - 32, np.uint8).tobytes()
        self._v = np.full((h // 2, w // 2), 128 - (spec.seed * 53) % 64 + 32, np.uint8).tobytes()

    def render(self, n: int, at: float) -> av.VideoFrame:
        s = self.spec
        y = self._y
        np.copyto(y, self._backdrop)
        box = max(8, s.height // 6)
        bx = int((n * 4 + s.seed * 97) % max(1, s.width - box))
        by = int((s.height - box) * (0.5 + 0.4 * np.sin(n / 20 + s.seed)))
        y[by : by + box, bx : bx + box] = 16
        digit_h = max(10, s.height // 14)
        y[4 : 4 + digit_h * 2 + 16, 4 : 4 + digit_h * 9] = 16
        millis = int(at * 1000) % 1000
        clock = datetime.fromtimestamp(at, UTC).strftime("%H:%M:%S.") + f"{millis:03d}"
        _draw_text(y, clock, 8, 8, digit_h)
        _draw_text(y, f"{n:08d}", 8, 12 + digit_h, digit_h)
        frame = av.VideoFrame(s.width, s.height, "yuv420p")
        frame.planes[0].update(y.tobytes())
        frame.planes[1].update(self._u)
        frame.planes[2].update(self._v)
        return frame


class _Discard:
    def write(self, data: bytes) -> int:
        return len(data)


@contextmanager
def open_simulator(url: str, stop: StopFlag) -> Iterator[OpenSource]:
    spec = parse_sim_url(url)
    # The encoder lives in a throw-away MP4 container so that it produces global headers
    # (extradata), as a camera's SDP does; recorders and live muxers copy them.
    container = av.open(
        _Discard(), "w", format="mp4", options={"movflags": "empty_moov+frag_keyframe"}
    )
    stream = cast(VideoStream, container.add_stream(ENCODERS[spec.codec], rate=spec.fps))
    stream.width, stream.height, stream.pix_fmt = spec.width, spec.height, "yuv420p"
    stream.time_base = Fraction(1, 90000)
    # Packets come out in the encoder's time base: make it the 90 kHz of RTP video.
    stream.codec_context.time_base = Fraction(1, 90000)
    stream.codec_context.gop_size = spec.gop
    stream.codec_context.max_b_frames = 0
    stream.bit_rate = spec.bitrate or max(200_000, spec.width * spec.height * spec.fps // 12)
    stream.codec_context.options = (
        {"preset": "ultrafast", "tune": "zerolatency"}
        if spec.codec == "h264"
        else {"preset": "ultrafast", "tune": "zerolatency", "x265-params": "log-level=error"}
    )
    # Opens the encoder and writes the (discarded) header, which copies the encoder's
    # parameters, SPS/PPS included, into the stream that consumers take as their template.
    container.start_encoding()
    scene = SyntheticScene(spec)
    info = StreamInfo(
        index=0,
        kind="video",
        codec="h264" if spec.codec == "h264" else "hevc",
        time_base=stream.time_base or Fraction(1, 90000),
        template=stream,
    )

    def packets() -> Iterator[Packet]:
        start = time.time()
        period = 1 / spec.fps
        ticks_per_frame = 90000 // spec.fps
        n = 0
        while not stop.is_set():
            due = start + n * period
            if stop.wait(max(0.0, due - time.time())):
                return
            frame = scene.render(n, time.time())
            frame.pts = n * ticks_per_frame
            frame.time_base = Fraction(1, 90000)
            yield from stream.encode(frame)
            n += 1

    try:
        yield OpenSource(streams=[info], frame_rate=float(spec.fps), packets=packets())
    finally:
        container.close()
