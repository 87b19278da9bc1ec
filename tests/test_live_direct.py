"""Live view straight from the media worker that runs the channel: the platform checks and
audits, issues a ticket, and the browser's WebSocket goes to the worker (no relay).

Peers: GStreamer's RTSP server as the camera, the websockets library as the browser's
WebSocket, ffprobe to check what was streamed."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.conftest import login
from tests.support.ffprobe import video_stream
from tests.support.media import Events, status
from tests.support.wait import wait_until
from xueliang.app import Platform

pytestmark = pytest.mark.media


def ticket(client: TestClient, headers: dict[str, str], channel: str) -> dict[str, str]:
    r = client.post(f"/api/v1/channels/{channel}/live/ticket", headers=headers)
    assert r.status_code == 200, r.text
    body: dict[str, str] = r.json()
    return body


def receive_start(ws: ClientConnection) -> bytes:
    head = json.loads(ws.recv(timeout=10))
    assert head["type"] == "init" and head["codec"].startswith("avc1.")
    segment = ws.recv(timeout=10)
    assert isinstance(segment, bytes) and segment[4:8] == b"ftyp"
    return segment


def test_viewer_watches_straight_from_the_worker(
    platform: Platform,
    client: TestClient,
    admin_headers: dict[str, str],
    live_channel: str,
    tmp_path: Path,
) -> None:
    def consumers() -> int:
        return platform.media.stats()[live_channel].consumers

    before = consumers()
    body = ticket(client, admin_headers, live_channel)
    assert body["url"].startswith("ws://127.0.0.1:")
    assert f"/live/{live_channel}?ticket=" in body["url"]
    assert body["relay_url"] == f"/api/v1/channels/{live_channel}/live"
    with connect(body["url"], max_size=None) as ws:
        segment = receive_start(ws)
        fragments = [ws.recv(timeout=10) for _ in range(50)]
        assert consumers() == before + 1
        # The relay is not involved: the platform's own live service watches nothing.
        assert platform.live.watching() == []
    assert all(isinstance(f, bytes) and f[4:8] == b"moof" for f in fragments)
    out = tmp_path / "direct.mp4"
    out.write_bytes(segment + b"".join(f for f in fragments if isinstance(f, bytes)))
    stream = video_stream(out)
    assert stream["codec_name"] == "h264" and stream["width"] == 320
    assert int(stream["nb_read_frames"]) == 50  # starts on a key frame: every frame decodes
    wait_until(lambda: consumers() == before, 10, "the muxer stops with its last viewer")
    audit = client.get("/api/v1/audit", params={"action": "video.live"}, headers=admin_headers)
    record = audit.json()["items"][0]
    assert record["target"] == f"channel:{live_channel}"
    assert record["detail"]["via"] == "direct"


def test_relayed_and_direct_viewers_share_one_muxer(
    platform: Platform, client: TestClient, admin_headers: dict[str, str], live_channel: str
) -> None:
    before = platform.media.stats()[live_channel].consumers
    token = admin_headers["Authorization"].removeprefix("Bearer ")
    relay_url = f"/api/v1/channels/{live_channel}/live?token={token}"
    with (
        connect(ticket(client, admin_headers, live_channel)["url"]) as direct,
        client.websocket_connect(relay_url) as relayed,
    ):
        receive_start(direct)
        assert json.loads(relayed.receive_text())["type"] == "init"
        relayed.receive_bytes()
        assert relayed.receive_bytes()[4:8] == b"moof"
        assert direct.recv(timeout=10)[4:8] == b"moof"
        assert platform.media.stats()[live_channel].consumers == before + 1


def test_ticket_refusals(
    platform: Platform, client: TestClient, admin_headers: dict[str, str], live_channel: str
) -> None:
    assert client.post(f"/api/v1/channels/{live_channel}/live/ticket").status_code == 401
    missing = client.post(
        "/api/v1/channels/34020000001319999999/live/ticket", headers=admin_headers
    )
    assert missing.status_code == 404
    client.post(
        "/api/v1/orgs",
        json={"code": "35", "name": "别省", "level": "province"},
        headers=admin_headers,
    )
    client.post(
        "/api/v1/users",
        json={
            "username": "outsider",
            "password": "Outsider-pw1",
            "roles": ["viewer"],
            "scope": {"orgs": ["35"]},
        },
        headers=admin_headers,
    )
    outsider = login(client, "outsider", "Outsider-pw1")
    r = client.post(f"/api/v1/channels/{live_channel}/live/ticket", headers=outsider)
    assert r.status_code == 403
    # A ticket is for one channel and one use: a copied URL is worthless.
    url = ticket(client, admin_headers, live_channel)["url"]
    with connect(url) as ws:
        receive_start(ws)
    with pytest.raises(InvalidStatus) as again:
        connect(url)
    assert again.value.response.status_code == 403


def test_without_direct_serving_the_relay_is_offered(
    platform: Platform, client: TestClient, admin_headers: dict[str, str], live_channel: str
) -> None:
    platform.media.stop()
    platform.media.live_host = ""  # as with media.live_direct = false
    events = Events(platform)
    platform.media.start()
    events.wait(status(live_channel, "online"), 20, "online")
    body = ticket(client, admin_headers, live_channel)
    assert body["url"] is None and body["expires_at"] is None
    assert body["relay_url"] == f"/api/v1/channels/{live_channel}/live"
    # Behind an HTTPS proxy a browser may not open ws:// either: relay again.
    platform.media.stop()
    platform.media.live_host = "127.0.0.1"
    platform.media.start()
    events.wait(status(live_channel, "online"), 20, "online again")
    wait_until(lambda: platform.media.pool.live_endpoint(live_channel) is not None, 10, "served")
    proxied = client.post(
        f"/api/v1/channels/{live_channel}/live/ticket",
        headers={**admin_headers, "X-Forwarded-Proto": "https"},
    )
    assert proxied.json()["url"] is None


def test_a_killed_worker_ends_its_viewers_and_comes_back_on_a_new_ticket(
    platform: Platform, client: TestClient, admin_headers: dict[str, str], live_channel: str
) -> None:
    with connect(ticket(client, admin_headers, live_channel)["url"]) as ws:
        receive_start(ws)
        (worker,) = platform.media.workers()
        assert worker.pid is not None
        os.kill(worker.pid, signal.SIGKILL)
        with pytest.raises(ConnectionClosed):
            while True:
                ws.recv(timeout=10)
    wait_until(
        lambda: any(w.alive and w.pid != worker.pid for w in platform.media.workers()),
        20,
        "worker restarted",
    )
    wait_until(lambda: platform.media.pool.live_endpoint(live_channel) is not None, 20, "serving")
    with connect(ticket(client, admin_headers, live_channel)["url"]) as ws:
        receive_start(ws)
        assert ws.recv(timeout=20)[4:8] == b"moof"
