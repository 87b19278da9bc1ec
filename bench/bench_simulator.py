"""Benchmark of the project's GB/T 28181 device simulator: how many devices one process plays.
Not a test; prints a table.

    .venv/bin/python bench/bench_simulator.py                 # 1,000 devices
    .venv/bin/python bench/bench_simulator.py --devices 2000 --keepalive 10

The platform's SIP server and register run in another process (bench/gb_side.py); one
``xueliang simulate gb28181`` process registers every device with digest authentication, keeps
them alive, answers the platform's DeviceInfo and catalogue queries and its subscriptions. For
each size: the time until every device is registered, the simulator's CPU while they arrive
and while they only keep alive, its memory, and the keepalives the server counted.
Target (GB issue): one process simulates at least 1,000 devices' signalling.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from common import cpu_seconds, free_port

HERE = Path(__file__).resolve().parent


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Side:
    """gb_side.py: the platform's SIP server, asked for its counters line by line."""

    def __init__(self) -> None:
        self.port = free_port(socket.SOCK_DGRAM)
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "gb_side.py"), str(self.port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        words = self.proc.stdout.readline().split()
        if not words or words[0] != "READY":
            raise RuntimeError("the platform side did not start")
        self.platform_id, self.domain, self.password = words[1:4]
        self.ask("subscribe")  # the platform subscribes as it does in service (paced)

    def ask(self, command: str = "") -> dict[str, int]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        answer: dict[str, int] = json.loads(self.proc.stdout.readline())
        return answer

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def run(devices: int, channels: int, keepalive: float, ramp: float, window: float) -> None:
    side = Side()
    sim = subprocess.Popen(
        [
            sys.executable, "-m", "xueliang", "simulate", "gb28181",
            "--server", f"127.0.0.1:{side.port}", "--server-id", side.platform_id,
            "--domain", side.domain, "--password", side.password,
            "--devices", str(devices), "--channels", str(channels),
            "--keepalive", str(keepalive), "--ramp", str(ramp), "--local-ip", "127.0.0.1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        t0, c0 = time.monotonic(), cpu_seconds([sim.pid])
        deadline = t0 + max(120.0, devices / ramp * 4)
        registered = 0
        while time.monotonic() < deadline:
            registered = side.ask()["registered"]
            if registered >= devices:
                break
            time.sleep(0.25)
        t1, c1 = time.monotonic(), cpu_seconds([sim.pid])
        # Steady state: the platform's queries and subscriptions settle, then only keepalives.
        settle = time.monotonic() + 15.0 + devices / 50.0
        time.sleep(max(0.0, settle - time.monotonic()))
        k0, c2, t2 = side.ask()["keepalives"], cpu_seconds([sim.pid]), time.monotonic()
        time.sleep(window)
        k1, c3, t3 = side.ask()["keepalives"], cpu_seconds([sim.pid]), time.monotonic()
        final = side.ask("register")
        memory = rss_mb(sim.pid)
    finally:
        sim.terminate()
        sim.wait(timeout=30)
        side.close()
    ramp_s = t1 - t0
    print(
        f"{devices:>8} {channels:>4} {registered:>10} {ramp_s:>10.1f} "
        f"{(c1 - c0) / ramp_s * 100:>12.1f} {(c3 - c2) / (t3 - t2) * 100:>12.1f} "
        f"{(k1 - k0) / (t3 - t2):>12.0f} {devices / keepalive:>10.0f} {memory:>8.0f} "
        f"{final.get('channels', 0):>9}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", default="1000", help="comma-separated sizes")
    parser.add_argument("--channels", type=int, default=2)
    parser.add_argument("--keepalive", type=float, default=10.0)
    parser.add_argument("--ramp", type=float, default=200.0, help="first REGISTERs a second")
    parser.add_argument("--window", type=float, default=20.0)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores; one simulator process; platform in another")
    print(
        f"{'devices':>8} {'ch':>4} {'registered':>10} {'ramp s':>10} {'CPU % ramp':>12} "
        f"{'CPU % steady':>12} {'keepalive/s':>12} {'expected':>10} {'RSS MB':>8} "
        f"{'channels':>9}"
    )
    for n in (int(v) for v in args.devices.split(",")):
        run(n, args.channels, args.keepalive, args.ramp, args.window)


if __name__ == "__main__":
    main()
