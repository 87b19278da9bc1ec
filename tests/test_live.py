"""Live view over WebSocket (fMP4 for MSE) from a real RTSP camera (GStreamer's server)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from tests.conftest import login
from xueliang.app import Platform

pytestmark = pytest.mark.media


def _token(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


def test_live_stream_is_playable_fmp4_from_a_key_frame(
    platform: Platform,
    client: TestClient,
    admin_headers: dict[str, str],
    live_channel: str,
    tmp_path: Path,
) -> None:
    url = f"/api/v1/channels/{live_channel}/live?token={_token(admin_headers)}"
    t0 = time.monotonic()
    with client.websocket_connect(url) as ws:
        init = json.loads(ws.receive_text())
        assert init["type"] == "init"
        assert init["codec"].startswith("avc1.")
        assert init["mime"] == f'video/mp4; codecs="{init["codec"]}"'
        segment = ws.receive_bytes()
        assert segment[4:8] == b"ftyp" and b"moov" in segment
        fragments = [ws.receive_bytes()]
        first_frame = time.monotonic() - t0
        fragments += [ws.receive_bytes() for _ in range(49)]
        assert platform.live.viewer_count(live_channel) == 1
    # A new viewer starts on a key frame at once (the GOP is cached): well under a second.
    assert first_frame < 1.0
    assert all(f[4:8] == b"moof" for f in fragments)
    out = tmp_path / "live.mp4"
    out.write_bytes(segment + b"".join(fragments))
    probe = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "stream=codec_name,width,nb_read_frames",
            "-of",
            "json",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    stream = json.loads(probe.stdout)["streams"][0]
    assert stream["codec_name"] == "h264" and stream["width"] == 320
    # Every frame decodes: the stream began on a key frame.
    assert int(stream["nb_read_frames"]) == 50
    audit = client.get("/api/v1/audit", params={"action": "video.live"}, headers=admin_headers)
    assert audit.json()["items"][0]["target"] == f"channel:{live_channel}"


def test_last_viewer_leaving_stops_the_live_muxer(
    platform: Platform, client: TestClient, admin_headers: dict[str, str], live_channel: str
) -> None:
    def consumers() -> int:  # on the channel's hub, in its media worker
        return platform.media.stats()[live_channel].consumers

    before = consumers()  # the recorder
    url = f"/api/v1/channels/{live_channel}/live?token={_token(admin_headers)}"
    with client.websocket_connect(url) as a, client.websocket_connect(url) as b:
        for ws in (a, b):
            assert json.loads(ws.receive_text())["type"] == "init"
            ws.receive_bytes()
            ws.receive_bytes()
        assert consumers() == before + 1  # one muxer for both viewers
        assert platform.live.watching() == [live_channel]
    deadline = time.monotonic() + 10
    while consumers() != before:
        assert time.monotonic() < deadline, "live muxer still subscribed"
        # Each viewer's leave runs in the app's loop after the socket closes: wait for it
        # by touching the app (a request is processed after pending tasks).
        client.get("/api/v1/health")
    assert platform.live.watching() == []


@pytest.mark.parametrize(("who", "code"), [("nobody", 4401), ("outsider", 4403), ("missing", 4404)])
def test_live_refusals(
    client: TestClient, admin_headers: dict[str, str], live_channel: str, who: str, code: int
) -> None:
    token, channel = "bogus", live_channel
    if who == "outsider":
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
        token = _token(login(client, "outsider", "Outsider-pw1"))
    elif who == "missing":
        token, channel = _token(admin_headers), "34020000001319999999"
    with (
        pytest.raises(WebSocketDisconnect) as exc,
        client.websocket_connect(f"/api/v1/channels/{channel}/live?token={token}") as ws,
    ):
        ws.receive_text()
    assert exc.value.code == code
