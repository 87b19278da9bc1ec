"""Media worker processes: placement of channels, supervision (a killed worker is restarted and
its channels resume, its segment in progress is indexed), the pipe protocol, and no orphans."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.support.media import Events, add_sim_camera, status
from tests.support.wait import wait_until
from xueliang.app import Platform
from xueliang.media import ipc
from xueliang.media.live import Fragment
from xueliang.media.model import IngestSpec, StatusChanged
from xueliang.store.models import AuditRecord, Segment

pytestmark = pytest.mark.media

SIM = "sim://h264/160x120@25?gop=25"


# --- protocol ---------------------------------------------------------------------------------


def test_frames_round_trip_and_garbage_is_refused(tmp_path: Path) -> None:
    spec = IngestSpec("34020000001320000001", "rtsp://127.0.0.1/x", "u", "p")
    msgs: list[ipc.Command | ipc.Report] = [
        ipc.Configure("/r", 60.0, 30.0),
        ipc.Assign((spec,)),
        ipc.Watch("c", 7),
        ipc.Live("c", 7, Fragment(b"moof", True)),
        ipc.StatsReply(3, {"c": ipc.ChannelStats(10, 2, True)}),
        ipc.Batch((ipc.Live("c", 7, Fragment(b"moof", False)), ipc.Ready(1))),
    ]
    f = tmp_path / "frames"
    f.write_bytes(b"".join(ipc.encode(m) for m in msgs))
    with f.open("rb") as r:
        got = [ipc.read_message(r) for _ in msgs]
        assert ipc.read_message(r) is None  # clean end
    assert got == msgs

    def read(data: bytes) -> object:
        f.write_bytes(data)
        with f.open("rb") as r:
            return ipc.read_message(r)

    whole = ipc.encode(msgs[1])
    with pytest.raises(ipc.ProtocolError, match="ended inside a frame"):
        read(whole[:-3])
    with pytest.raises(ipc.ProtocolError, match="exceeds the limit"):
        read(b"\xff\xff\xff\xff" + b"x" * 10)
    with pytest.raises(ipc.ProtocolError, match="undecodable"):
        read(b"\x00\x00\x00\x05hello")
    body = pickle.dumps({"not": "a message"})
    with pytest.raises(ipc.ProtocolError, match="unexpected message type"):
        read(len(body).to_bytes(4, "big") + body)


def _worker() -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "xueliang.media.worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _flat(msg: object) -> list[object]:
    """Reports travel in batches (ipc.Batch) as well as alone."""
    return list(msg.reports) if isinstance(msg, ipc.Batch) else [msg]


def test_a_worker_exits_when_its_control_process_goes(tmp_path: Path) -> None:
    """stdin closing (the platform died) ends the worker, and it closes its segments first."""
    proc = _worker()
    assert proc.stdin is not None and proc.stdout is not None
    assert isinstance(ipc.read_message(proc.stdout), ipc.Ready)
    proc.stdin.write(ipc.encode(ipc.Configure(str(tmp_path), 60.0, 1.0)))
    proc.stdin.write(ipc.encode(ipc.Assign((IngestSpec("34020000001320000001", SIM),))))
    proc.stdin.flush()
    online = False
    while not online:  # wait until it records
        msg = ipc.read_message(proc.stdout)
        assert msg is not None
        online = any(
            isinstance(m, ipc.Event) and isinstance(m.event, StatusChanged) for m in _flat(msg)
        )
    proc.stdin.close()
    assert proc.wait(timeout=20) == 0
    rest: list[object] = []
    while (msg := ipc.read_message(proc.stdout)) is not None:
        rest += _flat(msg)
    closed = [m.event for m in rest if isinstance(m, ipc.Event)]
    # The segment in progress was closed and reported, then the channel went offline.
    assert any(type(e).__name__ == "SegmentClosed" for e in closed)
    assert isinstance(closed[-1], StatusChanged) and closed[-1].reason == "stopped"


def test_a_worker_refuses_a_corrupt_command_stream() -> None:
    proc = _worker()
    assert proc.stdin is not None and proc.stdout is not None
    assert isinstance(ipc.read_message(proc.stdout), ipc.Ready)
    proc.stdin.write(b"\x00\x00\x00\x04junk")
    proc.stdin.flush()
    assert proc.wait(timeout=20) == 0
    assert proc.stderr is not None
    assert b"bad command stream" in proc.stderr.read()


# --- placement and supervision -----------------------------------------------------------------


def test_channels_are_spread_over_bounded_workers(
    platform: Platform, client: TestClient, admin_headers: dict[str, str]
) -> None:
    platform.media.channels_per_worker = 2
    events = Events(platform)
    channels = [add_sim_camera(client, admin_headers, SIM) for _ in range(5)]
    platform.media.start()
    try:
        online: set[str] = set()
        while online != set(channels):
            e = events.wait(
                lambda e: isinstance(e, StatusChanged) and e.status == "online", 30, "online"
            )
            online.add(e.channel_id)
        workers = platform.media.workers()
        assert [len(w.channels) for w in workers] == [2, 2, 1]
        assert sorted(c for w in workers for c in w.channels) == sorted(channels)
        assert len({w.pid for w in workers}) == 3 and all(w.alive for w in workers)
        # Every worker answers for its channels.
        stats = platform.media.stats()
        assert sorted(stats) == sorted(channels)
        assert all(s.online and s.packets > 0 for s in stats.values())
        # The lone channel's device removed: its worker is retired; the others stay put.
        lone = workers[2].channels[0]
        device = client.get(f"/api/v1/channels/{lone}", headers=admin_headers).json()["device_id"]
        assert client.delete(f"/api/v1/devices/{device}", headers=admin_headers).status_code == 204
        assert [w.channels for w in platform.media.workers()] == [
            workers[0].channels,
            workers[1].channels,
        ]
        wait_until(lambda: _gone(workers[2].pid), 20, "the retired worker to exit")
    finally:
        platform.media.stop()
    assert all(_gone(w.pid) for w in workers)


def _gone(pid: int | None) -> bool:
    assert pid is not None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie still answers kill(0): look at its state.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except FileNotFoundError:
        return True


def test_a_killed_worker_is_restarted_and_its_channels_resume(
    platform: Platform, client: TestClient, admin_headers: dict[str, str]
) -> None:
    platform.media.segment_seconds = 30.0  # the segment in progress is long when the kill comes
    events = Events(platform)
    channel = add_sim_camera(client, admin_headers, SIM)
    platform.media.start()
    try:
        events.wait(status(channel, "online"), 30, "online")
        (worker,) = platform.media.workers()
        assert worker.pid is not None
        # Let the recorder write a couple of fragments into the segment in progress.
        wait_until(lambda: platform.media.stats()[channel].packets > 60, 20, "packets")
        os.kill(worker.pid, signal.SIGKILL)
        lost = events.wait(status(channel, "offline"), 20, "offline after the kill")
        assert isinstance(lost, StatusChanged) and lost.reason is not None
        assert "media worker exited unexpectedly" in lost.reason
        events.wait(status(channel, "online"), 30, "online again")
        (again,) = platform.media.workers()
        assert again.pid != worker.pid and again.restarts == 1 and again.alive
        r = client.get(f"/api/v1/channels/{channel}", headers=admin_headers)
        assert r.json()["status"] == "online"
    finally:
        platform.media.stop()
    # What the killed worker had written of its segment is indexed (start-of-loss repair).
    with platform.db.read() as s:
        segments = [(g.bytes, g.start, g.end) for g in s.scalars(select(Segment))]
        repairs = [
            r.detail
            for r in s.scalars(select(AuditRecord).where(AuditRecord.action == "recording.repair"))
        ]
    assert repairs, "the lost worker's channels were not repaired"
    assert repairs[0]["indexed"] == 1 and repairs[0]["damaged"] == 0
    assert len(segments) == 2  # the repaired one and the one closed at stop
    assert all(size > 0 and end > start for size, start, end in segments)


def test_live_view_survives_a_worker_restart(
    platform: Platform, client: TestClient, admin_headers: dict[str, str]
) -> None:
    events = Events(platform)
    channel = add_sim_camera(client, admin_headers, SIM)
    platform.media.start()
    try:
        events.wait(status(channel, "online"), 30, "online")
        token = admin_headers["Authorization"].removeprefix("Bearer ")
        with client.websocket_connect(f"/api/v1/channels/{channel}/live?token={token}") as ws:
            assert json.loads(ws.receive_text())["type"] == "init"
            assert ws.receive_bytes()[4:8] == b"ftyp"
            assert ws.receive_bytes()[4:8] == b"moof"
            (worker,) = platform.media.workers()
            assert worker.pid is not None
            os.kill(worker.pid, signal.SIGKILL)
            # The viewer stays connected: the restarted worker's muxer sends a new init.
            while True:
                msg = ws.receive()
                if msg.get("text") and json.loads(msg["text"])["type"] == "init":
                    break
            assert ws.receive_bytes()[4:8] == b"ftyp"
            assert ws.receive_bytes()[4:8] == b"moof"
        assert platform.media.workers()[0].restarts == 1
    finally:
        platform.media.stop()
