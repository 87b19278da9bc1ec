"""The platform's GB/T 28181 SIP server with its register (SQLite in a temporary data
directory), in a process of its own for bench_gb.py to load and to measure.

    python bench/gb_side.py PORT [SUBSCRIBE_RATE]

Prints "READY <platform id> <domain> <device password>"; then reads commands from stdin, one a
line, and answers each with a JSON line of the server's counters (its work still open, the
register's devices and channels, the subscriptions by state):

- an empty line: just the server's counters;
- ``register``: with the devices and channels in the register (a query);
- ``states``: with the subscriptions by state (a walk over all of them);
- ``subscribe``: the subscriptions of the devices registered so far start now.

The platform subscribes to every device that registers (catalogue, alarm, position), paced;
here those arrivals are held back until ``subscribe``, so that the bench measures the
registration storm and the subscriptions one after the other, each with the server's CPU to
itself (SUBSCRIBE_RATE: devices subscribed per second, instead of the platform's pace, so that
the bench's fleet is done in seconds, not minutes). Exits when stdin closes.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import functools
import json
import logging
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from xueliang.app import build_platform
from xueliang.config import Settings
from xueliang.datadir import DataDir
from xueliang.store.models import Channel, Device


async def serve(port: int, subscribe_rate: float | None) -> None:
    root = Path(tempfile.mkdtemp(prefix="xl-gb-bench-"))
    settings = Settings()
    settings.media.enabled = False
    settings.gb28181.port = port
    settings.gb28181.keepalive_seconds = 3600  # nobody goes offline during the bench
    d = DataDir(root)
    d.create(settings)
    platform = build_platform(d.root, settings=settings)
    await platform.gb28181.start()
    server = platform.gb28181.server
    assert server is not None
    subscriptions = platform.gb28181.subscriptions
    if subscribe_rate is not None:
        subscriptions.rate = subscribe_rate
    # Hold the arrivals the subscriptions hear of until the bench says "subscribe".
    listeners = server.presence_listeners
    real: Callable[[str, bool], None] = subscriptions._presence
    held: list[tuple[str, bool]] = []

    def hold(device_id: str, online: bool) -> None:
        held.append((device_id, online))

    listeners[listeners.index(real)] = hold

    def release() -> None:
        if hold in listeners:
            listeners[listeners.index(hold)] = real
        for device_id, online in held:
            real(device_id, online)
        held.clear()

    print("READY", platform.gb28181.platform_id, platform.gb28181.domain,
          d.gb28181_password(), flush=True)  # fmt: skip
    loop = asyncio.get_running_loop()
    done = asyncio.Event()

    def counters(states: bool) -> dict[str, Any]:
        """On the event loop: what the server has, and the work it still has open (the
        subscriptions by state only when asked: that walks all of them)."""
        waiting = server._waiting.values()  # client transactions (queries, SUBSCRIBEs)
        out = {
            **dataclasses.asdict(server.stats()),
            "requests_open": sum(1 for f in waiting if not f.done()),
            "lane_backlog": sum(lane._work_queue.qsize() for lane in server._lanes),
            "subscribes_sent": subscriptions.sent,
            "subscribes_pending": len(subscriptions._pending) + len(held),
        }
        if states:
            out["subscriptions"] = dict(
                collections.Counter(v.state for v in subscriptions.subscriptions())
            )
        return out

    async def on_loop(work: Callable[[], Any]) -> Any:
        return work()

    def report() -> None:
        for line in sys.stdin:
            words = line.split()
            if "subscribe" in words:
                asyncio.run_coroutine_threadsafe(on_loop(release), loop).result()
            wanted = "states" in words
            stats = asyncio.run_coroutine_threadsafe(
                on_loop(functools.partial(counters, wanted)), loop
            ).result()
            if "register" in words:
                with platform.db.read() as s:
                    stats["devices"] = s.scalar(select(func.count()).select_from(Device))
                    stats["channels"] = s.scalar(select(func.count()).select_from(Channel))
            print(json.dumps(stats), flush=True)
        loop.call_soon_threadsafe(done.set)

    threading.Thread(target=report, daemon=True).start()
    await done.wait()
    await platform.gb28181.stop()
    platform.close()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="gb_side %(levelname)s %(name)s: %(message)s")
    rate = float(sys.argv[2]) if len(sys.argv) > 2 else None
    asyncio.run(serve(int(sys.argv[1]), rate))
