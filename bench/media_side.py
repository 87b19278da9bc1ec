"""The platform's media plane pulling, recording and live-muxing N channels, for bench_media.py:
the control side's WorkerPool with its worker processes (at most PER_WORKER channels each),
exactly as the platform runs them, minus the database.

    python bench/media_side.py OUTDIR PER_WORKER LIVE URL [URL …]     (LIVE: 1 or 0)

Prints "READY" once started; for each line read from stdin, a JSON line with the packets each
channel has published so far, the live bytes relayed, and the worker PIDs; exits when stdin
closes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from xueliang.media.live import Fragment, LiveItem
from xueliang.media.model import IngestSpec, MediaEvent
from xueliang.media.pool import WorkerPool


def main() -> None:
    out, per_worker, live_view = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
    urls = sys.argv[4:]
    channels = [f"bench{i:04d}" for i in range(len(urls))]
    live_bytes = dict.fromkeys(channels, 0)

    def ignore(_event: MediaEvent) -> None:
        pass

    def live(channel: str, item: LiveItem) -> None:
        if isinstance(item, Fragment):
            live_bytes[channel] += len(item.data)

    pool = WorkerPool(
        recordings=out,
        segment_seconds=60,
        backoff_cap=5,
        per_worker=per_worker,
        on_event=ignore,
        on_live=live,
    )
    pool.start()
    pool.assign([IngestSpec(channel_id=c, url=u) for c, u in zip(channels, urls, strict=True)])
    for c in channels if live_view else []:
        pool.watch(c)  # one live viewer's muxer per channel, relayed to this process
    print("READY", flush=True)
    for _line in sys.stdin:
        stats = pool.stats()
        print(
            json.dumps(
                {
                    "packets": [stats[c].packets if c in stats else 0 for c in channels],
                    "live_bytes": [live_bytes[c] for c in channels],
                    "pids": [w.pid for w in pool.workers() if w.pid is not None],
                }
            ),
            flush=True,
        )
    pool.stop()


if __name__ == "__main__":
    main()
