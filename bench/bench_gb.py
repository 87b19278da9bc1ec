"""Benchmark of the GB/T 28181 SIP server with SIPp as the load generator. Not a test.

    .venv/bin/python bench/bench_gb.py                    # 10,000 devices
    .venv/bin/python bench/bench_gb.py --devices 2000 --rate 1000

The platform's SIP server and its register (SQLite) run in one process (bench/gb_side.py);
SIPp (Debian's sip-tester) plays the devices, one call per device and step, at the offered rate:

1. registration storm: every device REGISTERs, is challenged, answers the digest, gets 200;
2. keepalives: every registered device sends a Keepalive MESSAGE;
3. catalogues: every device sends a catalogue of 20 channels, stored in the register.

For each: what SIPp achieved (calls per second, failures), the server's CPU, and so the rate
one core of the server sustains; SIPp's own CPU beside it. Targets (GB issue): 10,000
registered devices kept alive on one core (at one keepalive a minute: 167 per second).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / TICKS


def injection(path: Path, n: int, domain: str, password: str) -> None:
    lines = ["SEQUENTIAL"]
    for i in range(n):
        lines.append(f"34020000001320{i + 1:06d};{domain};{password};3402000000131{i % 10000:04d};")
    path.write_text("\n".join(lines) + "\n")


class Side:
    def __init__(self) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "gb_side.py"), str(self.port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        ready = self.proc.stdout.readline().split()
        if not ready or ready[0] != "READY":
            raise RuntimeError("the SIP server did not start")
        self.platform_id, self.domain, self.password = ready[1:4]

    def stats(self) -> dict[str, int]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        out: dict[str, int] = json.loads(self.proc.stdout.readline())
        return out

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def sipp(side: Side, scenario: str, inf: Path, n: int, rate: int) -> dict[str, float]:
    args = [
        "sipp", f"127.0.0.1:{side.port}", "-sf", str(HERE / "sipp" / scenario),
        "-inf", str(inf), "-s", side.platform_id, "-au", "device", "-ap", side.password,
        "-i", "127.0.0.1", "-p", str(free_port()), "-t", "u1",
        "-r", str(rate), "-rp", "1000", "-m", str(n), "-l", str(max(rate * 4, 100)),
        "-timeout", "300s", "-nostdin", "-max_recv_loops", "10000",
    ]  # fmt: skip
    t0 = time.monotonic()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    server0 = cpu_seconds(side.proc.pid)
    out, err = proc.communicate(timeout=600)
    elapsed = time.monotonic() - t0
    # The register is written after the answers (worker threads): count that work too, until
    # the server is idle again.
    while True:
        before = cpu_seconds(side.proc.pid)
        time.sleep(0.5)
        if cpu_seconds(side.proc.pid) - before < 0.02:
            break
    server_cpu = cpu_seconds(side.proc.pid) - server0

    def counter(name: str) -> int:
        found = re.findall(rf"{name}\s*\|\s*\d+\s*\|\s*(\d+)", out)
        return int(found[-1]) if found else 0

    ok, failed = counter("Successful call"), counter("Failed call")
    return {
        "ok": ok,
        "failed": failed,
        "elapsed": elapsed,
        "rate": ok / elapsed if elapsed else 0.0,
        "server_cpu_pct": server_cpu / elapsed * 100,
        "per_core": ok / server_cpu if server_cpu else float("inf"),
        "rc": proc.returncode,
        "err": err[-300:],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--rate", type=int, default=2000, help="offered calls per second")
    args = parser.parse_args()
    n = args.devices
    print(f"machine: {os.cpu_count()} cores; {n} devices; SIPp {args.rate}/s offered")
    side = Side()
    tmp = Path(tempfile.mkdtemp(prefix="xl-gb-bench-"))
    inf = tmp / "devices.csv"
    injection(inf, n, side.domain, side.password)
    rows = []
    try:
        for label, scenario, per_call in [
            ("registrations (digest)", "register.xml", 1),
            ("keepalives", "keepalive.xml", 1),
            ("catalogue entries (20/MESSAGE)", "catalog.xml", 20),
        ]:
            # A catalogue MESSAGE carries 20 entries: offered at a tenth of the rate.
            r = sipp(
                side, scenario, inf, n, args.rate // per_call * 2 if per_call > 1 else args.rate
            )
            rows.append((label, r, per_call))
        t0 = time.monotonic()
        while side.stats()["channels"] < n * 20 and time.monotonic() - t0 < 300:
            time.sleep(0.5)
        stored_after = time.monotonic() - t0
        final = side.stats()
    finally:
        side.stop()
    print(
        f"\n{'step':<32}{'SIPp done':>10}{'failed':>8}{'SIPp /s':>10}"
        f"{'server CPU %':>14}{'per core /s':>13}"
    )
    for label, r, per_call in rows:
        print(
            f"{label:<32}{r['ok'] * per_call:>10.0f}{r['failed']:>8.0f}"
            f"{r['rate'] * per_call:>10.0f}{r['server_cpu_pct']:>14.1f}"
            f"{r['per_core'] * per_call:>13.0f}"
        )
    print(
        f"\nregister: {final['registered']} devices registered, {final['channels']} channels stored"
        f" ({stored_after:.1f} s after the last catalogue MESSAGE was answered)"
    )
    keepalive_rate = rows[1][1]["per_core"]
    need = n / 60
    print(
        f"{n} devices at one keepalive a minute: {need:.0f}/s, "
        f"{need / keepalive_rate * 100:.1f}% of a core (target: within one core)"
    )


if __name__ == "__main__":
    main()
