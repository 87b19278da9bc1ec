"""The player in a real browser (Debian's Chromium, headless, driven by Playwright): live view
of a simulated camera shows frames advancing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, sync_playwright

from tests.support.browser import ARGS, CHROMIUM
from tests.support.media import Events, add_sim_camera, status
from tests.support.server import serve
from xueliang.api.app import create_app
from xueliang.app import Platform

pytestmark = pytest.mark.media

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def sim_channel(client: TestClient, admin_headers: dict[str, str]) -> str:
    return add_sim_camera(client, admin_headers)


def test_live_view_in_chromium_advances(
    platform: Platform, browser: Browser, admin_headers: dict[str, str], sim_channel: str
) -> None:
    platform.settings.media.enabled = True
    events = Events(platform)
    token = admin_headers["Authorization"].removeprefix("Bearer ")
    with serve(create_app(platform)) as base:
        events.wait(status(sim_channel, "online"), 20, "online")
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"{base}/player/?channel={sim_channel}#token={token}")
        page.wait_for_selector("#main:not([hidden])")
        page.click("#live")
        # Frames advance: the video element's clock moves by more than a second of media.
        page.wait_for_function("document.getElementById('video').currentTime > 0.5", timeout=15000)
        first = page.evaluate("document.getElementById('video').currentTime")
        page.wait_for_function(
            f"document.getElementById('video').currentTime > {first} + 1.0", timeout=15000
        )
        quality = page.evaluate(
            "document.getElementById('video').getVideoPlaybackQuality().totalVideoFrames"
        )
        assert quality > 25
        # Live, not lagging: playback stays within a second of the newest buffered frame.
        lag = page.evaluate(
            "(() => { const v = document.getElementById('video');"
            " return v.buffered.end(v.buffered.length - 1) - v.currentTime; })()"
        )
        assert lag < 1.0
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "player-live.png"))
        assert "实时" in page.text_content("#status")
        page.close()


def test_playback_in_chromium_plays_a_recorded_range(
    platform: Platform,
    browser: Browser,
    client: TestClient,
    admin_headers: dict[str, str],
    sim_channel: str,
) -> None:
    platform.settings.media.enabled = True
    platform.media.segment_seconds = 1.0
    events = Events(platform)
    token = admin_headers["Authorization"].removeprefix("Bearer ")
    with serve(create_app(platform)) as base:
        events.segments(sim_channel, 3, 30)
        recs = client.get(
            "/api/v1/recordings", params={"channel_id": sim_channel}, headers=admin_headers
        ).json()["items"]
        start, end = recs[0]["start"], recs[-1]["end"]
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"{base}/player/?channel={sim_channel}#token={token}")
        page.wait_for_selector("#main:not([hidden])")
        # The range as the form would give it (the page's own function behind 回放).
        page.evaluate("([c, s, e]) => playRange(c, s, e)", [sim_channel, start, end])
        page.wait_for_function("document.getElementById('video').currentTime > 1.5", timeout=20000)
        assert "回放" in page.text_content("#status")
        frames = page.evaluate(
            "document.getElementById('video').getVideoPlaybackQuality().totalVideoFrames"
        )
        assert frames >= 30
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "player-playback.png"))
        page.close()
