"""The built-in camera simulator: a source like a camera, for the demo, tests and benchmarks."""

from __future__ import annotations

import json
import subprocess
import threading

import pytest
from fastapi.testclient import TestClient

from tests.support.media import Events, status
from xueliang.app import Platform
from xueliang.core.errors import InvalidInput
from xueliang.media.sources.simulator import open_simulator, parse_sim_url

pytestmark = pytest.mark.media


def test_parse_sim_urls() -> None:
    spec = parse_sim_url("sim://h265/1920x1080@30?seed=7")
    assert (spec.codec, spec.width, spec.height, spec.fps, spec.seed) == ("h265", 1920, 1080, 30, 7)
    assert parse_sim_url("sim://h264/").width == 640
    for bad in (
        "sim://vp9/640x360@25",
        "sim://h264/640x@25",
        "sim://h264/641x360@25",
        "sim://h264/640x360@0",
        "rtsp://x/y",
    ):
        with pytest.raises(InvalidInput):
            parse_sim_url(bad)


@pytest.mark.parametrize("codec", ["h264", "h265"])
def test_simulator_starts_on_a_key_frame_with_90khz_timestamps(codec: str) -> None:
    stop = threading.Event()
    with open_simulator(f"sim://{codec}/320x240@25", stop) as src:
        packets = []
        for p in src.packets:
            packets.append((p.pts, p.dts, p.is_keyframe))
            if len(packets) == 30:
                break
    assert packets[0][2] is True
    assert [p[1] for p in packets] == [n * 3600 for n in range(30)]
    assert src.streams[0].codec == ("h264" if codec == "h264" else "hevc")


def test_simulated_camera_records_and_plays_live(
    platform: Platform, client: TestClient, admin_headers: dict[str, str]
) -> None:
    platform.media.segment_seconds = 1.0
    events = Events(platform)
    r = client.post(
        "/api/v1/devices",
        json={"name": "模拟相机", "protocol": "sim", "url": "sim://h264/320x240@25?gop=25"},
        headers=admin_headers,
    )
    assert r.status_code == 201, r.text
    channel = client.get(
        "/api/v1/channels", params={"device_id": r.json()["id"]}, headers=admin_headers
    ).json()["items"][0]["id"]
    platform.media.start()
    try:
        events.wait(status(channel, "online"), 20, "online")
        seg = events.segments(channel, 2, 20)[-1]
        out = subprocess.run(
            [
                "ffprobe",
                "-v",
                "error",
                "-count_frames",
                "-show_entries",
                "stream=codec_name,width,nb_read_frames:format=duration",
                "-of",
                "json",
                str(platform.segments.path_of(seg.path)),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        info = json.loads(out)
        assert info["streams"][0]["codec_name"] == "h264"
        assert int(info["streams"][0]["nb_read_frames"]) == seg.frames == 25
        token = admin_headers["Authorization"].removeprefix("Bearer ")
        with client.websocket_connect(f"/api/v1/channels/{channel}/live?token={token}") as ws:
            assert json.loads(ws.receive_text())["codec"].startswith("avc1.")
            assert ws.receive_bytes()[4:8] == b"ftyp"
            assert ws.receive_bytes()[4:8] == b"moof"
    finally:
        platform.media.stop()


def test_sim_device_needs_a_url(client: TestClient, admin_headers: dict[str, str]) -> None:
    r = client.post("/api/v1/devices", json={"name": "x", "protocol": "sim"}, headers=admin_headers)
    assert r.status_code == 422
