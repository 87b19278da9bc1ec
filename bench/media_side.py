"""One process pulling, recording and live-muxing N channels the way the platform does
(ChannelIngest → hub → SegmentRecorder + one live muxer per channel), for bench_media.py.

    python bench/media_side.py OUTDIR URL [URL …]

Prints "READY" once started; for each line read from stdin, a JSON line with the packets each
channel has published so far; exits when stdin closes.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

from xueliang.media.hub import ChannelHub
from xueliang.media.ingest import ChannelIngest
from xueliang.media.live import LiveMuxer
from xueliang.media.model import IngestSpec, MediaEvent
from xueliang.media.recorder import SegmentRecorder


def main() -> None:
    out, urls = Path(sys.argv[1]), sys.argv[2:]
    ingests: list[ChannelIngest] = []
    live_bytes = [0] * len(urls)

    def ignore(_event: MediaEvent) -> None:
        pass

    for i, url in enumerate(urls):
        channel = f"bench{i:04d}"
        hub = ChannelHub(channel)
        hub.subscribe(SegmentRecorder(out, channel, segment_seconds=60, on_segment=ignore))

        def count(item: object, i: int = i) -> None:
            data = getattr(item, "data", None)
            if data is not None:
                live_bytes[i] += len(data)

        hub.subscribe(LiveMuxer(count))  # one live viewer's muxer per channel
        ingest = ChannelIngest(IngestSpec(channel_id=channel, url=url), hub, ignore)
        ingests.append(ingest)
        ingest.start()
    print("READY", flush=True)
    for _line in sys.stdin:
        packets = [ing.hub.packets for ing in ingests]
        print(json.dumps({"packets": packets, "live_bytes": live_bytes}), flush=True)
    for ing in ingests:
        ing.stop()
    threading.Event().wait(0.5)


if __name__ == "__main__":
    main()
