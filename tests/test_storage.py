"""Storage policy for recordings: quota, retention, tiers, legal holds, start-up repair, gaps.

Segments are real fragmented MP4 files made once by ffmpeg and copied, indexed the way the
recorder indexes them (SegmentIndex.add); sweeps are called directly, so nothing waits on time.
One end-to-end test records from GStreamer's RTSP server while the background sweeper enforces
a quota.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from tests.conftest import ADMIN_PASSWORD, TOWN_A, login, seed_two_towns
from tests.support.media import Events, add_camera, status
from tests.support.rtsp_peer import RtspPeer
from xueliang.access.principal import SYSTEM
from xueliang.api.app import create_app
from xueliang.app import Platform, build_platform
from xueliang.config import Settings, StorageTier, load_settings
from xueliang.core.clock import ManualClock
from xueliang.core.errors import ConfigError
from xueliang.datadir import DataDir
from xueliang.media import storage as storage_module
from xueliang.media.holds import HoldCreate
from xueliang.media.model import SegmentClosed
from xueliang.media.recorder import segment_path
from xueliang.media.storage import StorageManager
from xueliang.media.tiers import DAMAGED_DIR, MOVING_SUFFIX, StoragePolicy, Tier, storage_tiers
from xueliang.registry.schemas import DeviceCreate
from xueliang.store.models import AuditRecord, Segment

API = "/api/v1"
PASSWORD = "Storage-Passw0rd-for-tests"
Headers = dict[str, str]


# --- segment files ---------------------------------------------------------------------------


def make_mp4(path: Path, seconds: int) -> None:
    """A fragmented MP4 like the recorder writes: H.264, a key frame (and fragment) a second."""
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x120:rate=25",
            "-t",
            str(seconds),
            "-c:v",
            "libx264",
            "-g",
            "25",
            "-pix_fmt",
            "yuv420p",
            "-movflags",
            "frag_keyframe+empty_moov+default_base_moof",
            "-f",
            "mp4",
            str(path),
        ],
        check=True,
    )


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("media") / "one-second.mp4"
    make_mp4(path, 1)
    return path


def camera(p: Platform, name: str) -> str:
    d = p.devices.create(
        SYSTEM, DeviceCreate(name=name, protocol="rtsp", url=f"rtsp://127.0.0.1:9/{name}")
    )
    chans, _ = p.channels.list(SYSTEM, device=d.id)
    return chans[0].id


def put(p: Platform, template: Path, channel: str, start: datetime, *, tier: int = 0) -> str:
    """A recorded one-second segment: its file on ``tier`` and its index row."""
    rel = segment_path(channel, start)
    path = p.segments.path_of(rel, tier)
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, path)
    end = start + timedelta(seconds=1)
    p.segments.add(SegmentClosed(channel, rel, start, end, path.stat().st_size, "h264", 25))
    if tier:
        with p.db.transaction() as s:
            s.execute(update(Segment).where(Segment.path == rel).values(tier=tier))
    return rel


def rows(p: Platform) -> dict[str, Segment]:
    with p.db.read() as s:
        out = {seg.path: seg for seg in s.scalars(select(Segment))}
        s.expunge_all()  # readable after the session ends
        return out


def audits(p: Platform, action: str) -> list[AuditRecord]:
    with p.db.read() as s:
        out = list(
            s.scalars(select(AuditRecord).where(AuditRecord.action == action).order_by("seq"))
        )
        s.expunge_all()
        return out


@pytest.fixture
def storage(platform: Platform) -> StorageManager:
    # No free-space rule unless a test sets one: the test machine's disk must not matter.
    platform.storage.policy = replace(platform.storage.policy, min_free_bytes=0)
    return platform.storage


# --- configuration ---------------------------------------------------------------------------


def test_storage_configuration(tmp_path: Path) -> None:
    defaults = load_settings(environ={}).media
    assert (defaults.retention_days, defaults.quota_bytes, defaults.tiers) == (30, 0, [])
    tiers = '[{"path": "ssd", "max_age_days": 3, "max_bytes": 1000}, {"path": "/mnt/hdd"}]'
    media = load_settings(environ={"XUELIANG_MEDIA_TIERS": tiers}).media
    resolved = storage_tiers(media, tmp_path, tmp_path / "recordings")
    assert [(t.root, t.max_age, t.max_bytes) for t in resolved] == [
        (tmp_path / "ssd", timedelta(days=3), 1000),
        (Path("/mnt/hdd"), None, 0),
    ]
    assert storage_tiers(defaults, tmp_path, tmp_path / "rec") == [Tier(0, tmp_path / "rec")]
    with pytest.raises(ConfigError, match="last tier"):
        load_settings(environ={"XUELIANG_MEDIA_TIERS": '[{"path": "a", "max_age_days": 1}]'})
    with pytest.raises(ConfigError, match="XUELIANG_MEDIA_TIERS"):
        load_settings(environ={"XUELIANG_MEDIA_TIERS": "[{"})
    with pytest.raises(ConfigError, match="retention_days"):
        load_settings(environ={"XUELIANG_MEDIA_RETENTION_DAYS": "0"})


# --- quota and holds -------------------------------------------------------------------------


def test_tiny_quota_deletes_oldest_first_and_never_the_held_range(
    platform: Platform, storage: StorageManager, template: Path, clock: ManualClock
) -> None:
    ch = camera(platform, "cam")
    t0 = clock.now() - timedelta(hours=1)
    segs = [put(platform, template, ch, t0 + timedelta(seconds=i)) for i in range(10)]
    size = template.stat().st_size
    # The two oldest are under a legal hold: a quota of four segments must take six others.
    platform.holds.create(
        SYSTEM,
        _hold(ch, t0, t0 + timedelta(seconds=2), "案件 2026-001"),
    )
    storage.policy = replace(storage.policy, quota_bytes=4 * size)

    report = storage.sweep()

    assert set(rows(platform)) == {segs[0], segs[1], segs[8], segs[9]}
    assert report.deleted == 6 and report.deleted_by_reason == {"quota": 6}
    assert report.over_quota_bytes == 0
    for rel in segs[2:8]:
        assert not platform.segments.path_of(rel).exists()
    for rel in (segs[0], segs[1], segs[8], segs[9]):
        assert platform.segments.path_of(rel).is_file()
    (record,) = audits(platform, "recording.expire")
    assert record.actor == "system"
    assert record.detail["segments"] == 6 and record.detail["bytes"] == 6 * size
    assert record.detail["channels"][ch]["segments"] == 6

    # Less than the held range needs: everything unheld goes, the held range stays, and the
    # sweep says by how much the quota is still exceeded.
    storage.policy = replace(storage.policy, quota_bytes=size)
    report = storage.sweep()
    assert set(rows(platform)) == {segs[0], segs[1]}
    assert report.over_quota_bytes == size
    assert platform.segments.path_of(segs[0]).is_file()
    assert len(audits(platform, "recording.expire")) == 2

    # Released, the held range is recordings like any other: the oldest goes first.
    (hold,), _ = platform.holds.list(SYSTEM, channel_id=ch)
    platform.holds.release(SYSTEM, hold.id, "案件已结")
    report = storage.sweep()
    assert set(rows(platform)) == {segs[1]}
    assert report.over_quota_bytes == 0


def test_full_disk_deletes_oldest_on_that_filesystem_only_unheld(
    platform: Platform, storage: StorageManager, template: Path, clock: ManualClock
) -> None:
    ch = camera(platform, "cam")
    t0 = clock.now() - timedelta(hours=2)
    segs = [put(platform, template, ch, t0 + timedelta(seconds=i)) for i in range(6)]
    size = template.stat().st_size
    platform.holds.create(
        SYSTEM, _hold(ch, t0 + timedelta(seconds=1), t0 + timedelta(seconds=2), "evidence")
    )
    # The filesystem reports three segments' worth short of the free space to keep.
    free = 10 * size
    storage.free_space = lambda _path: free
    storage.policy = replace(storage.policy, min_free_bytes=13 * size)

    report = storage.sweep()

    assert report.deleted_by_reason == {"free_space": 3}
    assert set(rows(platform)) == {segs[1], segs[4], segs[5]}
    view = storage.status(SYSTEM)
    assert view.tiers[0].free_bytes == free and view.tiers[0].segments == 3


def test_a_hold_placed_during_a_sweep_wins(
    platform: Platform,
    storage: StorageManager,
    template: Path,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The deleting transaction checks the holds again: a hold placed after the sweep planned
    a deletion keeps the segment."""
    ch = camera(platform, "cam")
    now = clock.now()
    expired = put(platform, template, ch, now - timedelta(days=40))
    plan_and_move = storage._move_between_tiers

    def then_a_hold(*args: Any) -> None:
        plan_and_move(*args)
        platform.holds.create(
            SYSTEM, _hold(ch, now - timedelta(days=41), now - timedelta(days=39), "刚立案")
        )

    monkeypatch.setattr(storage, "_move_between_tiers", then_a_hold)
    report = storage.sweep()

    assert report.deleted == 0 and report.held == 1
    assert expired in rows(platform) and platform.segments.path_of(expired).is_file()
    assert audits(platform, "recording.expire") == []


# --- retention -------------------------------------------------------------------------------


def test_retention_deletes_expired_and_respects_the_channel_override(
    platform: Platform,
    storage: StorageManager,
    template: Path,
    clock: ManualClock,
    client: TestClient,
    admin_headers: Headers,
) -> None:
    a, b, c = camera(platform, "a"), camera(platform, "b"), camera(platform, "c")
    now = clock.now()
    days = lambda n: now - timedelta(days=n)  # noqa: E731
    r = client.patch(f"{API}/channels/{b}", json={"retention_days": 60}, headers=admin_headers)
    assert r.status_code == 200 and r.json()["retention_days"] == 60, r.text
    assert client.get(f"{API}/channels/{a}", headers=admin_headers).json()["retention_days"] is None
    a_old, a_new = put(platform, template, a, days(45)), put(platform, template, a, days(1))
    b_old, b_older = put(platform, template, b, days(45)), put(platform, template, b, days(70))
    c_held = put(platform, template, c, days(45))
    platform.holds.create(SYSTEM, _hold(c, days(46), days(44), "举报线索"))

    report = storage.sweep()

    assert set(rows(platform)) == {a_new, b_old, c_held}
    assert report.deleted_by_reason == {"retention": 2}
    assert report.held == 1
    assert not platform.segments.path_of(a_old).exists()
    assert not platform.segments.path_of(b_older).exists()
    (record,) = audits(platform, "recording.expire")
    assert set(record.detail["channels"]) == {a, b}

    # Nothing more to do: no deletion, no audit record.
    assert storage.sweep().deleted == 0
    assert len(audits(platform, "recording.expire")) == 1

    # Back to the platform default (30 days): b's 45-day-old segment expires.
    r = client.patch(f"{API}/channels/{b}", json={"retention_days": None}, headers=admin_headers)
    assert r.status_code == 200 and r.json()["retention_days"] is None
    assert storage.sweep().deleted == 1
    assert set(rows(platform)) == {a_new, c_held}

    bad = client.patch(f"{API}/channels/{b}", json={"retention_days": 0}, headers=admin_headers)
    assert bad.status_code == 422


# --- tiers -----------------------------------------------------------------------------------


@pytest.fixture
def tiered(data_dir: DataDir, settings: Settings, clock: ManualClock) -> Iterator[Platform]:
    """A fast tier keeping a day and at most three segments, then a large one."""
    s = settings.model_copy(deep=True)
    s.media.min_free_bytes = 0
    s.media.tiers = [
        StorageTier(path="fast", max_age_days=1),  # relative to the data directory
        StorageTier(path=str(data_dir.root.parent / "big-disk")),
    ]
    p = build_platform(data_dir.root, settings=s, clock=clock)
    p.users.bootstrap_admin(ADMIN_PASSWORD)
    try:
        yield p
    finally:
        p.close()


def test_tiers_move_files_then_expire_them_and_playback_follows(
    tiered: Platform, template: Path, clock: ManualClock
) -> None:
    p = tiered
    fast, big = p.segments.roots
    assert fast == p.data.root / "fast" and big.name == "big-disk"
    assert p.media._root == fast  # the recorder writes to the first tier
    size = template.stat().st_size
    ch = camera(p, "cam")
    now = clock.now()
    old = [put(p, template, ch, now - timedelta(days=3, seconds=-i)) for i in range(2)]
    new = [put(p, template, ch, now - timedelta(hours=1, seconds=-i)) for i in range(5)]
    p.storage.tiers[0] = replace(p.storage.tiers[0], max_bytes=3 * size)

    report = p.storage.sweep()

    # Two moved for age, then the two oldest recent ones for the fast tier's size.
    assert report.moved == 4 and report.deleted == 0, report
    by_path = rows(p)
    assert {rel for rel, seg in by_path.items() if seg.tier == 1} == {*old, new[0], new[1]}
    for rel in (*old, new[0], new[1]):
        assert (big / rel).is_file() and not (fast / rel).exists()
    for rel in new[2:]:
        assert (fast / rel).is_file()
    # Playback's lookup and the download find the moved files.
    found = p.segments.covering(ch, now - timedelta(days=4), now)
    assert [f.path for f in found[:4]] == [big / rel for rel in (*old, new[0], new[1])]
    assert all(f.path.is_file() for f in found) and len(found) == 7
    _, path = p.segments.open_for_download(SYSTEM, by_path[old[0]].pk)
    assert path == big / old[0]
    with TestClient(create_app(p)) as client:
        headers = login(client, "admin", ADMIN_PASSWORD)
        media = client.get(f"{API}/recordings/{by_path[old[0]].pk}/media", headers=headers)
        status_view = client.get(f"{API}/storage", headers=headers).json()
    assert media.status_code == 200 and len(media.content) == size
    assert [t["segments"] for t in status_view["tiers"]] == [3, 4]
    assert status_view["tiers"][1]["bytes"] == 4 * size

    # A month on, retention expires them from the big tier.
    clock.advance(40 * 86400)
    report = p.storage.sweep()
    assert report.deleted_by_reason == {"retention": 7}
    assert rows(p) == {}
    assert not any((big / rel).exists() for rel in (*old, *new))


def test_a_failed_move_keeps_the_file_where_the_index_says(
    tiered: Platform, template: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = tiered
    fast, big = p.segments.roots
    ch = camera(p, "cam")
    rels = [put(p, template, ch, clock.now() - timedelta(days=2, seconds=-i)) for i in range(3)]

    def disk_full(*_args: Any) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(storage_module.os, "replace", disk_full)
        report = p.storage.sweep()

    assert report.moved == 0
    assert len(report.errors) == 1 and "No space left" in report.errors[0]  # one try, not three
    assert all(seg.tier == 0 for seg in rows(p).values())
    for rel in rels:
        assert (fast / rel).is_file() and not (big / rel).exists()
    assert not list(big.rglob(f"*{MOVING_SUFFIX}"))
    # Space again: the next sweep moves them.
    assert p.storage.sweep().moved == 3
    assert all((big / rel).is_file() for rel in rels)


def test_repair_mends_moves_cut_short_and_rows_pointing_at_the_wrong_tier(
    tiered: Platform, template: Path, clock: ManualClock
) -> None:
    p = tiered
    fast, big = p.segments.roots
    ch = camera(p, "cam")
    now = clock.now()
    # A move cut after the copy: the row still names the fast tier; a copy sits on the big one.
    cut = put(p, template, ch, now - timedelta(hours=3))
    (big / cut).parent.mkdir(parents=True)
    shutil.copyfile(fast / cut, big / cut)
    # A move's temporary file, left by a crash during the copy.
    leftover = big / cut.replace(".mp4", "x.mp4")
    temp = leftover.with_name(f".{leftover.name}{MOVING_SUFFIX}")
    temp.write_bytes(b"partial")
    # A row naming the fast tier for a file that is on the big one (tiers reconfigured).
    moved = put(p, template, ch, now - timedelta(hours=2), tier=1)
    with p.db.transaction() as s:
        s.execute(update(Segment).where(Segment.path == moved).values(tier=0))

    report = p.storage.repair()

    assert (report.duplicates_removed, report.relocated, report.indexed) == (1, 1, 0), report
    assert (fast / cut).is_file() and not (big / cut).exists()
    assert not temp.exists()
    assert rows(p)[moved].tier == 1
    (found,) = p.segments.covering(ch, now - timedelta(hours=2, seconds=1), now)
    assert found.path == big / moved and found.path.is_file()


# --- start-up repair -------------------------------------------------------------------------


def test_repair_indexes_orphans_removes_rows_without_files_and_moves_damaged_aside(
    platform: Platform, storage: StorageManager, template: Path, clock: ManualClock
) -> None:
    ch = camera(platform, "cam")
    root = platform.data.recordings
    t = (clock.now() - timedelta(minutes=10)).replace(microsecond=250_000)
    kept = put(platform, template, ch, t)
    gone = put(platform, template, ch, t + timedelta(seconds=1))
    (root / gone).unlink()
    orphan = segment_path(ch, t + timedelta(seconds=2))
    shutil.copyfile(template, root / orphan)
    junk = segment_path(ch, t + timedelta(seconds=3))
    (root / junk).write_bytes(b"\x00" * 4096)
    stranger = root / "34020000001319999999" / "20260101" / "000000.000.mp4"
    stranger.parent.mkdir(parents=True)
    shutil.copyfile(template, stranger)

    report = storage.repair()

    assert (report.indexed, report.missing, report.damaged, report.unregistered) == (1, 1, 1, 1)
    assert report.samples["damaged"] == [junk]
    by_path = rows(platform)
    assert set(by_path) == {kept, orphan}
    seg = by_path[orphan]
    assert seg.start == t + timedelta(seconds=2)  # from the file name, to the millisecond
    assert seg.frames == 25 and seg.codec == "h264"
    assert abs((seg.end - seg.start).total_seconds() - 1.0) < 0.05
    assert seg.bytes == template.stat().st_size
    assert not (root / junk).exists() and (root / DAMAGED_DIR / junk).is_file()
    assert stranger.is_file()  # not ours to judge: left in place, reported
    (record,) = audits(platform, "recording.repair")
    assert record.detail["indexed"] == 1 and record.detail["damaged"] == 1

    # A second start finds nothing to mend and audits nothing.
    again = storage.repair()
    assert not again.changed and again.unregistered == 1
    assert len(audits(platform, "recording.repair")) == 1


def test_a_killed_recorder_loses_at_most_the_fragment_in_progress(
    platform: Platform, storage: StorageManager, tmp_path: Path, clock: ManualClock
) -> None:
    """A segment cut mid-fragment (the process killed while writing) is indexed with the
    frames before the cut."""
    ch = camera(platform, "cam")
    full = tmp_path / "three-seconds.mp4"
    make_mp4(full, 3)
    data = full.read_bytes()
    boxes = _boxes(data)
    assert [t for _, _, t in boxes].count("moof") == 3  # a fragment per second
    last_mdat = next(b for b in reversed(boxes) if b[2] == "mdat")
    start = (clock.now() - timedelta(minutes=1)).replace(microsecond=0)
    rel = segment_path(ch, start)
    path = platform.data.recordings / rel
    path.parent.mkdir(parents=True)
    path.write_bytes(data[: last_mdat[0] + last_mdat[1] // 2])

    report = storage.repair()

    assert report.indexed == 1 and report.damaged == 0
    seg = rows(platform)[rel]
    # Two whole fragments and part of the third; the sample the cut went through is left out.
    assert 50 <= seg.frames < 75, seg.frames
    assert 2.0 <= (seg.end - seg.start).total_seconds() < 3.0
    assert path.is_file()


def _boxes(data: bytes) -> list[tuple[int, int, str]]:
    """Top-level MP4 boxes: (offset, size, type)."""
    out, offset = [], 0
    while offset < len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        out.append((offset, size, kind.decode()))
        offset += size
    return out


# --- gaps ------------------------------------------------------------------------------------


def test_gaps_list_uncovered_intervals_for_those_who_may_play_back(
    platform: Platform,
    template: Path,
    clock: ManualClock,
    client: TestClient,
    admin_headers: Headers,
) -> None:
    seed = seed_two_towns(platform)
    a, b = seed["a"][0], seed["b"][0]
    t0 = (clock.now() - timedelta(hours=1)).replace(microsecond=0)
    sec = lambda n: t0 + timedelta(seconds=n)  # noqa: E731
    for n in (0, 1, 2, 3, 5, 10, 11):  # the one-second hole at 4 s is within tolerance
        put(platform, template, a, sec(n))
    params = {"channel_id": a, "start": sec(-5).isoformat(), "end": sec(20).isoformat()}

    r = client.get(f"{API}/recordings/gaps", params=params, headers=admin_headers)

    assert r.status_code == 200, r.text
    body = r.json()
    gaps = [
        (datetime.fromisoformat(g["start"]), datetime.fromisoformat(g["end"])) for g in body["gaps"]
    ]
    assert gaps == [(sec(-5), sec(0)), (sec(6), sec(10)), (sec(12), sec(20))]
    assert [g["seconds"] for g in body["gaps"]] == [5, 4, 8]
    assert body["recorded_seconds"] == 7
    # A stricter tolerance reports the one-second hole too.
    strict = client.get(
        f"{API}/recordings/gaps", params={**params, "tolerance": 0.5}, headers=admin_headers
    ).json()
    assert len(strict["gaps"]) == 4
    # The range stops at now: the future is not a gap.
    future = {**params, "end": (clock.now() + timedelta(days=1)).isoformat()}
    body = client.get(f"{API}/recordings/gaps", params=future, headers=admin_headers).json()
    assert datetime.fromisoformat(body["end"]) == clock.now()

    viewer_a = _user(client, admin_headers, "viewer", TOWN_A)
    assert client.get(f"{API}/recordings/gaps", params=params, headers=viewer_a).status_code == 200
    outside = {**params, "channel_id": b}
    r = client.get(f"{API}/recordings/gaps", params=outside, headers=viewer_a)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    grid_worker = _user(client, admin_headers, "grid_worker", TOWN_A)  # live view only
    assert (
        client.get(f"{API}/recordings/gaps", params=params, headers=grid_worker).status_code == 403
    )
    naive = {**params, "start": sec(-5).replace(tzinfo=None).isoformat()}
    assert (
        client.get(f"{API}/recordings/gaps", params=naive, headers=admin_headers).status_code == 422
    )
    backwards = {**params, "start": params["end"], "end": params["start"]}
    assert (
        client.get(f"{API}/recordings/gaps", params=backwards, headers=admin_headers).status_code
        == 422
    )


# --- the hold and storage API ----------------------------------------------------------------


def _hold(channel: str, start: datetime, end: datetime, reason: str) -> HoldCreate:
    return HoldCreate(channel_id=channel, start=start, end=end, reason=reason)


def _user(client: TestClient, admin: Headers, role: str, org: str) -> Headers:
    name = f"{role}-{org}"
    r = client.post(
        f"{API}/users",
        headers=admin,
        json={
            "username": name,
            "password": PASSWORD,
            "roles": [role],
            "scope": {"all": False, "orgs": [org], "channels": []},
        },
    )
    assert r.status_code == 201, r.text
    return login(client, name, PASSWORD)


def test_hold_api_permissions_scope_and_audit(
    platform: Platform, client: TestClient, admin_headers: Headers, clock: ManualClock
) -> None:
    seed = seed_two_towns(platform)
    a, b = seed["a"][0], seed["b"][0]
    start, end = clock.now() - timedelta(hours=2), clock.now() - timedelta(hours=1)
    body = {"channel_id": a, "start": start.isoformat(), "end": end.isoformat(), "reason": "案件A"}
    viewer = _user(client, admin_headers, "viewer", TOWN_A)
    operator = _user(client, admin_headers, "operator", TOWN_A)

    for call in (
        lambda h: client.post(f"{API}/holds", json=body, headers=h),
        lambda h: client.get(f"{API}/holds", headers=h),
        lambda h: client.delete(f"{API}/holds/1", params={"reason": "x"}, headers=h),
        lambda h: client.get(f"{API}/storage", headers=h),
    ):
        r = call(viewer)
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", r.text
    assert (
        client.post(f"{API}/holds", json={**body, "channel_id": b}, headers=operator).status_code
        == 403
    )

    r = client.post(f"{API}/holds", json=body, headers=operator)
    assert r.status_code == 201, r.text
    hold = r.json()
    assert hold["active"] and hold["created_by"] == "operator-" + TOWN_A
    assert datetime.fromisoformat(hold["start"]) == start
    admin_hold = client.post(
        f"{API}/holds", json={**body, "channel_id": b, "reason": "案件B"}, headers=admin_headers
    ).json()
    # The operator sees holds in its area only.
    listed = client.get(f"{API}/holds", headers=operator).json()
    assert [h["id"] for h in listed["items"]] == [hold["id"]] and listed["total"] == 1
    assert client.get(f"{API}/holds", headers=admin_headers).json()["total"] == 2
    r = client.delete(f"{API}/holds/{admin_hold['id']}", params={"reason": "x"}, headers=operator)
    assert r.status_code == 403

    placed = client.get(f"{API}/audit", params={"action": "recording.hold"}, headers=admin_headers)
    records = placed.json()["items"]
    assert [(x["target"], x["reason"]) for x in records] == [
        (f"channel:{b}", "案件B"),
        (f"channel:{a}", "案件A"),
    ]

    # Releasing needs a reason, keeps the hold (marked released) and is audited.
    assert client.delete(f"{API}/holds/{hold['id']}", headers=operator).status_code == 422
    r = client.delete(f"{API}/holds/{hold['id']}", params={"reason": "结案"}, headers=operator)
    assert r.status_code == 200, r.text
    assert r.json()["released_at"] is not None and not r.json()["active"]
    assert (
        client.delete(
            f"{API}/holds/{hold['id']}", params={"reason": "again"}, headers=operator
        ).status_code
        == 409
    )
    active = client.get(f"{API}/holds", params={"active": True}, headers=admin_headers).json()
    assert [h["id"] for h in active["items"]] == [admin_hold["id"]]
    released = client.get(f"{API}/holds", params={"channel_id": a}, headers=admin_headers).json()
    assert released["items"][0]["released_by"] == "operator-" + TOWN_A
    (rel,) = client.get(
        f"{API}/audit", params={"action": "recording.release"}, headers=admin_headers
    ).json()["items"]
    assert rel["reason"] == "结案" and rel["detail"]["placed_for"] == "案件A"

    # Malformed holds.
    for bad in (
        {**body, "end": start.isoformat()},
        {**body, "start": start.replace(tzinfo=None).isoformat()},
        {**body, "reason": "  "},
        {**body, "channel_id": "123"},
    ):
        r = client.post(f"{API}/holds", json=bad, headers=admin_headers)
        assert r.status_code == 422, (bad, r.text)
    assert (
        client.delete(f"{API}/holds/999", params={"reason": "x"}, headers=admin_headers).status_code
        == 404
    )

    view = client.get(f"{API}/storage", headers=admin_headers)
    assert view.status_code == 200
    assert view.json()["active_holds"] == 1 and view.json()["retention_days"] == 30
    assert view.json()["tiers"][0]["path"] == str(platform.data.recordings)


# --- end to end: recording while the quota sweeps ---------------------------------------------


@pytest.mark.media
def test_recording_continues_while_the_quota_sweeps(
    platform: Platform, client: TestClient, admin_headers: Headers, peer: RtspPeer
) -> None:
    platform.media.segment_seconds = 1.0
    storage = platform.storage
    storage.policy = StoragePolicy(sweep_seconds=0.1)  # no quota yet
    events = Events(platform)
    channel = add_camera(client, admin_headers, peer.url("/h264"))
    storage.start()  # start-up repair, then the sweeper, before anything records
    platform.media.start()
    try:
        events.wait(status(channel, "online"), 20, "online")
        (first,) = events.segments(channel, 1, 20)
        r = client.post(
            f"{API}/holds",
            json={
                "channel_id": channel,
                "start": first.start.isoformat(),
                # Within the first segment: the next one starts at the wall clock of its key
                # frame and can overlap the end of the first by a few milliseconds.
                "end": (first.start + (first.end - first.start) / 2).isoformat(),
                "reason": "现场取证",
            },
            headers=admin_headers,
        )
        assert r.status_code == 201, r.text
        quota = first.bytes * 4
        storage.policy = StoragePolicy(quota_bytes=quota, sweep_seconds=0.1)
        later = events.segments(channel, 4, 20)
        for _ in range(10):  # the background sweeper deletes as the recordings pass the quota
            if audits(platform, "recording.expire"):
                break
            later += events.segments(channel, 1, 20)
        assert audits(platform, "recording.expire"), "the sweeper deleted nothing"
        # Recording goes on beside the sweeper.
        later += events.segments(channel, 2, 20)
        assert platform.media.stats()[channel].recorder_failed is None
    finally:
        platform.media.stop()
        storage.stop()
    storage.sweep()  # once more, with nothing being recorded
    kept = rows(platform)
    assert sum(seg.bytes for seg in kept.values()) <= quota
    assert first.path in kept and platform.segments.path_of(first.path).is_file()
    assert later[-1].path in kept
    recorded = [first, *later]
    deleted = [e for e in recorded if e.path not in kept]
    unheld = [e for e in recorded[1:] if e.path in kept]
    assert deleted and unheld
    assert max(e.start for e in deleted) < min(e.start for e in unheld)  # oldest first
    for e in deleted:
        assert not platform.segments.path_of(e.path).exists()


def test_a_held_channel_or_its_device_cannot_be_deleted(
    platform: Platform, client: TestClient, admin_headers: Headers, clock: ManualClock
) -> None:
    """Deleting would drop the index of held recordings: refused until the hold is released."""
    channel = camera(platform, "held-cam")
    device = client.get(f"{API}/channels/{channel}", headers=admin_headers).json()["device_id"]
    start, end = clock.now() - timedelta(hours=2), clock.now() - timedelta(hours=1)
    r = client.post(
        f"{API}/holds",
        json={
            "channel_id": channel,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "reason": "案件在办",
        },
        headers=admin_headers,
    )
    assert r.status_code == 201, r.text
    hold = r.json()["id"]
    for path in (f"{API}/channels/{channel}", f"{API}/devices/{device}"):
        refused = client.delete(path, headers=admin_headers)
        assert refused.status_code == 409 and "hold" in refused.json()["error"]["message"]
    assert client.get(f"{API}/channels/{channel}", headers=admin_headers).status_code == 200
    released = client.delete(
        f"{API}/holds/{hold}", params={"reason": "结案"}, headers=admin_headers
    )
    assert released.status_code in (200, 204), released.text
    assert client.delete(f"{API}/devices/{device}", headers=admin_headers).status_code == 204
