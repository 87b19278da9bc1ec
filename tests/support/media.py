"""Helpers shared by the media tests: wait on media events, register cameras."""

from __future__ import annotations

import queue
import time
from typing import Any

from fastapi.testclient import TestClient

from xueliang.app import Platform
from xueliang.media.model import MediaEvent, SegmentClosed, StatusChanged


class Events:
    """Media events as they happen, to wait on (with a deadline) instead of sleeping."""

    def __init__(self, platform: Platform) -> None:
        self.q: queue.Queue[MediaEvent] = queue.Queue()
        platform.media.listeners.append(self.q.put)

    def wait(self, match: Any, timeout: float, what: str) -> MediaEvent:
        deadline = time.monotonic() + timeout
        seen = []
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = self.q.get(timeout=left)
            except queue.Empty:
                break
            seen.append(event)
            if match(event):
                return event
        raise AssertionError(f"no {what} within {timeout} s; saw {seen}")

    def segments(self, channel: str, n: int, timeout: float) -> list[SegmentClosed]:
        got: list[SegmentClosed] = []
        for _ in range(n):
            ev = self.wait(
                lambda e: isinstance(e, SegmentClosed) and e.channel_id == channel,
                timeout,
                f"segment of {channel}",
            )
            assert isinstance(ev, SegmentClosed)
            got.append(ev)
        return got


def status(channel: str, value: str) -> Any:
    return lambda e: isinstance(e, StatusChanged) and e.channel_id == channel and e.status == value


def add_camera(client: TestClient, headers: dict[str, str], url: str) -> str:
    r = client.post(
        "/api/v1/devices",
        json={"name": "测试相机", "protocol": "rtsp", "url": url},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    chans = client.get(
        "/api/v1/channels", params={"device_id": r.json()["id"]}, headers=headers
    ).json()
    return str(chans["items"][0]["id"])


def add_sim_camera(
    client: TestClient, headers: dict[str, str], url: str = "sim://h264/320x240@25?gop=25"
) -> str:
    """Register a simulated camera; returns its channel ID."""
    r = client.post(
        "/api/v1/devices",
        json={"name": "模拟相机", "protocol": "sim", "url": url},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    chans = client.get("/api/v1/channels", params={"device_id": r.json()["id"]}, headers=headers)
    return str(chans.json()["items"][0]["id"])
