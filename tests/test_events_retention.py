"""Retention of the event store: events and track points past their age are deleted in
batches, what is younger stays, and the settings are validated."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from xueliang.app import Platform
from xueliang.config import load_settings
from xueliang.core.clock import ManualClock
from xueliang.core.errors import ConfigError
from xueliang.events import service as events_module
from xueliang.events.service import NewEvent, NewPosition
from xueliang.store.models import Event, Position

CHANNEL = "34020000001320000001"


def counts(platform: Platform) -> tuple[int, int]:
    with platform.db.read() as s:
        return (
            s.scalar(select(func.count()).select_from(Event)) or 0,
            s.scalar(select(func.count()).select_from(Position)) or 0,
        )


def test_old_events_and_track_points_go_young_ones_stay(
    platform: Platform, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events_module, "PRUNE_BATCH", 7)  # several batches
    events = platform.events
    events.retention_days, events.positions_retention_days = 180, 30
    now = clock.now()
    for age_days in (400, 181, 179, 1):  # two past retention
        for n in range(10):
            events.record(
                NewEvent(
                    kind="gb.alarm",
                    channel_id=CHANNEL,
                    occurred_at=now - timedelta(days=age_days, seconds=n),
                )
            )
    points = [
        NewPosition(at=now - timedelta(days=age, minutes=n), longitude=116.4, latitude=39.9)
        for age in (60, 31, 29, 0)
        for n in range(5)
    ]
    assert events.record_positions(CHANNEL, points) == 20
    assert counts(platform) == (40, 20)
    report = events.prune()
    assert (report.events, report.positions) == (20, 10)
    assert counts(platform) == (20, 10)
    with platform.db.read() as s:
        oldest_event = s.scalar(select(func.min(Event.occurred_at)))
        oldest_point = s.scalar(select(func.min(Position.at)))
    assert oldest_event is not None and now - oldest_event < timedelta(days=180)
    assert oldest_point is not None and now - oldest_point < timedelta(days=30)
    # Time passes: what was young ages out too; nothing is deleted twice.
    clock.advance(timedelta(days=15).total_seconds())
    report = events.prune()
    assert (report.events, report.positions) == (10, 5)
    assert events.prune().events == 0


def test_the_sweeper_runs_and_stops(platform: Platform) -> None:
    events = platform.events
    events.sweep_seconds = 3600
    events.start()
    events.start()  # once only
    events.stop()
    events.stop()


def test_retention_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match="retention_days"):
        load_settings(environ={"XUELIANG_EVENTS_RETENTION_DAYS": "0"})
    settings = load_settings(environ={"XUELIANG_EVENTS_POSITIONS_RETENTION_DAYS": "7"})
    assert settings.events.positions_retention_days == 7
    assert settings.events.retention_days == 180
