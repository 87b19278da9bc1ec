"""The hub under concurrent subscribe/unsubscribe: consumers are never called from two threads
at once (FFmpeg muxers are not thread-safe; before this was enforced, CI crashed with a
segmentation fault when a live viewer joined while ingest was muxing).

The stress runs in a child process so that a crash fails this test instead of killing pytest.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from collections.abc import Sequence

import av

from xueliang.media.hub import ChannelHub, Packet, StreamInfo

STRESS = textwrap.dedent(
    """
    import threading
    from xueliang.media.hub import ChannelHub
    from xueliang.media.live import LiveMuxer
    from xueliang.media.sources.simulator import open_simulator

    stop = threading.Event()
    hub = ChannelHub("c")
    fragments = []
    errors = []

    def churn():
        try:
            while not stop.is_set():
                m = LiveMuxer(fragments.append)
                hub.subscribe(m)
                hub.unsubscribe(m)
        except BaseException as exc:  # reported, so the parent sees why
            errors.append(exc)
            stop.set()

    workers = [threading.Thread(target=churn) for _ in range(3)]
    with open_simulator("sim://h264/160x120@60?gop=5", stop) as source:
        hub.begin(source.streams)
        keeper = LiveMuxer(fragments.append)
        hub.subscribe(keeper)
        for w in workers:
            w.start()
        for n, packet in enumerate(source.packets):
            hub.publish(packet, 0.0)
            if n == 240:
                break
        stop.set()
        for w in workers:
            w.join()
        hub.end()
    assert not errors, errors
    print("fragments", len(fragments))
    """
)


def test_concurrent_subscribers_do_not_crash_the_process() -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", STRESS],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    count = int(proc.stdout.split()[-1])
    assert count > 240  # the steady viewer got every frame, plus the churners' init segments


class _Probe:
    """A consumer that records whether two threads were ever inside it together."""

    def __init__(self) -> None:
        self.inside = 0
        self.overlap = False
        self.seen: list[int] = []
        self._guard = threading.Lock()

    def _enter(self) -> None:
        with self._guard:
            self.inside += 1
            self.overlap |= self.inside > 1

    def _leave(self) -> None:
        with self._guard:
            self.inside -= 1

    def start(self, streams: Sequence[StreamInfo]) -> None:
        self._enter()
        self._leave()

    def offer(self, packet: Packet, wallclock: float) -> bool:
        self._enter()
        self.seen.append(int(packet.pts or 0))
        # Give another thread every chance to enter while this one is inside.
        threading.Event().wait(0.0005)
        self._leave()
        return True

    def stop(self) -> None:
        self._enter()
        self._leave()


def test_a_late_subscriber_gets_each_packet_exactly_once() -> None:
    template = av.open("pipe:", "w", format="mp4")  # only for a stream template
    try:
        stream = template.add_stream("h264", rate=25)
        info = StreamInfo(0, "video", "h264", stream.time_base or 1, stream)  # type: ignore[arg-type]
        hub = ChannelHub("c")
        hub.begin([info])
        probe = _Probe()
        joined = threading.Event()

        def join_later() -> None:
            joined.wait()
            hub.subscribe(probe)

        t = threading.Thread(target=join_later, daemon=True)
        t.start()
        try:
            for pts in range(300):
                p = Packet(b"\\x00\\x00\\x00\\x01\\x65")
                p.stream = stream
                p.pts, p.dts = pts, pts
                p.is_keyframe = pts % 50 == 0
                hub.publish(p, 0.0)
                if pts == 120:
                    joined.set()
        finally:
            joined.set()
            t.join(timeout=30)
    finally:
        template.close()
    assert not probe.overlap
    # From the key frame at or before the join, every packet once, in order.
    assert probe.seen == list(range(probe.seen[0], 300))
    assert probe.seen[0] % 50 == 0
