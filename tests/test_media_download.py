"""The download writer: a stream into one regular MP4 file, timed by the media, reported once,
never opened twice over itself (a reconnect after a break), and a failed write reported."""

from __future__ import annotations

import itertools
import subprocess
from collections.abc import Iterator
from pathlib import Path

import av
import pytest

from tests.support.ffprobe import video_stream
from xueliang.media.download import DownloadWriter
from xueliang.media.hub import StreamInfo
from xueliang.media.model import DownloadFinished, DownloadProgress, DownloadTarget, MediaEvent

pytestmark = pytest.mark.media


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 s of 320x180 H.264 at 25 fps, a key frame every second (made by FFmpeg)."""
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    subprocess.run(
        [
            "ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25",
            "-t", "4", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25",
            "-pix_fmt", "yuv420p", str(path),
        ],
        check=True,
    )  # fmt: skip
    return path


class Feed:
    """The clip's packets as the hub hands them over (arrival 10× faster than real time: the
    file must still last as long as the media)."""

    def __init__(self, clip: Path) -> None:
        self._container = av.open(str(clip))
        stream = self._container.streams.video[0]
        self.info = StreamInfo(0, "video", "h264", stream.time_base or 1, stream)  # type: ignore[arg-type]
        self._packets = [p for p in self._container.demux(stream) if p.dts is not None]

    def packets(self) -> Iterator[tuple[av.Packet, float]]:  # type: ignore[type-arg]
        for n, packet in enumerate(self._packets):
            yield packet, 1000.0 + n / 250

    def close(self) -> None:
        self._container.close()


@pytest.fixture
def feed(clip: Path) -> Iterator[Feed]:
    f = Feed(clip)
    try:
        yield f
    finally:
        f.close()


def writer_for(path: Path, events: list[MediaEvent]) -> DownloadWriter:
    ticks = itertools.count()
    return DownloadWriter(
        "34020000001320000001~1",
        DownloadTarget(str(path), 4.0),
        events.append,
        clock=lambda: float(next(ticks)),  # every packet a second later: progress each time
    )


def test_a_download_is_one_regular_mp4_timed_by_the_media(feed: Feed, tmp_path: Path) -> None:
    path = tmp_path / "exports" / "download.part"
    events: list[MediaEvent] = []
    writer = writer_for(path, events)
    writer.start([feed.info])
    for packet, at in feed.packets():
        assert writer.offer(packet, at)
    writer.stop()
    progress = [e for e in events if isinstance(e, DownloadProgress)]
    finished = [e for e in events if isinstance(e, DownloadFinished)]
    assert len(progress) >= 50 and progress[-1].seconds > progress[0].seconds
    assert progress[-1].bytes > 0
    (done,) = finished
    assert done.error is None and done.frames == 100 and done.codec == "h264"
    assert done.seconds == pytest.approx(4.0, abs=0.05)  # media time, not 0.4 s of arrival
    assert done.bytes == path.stat().st_size and done.path == str(path)
    stream = video_stream(path)
    assert stream["codec_name"] == "h264" and int(stream["nb_read_frames"]) == 100
    head = path.read_bytes()[:4096]
    assert head.find(b"moov") < head.find(b"mdat") or b"mdat" not in head  # index in front
    assert b"moof" not in path.read_bytes()  # a regular MP4, not fragments

    # Stopping twice, or a source session starting again, writes and reports nothing more.
    size = path.stat().st_size
    writer.stop()
    writer.start([feed.info])
    for packet, at in feed.packets():
        writer.offer(packet, at)
    assert path.stat().st_size == size
    assert len([e for e in events if isinstance(e, DownloadFinished)]) == 1


def test_a_break_in_the_stream_ends_the_download_with_what_arrived(
    feed: Feed, tmp_path: Path
) -> None:
    path = tmp_path / "download.part"
    events: list[MediaEvent] = []
    writer = writer_for(path, events)
    writer.start([feed.info])
    for packet, at in itertools.islice(feed.packets(), 50):
        writer.offer(packet, at)
    writer.start([feed.info])  # the source reconnected
    for packet, at in feed.packets():
        writer.offer(packet, at)
    (done,) = [e for e in events if isinstance(e, DownloadFinished)]
    assert done.frames == 50 and done.seconds == pytest.approx(2.0, abs=0.05)
    assert int(video_stream(path)["nb_read_frames"]) == 50


def test_a_download_that_cannot_write_says_why(feed: Feed, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    events: list[MediaEvent] = []
    writer = writer_for(blocker / "download.part", events)
    writer.start([feed.info])
    for packet, at in feed.packets():
        assert writer.offer(packet, at)  # never gives up on the hub (ingest goes on)
    writer.stop()
    (done,) = [e for e in events if isinstance(e, DownloadFinished)]
    assert done.frames == 0 and done.error is not None and "cannot open" in done.error


def test_nothing_arrived(tmp_path: Path, feed: Feed) -> None:
    events: list[MediaEvent] = []
    writer = writer_for(tmp_path / "d.part", events)
    writer.start([feed.info])
    writer.stop()
    (done,) = events
    assert isinstance(done, DownloadFinished)
    assert done.frames == 0 and done.error == "no video arrived"
    assert not (tmp_path / "d.part").exists()
