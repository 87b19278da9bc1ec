"""Two network namespaces joined by a veth pair: a private segment for multicast tests.

Nothing in them reaches the host's network: each namespace has only its loopback and its end
of the pair, with addresses that exist nowhere else. Needs root and iproute2's ``ip``.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

_counter = itertools.count()


def unavailable() -> str | None:
    """Why namespaces cannot be made here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "network namespaces need iproute2's ip command"
    return None


@dataclass(frozen=True)
class Segment:
    device_ns: str
    client_ns: str
    device_address: str
    client_address: str

    def exec_prefix(self, ns: str) -> list[str]:
        return ["ip", "netns", "exec", ns]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@contextmanager
def segment(subnet: str = "10.213.7") -> Iterator[Segment]:
    tag = f"{os.getpid()}-{next(_counter)}"
    seg = Segment(f"xl-dev-{tag}", f"xl-cli-{tag}", f"{subnet}.1", f"{subnet}.2")
    made: list[str] = []
    try:
        for ns in (seg.device_ns, seg.client_ns):
            _ip("netns", "add", ns)
            made.append(ns)
        # Both ends are created inside the namespaces: the pair never exists on the host.
        _ip("-n", seg.device_ns, "link", "add", "xl0", "type", "veth", "peer", "name", "xl1",
            "netns", seg.client_ns)  # fmt: skip
        for ns, dev, addr in (
            (seg.device_ns, "xl0", seg.device_address),
            (seg.client_ns, "xl1", seg.client_address),
        ):
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield seg
    finally:
        for ns in reversed(made):
            # Deleting a namespace deletes the veth end in it, and with it the pair.
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)
