"""Live video from GB/T 28181 devices through the platform: the project's simulator registers,
a viewer asks for a channel, the platform INVITEs (UDP, TCP with the device connecting, TCP
with the platform connecting), the PS/RTP stream enters a media worker and reaches the viewer
as fMP4; nobody watching ends it with BYE and every port goes back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from websockets.sync.client import connect

from tests.support.ffprobe import video_stream
from tests.support.gb import (
    gb_platform,
    registered_channels,
    simulator_process,
    unregistered_channel,
)
from tests.support.media import Events
from tests.support.wait import wait_until
from xueliang.app import Platform
from xueliang.media.model import SegmentClosed

pytestmark = pytest.mark.media


@pytest.fixture
def gb(platform: Platform) -> Iterator[Platform]:
    with gb_platform(platform, media=True):
        yield platform


@pytest.fixture
def simulator(gb: Platform) -> Iterator[subprocess.Popen[str]]:
    with simulator_process(gb) as sim:  # an NVR of two channels
        yield sim


def watch(url: str, frames: int, out: Path) -> dict[str, Any]:
    with connect(url, max_size=None) as ws:
        head = json.loads(ws.recv(timeout=15))
        assert head["type"] == "init" and head["codec"].startswith("avc1."), head
        init = ws.recv(timeout=10)
        assert isinstance(init, bytes) and init[4:8] == b"ftyp"
        fragments = [ws.recv(timeout=10) for _ in range(frames)]
    assert all(isinstance(f, bytes) and f[4:8] == b"moof" for f in fragments)
    out.write_bytes(init + b"".join(f for f in fragments if isinstance(f, bytes)))
    return video_stream(out)


def direct_url(
    client: TestClient, headers: dict[str, str], channel: str, ticket: Any, stream: str = ""
) -> str:
    """The ticket's URL straight to the worker. A ticket handed out before the stream's
    worker has reported its live port offers the relay only (url None, as the console then
    uses): asked again until the worker has."""
    url = ticket.json()["url"]
    if url:
        return str(url)
    params = {"stream": stream} if stream else None
    return str(
        wait_until(
            lambda: (
                client.post(
                    f"/api/v1/channels/{channel}/live/ticket", params=params, headers=headers
                )
                .json()
                .get("url")
            ),
            10,
            "a direct live URL",
        )
    )


@pytest.mark.parametrize("transport", ["udp", "tcp-passive", "tcp-active"])
def test_live_view_of_a_simulated_channel(
    gb: Platform,
    simulator: subprocess.Popen[str],
    client: TestClient,
    admin_headers: dict[str, str],
    tmp_path: Path,
    transport: str,
) -> None:
    gb.gb28181.routes._transport = transport  # type: ignore[assignment]
    channel = registered_channels(client, admin_headers)[0]
    streams = gb.gb28181.streams
    r = client.post(f"/api/v1/channels/{channel}/live/ticket", headers=admin_headers)
    assert r.status_code == 200, r.text
    (session,) = streams.sessions()
    assert (session.channel_id, session.kind, session.transport) == (channel, "Play", transport)
    assert session.online and len(session.ssrc) == 10 and session.ssrc.startswith("0")
    # What the SIP server sees of the device: registered, from where, which version, the stream.
    device = client.get(f"/api/v1/channels/{channel}", headers=admin_headers).json()["device_id"]
    sip = client.get(f"/api/v1/devices/{device}/sip", headers=admin_headers).json()
    assert sip["registered"] and sip["version"] == "3.0" and sip["transport"] == "udp"
    assert sip["address"].startswith("127.0.0.1:") and sip["keepalives"] >= 0
    assert [(x["channel_id"], x["transport"], x["online"]) for x in sip["sessions"]] == [
        (channel, transport, True)
    ]
    stream = watch(direct_url(client, admin_headers, channel, r), 30, tmp_path / "live.mp4")
    assert stream["codec_name"] == "h264" and stream["width"] == 320
    assert int(stream["nb_read_frames"]) == 30  # starts on a key frame: every frame decodes
    # The channel's register status is the device's, not the stream's.
    ch = client.get(f"/api/v1/channels/{channel}", headers=admin_headers).json()
    assert ch["status"] == "online"
    # Nobody watches any more: BYE after the idle time, the port goes back.
    wait_until(lambda: streams.sessions() == [], 15, "the idle stream to be closed")
    assert streams.opened == streams.closed == 1
    assert streams._ports.in_use == 0
    assert not gb.media.is_pulled(channel)
    ch = client.get(f"/api/v1/channels/{channel}", headers=admin_headers).json()
    assert ch["status"] == "online"


def test_the_sub_stream_is_a_session_of_its_own_and_never_recorded(
    gb: Platform,
    simulator: subprocess.Popen[str],
    client: TestClient,
    admin_headers: dict[str, str],
    tmp_path: Path,
) -> None:
    channel = registered_channels(client, admin_headers)[0]
    gb.gb28181.routes.invalidate()
    r = client.put(
        f"/api/v1/channels/{channel}/recording-plan",
        json={"mode": "continuous"},
        headers=admin_headers,
    )
    assert r.status_code == 200, r.text
    streams = gb.gb28181.streams
    events = Events(gb)
    main = client.post(f"/api/v1/channels/{channel}/live/ticket", headers=admin_headers)
    sub = client.post(
        f"/api/v1/channels/{channel}/live/ticket", params={"stream": "sub"}, headers=admin_headers
    )
    assert main.status_code == sub.status_code == 200, (main.text, sub.text)
    assert (main.json()["stream"], sub.json()["stream"]) == ("main", "sub")
    assert sub.json()["relay_url"].endswith("?stream=sub")
    views = {v.stream: v for v in streams.sessions()}
    assert set(views) == {0, 1} and views[1].key == f"{channel}@1"
    assert views[0].key == channel and views[0].ssrc != views[1].ssrc
    # The device sends its smaller sub stream (the simulator's is half the size each way).
    stream = watch(direct_url(client, admin_headers, channel, sub, "sub"), 10, tmp_path / "sub.mp4")
    assert (stream["width"], stream["height"]) == (160, 90)
    main_url = direct_url(client, admin_headers, channel, main)
    assert watch(main_url, 5, tmp_path / "main.mp4")["width"] == 320
    # Only the main stream is recorded; the sub stream ends when nobody watches it.
    events.segments(channel, 2, 30)
    wait_until(lambda: {v.stream for v in streams.sessions()} == {0}, 15, "the sub stream to end")
    recorded = {e.channel_id for e in list(events.q.queue) if isinstance(e, SegmentClosed)}
    assert f"{channel}@1" not in recorded
    r = client.get("/api/v1/audit", params={"target": f"channel:{channel}"}, headers=admin_headers)
    live = [a["detail"] for a in r.json()["items"] if a["action"] == "video.live"]
    assert {d.get("stream") for d in live} == {"main", "sub"}
    r = client.post(
        f"/api/v1/channels/{channel}/live/ticket", params={"stream": "third"}, headers=admin_headers
    )
    assert r.status_code == 422


def test_one_stream_serves_every_viewer_and_churn_leaks_nothing(
    gb: Platform,
    simulator: subprocess.Popen[str],
    client: TestClient,
    admin_headers: dict[str, str],
    tmp_path: Path,
) -> None:
    first, second = registered_channels(client, admin_headers)
    streams = gb.gb28181.streams
    for _ in range(3):
        streams.idle_seconds = 60.0  # held while the three tickets are handed out
        tickets = [
            client.post(f"/api/v1/channels/{c}/live/ticket", headers=admin_headers)
            for c in (first, second, first)
        ]
        assert [t.status_code for t in tickets] == [200, 200, 200], tickets[-1].text
        assert sorted(s.channel_id for s in streams.sessions()) == [first, second]
        url = direct_url(client, admin_headers, first, tickets[2])
        stream = watch(url, 5, tmp_path / "churn.mp4")
        assert stream["codec_name"] == "h264"
        streams.idle_seconds = 0.5
        wait_until(lambda: streams.sessions() == [], 15, "both streams closed")
    assert streams.opened == streams.closed == 6
    assert streams._ports.in_use == 0


def test_offline_device_and_unknown_channel_say_why(
    gb: Platform, client: TestClient, admin_headers: dict[str, str]
) -> None:
    channel = unregistered_channel(client, admin_headers, "nvr", "gate")
    r = client.post(f"/api/v1/channels/{channel}/live/ticket", headers=admin_headers)
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "stream_failed"
    assert "offline (not registered)" in error["message"]
    assert gb.gb28181.streams._ports.in_use == 0


@pytest.mark.parametrize("transport", ["udp", "tcp-passive", "tcp-active"])
def test_device_recordings_are_searched_played_steered_and_end_with_the_file(
    gb: Platform,
    simulator: subprocess.Popen[str],
    client: TestClient,
    admin_headers: dict[str, str],
    tmp_path: Path,
    transport: str,
) -> None:
    gb.gb28181.routes._transport = transport  # type: ignore[assignment]
    channel = registered_channels(client, admin_headers)[0]
    now = datetime.now(UTC).replace(microsecond=0)
    r = client.get(
        f"/api/v1/channels/{channel}/device-records",
        params={"start": (now - timedelta(hours=2)).isoformat(), "end": now.isoformat()},
        headers=admin_headers,
    )
    assert r.status_code == 200, r.text
    found = r.json()
    assert found["complete"] and found["items"], found
    first = found["items"][0]
    assert first["start"] is not None and first["end"] > first["start"]
    begin = datetime.fromisoformat(first["start"])
    r = client.post(
        f"/api/v1/channels/{channel}/device-playback",
        json={"start": begin.isoformat(), "end": (begin + timedelta(seconds=6)).isoformat()},
        headers=admin_headers,
    )
    assert r.status_code == 201, r.text
    played = r.json()
    key = played["session"]
    assert key.startswith(f"{channel}~")
    (session,) = gb.gb28181.streams.sessions()
    assert session.kind == "Playback" and session.key == key and session.transport == transport
    assert session.ssrc.startswith("1")  # history SSRCs start with 1
    r = client.post(
        f"/api/v1/device-playback/{key}/control",
        json={"action": "speed", "value": 2},
        headers=admin_headers,
    )
    assert r.status_code == 204, r.text
    r = client.post(
        f"/api/v1/device-playback/{key}/control",
        json={"action": "speed", "value": 0},
        headers=admin_headers,
    )
    assert r.status_code == 422
    stream = watch(played["url"], 10, tmp_path / "history.mp4")
    assert stream["codec_name"] == "h264" and int(stream["nb_read_frames"]) == 10
    # The device sends MediaStatus 121 when the range is played: the platform ends it (BYE).
    gb.gb28181.streams.idle_seconds = 60.0  # ended by the file's end, not by idleness
    wait_until(lambda: gb.gb28181.streams.sessions() == [], 30, "the end of the file")
    assert gb.gb28181.streams._ports.in_use == 0
    actions = {
        a["action"]
        for a in client.get(
            "/api/v1/audit", params={"target": f"channel:{channel}"}, headers=admin_headers
        ).json()["items"]
    }
    assert {"video.search", "video.playback"} <= actions
    r = client.delete(f"/api/v1/device-playback/{key}", headers=admin_headers)
    assert r.status_code == 404


def test_device_queries_answer_typed_or_as_the_device_wrote_them(
    gb: Platform,
    simulator: subprocess.Popen[str],
    client: TestClient,
    admin_headers: dict[str, str],
) -> None:
    channel = registered_channels(client, admin_headers)[0]
    device = client.get(f"/api/v1/channels/{channel}", headers=admin_headers).json()["device_id"]
    r = client.post(
        f"/api/v1/devices/{device}/query", json={"cmd_type": "DeviceStatus"}, headers=admin_headers
    )
    assert r.status_code == 200, r.text
    status = r.json()
    assert status["cmd_type"] == "DeviceStatus" and status["result"] == "OK"
    assert status["fields"]["online"] == "ON" and status["fields"]["device_time"]
    r = client.post(
        f"/api/v1/devices/{device}/query",
        json={"cmd_type": "SDCardStatusQuery", "channel_id": channel},
        headers=admin_headers,
    )
    assert r.status_code == 200, r.text
    card = r.json()
    assert card["cmd_type"] == "SDCardStatusQuery" and card["result"] == "OK"
    assert "<SumNum>0</SumNum>" in card["xml"]
    r = client.post(
        f"/api/v1/devices/{device}/query",
        json={"cmd_type": "ConfigDownload"},
        headers=admin_headers,
    )
    assert r.status_code == 422 and "config_type" in r.json()["error"]["message"]


def test_a_device_that_stops_sending_ends_the_session_with_the_reason(
    gb: Platform,
    simulator: subprocess.Popen[str],
    client: TestClient,
    admin_headers: dict[str, str],
) -> None:
    channel = registered_channels(client, admin_headers)[0]
    streams = gb.gb28181.streams
    streams.idle_seconds = 60.0  # only the loss of video may end it here
    r = client.post(f"/api/v1/channels/{channel}/live/ticket", headers=admin_headers)
    assert r.status_code == 200, r.text
    streams.media_timeout = 1.0
    streams.invite_timeout = 2.0
    os.kill(simulator.pid, signal.SIGKILL)
    wait_until(lambda: streams.sessions() == [], 20, "the session to end")
    assert streams.closed == 1 and streams._ports.in_use == 0
    r = client.post(f"/api/v1/channels/{channel}/live/ticket", headers=admin_headers)
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "stream_failed"
    assert "did not answer the INVITE" in error["message"] or "offline" in error["message"]
    assert streams._ports.in_use == 0
