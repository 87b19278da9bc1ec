"""Benchmark of the GB/T 28181 SIP server with SIPp as the load generator. Not a test.

    .venv/bin/python bench/bench_gb.py                    # 10,000 devices
    .venv/bin/python bench/bench_gb.py --devices 2000 --rate 1000

The platform's SIP server and its register (SQLite) run in one process (bench/gb_side.py);
SIPp (Debian's sip-tester) plays the devices, one call per device and step, at the offered rate:

1. registration storm: every device REGISTERs, is challenged, answers the digest, gets 200;
   the platform then asks each new device for its DeviceInfo and Catalog;
2. subscriptions: the platform SUBSCRIBEs to every device's catalogue, alarms and positions
   (held back during the storm, so that each step has the server to itself; paced at
   --subscribe-rate devices a second instead of the platform's 50, or the fleet takes minutes);
3. keepalives: every registered device sends a Keepalive MESSAGE;
4. catalogues: every device sends a catalogue of 20 channels, stored in the register.

What the platform sends the devices goes to their Contact, a second SIPp (sipp/answer.xml)
that answers 200 as a device does: unanswered, each query and SUBSCRIBE is retransmitted for
32 s (Timer F) and the subscriptions retried, which is what kept the last run from finishing.

For each step: what SIPp achieved (calls per second, failures), the server's CPU from the
step's start until its work is done (register written, queries answered), and so the rate one
core of the server sustains; SIPp's own CPU beside it. Targets (GB issue): 10,000 registered
devices kept alive on one core (at one keepalive a minute: 167 per second).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import cpu_seconds, free_port

HERE = Path(__file__).resolve().parent
SETTLE_LIMIT = 240.0  # seconds a step's work may take after SIPp is done


def children_cpu() -> float:
    """CPU of the children waited for so far (the SIPp runs)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def injection(path: Path, n: int, domain: str, password: str, answers_port: int) -> None:
    lines = ["SEQUENTIAL"]
    for i in range(n):
        lines.append(
            f"34020000001320{i + 1:06d};{domain};{password};3402000000131{i % 10000:04d};"
            f"{answers_port};"
        )
    path.write_text("\n".join(lines) + "\n")


class Side:
    def __init__(self, subscribe_rate: float) -> None:
        self.port = free_port(socket.SOCK_DGRAM)
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "gb_side.py"), str(self.port), str(subscribe_rate)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        ready = self.proc.stdout.readline().split()
        if not ready or ready[0] != "READY":
            raise RuntimeError("the SIP server did not start")
        self.platform_id, self.domain, self.password = ready[1:4]

    def stats(self, command: str = "") -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        out: dict[str, Any] = json.loads(self.proc.stdout.readline())
        return out

    def cpu(self) -> float:
        return cpu_seconds([self.proc.pid], children=True)

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


class Answers:
    """The devices' listening side: a SIPp UAS at their Contact answering 200 (answer.xml)."""

    def __init__(self) -> None:
        self.port = free_port(socket.SOCK_DGRAM)
        args = [
            "sipp", "-sf", str(HERE / "sipp" / "answer.xml"), "-i", "127.0.0.1",
            "-p", str(self.port), "-t", "u1", "-nostdin", "-max_recv_loops", "10000",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def cpu(self) -> float:
        return cpu_seconds([self.proc.pid], children=True)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def settle(
    side: Side, done: Callable[[dict[str, Any]], bool], what: str = ""
) -> tuple[dict[str, Any], bool]:
    """Wait until the server's work for a step is done (``done`` of its counters, asked for
    with ``what``: see gb_side.py). Polled twice a second: asking costs the server too."""
    t0 = time.monotonic()
    while True:
        stats = side.stats(what)
        if done(stats):
            return stats, True
        if time.monotonic() - t0 > SETTLE_LIMIT:
            return stats, False
        time.sleep(0.5)


def idle(stats: dict[str, Any]) -> bool:
    return bool(stats["lane_backlog"] == 0 and stats["requests_open"] == 0)


class Step:
    """CPU and time of the server, the devices' answers and SIPp over one step."""

    def __init__(self, side: Side, answers: Answers) -> None:
        self.side, self.answers = side, answers
        self.t0 = time.monotonic()
        self.server0, self.answers0, self.sipp0 = side.cpu(), answers.cpu(), children_cpu()

    def finish(self, ok: int, failed: int, sipp_elapsed: float, settled: bool) -> dict[str, Any]:
        elapsed = time.monotonic() - self.t0
        server = self.side.cpu() - self.server0
        answers = self.answers.cpu() - self.answers0
        sipp = children_cpu() - self.sipp0
        return {
            "ok": ok,
            "failed": failed,
            "sipp_elapsed": sipp_elapsed,
            "rate": ok / sipp_elapsed if sipp_elapsed else 0.0,
            "sipp_cpu_pct": sipp / sipp_elapsed * 100 if sipp_elapsed else 0.0,
            "answers_cpu_pct": answers / elapsed * 100,
            "elapsed": elapsed,
            "server_cpu_pct": server / elapsed * 100,
            "per_core": ok / server if server else float("inf"),
            "settled": settled,
        }


def sipp(side: Side, scenario: str, inf: Path, n: int, rate: int) -> tuple[int, int, float, str]:
    """Run SIPp's devices through ``scenario``: (calls done, failed, seconds, stderr tail)."""
    args = [
        "sipp", f"127.0.0.1:{side.port}", "-sf", str(HERE / "sipp" / scenario),
        "-inf", str(inf), "-s", side.platform_id, "-au", "device", "-ap", side.password,
        "-i", "127.0.0.1", "-p", str(free_port(socket.SOCK_DGRAM)), "-t", "u1",
        "-r", str(rate), "-rp", "1000", "-m", str(n), "-l", str(max(rate * 4, 100)),
        "-timeout", "300s", "-nostdin", "-max_recv_loops", "10000",
    ]  # fmt: skip
    t0 = time.monotonic()
    proc = subprocess.Popen(
        args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    out, err = proc.communicate(timeout=600)
    elapsed = time.monotonic() - t0

    def counter(name: str) -> int:
        found = re.findall(rf"{name}\s*\|\s*\d+\s*\|\s*(\d+)", out)
        return int(found[-1]) if found else 0

    if proc.returncode not in (0, 1):  # 1: some calls failed (counted)
        print(f"  sipp {scenario}: exit {proc.returncode}: {err[-300:]}", file=sys.stderr)
    return counter("Successful call"), counter("Failed call"), elapsed, err[-300:]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--rate", type=int, default=2000, help="offered calls per second")
    parser.add_argument(
        "--subscribe-rate",
        type=float,
        default=2000.0,
        help="devices subscribed per second by the platform (its own pace: 50)",
    )
    args = parser.parse_args()
    n = args.devices
    catalog_rate = max(1, args.rate // 10)  # a catalogue MESSAGE carries 20 entries
    t_start = time.monotonic()
    side = Side(args.subscribe_rate)
    answers = Answers()
    tmp = Path(tempfile.mkdtemp(prefix="xl-gb-bench-"))
    inf = tmp / "devices.csv"
    injection(inf, n, side.domain, side.password, answers.port)
    rows: list[tuple[str, dict[str, Any], int]] = []
    try:
        # 1. The registration storm, until the register has every device and the DeviceInfo
        #    and Catalog queries the platform sent each are answered.
        step = Step(side, answers)
        ok, failed, took, _ = sipp(side, "register.xml", inf, n, args.rate)
        stats, settled = settle(side, lambda st: idle(st) and st["devices"] >= ok, "register")
        rows.append(("registrations (digest)", step.finish(ok, failed, took, settled), 1))
        # 2. The subscriptions (3 a device), until each is answered.
        step = Step(side, answers)
        stats = side.stats("subscribe")

        def subscribed(st: dict[str, Any]) -> bool:
            states = st["subscriptions"]
            busy = states.get("new", 0) + states.get("subscribing", 0)
            return bool(st["subscribes_pending"] == 0 and busy == 0 and idle(st))

        stats, settled = settle(side, subscribed, "states")
        active = stats["subscriptions"].get("active", 0)
        others = sum(stats["subscriptions"].values()) - active
        took = time.monotonic() - step.t0
        rows.append(("subscriptions (3 a device)", step.finish(active, others, took, settled), 1))
        # 3. Keepalives.
        step = Step(side, answers)
        ok, failed, took, _ = sipp(side, "keepalive.xml", inf, n, args.rate)
        stats, settled = settle(side, idle)
        rows.append(("keepalives", step.finish(ok, failed, took, settled), 1))
        # 4. Catalogues, until the register has stored every channel.
        step = Step(side, answers)
        ok, failed, took, _ = sipp(side, "catalog.xml", inf, n, catalog_rate)
        sipp_done = time.monotonic()
        stats, settled = settle(side, lambda st: idle(st) and st["channels"] >= ok * 20, "register")
        stored_after = time.monotonic() - sipp_done
        rows.append(("catalogue entries (20/MESSAGE)", step.finish(ok, failed, took, settled), 20))
        final = side.stats("register")
    finally:
        answers.stop()
        side.stop()
    total = time.monotonic() - t_start
    print(
        f"machine: {os.cpu_count()} cores; {n} devices; SIPp {args.rate} calls/s offered "
        f"({catalog_rate} catalogue MESSAGEs/s); subscriptions released after the storm, "
        f"paced at {args.subscribe_rate:.0f} devices/s (platform default 50/s)"
    )
    print(
        "server: from the step's start until its work is done (register written, requests "
        "answered); SIPp CPU: the load's client, answers CPU: the devices' side (answer.xml)"
    )
    print(
        f"\n{'step':<32}{'done':>8}{'failed':>8}{'SIPp s':>8}{'SIPp /s':>9}{'SIPp CPU%':>10}"
        f"{'answers CPU%':>13}{'server s':>9}{'server CPU%':>12}{'per core /s':>12}"
    )
    for label, r, per_call in rows:
        print(
            f"{label:<32}{r['ok'] * per_call:>8.0f}{r['failed']:>8.0f}"
            f"{r['sipp_elapsed']:>8.1f}{r['rate'] * per_call:>9.0f}{r['sipp_cpu_pct']:>10.1f}"
            f"{r['answers_cpu_pct']:>13.1f}{r['elapsed']:>9.1f}{r['server_cpu_pct']:>12.1f}"
            f"{r['per_core'] * per_call:>12.0f}" + ("" if r["settled"] else "  (not settled)")
        )
    print(
        f"\nregister: {final['devices']} devices ({final['registered']} registered), "
        f"{final['channels']} channels stored ({stored_after:.1f} s after the last catalogue "
        f"MESSAGE was answered); SUBSCRIBEs sent: {final['subscribes_sent']}; "
        f"malformed: {final['malformed']}; bench took {total:.0f} s"
    )
    keepalive_rate = rows[2][1]["per_core"]
    need = n / 60
    print(
        f"{n} devices at one keepalive a minute: {need:.0f}/s, "
        f"{need / keepalive_rate * 100:.1f}% of a core (target: within one core)"
    )


if __name__ == "__main__":
    main()
