"""Recording plans: weekly schedules across midnight and time zones, the gate in front of the
recorder (schedule, event with pre- and post-roll, off), the API, and event recording end to end
in a media worker with a simulated camera."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import av
import pytest
from fastapi.testclient import TestClient

from tests.conftest import login
from tests.support.media import Events, add_sim_camera, status
from tests.support.wait import wait_until
from xueliang.app import Platform
from xueliang.media.hub import Packet, StreamInfo
from xueliang.media.model import SegmentClosed, StatusChanged
from xueliang.media.plans import RecordingGate, RecordingPlan, Window

API = "/api/v1"
WEEKDAYS = frozenset({1, 2, 3, 4, 5})


# --- schedules -----------------------------------------------------------------------------------


def test_windows_within_a_day_and_across_midnight() -> None:
    day = Window(WEEKDAYS, 7 * 60, 19 * 60)
    assert day.contains(1, 7 * 60) and day.contains(5, 19 * 60 - 1)
    assert not day.contains(1, 19 * 60) and not day.contains(6, 12 * 60)
    night = Window(frozenset({5}), 22 * 60, 6 * 60)  # Friday 22:00 to Saturday 06:00
    assert night.contains(5, 23 * 60) and night.contains(6, 5 * 60)
    assert not night.contains(6, 6 * 60) and not night.contains(5, 5 * 60)
    sunday_night = Window(frozenset({7}), 23 * 60, 1 * 60)  # wraps the week too
    assert sunday_night.contains(1, 30) and not sunday_night.contains(2, 30)


def test_schedules_are_in_the_sites_time_zone() -> None:
    plan = RecordingPlan(mode="schedule", windows=(Window(WEEKDAYS, 7 * 60, 19 * 60),))
    # Monday 2026-11-23 23:30 UTC is Tuesday 07:30 in Beijing: inside.
    assert plan.scheduled(datetime(2026, 11, 23, 23, 30, tzinfo=UTC).timestamp())
    # Monday 2026-11-23 12:00 UTC is 20:00 in Beijing: outside.
    assert not plan.scheduled(datetime(2026, 11, 23, 12, 0, tzinfo=UTC).timestamp())
    utc_plan = RecordingPlan(mode="schedule", windows=plan.windows, timezone="UTC")
    assert utc_plan.scheduled(datetime(2026, 11, 23, 12, 0, tzinfo=UTC).timestamp())


# --- the gate ------------------------------------------------------------------------------------


class FakeRecorder:
    """Stands in for SegmentRecorder (which the media tests exercise with real files): records
    what the gate passes, as segments of packet times."""

    def __init__(self) -> None:
        self.segments: list[list[float]] = []
        self.open = False

    def start(self, streams: Sequence[StreamInfo]) -> None:
        self.open = False

    def offer(self, packet: Packet, wallclock: float) -> bool:
        if not self.open:
            assert packet.is_keyframe, "a recording must begin on a key frame"
            self.segments.append([])
            self.open = True
        self.segments[-1].append(wallclock)
        return True

    def stop(self) -> None:
        self.open = False


@pytest.fixture
def video() -> Iterator[StreamInfo]:
    container = av.open("pipe:", "w", format="mp4")  # only for a stream template
    try:
        stream = container.add_stream("h264", rate=25)
        yield StreamInfo(0, "video", "h264", stream.time_base or 1, stream)  # type: ignore[arg-type]
    finally:
        container.close()


def feed(gate: RecordingGate, video: StreamInfo, t0: float, seconds: float, at: Any = None) -> None:
    """25 fps, a key frame every second, arriving at t0 + n/25; ``at`` is called before each
    packet with its time (to trigger events or change plans mid-stream)."""
    for n in range(int(seconds * 25)):
        t = t0 + n / 25
        if at is not None:
            at(t)
        p = Packet(b"\x00")
        p.stream = video.template
        p.pts = p.dts = n
        p.is_keyframe = n % 25 == 0
        gate.offer(p, t)


def test_continuous_and_off(video: StreamInfo) -> None:
    rec = FakeRecorder()
    gate = RecordingGate(rec, RecordingPlan())
    gate.start([video])
    feed(gate, video, 1000.0, 2)
    assert [len(s) for s in rec.segments] == [50]
    gate.set_plan(RecordingPlan(mode="off"))
    feed(gate, video, 1002.0, 2)
    assert [len(s) for s in rec.segments] == [50] and not gate.recording


def test_schedule_begins_on_a_key_frame_and_ends_at_the_window(video: StreamInfo) -> None:
    # 12:00:00.5–12:00:05 UTC every day: recording begins at the first key frame inside.
    monday_noon = datetime(2026, 11, 23, 12, 0, tzinfo=UTC).timestamp()
    every_day = frozenset(range(1, 8))
    plan = RecordingPlan(
        mode="schedule", windows=(Window(every_day, 12 * 60, 12 * 60 + 1),), timezone="UTC"
    )
    rec = FakeRecorder()
    gate = RecordingGate(rec, plan)
    gate.start([video])
    feed(gate, video, monday_noon - 3.5, 3)  # 11:59:56.5 – 11:59:59.5: outside
    assert rec.segments == []
    feed(gate, video, monday_noon - 0.5, 62)  # into the window and out of it again
    (seg,) = rec.segments
    assert seg[0] == pytest.approx(monday_noon + 0.5)  # the first key frame inside
    assert seg[-1] < monday_noon + 60 and seg[-1] >= monday_noon + 60 - 0.05
    assert not gate.recording


def test_event_recording_has_pre_roll_and_post_roll(video: StreamInfo) -> None:
    plan = RecordingPlan(mode="event", pre_roll=5.0, post_roll=3.0)
    rec = FakeRecorder()
    gate = RecordingGate(rec, plan)
    gate.start([video])
    t0 = 5000.0
    events = {t0 + 20.0, t0 + 22.0, t0 + 40.0}  # the second extends the first

    def at(t: float) -> None:
        for e in list(events):
            if t >= e:
                gate.trigger(e)
                events.discard(e)

    feed(gate, video, t0, 50, at)
    assert len(rec.segments) == 2
    first, second = rec.segments
    # Pre-roll: from the key frame at or before 5 s ahead of the event.
    assert first[0] == pytest.approx(t0 + 15.0)
    # Post-roll: until 3 s after the last event of the burst.
    assert t0 + 25.0 - 0.05 <= first[-1] < t0 + 25.0
    assert second[0] == pytest.approx(t0 + 35.0) and second[-1] < t0 + 43.0
    # Nothing between the two, and every frame of each range once.
    assert len(first) == (25 - 15) * 25 and len(second) == (43 - 35) * 25


def test_a_long_gop_does_not_grow_the_pre_roll_without_bound(video: StreamInfo) -> None:
    from xueliang.media import plans

    rec = FakeRecorder()
    gate = RecordingGate(rec, RecordingPlan(mode="event", pre_roll=5.0))
    gate.start([video])
    for n in range(plans.MAX_PRE_ROLL_PACKETS * 2):
        p = Packet(b"\x00")
        p.stream = video.template
        p.pts = p.dts = n
        p.is_keyframe = n == 0  # one key frame, then never again
        gate.offer(p, 100.0 + n / 25)
    assert len(gate._pre.packets) <= plans.MAX_PRE_ROLL_PACKETS


# --- the API -------------------------------------------------------------------------------------


def test_plan_api_validates_audits_and_checks_permissions(
    platform: Platform, client: TestClient, admin_headers: dict[str, str]
) -> None:
    channel = add_sim_camera(client, admin_headers)
    url = f"{API}/channels/{channel}/recording-plan"
    r = client.get(url, headers=admin_headers)
    assert r.status_code == 200
    assert r.json()["mode"] == "continuous" and r.json()["timezone"] == "Asia/Shanghai"
    for bad in (
        {"mode": "schedule"},
        {"mode": "schedule", "schedule": [{"days": [1], "start": "25:00", "end": "06:00"}]},
        {"mode": "schedule", "schedule": [{"days": [8], "start": "07:00", "end": "19:00"}]},
        {"mode": "event", "pre_roll_seconds": 600},
        {"mode": "sometimes"},
    ):
        r = client.put(url, json=bad, headers=admin_headers)
        assert r.status_code == 422, bad
        assert r.json()["error"]["code"]
    plan = {
        "mode": "schedule",
        "schedule": [{"days": [1, 2, 3, 4, 5], "start": "07:00", "end": "19:00"}],
        "pre_roll_seconds": 10,
        "post_roll_seconds": 30,
    }
    r = client.put(url, json=plan, headers=admin_headers)
    assert r.status_code == 200, r.text
    assert client.get(url, headers=admin_headers).json()["schedule"] == plan["schedule"]
    audit = client.get(f"{API}/audit", params={"action": "recording.plan"}, headers=admin_headers)
    assert audit.json()["items"][0]["target"] == f"channel:{channel}"
    # A viewer may read the plan but neither change it nor trigger a recording.
    client.post(
        f"{API}/users",
        json={
            "username": "kan",
            "password": "Viewer-pw-1",
            "roles": ["viewer"],
            "scope": {"channels": [channel]},
        },
        headers=admin_headers,
    )
    viewer = login(client, "kan", "Viewer-pw-1")
    assert client.get(url, headers=viewer).status_code == 200
    assert client.put(url, json=plan, headers=viewer).status_code == 403
    r = client.post(
        f"{API}/channels/{channel}/recording/trigger", json={"reason": "报警"}, headers=viewer
    )
    assert r.status_code == 403
    # Not pulled (the media service is not running in this test): nothing to record.
    r = client.post(
        f"{API}/channels/{channel}/recording/trigger",
        json={"reason": "报警"},
        headers=admin_headers,
    )
    assert r.status_code == 409
    r = client.post(f"{API}/channels/{channel}/recording/trigger", json={}, headers=admin_headers)
    assert r.status_code == 422  # a reason is required


@pytest.mark.media
def test_event_recording_end_to_end(
    platform: Platform, client: TestClient, admin_headers: dict[str, str]
) -> None:
    """Continuous → event without reconnecting; a trigger records the pre-roll and post-roll."""
    events = Events(platform)
    channel = add_sim_camera(client, admin_headers, "sim://h264/160x120@25?gop=25")
    platform.media.start()
    try:
        events.wait(status(channel, "online"), 30, "online")
        plan = {"mode": "event", "pre_roll_seconds": 2, "post_roll_seconds": 2}
        r = client.put(f"{API}/channels/{channel}/recording-plan", json=plan, headers=admin_headers)
        assert r.status_code == 200
        # The continuous segment in progress closes as the event plan takes over.
        closed = events.wait(lambda e: isinstance(e, SegmentClosed), 20, "continuous closed")
        assert isinstance(closed, SegmentClosed)
        wait_until(lambda: not platform.media.stats()[channel].recording, 10, "idle")
        # Pre-roll fills (the gate holds >= 2 s from a key frame) while nothing is written.
        wait_until(lambda: platform.media.stats()[channel].packets > 100, 20, "pre-roll")
        assert not platform.media.stats()[channel].recording
        before = time.time()
        r = client.post(
            f"{API}/channels/{channel}/recording/trigger",
            json={"reason": "周界报警 1 号"},
            headers=admin_headers,
        )
        assert r.status_code == 200, r.text
        assert r.json()["mode"] == "event"
        seg = events.wait(lambda e: isinstance(e, SegmentClosed), 20, "event segment")
        assert isinstance(seg, SegmentClosed)
        # Pre-roll: begins at least 2 s (the key frame at or before) before the trigger.
        assert seg.start.timestamp() <= before - 2.0 + 0.1
        assert seg.start.timestamp() >= before - 3.5
        # Post-roll: ends about 2 s after it.
        assert before + 1.5 <= seg.end.timestamp() <= before + 4.0
        audit = client.get(
            f"{API}/audit", params={"action": "recording.trigger"}, headers=admin_headers
        ).json()["items"][0]
        assert audit["reason"] == "周界报警 1 号"
    finally:
        platform.media.stop()
    offline = [
        e for e in list(events.q.queue) if isinstance(e, StatusChanged) and e.status == "offline"
    ]
    assert all(e.reason == "stopped" for e in offline)  # the plan change did not reconnect
