"""Downloads of device recordings (GB/T 28181 Download INVITE) into evidence exports: the
project's simulator sends its recording at the asked speed over PS/RTP, the media worker writes
one MP4, the export is hashed and audited; a cancelled or cut-off download is kept as partial,
one that never starts is recorded as failed, and a platform restart fails what was running."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.ffprobe import video_stream
from tests.support.gb import gb_platform, online_channels, simulator_process, unregistered_channel
from tests.support.wait import wait_until
from xueliang.app import Platform

pytestmark = pytest.mark.media


@pytest.fixture
def gb(platform: Platform) -> Iterator[Platform]:
    with gb_platform(platform, media=True):
        yield platform


@pytest.fixture
def simulator(gb: Platform) -> Iterator[subprocess.Popen[str]]:
    with simulator_process(gb, channels=1) as sim:  # a camera of one channel
        yield sim


def online_channel(client: TestClient, headers: dict[str, str]) -> str:
    (channel,) = online_channels(client, headers, 1, "the simulated camera's channel")
    return str(channel["id"])


def export_of(client: TestClient, headers: dict[str, str], export_id: int) -> dict[str, Any]:
    r = client.get(f"/api/v1/exports/{export_id}", headers=headers)
    assert r.status_code == 200, r.text
    view: dict[str, Any] = r.json()
    return view


def finished(client: TestClient, headers: dict[str, str], export_id: int) -> dict[str, Any]:
    last: dict[str, Any] = {}

    def done() -> bool:
        last.update(export_of(client, headers, export_id))
        return last["status"] != "running"

    wait_until(done, 60, f"export {export_id} to finish")
    return last


def download(
    client: TestClient, headers: dict[str, str], channel: str, seconds: int, speed: int
) -> dict[str, Any]:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    r = client.post(
        f"/api/v1/channels/{channel}/device-download",
        json={
            "start": start.isoformat(),
            "end": (start + timedelta(seconds=seconds)).isoformat(),
            "reason": "案件 2026-118 调取",
            "speed": speed,
        },
        headers=headers,
    )
    assert r.status_code == 202, r.text
    view: dict[str, Any] = r.json()
    assert view["status"] == "running" and view["source"] == "device" and view["url"] is None
    return view


def test_a_device_recording_is_downloaded_into_an_audited_export(
    gb: Platform,
    simulator: subprocess.Popen[str],
    client: TestClient,
    admin_headers: dict[str, str],
    tmp_path: Path,
) -> None:
    channel = online_channel(client, admin_headers)
    view = download(client, admin_headers, channel, seconds=8, speed=4)
    (session,) = gb.gb28181.streams.sessions()
    assert session.kind == "Download" and session.ssrc.startswith("1")
    r = client.get(f"/api/v1/exports/{view['id']}/file", headers=admin_headers)
    assert r.status_code == 409  # no file while it runs
    done = finished(client, admin_headers, view["id"])
    assert done["status"] == "done", done
    assert done["progress"] == 1.0 and done["error"] is None and done["bytes"] > 0
    # Every port and session is back: the download's session ended with the file.
    wait_until(lambda: gb.gb28181.streams.sessions() == [], 15, "the download's session to end")
    assert gb.gb28181.streams._ports.in_use == 0
    r = client.get(done["url"], headers=admin_headers)
    assert r.status_code == 200
    assert hashlib.sha256(r.content).hexdigest() == done["sha256"]
    out = tmp_path / "download.mp4"
    out.write_bytes(r.content)
    stream = video_stream(out)
    assert stream["codec_name"] == "h264" and stream["width"] == 320
    # 8 s of media (at 25 fps), though it arrived in about 2 s.
    assert 7 * 25 <= int(stream["nb_read_frames"]) <= 9 * 25
    listed = client.get("/api/v1/exports", headers=admin_headers).json()
    assert [e["id"] for e in listed] == [view["id"]]
    audit = client.get(
        "/api/v1/audit", params={"target": f"channel:{channel}"}, headers=admin_headers
    ).json()["items"]
    exported = [a for a in audit if a["action"] == "video.export"]
    assert [a["detail"]["sha256"] for a in exported] == [done["sha256"]]
    assert exported[0]["reason"] == "案件 2026-118 调取"
    assert exported[0]["detail"]["source"] == "device"
    assert any(a["action"] == "video.export.begin" for a in audit)


def test_a_cancelled_download_keeps_what_arrived_as_partial(
    gb: Platform,
    simulator: subprocess.Popen[str],
    client: TestClient,
    admin_headers: dict[str, str],
) -> None:
    channel = online_channel(client, admin_headers)
    view = download(client, admin_headers, channel, seconds=600, speed=1)
    wait_until(
        lambda: export_of(client, admin_headers, view["id"])["progress"] > 0,
        30,
        "the download to make progress",
    )
    r = client.post(f"/api/v1/exports/{view['id']}/cancel", headers=admin_headers)
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["status"] == "partial" and 0 < done["progress"] < 0.1, done
    assert "cancelled" in done["error"] and len(done["sha256"]) == 64
    assert gb.gb28181.streams.sessions() == []
    r = client.post(f"/api/v1/exports/{view['id']}/cancel", headers=admin_headers)
    assert r.status_code == 200 and r.json()["status"] == "partial"  # nothing left to stop


def test_a_device_that_goes_away_leaves_a_partial_export(
    gb: Platform,
    simulator: subprocess.Popen[str],
    client: TestClient,
    admin_headers: dict[str, str],
) -> None:
    gb.gb28181.streams.media_timeout = 2.0
    channel = online_channel(client, admin_headers)
    view = download(client, admin_headers, channel, seconds=600, speed=1)
    wait_until(
        lambda: export_of(client, admin_headers, view["id"])["bytes"] > 0,
        30,
        "the download to write",
    )
    os.kill(simulator.pid, signal.SIGKILL)
    done = finished(client, admin_headers, view["id"])
    assert done["status"] == "partial" and done["bytes"] > 0 and len(done["sha256"]) == 64
    assert "no video" in done["error"], done


def test_downloads_that_cannot_start_are_refused_and_recorded(
    gb: Platform, client: TestClient, admin_headers: dict[str, str]
) -> None:
    # A GB channel whose device is not registered: the INVITE cannot be sent.
    channel = unregistered_channel(client, admin_headers, "离线 NVR", "东门")
    start = datetime.now(UTC) - timedelta(hours=1)
    body = {"start": start.isoformat(), "end": (start + timedelta(minutes=1)).isoformat()}
    r = client.post(
        f"/api/v1/channels/{channel}/device-download",
        json={**body, "reason": "x"},
        headers=admin_headers,
    )
    assert r.status_code == 422 and "reason" in r.text  # a reason is required
    r = client.post(
        f"/api/v1/channels/{channel}/device-download",
        json={**body, "reason": "案件 2026-119", "speed": 64},
        headers=admin_headers,
    )
    assert r.status_code == 422  # speed 1 … 32
    r = client.post(
        f"/api/v1/channels/{channel}/device-download",
        json={**body, "reason": "案件 2026-119"},
        headers=admin_headers,
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "stream_failed", r.text
    assert "offline" in r.json()["error"]["message"]
    (failed,) = client.get("/api/v1/exports", headers=admin_headers).json()
    assert failed["status"] == "failed" and "offline" in failed["error"]
    assert failed["url"] is None and failed["sha256"] == ""
    assert gb.gb28181.streams._ports.in_use == 0


def test_a_restart_fails_what_was_running(
    platform: Platform, admin_headers: dict[str, str]
) -> None:
    principal = platform.auth.authenticate(admin_headers["Authorization"].split()[1], source="test")
    start = datetime.now(UTC) - timedelta(hours=1)
    job = platform.exports.begin_job(
        principal, "34020000001320000001", start, start + timedelta(minutes=1), "案件 2026-120"
    )
    job.part.write_bytes(b"half a file")
    assert platform.exports.fail_running("the platform stopped") == 1
    view = platform.exports.get(principal, job.id)
    assert view.status == "failed" and view.error == "the platform stopped"
    assert not job.part.exists()
