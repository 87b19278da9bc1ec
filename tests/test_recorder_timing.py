"""The recorder's segment times: jitter in when key frames arrive neither overlaps consecutive
segments nor opens holes between them, and the wall clock still wins over a camera clock that
drifts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from itertools import pairwise
from pathlib import Path

import av
import numpy as np
import pytest

from xueliang.media.model import SegmentClosed
from xueliang.media.recorder import MAX_DRIFT, SegmentRecorder
from xueliang.media.sources.rtsp import stream_infos

pytestmark = pytest.mark.media

T0 = 1_700_000_000.0


def camera_file(path: Path, seconds: int = 5) -> None:
    """H.264 at 25 fps with a key frame every second."""
    with av.open(str(path), "w", format="nut") as out:
        video = out.add_stream("libx264", rate=25, options={"g": "25", "preset": "ultrafast"})
        video.width, video.height, video.pix_fmt = 160, 120, "yuv420p"
        for i in range(seconds * 25):
            img = np.full((120, 160, 3), i * 3 % 256, dtype=np.uint8)
            out.mux(video.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(video.encode(None))


def record(
    source: Path,
    root: Path,
    arrival: Callable[[int, float, bool], float],
    keep: Callable[[float], bool] = lambda _t: True,
) -> list[SegmentClosed]:
    """1 s segments; ``arrival(i, media_seconds, keyframe)`` is each packet's wall clock;
    packets ``keep`` refuses are left out (a recording plan's gate)."""
    closed: list[SegmentClosed] = []
    recorder = SegmentRecorder(root, "c1", segment_seconds=1.0, on_segment=closed.append)
    with av.open(str(source)) as c:
        recorder.start(stream_infos(c))
        for i, packet in enumerate(p for p in c.demux() if p.size):
            assert packet.dts is not None and packet.time_base is not None
            t = float(packet.dts * packet.time_base)
            if keep(t):
                recorder.offer(packet, arrival(i, t, packet.is_keyframe))
        recorder.stop()
    return closed


def test_a_late_key_frame_does_not_make_segments_overlap(tmp_path: Path) -> None:
    source = tmp_path / "cam.nut"
    camera_file(source)

    def arrival(i: int, t: float, key: bool) -> float:
        # The key frame opening the second segment arrives 300 ms late (a loaded machine);
        # everything else on time.
        late = 0.3 if key and 0.9 < t < 1.1 else 0.0
        return T0 + t + late

    segs = record(source, tmp_path / "rec", arrival)
    assert len(segs) >= 4
    for a, b in pairwise(segs):
        assert b.start >= a.end, (a.start, a.end, b.start)
        # Continuous recording stays continuous: no hole opened either.
        assert b.start - a.end < timedelta(milliseconds=1)
    # The index still spans the media: five seconds of frames, five seconds of index.
    assert abs((segs[-1].end - segs[0].start).total_seconds() - 5.0) < 0.35


def test_a_segment_after_frames_left_out_starts_on_the_wall_clock(tmp_path: Path) -> None:
    """Frames left out (a plan's gate between events): the next segment does not continue the
    last one's clock, even when its key frame arrives within MAX_DRIFT of where it would."""
    source = tmp_path / "cam.nut"
    camera_file(source)

    def arrival(_i: int, t: float, key: bool) -> float:
        return T0 + t - (0.5 if key and t > 2.5 else 0.0)  # later key frames come early

    segs = record(source, tmp_path / "rec", arrival, keep=lambda t: not 1.5 <= t < 3.0)
    assert [round(s.start.timestamp() - T0, 3) for s in segs] == [0.0, 1.0, 2.5, 3.5]
    # The key frame after the cut starts its segment on its own (early) arrival, 2.5 not 3.0;
    # the one after it follows that segment's clock again.


@pytest.mark.parametrize(
    "rate", [1.2, 0.8, 4.0], ids=["camera-fast", "camera-slow", "sent-4x-real-time"]
)
def test_the_wall_clock_wins_over_a_drifting_camera_clock(tmp_path: Path, rate: float) -> None:
    source = tmp_path / "cam.nut"
    camera_file(source, seconds=8)

    # The camera's clock runs 20% fast (or slow), or a device sends 4x faster than real time:
    # each second of media arrives over 1/rate seconds of ours.
    keys: list[float] = []

    def arrival(_i: int, t: float, key: bool) -> float:
        wall = T0 + t / rate
        if key:
            keys.append(wall)
        return wall

    segs = record(source, tmp_path / "rec", arrival)
    assert len(segs) >= 7
    # Each segment starts within MAX_DRIFT of when its first key frame arrived …
    drift = [abs(seg.start.timestamp() - wall) for seg, wall in zip(segs, keys, strict=False)]
    assert max(drift) <= MAX_DRIFT.total_seconds() + 0.001, drift
    # … and the wall clock did win at least once (the media clock alone parts 1.3–6 s here).
    won = [abs(s.start.timestamp() - w) < 0.001 for s, w in zip(segs[1:], keys[1:], strict=False)]
    assert any(won), drift
    # Where it wins over a fast clock, a segment starts before the last one's media ended:
    # the one case that overlaps, by at most MAX_DRIFT and one segment's drift.
    step = timedelta(seconds=abs(1 - 1 / rate))
    assert all(b.start >= a.end - MAX_DRIFT - step for a, b in pairwise(segs))
    # Segments start in the order they were recorded, always.
    assert all(b.start > a.start for a, b in pairwise(segs))
