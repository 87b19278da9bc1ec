"""The platform's media plane pulling, recording and live-muxing N channels, for bench_media.py:
the control side's WorkerPool with its worker processes (at most PER_WORKER channels each),
exactly as the platform runs them, minus the database.

    python bench/media_side.py OUTDIR PER_WORKER LIVE URL [URL …]

LIVE: "direct" (one viewer per channel served by its worker, with a ticket, as the console
watches; the viewers run in live_viewers.py, another process), "relay" (one live muxer per
channel relayed to this process, the fallback path) or "0" (recording only).

BENCH_RTSP_CLIENT in the environment: "own" (default) or "ffmpeg" (media.rtsp_client).

Prints "READY" once started; for each line read from stdin, a JSON line with the packets each
channel has published so far, the live bytes delivered, and the worker PIDs; exits when stdin
closes.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

from xueliang.media.live import Fragment, LiveItem
from xueliang.media.model import IngestSpec, MediaEvent
from xueliang.media.pool import WorkerPool
from xueliang.media.tickets import issue

HERE = Path(__file__).resolve().parent


def main() -> None:
    out, per_worker, mode = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    urls = sys.argv[4:]
    channels = [f"bench{i:04d}" for i in range(len(urls))]
    live_bytes = dict.fromkeys(channels, 0)
    key = secrets.token_bytes(32)

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
        live_host="127.0.0.1" if mode == "direct" else "",
        live_key=key,
        rtsp_client=os.environ.get("BENCH_RTSP_CLIENT", "own"),
    )
    pool.start()
    pool.assign([IngestSpec(channel_id=c, url=u) for c, u in zip(channels, urls, strict=True)])
    viewers = None
    if mode == "relay":
        for c in channels:
            pool.watch(c)  # one live viewer's muxer per channel, relayed to this process
    elif mode == "direct":
        deadline = time.monotonic() + 60
        while not all(pool.live_endpoint(c) for c in channels):
            if time.monotonic() > deadline:
                raise RuntimeError("workers did not start serving live view")
            time.sleep(0.1)
        watch = []
        for c in channels:
            host, port = pool.live_endpoint(c) or ("", 0)
            token, _ = issue(key, c, "bench", now=time.time())
            watch.append(f"ws://{host}:{port}/live/{c}?ticket={token}")
        viewers = subprocess.Popen(
            [sys.executable, str(HERE / "live_viewers.py"), *watch],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert viewers.stdout is not None and viewers.stdin is not None
        if viewers.stdout.readline().strip() != "READY":
            raise RuntimeError("live viewers did not start")
    print("READY", flush=True)
    for _line in sys.stdin:
        stats = pool.stats()
        if viewers is not None:
            assert viewers.stdin is not None and viewers.stdout is not None
            viewers.stdin.write("\n")
            viewers.stdin.flush()
            delivered = json.loads(viewers.stdout.readline())
        else:
            delivered = [live_bytes[c] for c in channels]
        print(
            json.dumps(
                {
                    "packets": [stats[c].packets if c in stats else 0 for c in channels],
                    "live_bytes": delivered,
                    "pids": [w.pid for w in pool.workers() if w.pid is not None],
                }
            ),
            flush=True,
        )
    if viewers is not None:
        assert viewers.stdin is not None
        viewers.stdin.close()
        viewers.wait(timeout=10)
    pool.stop()


if __name__ == "__main__":
    main()
