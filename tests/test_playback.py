"""Playback by time range, evidence export and snapshots, against GStreamer's RTSP server.

Recordings are made for real (1-second segments, a key frame every second, so each segment is
one GOP of 25 frames) and everything the platform answers is checked with ffprobe.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import av
import pytest
from fastapi.testclient import TestClient

from tests.conftest import TOWN_A, login, seed_two_towns
from tests.support.media import Events, add_camera, status
from tests.support.rtsp_peer import RtspPeer
from tests.support.wait import wait_until
from xueliang.access.principal import SYSTEM
from xueliang.app import Platform
from xueliang.media import playback as playback_module
from xueliang.media.model import SegmentClosed
from xueliang.registry.schemas import OrgCreate

pytestmark = pytest.mark.media

API = "/api/v1"
PASSWORD = "Playback-Passw0rd-for-tests"
FRAME = 0.04  # 25 fps
Headers = dict[str, str]


def record(
    platform: Platform, client: TestClient, headers: Headers, url: str, n: int
) -> tuple[str, Events, list[SegmentClosed]]:
    """Register a camera, pull it, and wait for its first ``n`` segments."""
    events = Events(platform)
    channel = add_camera(client, headers, url)
    platform.media.start()
    events.wait(status(channel, "online"), 20, "online")
    return channel, events, events.segments(channel, n, 20)


def ffprobe(path: Path, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", *args, "-of", "json", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)  # type: ignore[no-any-return]


def video_packets(path: Path) -> list[dict[str, Any]]:
    info = ffprobe(
        path, "-select_streams", "v:0", "-show_entries", "packet=pts_time,dts_time,flags"
    )
    return info["packets"]  # type: ignore[no-any-return]


def stream_info(path: Path) -> dict[str, Any]:
    return ffprobe(
        path, "-show_entries", "format=duration,format_name:stream=codec_name,width,height"
    )


def check_continuous(packets: list[dict[str, Any]]) -> None:
    """Starts at 0 on a key frame; dts strictly increasing without a jump over 0.2 s."""
    dts = [float(p["dts_time"]) for p in packets]
    assert packets[0]["flags"].startswith("K"), packets[0]
    assert abs(dts[0]) < 1e-6, dts[:3]
    steps = [b - a for a, b in itertools.pairwise(dts)]
    assert min(steps) > 0, "timestamps must strictly increase"
    assert max(steps) <= 0.2, f"a jump of {max(steps):.3f} s"


def playback(
    client: TestClient, headers: Headers, channel: str, start: datetime, end: datetime
) -> Any:
    return client.get(
        f"{API}/channels/{channel}/playback",
        params={"start": start.isoformat(), "end": end.isoformat()},
        headers=headers,
    )


def audit(client: TestClient, headers: Headers, action: str) -> list[dict[str, Any]]:
    r = client.get(f"{API}/audit", params={"action": action, "limit": 100}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["items"]  # type: ignore[no-any-return]


def user(client: TestClient, admin: Headers, name: str, roles: list[str], org: str) -> Headers:
    r = client.post(
        f"{API}/users",
        headers=admin,
        json={
            "username": name,
            "password": PASSWORD,
            "roles": roles,
            "scope": {"all": False, "orgs": [org], "channels": []},
        },
    )
    assert r.status_code == 201, r.text
    return login(client, name, PASSWORD)


def assert_error(r: Any, status_code: int, code: str) -> None:
    assert r.status_code == status_code, r.text
    body = r.json()
    assert body["error"]["code"] == code and body["error"]["message"], body


def luma_range(jpeg: bytes) -> int:
    """Brightest minus darkest pixel: a picture, not a flat grey failure frame."""
    with av.open(io.BytesIO(jpeg), "r") as c:
        frame = next(c.decode(video=0))
    y = frame.to_ndarray(format="gray")
    return int(y.max()) - int(y.min())


# --- playback ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "codec"), [("/h264", "h264"), ("/h265", "hevc")])
def test_playback_of_three_segments_is_one_continuous_stream(
    media_platform: Platform,
    client: TestClient,
    admin_headers: Headers,
    peer: RtspPeer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    path: str,
    codec: str,
) -> None:
    channel, _events, segs = record(media_platform, client, admin_headers, peer.url(path), 3)
    root = media_platform.data.recordings

    # Exactly three segments: every frame of each, nothing else.
    start, end = segs[0].start, segs[2].end
    r = r_three = playback(client, admin_headers, channel, start, end)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "video/mp4"
    assert datetime.fromisoformat(r.headers["x-playback-start"]) == start
    # The codec string an MSE player needs, read from the stream's own init segment.
    assert r.headers["x-codec"].startswith("avc1." if codec == "h264" else "hvc1.")
    assert r.headers["x-playback-gaps"] == "0"
    assert r.content[4:8] == b"ftyp" and b"moof" in r.content  # fragmented
    out = tmp_path / "three.mp4"
    out.write_bytes(r.content)
    info = stream_info(out)
    assert info["streams"][0]["codec_name"] == codec
    assert (info["streams"][0]["width"], info["streams"][0]["height"]) == (320, 240)
    packets = video_packets(out)
    check_continuous(packets)
    assert len(packets) == sum(s.frames for s in segs)
    recorded = sum((s.end - s.start).total_seconds() for s in segs)
    duration = float(info["format"]["duration"])
    assert abs(duration - recorded) <= FRAME + 0.001, (duration, recorded)
    assert abs(duration - (end - start).total_seconds()) < 0.5

    # From inside the first GOP to inside the third segment: starts on the key frame before.
    start2, end2 = segs[0].start + timedelta(seconds=0.5), segs[2].start + timedelta(seconds=0.5)
    r = playback(client, admin_headers, channel, start2, end2)
    assert r.status_code == 200, r.text
    first_frame = datetime.fromisoformat(r.headers["x-playback-start"])
    assert segs[0].start <= first_frame < segs[0].start + timedelta(seconds=FRAME)
    out2 = tmp_path / "inside.mp4"
    out2.write_bytes(r.content)
    packets = video_packets(out2)
    check_continuous(packets)
    first = video_packets(root / segs[0].path)
    t0 = float(first[0]["dts_time"])
    key = max(
        i
        for i, p in enumerate(first)
        if p["flags"].startswith("K") and float(p["dts_time"]) - t0 <= 0.5
    )
    third = [float(p["dts_time"]) for p in video_packets(root / segs[2].path)]
    expected = len(first) - key + segs[1].frames + sum(1 for t in third if t - third[0] < 0.5)
    assert len(packets) == expected
    duration = float(stream_info(out2)["format"]["duration"])
    assert abs(duration - (end2 - first_frame).total_seconds()) < 0.3, duration

    # Audited once per request, with the range asked for.
    records = audit(client, admin_headers, "video.playback")
    assert len(records) == 2
    assert {r["target"] for r in records} == {f"channel:{channel}"}
    asked = {
        (datetime.fromisoformat(r["detail"]["start"]), datetime.fromisoformat(r["detail"]["end"]))
        for r in records
    }
    assert asked == {(start, end), (start2, end2)}

    # The timeline of the first range: one span from the first frame, no gap.
    t = client.get(
        f"{API}/channels/{channel}/playback/timeline",
        params={"start": start.isoformat(), "end": end.isoformat()},
        headers=admin_headers,
    )
    assert t.status_code == 200, t.text
    body = t.json()
    assert body["gaps"] == [] and len(body["spans"]) == 1
    assert datetime.fromisoformat(body["spans"][0]["start"]) == start
    assert body["spans"][0]["offset"] == 0
    # Reading the timeline is not playback: no further audit record.
    assert len(audit(client, admin_headers, "video.playback")) == 2

    # Streamed as the muxer writes: the header and then fragment after fragment, not one body.
    monkeypatch.setattr(playback_module, "CHUNK_BYTES", 1)
    stream = media_platform.playback.open(SYSTEM, channel, start, end)
    head = next(stream.chunks)
    assert head[4:8] == b"ftyp"
    rest = list(stream.chunks)
    assert sum(chunk.count(b"moof") for chunk in rest) >= 3 and len(rest) >= 3
    assert len(head) + sum(map(len, rest)) == len(r_three.content)


def test_playback_runs_on_across_a_gap_and_reports_it(
    media_platform: Platform,
    client: TestClient,
    admin_headers: Headers,
    peer: RtspPeer,
    tmp_path: Path,
) -> None:
    channel, events, before = record(media_platform, client, admin_headers, peer.url("/h264"), 2)
    peer.kill()
    events.wait(status(channel, "offline"), 10, "offline")
    # The camera stays away for 3 s: longer than the gap tolerance (2 s), so it is a gap (the
    # ingest notices a killed peer and reconnects within about a second).
    gone = before[-1].end
    wait_until(lambda: datetime.now(UTC) - gone > timedelta(seconds=3), 10, "3 s without it")
    peer.start()
    events.wait(status(channel, "online"), 30, "online again")
    after = events.segments(channel, 2, 20)
    start, end = before[0].start, after[1].end
    listed = client.get(
        f"{API}/recordings",
        params={"channel_id": channel, "start": start.isoformat(), "end": end.isoformat()},
        headers=admin_headers,
    ).json()["items"]
    frames = sum(item["frames"] for item in listed)
    recorded = sum(
        (datetime.fromisoformat(i["end"]) - datetime.fromisoformat(i["start"])).total_seconds()
        for i in listed
    )
    outage = (after[0].start - before[-1].end).total_seconds()
    assert outage > 2, "the camera was away for seconds"

    r = playback(client, admin_headers, channel, start, end)
    assert r.status_code == 200, r.text
    assert r.headers["x-playback-gaps"] == "1"
    out = tmp_path / "gap.mp4"
    out.write_bytes(r.content)
    packets = video_packets(out)
    # Concatenated: no jump where the camera was away, and every recorded frame is there.
    check_continuous(packets)
    assert len(packets) == frames
    duration = float(stream_info(out)["format"]["duration"])
    assert abs(duration - recorded) < 0.2, (duration, recorded)
    assert duration < (end - start).total_seconds() - outage + 0.5

    body = client.get(
        f"{API}/channels/{channel}/playback/timeline",
        params={"start": start.isoformat(), "end": end.isoformat()},
        headers=admin_headers,
    ).json()
    assert len(body["spans"]) == 2 and len(body["gaps"]) == 1
    gap = body["gaps"][0]
    assert datetime.fromisoformat(gap["start"]) <= after[0].start
    assert datetime.fromisoformat(gap["end"]) == after[0].start
    first, second = body["spans"]
    first_length = (
        datetime.fromisoformat(first["end"]) - datetime.fromisoformat(first["start"])
    ).total_seconds()
    # The second span begins in the stream where the first one's media ends.
    assert abs(second["offset"] - first_length) < 0.01
    assert abs(second["offset"] + (end - after[0].start).total_seconds() - duration) < 0.2


def test_refusals_and_empty_ranges(
    platform: Platform, client: TestClient, admin_headers: Headers
) -> None:
    seed = seed_two_towns(platform)
    in_a, in_b = seed["a"][0], seed["b"][0]
    viewer_a = user(client, admin_headers, "viewer-a", ["viewer"], TOWN_A)
    operator_a = user(client, admin_headers, "operator-a", ["operator"], TOWN_A)
    grid_a = user(client, admin_headers, "grid-a", ["grid_worker"], TOWN_A)
    now = datetime.now(UTC)
    hour_ago = now - timedelta(hours=1)

    # Nothing recorded in the range: 404 with the standard error body.
    assert_error(playback(client, admin_headers, in_a, hour_ago, now), 404, "not_found")
    assert_error(playback(client, viewer_a, in_a, hour_ago, now), 404, "not_found")
    # Outside the caller's area, or without the permission: 403; no token: 401.
    assert_error(playback(client, viewer_a, in_b, hour_ago, now), 403, "forbidden")
    assert_error(playback(client, grid_a, in_a, hour_ago, now), 403, "forbidden")
    assert_error(playback(client, {}, in_a, hour_ago, now), 401, "unauthenticated")
    missing = "34020200001319999999"
    assert_error(playback(client, admin_headers, missing, hour_ago, now), 404, "not_found")
    # Ranges that are no ranges.
    assert_error(playback(client, admin_headers, in_a, now, hour_ago), 422, "invalid")
    assert_error(playback(client, admin_headers, in_a, now, now), 422, "invalid")
    too_long = now + timedelta(hours=24, seconds=1)
    assert_error(playback(client, admin_headers, in_a, now, too_long), 422, "invalid")
    naive = client.get(
        f"{API}/channels/{in_a}/playback",
        params={"start": "2025-01-01T08:00:00", "end": "2025-01-01T09:00:00"},
        headers=admin_headers,
    )
    assert_error(naive, 422, "invalid")
    before_calendar = client.get(
        f"{API}/channels/{in_a}/playback",
        params={"start": "0001-01-01T00:00:00+01:00", "end": "0001-01-01T02:00:00+01:00"},
        headers=admin_headers,
    )
    assert_error(before_calendar, 422, "invalid")
    timeline = client.get(
        f"{API}/channels/{in_b}/playback/timeline",
        params={"start": hour_ago.isoformat(), "end": now.isoformat()},
        headers=viewer_a,
    )
    assert_error(timeline, 403, "forbidden")

    # Snapshots: no live picture of a channel not being pulled, nothing recorded then.
    snap = f"{API}/channels/{in_a}/snapshot"
    assert_error(client.get(snap, headers=admin_headers), 404, "not_found")
    at = {"at": hour_ago.isoformat()}
    assert_error(client.get(snap, params=at, headers=viewer_a), 404, "not_found")
    snap_b = f"{API}/channels/{in_b}/snapshot"
    end_of_time = {"at": "9999-12-31T23:59:59.999999+00:00"}
    assert_error(client.get(snap, params=end_of_time, headers=admin_headers), 404, "not_found")
    assert_error(client.get(snap_b, headers=viewer_a), 403, "forbidden")
    assert_error(client.get(snap, headers=grid_a), 403, "forbidden")
    assert_error(client.get(snap), 401, "unauthenticated")

    # Exports: a reason is required (at least 4 characters once stripped).
    body = {"channel_id": in_a, "start": hour_ago.isoformat(), "end": now.isoformat()}
    for reason in (None, "", "abc", "  ab  ", "\t \n"):
        payload = body if reason is None else {**body, "reason": reason}
        r = client.post(f"{API}/exports", json=payload, headers=admin_headers)
        assert_error(r, 422, "invalid")
        assert any("reason" in d["loc"] for d in r.json()["error"]["details"]), r.json()
    r = client.post(f"{API}/exports", json={**body, "reason": "案件\x00001"}, headers=admin_headers)
    assert_error(r, 422, "invalid")
    good = {**body, "reason": "案件 2025-001"}
    r = client.post(f"{API}/exports", json=good, headers=admin_headers)
    assert_error(r, 404, "not_found")
    r = client.post(f"{API}/exports", json={**good, "channel_id": in_b}, headers=operator_a)
    assert_error(r, 403, "forbidden")
    r = client.post(f"{API}/exports", json=good, headers=viewer_a)  # viewers may not export
    assert_error(r, 403, "forbidden")
    long_export = {**good, "end": too_long.isoformat()}
    r = client.post(f"{API}/exports", json=long_export, headers=admin_headers)
    assert_error(r, 422, "invalid")
    assert_error(client.post(f"{API}/exports", json=good), 401, "unauthenticated")
    assert_error(client.get(f"{API}/exports/999/file", headers=admin_headers), 404, "not_found")

    # Nothing was shown or exported, so nothing was audited as such.
    for action in ("video.playback", "video.snapshot", "video.export"):
        assert audit(client, admin_headers, action) == []
    assert not (platform.data.root / "exports").exists() or not any(
        (platform.data.root / "exports").iterdir()
    )


# --- export ------------------------------------------------------------------------------------


def test_export_is_one_playable_mp4_with_its_digest_audited(
    media_platform: Platform,
    client: TestClient,
    admin_headers: Headers,
    peer: RtspPeer,
    tmp_path: Path,
) -> None:
    channel, _events, segs = record(media_platform, client, admin_headers, peer.url("/h264"), 3)
    start, end = segs[0].start, segs[2].end
    reason = "  案件 2025-001：调取现场录像  "
    r = client.post(
        f"{API}/exports",
        json={
            "channel_id": channel,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "reason": reason,
        },
        headers=admin_headers,
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["channel_id"] == channel
    assert datetime.fromisoformat(body["start"]) == start
    assert datetime.fromisoformat(body["end"]) == end
    assert body["url"] == f"{API}/exports/{body['id']}/file"
    files = list((media_platform.data.root / "exports").iterdir())
    assert len(files) == 1 and files[0].suffix == ".mp4"
    data = files[0].read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    assert body["sha256"] == digest and body["bytes"] == len(data)
    # A regular MP4 with the index in front (faststart), not fragments.
    assert data[4:8] == b"ftyp" and b"moof" not in data
    assert data.index(b"moov") < data.index(b"mdat")
    info = stream_info(files[0])
    assert "mp4" in info["format"]["format_name"]
    assert info["streams"][0]["codec_name"] == "h264"
    packets = video_packets(files[0])
    check_continuous(packets)
    assert len(packets) == sum(s.frames for s in segs)
    recorded = sum((s.end - s.start).total_seconds() for s in segs)
    assert abs(float(info["format"]["duration"]) - recorded) <= FRAME + 0.001

    (record_,) = audit(client, admin_headers, "video.export")
    assert record_["target"] == f"channel:{channel}"
    assert record_["reason"] == reason.strip()
    detail = record_["detail"]
    assert detail["sha256"] == digest and detail["bytes"] == len(data)
    assert detail["file"] == files[0].name
    assert datetime.fromisoformat(detail["start"]) == start
    assert datetime.fromisoformat(detail["end"]) == end

    # Download: the same bytes; audited. Outside the area: 403, and no further record.
    got = client.get(body["url"], headers=admin_headers)
    assert got.status_code == 200 and got.headers["content-type"] == "video/mp4"
    assert hashlib.sha256(got.content).hexdigest() == digest
    (download,) = audit(client, admin_headers, "video.export.download")
    assert download["target"] == f"channel:{channel}"
    assert download["detail"]["sha256"] == digest
    platform_org = OrgCreate(code="340202", name="县", level="county")
    media_platform.orgs.create(SYSTEM, platform_org)
    operator = user(client, admin_headers, "operator-county", ["operator"], "340202")
    assert_error(client.get(body["url"], headers=operator), 403, "forbidden")
    assert len(audit(client, admin_headers, "video.export.download")) == 1
    assert media_platform.audit_records.verify().ok


# --- snapshots ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/h264", "/h265"])
def test_snapshot_now_and_at_a_recorded_time(
    media_platform: Platform,
    client: TestClient,
    admin_headers: Headers,
    peer: RtspPeer,
    tmp_path: Path,
    path: str,
) -> None:
    channel, _events, segs = record(media_platform, client, admin_headers, peer.url(path), 2)
    url = f"{API}/channels/{channel}/snapshot"

    before = datetime.now(UTC)
    r = client.get(url, headers=admin_headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/jpeg"
    assert r.content[:2] == b"\xff\xd8" and r.content[-2:] == b"\xff\xd9"
    # The newest key frame: at most a GOP (1 s) and some jitter old.
    taken = datetime.fromisoformat(r.headers["x-snapshot-time"])
    assert before - timedelta(seconds=2) <= taken <= datetime.now(UTC)
    live = tmp_path / "live.jpg"
    live.write_bytes(r.content)
    stream = stream_info(live)["streams"][0]
    assert (stream["codec_name"], stream["width"], stream["height"]) == ("mjpeg", 320, 240)
    assert luma_range(r.content) > 100  # a picture (a ball, colour bars), not flat grey

    at = segs[1].start + timedelta(seconds=0.5)
    r = client.get(url, params={"at": at.isoformat()}, headers=admin_headers)
    assert r.status_code == 200, r.text
    assert r.content[:2] == b"\xff\xd8"
    shown = datetime.fromisoformat(r.headers["x-snapshot-time"])
    # The frame on screen at ``at``: the last one at or before it, less than a frame earlier.
    assert at - timedelta(seconds=FRAME + 0.001) < shown <= at
    past = tmp_path / "past.jpg"
    past.write_bytes(r.content)
    stream = stream_info(past)["streams"][0]
    assert (stream["codec_name"], stream["width"], stream["height"]) == ("mjpeg", 320, 240)
    assert luma_range(r.content) > 100

    long_ago = segs[0].start - timedelta(hours=1)
    r = client.get(url, params={"at": long_ago.isoformat()}, headers=admin_headers)
    assert_error(r, 404, "not_found")

    records = audit(client, admin_headers, "video.snapshot")
    assert len(records) == 2
    assert {r["target"] for r in records} == {f"channel:{channel}"}
    assert sorted(r["detail"]["live"] for r in records) == [False, True]
