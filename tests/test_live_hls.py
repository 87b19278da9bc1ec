"""Live HLS, the fallback to WebSocket + MSE, read by FFmpeg's HLS client (a real peer)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient

from tests.support.media import Events, add_sim_camera, status
from tests.support.server import serve
from xueliang.api.app import create_app
from xueliang.app import Platform

pytestmark = pytest.mark.media


def test_ffmpeg_plays_the_live_hls(
    platform: Platform, client: TestClient, admin_headers: dict[str, str], tmp_path: Path
) -> None:
    channel = add_sim_camera(client, admin_headers)
    platform.settings.media.enabled = True
    events = Events(platform)
    token = admin_headers["Authorization"].removeprefix("Bearer ")
    with serve(create_app(platform)) as base:
        events.wait(status(channel, "online"), 20, "online")
        url = f"{base}/api/v1/channels/{channel}/live.m3u8?token={token}"
        playlist = httpx.get(url, timeout=20)
        assert playlist.status_code == 200, playlist.text
        assert playlist.headers["content-type"].startswith("application/vnd.apple.mpegurl")
        text = playlist.text
        assert text.startswith("#EXTM3U") and "#EXT-X-MAP:URI=" in text and ".m4s" in text
        # FFmpeg's HLS demuxer reads playlist, init segment and media segments.
        copy = tmp_path / "hls.mp4"
        subprocess.run(
            ["ffmpeg", "-v", "error", "-i", url, "-frames:v", "50", "-c", "copy", str(copy)],
            capture_output=True,
            timeout=60,
            check=True,
        )
        out = subprocess.run(
            [
                "ffprobe",
                "-v",
                "error",
                "-count_frames",
                "-show_entries",
                "stream=codec_name,width,nb_read_frames",
                "-of",
                "json",
                str(copy),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        stream = json.loads(out)["streams"][0]
        assert stream["codec_name"] == "h264" and stream["width"] == 320
        assert int(stream["nb_read_frames"]) == 50  # from a key frame: every frame decodes
        assert httpx.get(url.replace(token, "wrong"), timeout=10).status_code == 401
        assert httpx.get(url.split("?")[0], timeout=10).status_code == 401
        gone = httpx.get(
            f"{base}/api/v1/channels/{channel}/live/999999.m4s?token={token}", timeout=10
        )
        assert gone.status_code == 404
    audit = client.get(
        "/api/v1/audit", params={"action": "video.live"}, headers=admin_headers
    ).json()
    # One session, however often the playlist was fetched.
    assert audit["total"] == 1 and audit["items"][0]["detail"] == {"via": "hls"}
