"""A live INVITE answered by SIPp acting as an IP camera (a SIP peer nobody here wrote), with the
video sent by the test: FFmpeg's own MPEG-PS (x264 into ``-f mpeg``), RTP-packetised, over UDP to
the port the platform offered. The stream enters the media plane, is recorded (the channel's
plan records), the segments are valid to ffprobe and play back as one stream; BYE ends it and
SIPp sees the BYE."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.support.ffprobe import video_stream
from tests.support.gb import gb_platform
from tests.support.rtsp_peer import free_port
from tests.support.wait import wait_until
from tests.test_gb_rtp_source import Sender, gb_layout
from tests.test_gb_rtp_source import media as media  # the module's FFmpeg-made streams
from tests.test_gb_server import CHANNELS, answering, register, sipp_args
from xueliang.app import Platform

pytestmark = pytest.mark.media


@pytest.fixture
def gb(platform: Platform) -> Iterator[Platform]:
    # SIPp keeps alive once: with a long keepalive it stays online.
    with gb_platform(platform, keepalive=60.0, media=True):
        yield platform


def test_sipp_camera_answers_the_invite_and_its_ps_stream_records_and_plays(
    gb: Platform,
    client: TestClient,
    admin_headers: dict[str, str],
    media: dict[str, bytes],
    tmp_path: Path,
) -> None:
    channel = CHANNELS[0]
    with answering(gb, 2) as (port, answers):
        run = register(gb, password=gb.data.gb28181_password(), answer_port=port)
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
        answers.communicate(timeout=30)
    wait_until(
        lambda: client.get(f"/api/v1/channels/{channel}", headers=admin_headers).status_code == 200,
        10,
        "the catalogue's channel",
    )
    # The camera's INVITE side listens where its Contact says (the port the queries went to).
    args = [*sipp_args(gb, "ipc_invite.xml", port, 60), "-m", "1"]
    args += ["-key", "media_port", str(free_port())]
    camera = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    streams = gb.gb28181.streams
    senders: list[Sender] = []

    def send_when_offered() -> None:
        # The camera "sends" once the platform has offered a port: the test plays its part.
        wait_until(lambda: bool(streams.sessions()), 20, "the INVITE")
        (session,) = streams.sessions()
        sender = Sender(gb_layout(media["h264.ps"]), udp_to=("127.0.0.1", session.port))
        senders.append(sender)
        sender.start()

    offer = threading.Thread(target=send_when_offered, daemon=True)
    offer.start()
    try:
        # Recording on the platform keeps the channel's stream up: the platform INVITEs itself.
        r = client.put(
            f"/api/v1/channels/{channel}/recording-plan",
            json={"mode": "continuous"},
            headers=admin_headers,
        )
        assert r.status_code == 200, r.text
        offer.join(30)
        assert senders, "the platform never INVITEd the camera"
        sender = senders[0]
        assert sender.done.wait(30) and sender.error is None, sender.error
        (session,) = streams.sessions()
        assert session.transport == "udp" and session.online
        assert session.ssrc.startswith("0") and len(session.ssrc) == 10

        def segments() -> list[dict[str, object]]:
            r = client.get(
                "/api/v1/recordings", params={"channel_id": channel}, headers=admin_headers
            )
            items: list[dict[str, object]] = r.json()["items"]
            return items

        wait_until(lambda: len(segments()) >= 3, 30, "three recorded segments")
        for n, seg in enumerate(segments()):
            data = client.get(str(seg["url"]), headers=admin_headers)
            assert data.status_code == 200
            path = tmp_path / f"seg{n}.mp4"
            path.write_bytes(data.content)
            stream = video_stream(path)
            assert stream["codec_name"] == "h264" and stream["width"] == 640
            assert int(stream["nb_read_frames"]) == seg["frames"]
        first, last = segments()[-1], segments()[0]
        played = client.get(
            f"/api/v1/channels/{channel}/playback",
            params={"start": first["start"], "end": last["end"]},
            headers=admin_headers,
        )
        assert played.status_code == 200
        (tmp_path / "played.mp4").write_bytes(played.content)
        stream = video_stream(tmp_path / "played.mp4")
        assert int(stream["nb_read_frames"]) >= sum(int(str(s["frames"])) for s in segments()[1:])
    finally:
        # Plan off, then the stream is closed: BYE reaches the camera, whose scenario ends.
        client.put(
            f"/api/v1/channels/{channel}/recording-plan",
            json={"mode": "off"},
            headers=admin_headers,
        )
        wait_until(lambda: not streams.sessions(), 40, "the stream to be closed")
        out, err = camera.communicate(timeout=30)
    assert camera.returncode == 0, out[-2000:] + err[-2000:]
    assert streams._ports.in_use == 0
