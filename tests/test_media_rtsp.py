"""RTSP ingest and recording against GStreamer's RTSP server (a real peer), checked with ffprobe."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.media import Events, add_camera, status
from tests.support.rtsp_peer import RtspPeer
from xueliang.app import Platform
from xueliang.media.model import StatusChanged

# scripts/system-deps.sh (run by `make test`) installs GStreamer's RTSP server; without it
# these tests fail rather than skip.
pytestmark = pytest.mark.media


def ffprobe(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-count_packets",
            "-show_entries",
            "format=duration:stream=codec_name,width,height,nb_read_packets",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)  # type: ignore[no-any-return]


@pytest.mark.parametrize(("path", "codec"), [("/h264", "h264"), ("/h265", "hevc")])
def test_records_valid_segments(
    media_platform: Platform,
    client: TestClient,
    admin_headers: dict[str, str],
    peer: RtspPeer,
    path: str,
    codec: str,
) -> None:
    events = Events(media_platform)
    channel = add_camera(client, admin_headers, peer.url(path))
    media_platform.media.start()
    events.wait(status(channel, "online"), 20, "online")
    assert (
        client.get(f"/api/v1/channels/{channel}", headers=admin_headers).json()["status"]
        == "online"
    )
    segs = events.segments(channel, 3, 20)
    root = media_platform.data.recordings
    for seg in segs:
        info = ffprobe(root / seg.path)
        stream = info["streams"][0]
        assert stream["codec_name"] == codec
        assert (stream["width"], stream["height"]) == (320, 240)
        # Key-frame aligned: a 1 s target with a key frame every second.
        assert 0.9 <= float(info["format"]["duration"]) <= 2.2, info
        assert int(stream["nb_read_packets"]) == seg.frames
        assert seg.codec == codec
    # One picture, one packet: a key frame the RTSP reader hands out in pieces is joined, so a
    # 1 s segment of a 25 fps camera with a key frame every second holds exactly 25.
    assert [seg.frames for seg in segs[1:]] == [25] * (len(segs) - 1)
    listed = client.get(
        "/api/v1/recordings", params={"channel_id": channel}, headers=admin_headers
    ).json()
    assert listed["total"] >= 3
    starts = [datetime.fromisoformat(i["start"]) for i in listed["items"]]
    assert starts == sorted(starts)
    first = listed["items"][0]
    media = client.get(first["url"], headers=admin_headers)
    assert media.status_code == 200 and media.headers["content-type"] == "video/mp4"
    assert len(media.content) == first["bytes"]
    audited = client.get(
        "/api/v1/audit", params={"action": "video.playback"}, headers=admin_headers
    ).json()
    assert audited["total"] == 1 and audited["items"][0]["target"] == f"channel:{channel}"


def test_peer_killed_goes_offline_and_recovers(
    media_platform: Platform,
    client: TestClient,
    admin_headers: dict[str, str],
    peer: RtspPeer,
) -> None:
    events = Events(media_platform)
    channel = add_camera(client, admin_headers, peer.url("/h264"))
    media_platform.media.start()
    events.wait(status(channel, "online"), 20, "online")
    events.segments(channel, 1, 20)
    peer.kill()
    # Noticed within 10 s of the camera going silent.
    offline = events.wait(status(channel, "offline"), 10, "offline")
    assert isinstance(offline, StatusChanged) and offline.reason
    body = client.get(f"/api/v1/channels/{channel}", headers=admin_headers).json()
    assert body["status"] == "offline" and body["status_reason"]
    peer.start()
    events.wait(status(channel, "online"), 30, "online again")
    # Recording resumes.
    events.segments(channel, 2, 20)


def test_unreachable_camera_is_offline_with_a_reason(
    media_platform: Platform,
    client: TestClient,
    admin_headers: dict[str, str],
) -> None:
    from tests.support.rtsp_peer import free_port

    events = Events(media_platform)
    channel = add_camera(client, admin_headers, f"rtsp://127.0.0.1:{free_port()}/nothing")
    media_platform.media.start()
    ev = events.wait(status(channel, "offline"), 20, "offline")
    assert isinstance(ev, StatusChanged) and ev.reason
    assert "refused" in ev.reason or "Connection" in ev.reason


def test_registering_a_device_starts_its_ingest(
    media_platform: Platform,
    client: TestClient,
    admin_headers: dict[str, str],
    peer: RtspPeer,
) -> None:
    events = Events(media_platform)
    media_platform.media.start()
    assert media_platform.media.running() == []
    channel = add_camera(client, admin_headers, peer.url("/h264"))
    assert media_platform.media.running() == [channel]
    events.wait(status(channel, "online"), 20, "online")
    r = client.get("/api/v1/devices", headers=admin_headers).json()
    device = r["items"][0]["id"]
    assert client.delete(f"/api/v1/devices/{device}", headers=admin_headers).status_code == 204
    assert media_platform.media.running() == []


def test_camera_credentials(
    media_platform: Platform, client: TestClient, admin_headers: dict[str, str]
) -> None:
    peer = RtspPeer(user="admin", password="cam-Pa55")
    peer.start()
    try:
        events = Events(media_platform)
        good = add_camera(
            client, admin_headers, peer.url("/h264").replace("//", "//admin:cam-Pa55@")
        )
        bad = add_camera(client, admin_headers, peer.url("/h264").replace("//", "//admin:wrong@"))
        media_platform.media.start()
        events.wait(status(good, "online"), 20, "online with the right password")
        ev = events.wait(status(bad, "offline"), 20, "offline with the wrong password")
        assert isinstance(ev, StatusChanged) and ev.reason == "authentication failed"
    finally:
        peer.kill()
