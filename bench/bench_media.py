"""Benchmark of the media plane on this machine. Not a test; prints tables.

    .venv/bin/python bench/bench_media.py                    # 8, 32 and 64 channels, 20 s each
    .venv/bin/python bench/bench_media.py --channels 16 --window 30 --skip-ffmpeg

1. Recording: N channels of 1080p25 H.264 at 4 Mbit/s pulled over RTSP (GStreamer's server,
   playing a file) and recorded without re-encoding, each with one live viewer (a WebSocket
   served by the channel's worker, reading in another process; --relay: relayed through the
   control process; --no-live: none), by Xueliang's media workers (at most --per-worker
   channels per process, as the platform runs them), side by side with one
   `ffmpeg -c copy -f segment` process per channel. CPU per channel (all processes: control
   side and workers), memory, and whether every channel held the full packet rate.
2. Live: a simulated camera of a running platform watched straight from its media worker (with
   a ticket, as the console does) and through the platform's relay: time to first frame for a
   new viewer, and latency from the clock burned into the picture (read back from the decoded
   frame) to the frame's arrival at the viewer.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from common import cpu_seconds, free_port

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CACHE = HERE / ".cache"
SOURCE = CACHE / "1080p25_4M.ts"
# The same, four times over (6 min): a shared mount plays its file once, from its first client
# on, and a run with 128 channels and their viewers takes more than 90 s to start and measure.
LONG_SOURCE = CACHE / "1080p25_4M_x4.ts"
PY = sys.executable
LIVE = ["direct"]  # "relay" with --relay; "0" with --no-live: recording only, as ffmpeg does


def make_source() -> None:
    if not SOURCE.exists():
        encode_source()
    if not LONG_SOURCE.exists():
        subprocess.run(
            [
                *("ffmpeg", "-v", "error", "-y", "-stream_loop", "3", "-i", str(SOURCE)),
                *("-c", "copy", "-f", "mpegts", str(LONG_SOURCE)),
            ],
            check=True,
        )


def encode_source() -> None:
    CACHE.mkdir(exist_ok=True)
    print("encoding a 90 s 1080p25 4 Mbit/s source once (cached in bench/.cache) …", flush=True)
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1920x1080:rate=25",
            "-t",
            "90",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-b:v",
            "4M",
            "-maxrate",
            "4M",
            "-bufsize",
            "4M",
            "-g",
            "50",
            "-bf",
            "0",
            "-pix_fmt",
            "yuv420p",
            "-f",
            "mpegts",
            str(SOURCE),
        ],
        check=True,
    )


def pss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:  # the process is gone
            continue
        m = re.search(r"^Pss:\s+(\d+) kB", text, re.M)
        total += int(m.group(1)) if m else 0
    return total / 1024


def wait_line(proc: subprocess.Popen[str], word: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"process exited before {word!r}")
        if word in line:
            return
    raise RuntimeError(f"no {word!r} in {timeout} s")


def run_xueliang(
    urls: list[str], window: float, warmup: float, per_worker: int, *, rtsp_client: str = "own"
) -> dict[str, float]:
    out = Path(tempfile.mkdtemp(prefix="xl-bench-"))
    proc = subprocess.Popen(
        [PY, str(HERE / "media_side.py"), str(out), str(per_worker), LIVE[0], *urls],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "BENCH_RTSP_CLIENT": rtsp_client},
    )
    assert proc.stdin is not None and proc.stdout is not None

    pids: list[int] = []
    live_bytes: list[list[int]] = []

    def packets() -> list[int]:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write("\n")
        proc.stdin.flush()
        report = json.loads(proc.stdout.readline())
        pids[:] = [proc.pid, *report["pids"]]
        live_bytes.append(report["live_bytes"])
        return list(report["packets"])

    try:
        wait_line(proc, "READY", 60)
        time.sleep(warmup)
        p0 = packets()
        c0, t0 = cpu_seconds(pids), time.monotonic()
        time.sleep(window)
        c1, t1 = cpu_seconds(pids), time.monotonic()
        p1 = packets()
        mem = pss_mb(pids)
        workers = len(pids) - 1
        proc.stdin.close()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        shutil.rmtree(out, ignore_errors=True)
    elapsed = t1 - t0
    rates = [(b - a) / elapsed for a, b in zip(p0, p1, strict=True)]
    live = [(b - a) * 8 / elapsed / 1000 for a, b in zip(*live_bytes[-2:], strict=True)]
    return {
        "live_kbps": min(live) if LIVE[0] != "0" else 0.0,
        "cpu": (c1 - c0) / elapsed * 100,
        "mem": mem,
        "min_fps": min(rates),
        "median_fps": statistics.median(rates),
        "procs": workers,
    }


def run_ffmpeg(
    urls: list[str], window: float, warmup: float, per_worker: int, *, viewer: bool = False
) -> dict[str, float]:
    """One ``ffmpeg -c copy -f segment`` per channel; with ``viewer``, each also feeds one live
    viewer as Xueliang does (a tee: the segments and fragmented MP4 of a fragment per frame
    over TCP to a reader in another process), so that both do the same work."""
    out = Path(tempfile.mkdtemp(prefix="ff-bench-"))
    procs = []
    sink: subprocess.Popen[str] | None = None
    ports: list[int] = []
    if viewer:
        sink = subprocess.Popen(
            [PY, str(HERE / "tcp_viewers.py"), str(len(urls))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert sink.stdout is not None
        ports = json.loads(sink.stdout.readline())
    received: list[list[int]] = []

    def delivered() -> None:
        if sink is not None and sink.stdin is not None and sink.stdout is not None:
            sink.stdin.write("\n")
            sink.stdin.flush()
            received.append(json.loads(sink.stdout.readline()))

    try:
        for i, url in enumerate(urls):
            progress = out / f"p{i}.txt"
            segments = str(out / f"c{i}_%03d.mp4")
            if viewer:
                live = "movflags=frag_every_frame+empty_moov+default_base_moof"
                output = [
                    "-map",
                    "0:v",
                    "-f",
                    "tee",
                    f"[f=segment:segment_time=60:segment_format=mp4:reset_timestamps=1]{segments}"
                    f"|[f=mp4:{live}]tcp://127.0.0.1:{ports[i]}",
                ]
            else:
                output = [
                    "-f",
                    "segment",
                    "-segment_time",
                    "60",
                    "-segment_format",
                    "mp4",
                    "-reset_timestamps",
                    "1",
                    segments,
                ]
            procs.append(
                subprocess.Popen(
                    [
                        "ffmpeg",
                        "-nostdin",
                        "-v",
                        "error",
                        "-rtsp_transport",
                        "tcp",
                        "-i",
                        url,
                        "-c",
                        "copy",
                        "-progress",
                        str(progress),
                        *output,
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            time.sleep(0.02)  # GStreamer's listen backlog: do not open all at once
        time.sleep(warmup)
        pids = [p.pid for p in procs]
        f0 = [_frames(out / f"p{i}.txt") for i in range(len(urls))]
        delivered()
        c0, t0 = cpu_seconds(pids), time.monotonic()
        time.sleep(window)
        c1, t1 = cpu_seconds(pids), time.monotonic()
        delivered()
        f1 = [_frames(out / f"p{i}.txt") for i in range(len(urls))]
        mem = pss_mb(pids)
    finally:
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        if sink is not None and sink.stdin is not None:
            sink.stdin.close()
            sink.wait(timeout=10)
        shutil.rmtree(out, ignore_errors=True)
    elapsed = t1 - t0
    rates = [(b - a) / elapsed for a, b in zip(f0, f1, strict=True)]
    live = [0.0]
    if len(received) == 2:
        live = [(b - a) * 8 / elapsed / 1000 for a, b in zip(*received, strict=True)]
    return {
        "cpu": (c1 - c0) / elapsed * 100,
        "mem": mem,
        "min_fps": min(rates),
        "median_fps": statistics.median(rates),
        "procs": len(urls),
        "live_kbps": min(live),
    }


def run_ffmpeg_viewer(
    urls: list[str], window: float, warmup: float, per_worker: int
) -> dict[str, float]:
    return run_ffmpeg(urls, window, warmup, per_worker, viewer=True)


def _frames(progress: Path) -> int:
    try:
        found = re.findall(r"^frame=(\d+)", progress.read_text(), re.M)
    except FileNotFoundError:
        return 0
    return int(found[-1]) if found else 0


# --- live: time to first frame and latency ------------------------------------------------------

# The simulator's seven-segment glyphs (see xueliang.media.sources.simulator._draw_text).
_SEGMENTS = {
    frozenset("abcdef"): "0",
    frozenset("bc"): "1",
    frozenset("abdeg"): "2",
    frozenset("abcdg"): "3",
    frozenset("bcfg"): "4",
    frozenset("acdfg"): "5",
    frozenset("acdefg"): "6",
    frozenset("abc"): "7",
    frozenset("abcdefg"): "8",
    frozenset("abcdfg"): "9",
}


def read_clock(y: object, height: int) -> float | None:
    """The burned-in HH:MM:SS.mmm of a decoded frame's luma plane, as seconds of the day."""
    import numpy as np

    plane = np.asarray(y)
    h = max(10, height // 14)
    w, t = max(4, h // 2), max(2, h // 10)
    half = h // 2
    centres = {
        "a": (t // 2, w // 2),
        "d": (h - 1 - t // 2, w // 2),
        "g": (half, w // 2),
        "f": (half // 2, t // 2),
        "e": (half + half // 2, t // 2),
        "b": (half // 2, w - 1 - t // 2),
        "c": (half + half // 2, w - 1 - t // 2),
    }
    x, y0, text = 8, 8, ""
    for kind in "dd:dd:dd.ddd":
        if kind in ":.":
            text += kind
            x += t * 3
            continue
        on = frozenset(s for s, (r, c) in centres.items() if plane[y0 + r, x + c] > 128)
        digit = _SEGMENTS.get(on)
        if digit is None:
            return None
        text += digit
        x += w + t * 2
    hh, mm, rest = text.split(":")
    return int(hh) * 3600 + int(mm) * 60 + float(rest)


async def live_probe(url: str, frames: int) -> dict[str, float]:
    import av
    import websockets

    t0 = time.time()
    latencies: list[float] = []
    async with websockets.connect(url, max_size=None) as ws:
        json.loads(await ws.recv())
        init = await ws.recv()
        first = await ws.recv()
        ttff = time.time() - t0
        codec = None
        buf = bytes(init)
        chunks = [(time.time(), first)]
        for _ in range(frames):
            chunks.append(await ws.recv_with_time() if False else (time.time(), await ws.recv()))
    # Decode afterwards (decoding is not what is measured): frame k arrived at chunks[k][0].
    import io

    data = io.BytesIO(buf + b"".join(bytes(c) for _, c in chunks))
    container = av.open(data, format="mp4")
    for k, frame in enumerate(container.decode(video=0)):
        if k == 0:
            continue  # the cached GOP's frames arrive at once; measure the live ones
        if k >= len(chunks):
            break
        at = read_clock(frame.to_ndarray(format="gray"), frame.height)
        if at is None:
            continue
        arrived = chunks[k][0]
        day = datetime.fromtimestamp(arrived, UTC)
        since_midnight = day.hour * 3600 + day.minute * 60 + day.second + day.microsecond / 1e6
        latencies.append((since_midnight - at) * 1000)
    del codec
    live = latencies[len(latencies) // 2 :] or latencies  # after the GOP replay
    return {
        "ttff_ms": ttff * 1000,
        "latency_p50_ms": statistics.median(live),
        "latency_p95_ms": sorted(live)[int(len(live) * 0.95) - 1],
        "frames": len(live),
    }


def run_live() -> dict[str, dict[str, float]]:
    data = Path(tempfile.mkdtemp(prefix="xl-live-"))
    env = {
        **os.environ,
        "XUELIANG_ADMIN_PASSWORD": "Bench-Passw0rd-1",
        "XUELIANG_HTTP_PORT": str(free_port()),
    }
    exe = [PY, "-m", "xueliang"]
    subprocess.run([*exe, "init", "--data", str(data)], env=env, check=True, capture_output=True)
    added = subprocess.run(
        [
            *exe,
            "device",
            "add",
            "latency",
            "--protocol",
            "sim",
            "--url",
            "sim://h264/1280x720@25?gop=50",
            "--data",
            str(data),
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    proc = subprocess.Popen(
        [*exe, "run", "--data", str(data)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_line(proc, "Uvicorn running", 60)
        base = f"http://127.0.0.1:{env['XUELIANG_HTTP_PORT']}"
        import httpx2 as httpx

        token = httpx.post(
            f"{base}/api/v1/auth/login", json={"username": "admin", "password": "Bench-Passw0rd-1"}
        ).json()["access_token"]
        device = re.search(r"Device (\d{20})", added)
        assert device
        chans = httpx.get(
            f"{base}/api/v1/channels",
            params={"device_id": device.group(1)},
            headers={"Authorization": f"Bearer {token}"},
        ).json()
        channel = chans["items"][0]["id"]
        deadline = time.monotonic() + 30
        while (
            httpx.get(
                f"{base}/api/v1/channels/{channel}", headers={"Authorization": f"Bearer {token}"}
            ).json()["status"]
            != "online"
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("simulated camera did not come online")
            time.sleep(0.2)
        time.sleep(2)  # a GOP in the cache, as for any viewer joining a running camera
        auth = {"Authorization": f"Bearer {token}"}
        # As the console does: a ticket, then the worker's WebSocket (the ticket's request is
        # part of the time to first frame).
        t0 = time.time()
        direct_url = httpx.post(
            f"{base}/api/v1/channels/{channel}/live/ticket", headers=auth
        ).json()["url"]
        ticket_ms = (time.time() - t0) * 1000
        direct = asyncio.run(live_probe(direct_url, 150))
        direct["ttff_ms"] += ticket_ms
        relay_url = base.replace("http", "ws") + f"/api/v1/channels/{channel}/live?token={token}"
        relay = asyncio.run(live_probe(relay_url, 150))
        return {"direct": direct, "relay": relay}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(data, ignore_errors=True)


class RtspServer(subprocess.Popen[str]):
    url = ""


def start_server(mounts: int, shared: bool) -> RtspServer:
    """GStreamer's RTSP server playing the source on /cam0 … (see gst_file_server.py)."""
    port = free_port()
    server = RtspServer(
        [
            "/usr/bin/python3",
            str(HERE / "gst_file_server.py"),
            str(port),
            str(LONG_SOURCE if shared else SOURCE),
            str(mounts),
            *(["shared"] if shared else []),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    server.url = f"rtsp://127.0.0.1:{port}"
    wait_line(server, "READY", 30)
    # Drained from now on: GStreamer's warnings would otherwise fill the pipe over a long run
    # and stop the server mid-benchmark (every client then at 0 fps).
    threading.Thread(target=server.communicate, daemon=True).start()
    return server


def stop_server(server: subprocess.Popen[str]) -> None:
    server.terminate()
    server.wait(timeout=10)


def print_ratios(n: int, per_ch: dict[str, list[float]], server: dict[str, list[float]]) -> None:
    """Xueliang's CPU per channel against each ffmpeg row: of the medians, per round (the runs
    of a round are a minute or two apart), and per round scaled by the RTSP server's CPU in the
    same run. The server does the same work in every run, so its CPU measures how fast the
    machine was at the time; this 2-core VM's speed drifts by ±20% between runs, which moves
    every process alike."""
    ours, ours_srv = per_ch["xueliang"], server["xueliang"]
    for name, theirs in per_ch.items():
        if name == "xueliang" or not theirs:
            continue
        paired = [a / b for a, b in zip(ours, theirs, strict=False) if b > 0]
        scaled = [
            (a / sa) / (b / sb)
            for a, sa, b, sb in zip(ours, ours_srv, theirs, server[name], strict=False)
            if b > 0 and sa > 0 and sb > 0
        ]
        print(
            f"{n:>8} xueliang / {name}: medians {statistics.median(ours):.2f} / "
            f"{statistics.median(theirs):.2f} %/ch = "
            f"{statistics.median(ours) / statistics.median(theirs):.2f}x; per round "
            + ", ".join(f"{r:.2f}" for r in paired)
            + f" (median {statistics.median(paired):.2f}x); scaled by the server's CPU "
            + ", ".join(f"{r:.2f}" for r in scaled)
            + f" (median {statistics.median(scaled):.2f}x)",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--channels", default="8,32,64")
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=6.0)
    parser.add_argument("--mounts", type=int, default=4)
    parser.add_argument(
        "--shared-source",
        action="store_true",
        help="the RTSP server runs one pipeline per mount for all its clients (cheaper for it)",
    )
    parser.add_argument("--per-worker", type=int, default=32, help="channels per media worker")
    parser.add_argument(
        "--repeat", type=int, default=1, help="rounds of every implementation (order rotated)"
    )
    parser.add_argument("--skip-ffmpeg", action="store_true")
    parser.add_argument(
        "--ffmpeg-client",
        action="store_true",
        help="also Xueliang with FFmpeg's RTSP client (media.rtsp_client = ffmpeg): 'xl/ffrtsp'",
    )
    parser.add_argument("--skip-live", action="store_true")
    parser.add_argument(
        "--no-live", action="store_true", help="Xueliang records only (no live muxer), like ffmpeg"
    )
    parser.add_argument(
        "--relay",
        action="store_true",
        help="live viewers through the control process (the fallback) instead of from workers",
    )
    args = parser.parse_args()
    if args.no_live:
        LIVE[0] = "0"
    elif args.relay:
        LIVE[0] = "relay"

    print(f"machine: {os.cpu_count()} cores; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    if not args.skip_live:
        probes = run_live()
        print("\nLive view (simulated 720p25 camera, WebSocket fMP4, viewer in another process)")
        print(f"{'':<28}{'from worker':>12}{'relayed':>12}")
        rows = [
            ("time to first frame, ms", "ttff_ms", "target < 1000"),
            ("latency p50 clock→arrival", "latency_p50_ms", "target < 500"),
            ("latency p95, ms", "latency_p95_ms", ""),
            ("frames measured", "frames", ""),
        ]
        for label, key, note in rows:
            direct, relayed = probes["direct"][key], probes["relay"][key]
            print(f"{label:<28}{direct:>12.0f}{relayed:>12.0f}   {note}")

    make_source()
    counts = [int(v) for v in args.channels.split(",")]
    impls: list[tuple[str, Callable[[list[str], float, float, int], dict[str, float]]]] = [
        ("xueliang", run_xueliang)
    ]
    if args.ffmpeg_client:
        impls.append(("xl/ffrtsp", functools.partial(run_xueliang, rtsp_client="ffmpeg")))
    if not args.skip_ffmpeg:
        impls.append(("ffmpeg", run_ffmpeg))
        if LIVE[0] != "0":
            impls.append(("ffmpeg+v", run_ffmpeg_viewer))
    # A shared mount plays its file once: with a shared source every run gets a fresh server.
    server = start_server(args.mounts, args.shared_source)
    try:
        viewers = {
            "0": "no live viewer",
            "relay": "one live viewer per channel relayed by the control process (Xueliang)",
            "direct": "one live viewer per channel served by its worker (Xueliang)",
        }[LIVE[0]]
        print(f"\nRecording 1080p25 4 Mbit/s H.264 over RTSP, copy, {viewers}")
        print(
            f"{'channels':>8} {'impl':<10} {'procs':>5} {'CPU %':>7} {'CPU %/ch':>9} {'PSS MB':>8} "
            f"{'MB/ch':>6} {'min fps':>8} {'med fps':>8} {'live kb/s min':>14} {'server CPU %':>13}"
        )
        for n in counts:
            per_ch: dict[str, list[float]] = {name: [] for name, _ in impls}
            server_per_run: dict[str, list[float]] = {name: [] for name, _ in impls}
            for rnd in range(args.repeat):
                # Rounds rotate the order, so that no implementation always runs first (or
                # last) while the machine's speed drifts.
                for name, fn in impls[rnd % len(impls) :] + impls[: rnd % len(impls)]:
                    if args.shared_source:
                        stop_server(server)
                        server = start_server(args.mounts, shared=True)
                    urls = [f"{server.url}/cam{i % args.mounts}" for i in range(n)]
                    s0 = cpu_seconds([server.pid])
                    ts = time.monotonic()
                    r = fn(urls, args.window, args.warmup, args.per_worker)
                    server_cpu = (cpu_seconds([server.pid]) - s0) / (time.monotonic() - ts) * 100
                    per_ch[name].append(r["cpu"] / n)
                    server_per_run[name].append(server_cpu)
                    print(
                        f"{n:>8} {name:<10} {r['procs']:>5.0f} {r['cpu']:>7.1f} "
                        f"{r['cpu'] / n:>9.2f} {r['mem']:>8.0f} "
                        f"{r['mem'] / n:>6.1f} {r['min_fps']:>8.1f} {r['median_fps']:>8.1f} "
                        f"{r.get('live_kbps', 0.0):>14.0f} {server_cpu:>13.1f}",
                        flush=True,
                    )
            if len(impls) > 1:
                print_ratios(n, per_ch, server_per_run)
    finally:
        stop_server(server)


if __name__ == "__main__":
    main()
