"""The platform's GB/T 28181 SIP server with its register (SQLite in a temporary data
directory), in a process of its own for bench_gb.py to load and to measure.

    python bench/gb_side.py PORT

Prints "READY <platform id> <domain> <device password>"; for each line read from stdin, a JSON
line with the server's counters and the channels in the register; exits when stdin closes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import sys
import tempfile
import threading
from pathlib import Path

from sqlalchemy import func, select

from xueliang.app import build_platform
from xueliang.config import Settings
from xueliang.datadir import DataDir
from xueliang.store.models import Channel


async def serve(port: int) -> None:
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
    print("READY", platform.gb28181.platform_id, platform.gb28181.domain,
          d.gb28181_password(), flush=True)  # fmt: skip
    loop = asyncio.get_running_loop()
    done = asyncio.Event()

    def report() -> None:
        for _line in sys.stdin:
            with platform.db.read() as s:
                channels = s.scalar(select(func.count()).select_from(Channel))
            stats = dataclasses.asdict(server.stats())
            print(json.dumps({**stats, "channels": channels}), flush=True)
        loop.call_soon_threadsafe(done.set)

    threading.Thread(target=report, daemon=True).start()
    await done.wait()
    await platform.gb28181.stop()
    platform.close()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="gb_side %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(int(sys.argv[1])))
