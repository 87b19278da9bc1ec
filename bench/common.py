"""What the benchmarks share: free loopback ports and CPU time read from /proc.

The benchmarks run as scripts (``python bench/bench_x.py``), so this module is imported as
``common`` from their own folder.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def free_port(kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    """A port on 127.0.0.1 free at this moment (TCP by default; SOCK_DGRAM for SIP/RTP)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cpu_seconds(pids: Iterable[int], *, children: bool = False) -> float:
    """User + system CPU of the processes so far (with ``children``: also of the children
    they have waited for); a process already gone counts 0."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime
        if children:
            total += int(fields[13]) + int(fields[14])  # cutime + cstime
    return total / TICKS
