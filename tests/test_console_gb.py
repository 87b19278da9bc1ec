"""GB/T 28181 channels in the web console (Debian's Chromium, headless, driven by Playwright):
the platform runs its SIP server and media workers, the project's simulator registers an NVR with
two channels; a channel dragged onto the live wall is INVITEd on demand and its video advances;
on the playback page the source switch searches the device's own recordings for the day, draws
them on the timeline and plays one (Playback INVITE), with speed and pause sent to the device
and a BYE when the viewer stops. A channel whose device never registered says why in its tile,
with a retry. Screenshots go to test-artifacts/console/."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from datetime import datetime

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, Page, Route
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.conftest import ADMIN_PASSWORD
from tests.support.gb import (
    gb_platform,
    registered_channels,
    simulator_process,
    unregistered_channel,
)
from tests.support.wait import wait_until
from tests.test_console_browser import VIEWPORT, needs_build, shot, sign_in
from xueliang.app import Platform

pytestmark = [pytest.mark.media, needs_build]

TILE_CLOCKS = (
    "Array.from(document.querySelectorAll('.tile:not(.empty) video')).map(v => v.currentTime)"
)
PLAYBACK_CLOCK = "document.querySelector('[data-test=playback-video]').currentTime"


@pytest.fixture
def gb(platform: Platform) -> Iterator[tuple[Platform, str]]:
    """The platform with its SIP server and media workers, served by uvicorn (console and API)."""
    with gb_platform(platform, media=True) as base:
        yield platform, base


@pytest.fixture
def simulator(gb: tuple[Platform, str]) -> Iterator[subprocess.Popen[str]]:
    with simulator_process(gb[0]) as sim:  # an NVR of two channels
        yield sim


# Where each video stands, to say why when it does not advance.
VIDEOS = (
    "Array.from(document.querySelectorAll('video')).map(v => ({t: v.currentTime,"
    " ready: v.readyState, paused: v.paused, error: v.error?.message,"
    " buffered: Array.from({length: v.buffered.length}, (_, i) =>"
    " [v.buffered.start(i), v.buffered.end(i)]),"
    " state: v.closest('[data-state]')?.textContent?.trim()}))"
)


def advances(page: Page, clock: str, by: float = 1.0) -> None:
    """The video clock(s) of ``clock`` (a number or an array of them) move on by ``by`` s."""
    every = f"[].concat({clock})"
    try:
        page.wait_for_function(f"{every}.every(t => t > 0.3)", timeout=30000)
        first = page.evaluate(every)
        page.wait_for_function(
            f"(first => {every}.every((t, i) => t > first[i] + {by}))", arg=first, timeout=30000
        )
    except PlaywrightTimeout:
        shot(page, "failed-gb")
        raise AssertionError(f"video did not advance: {page.evaluate(VIDEOS)}") from None


def sessions_of(platform: Platform, kind: str) -> list[str]:
    return [s.key for s in platform.gb28181.streams.sessions() if s.kind == kind]


def test_gb_channels_live_on_the_wall_and_device_recordings_played_back(
    gb: tuple[Platform, str],
    simulator: subprocess.Popen[str],
    browser: Browser,
    client: TestClient,
    admin_headers: dict[str, str],
) -> None:
    platform, base = gb
    first, second = registered_channels(client, admin_headers)
    page = browser.new_page(viewport=VIEWPORT)
    tickets: list[str] = []
    page.on(
        "request",
        lambda r: tickets.append(r.url) if r.url.endswith("/live/ticket") else None,
    )
    sign_in(page, base, "admin", ADMIN_PASSWORD, then="[data-test=wall]")

    # Live: drag the first channel onto a tile, click the second; the platform INVITEs each
    # device channel on demand and both tiles' video advances, straight from the workers.
    page.click("[data-layout='4']")
    page.wait_for_selector(f'[data-channel="{first}"]')
    page.drag_and_drop(f'[data-channel="{first}"]', ".tile[data-index='0']")
    page.wait_for_selector(".tile[data-index='0'] .name")
    page.click(f'[data-channel="{second}"]')
    page.wait_for_function("document.querySelectorAll('.tile .name').length === 2")
    advances(page, TILE_CLOCKS)
    states = page.eval_on_selector_all(".tile:not(.empty)", "ts => ts.map(t => t.dataset.state)")
    assert states == ["playing", "playing"]
    assert sorted(sessions_of(platform, "Play")) == [first, second]
    assert platform.live.watching() == []  # no relay
    assert len(tickets) == 2, tickets  # one ticket per tile, however long the INVITE took
    shot(page, "live-gb")

    # Playback: the channel's device speaks GB/T 28181, so the source switch is offered.
    page.click("[data-test=nav-playback]")
    page.click(f'[data-channel="{first}"]')
    page.wait_for_selector("[data-test=source-device]")
    assert "平台录像" in (page.text_content("[data-test=playback-source]") or "")
    page.click("[data-test=source-device]")
    page.wait_for_selector("[data-test=range].device", timeout=20000)
    ranges = page.eval_on_selector_all(
        "[data-test=range]", "rs => rs.map(r => [Number(r.dataset.start), Number(r.dataset.end)])"
    )
    now = time.time() * 1000
    # The simulator keeps a recording of every half hour: the day so far, up to now.
    assert any(a <= now - 300_000 and b >= now - 120_000 for a, b in ranges), (ranges, now)
    assert "设备当日录像" in (page.text_content("[data-test=recorded-total]") or "")

    # A click on a range plays it from there: a Playback INVITE, the video advances.
    box = page.locator("[data-test=timeline] svg").bounding_box()
    assert box is not None
    at = datetime.now().replace(minute=0, second=0, microsecond=0)
    midnight = at.replace(hour=0).timestamp() * 1000
    frac = (max(at.timestamp() * 1000 - 1_800_000, ranges[0][0]) - midnight) / 86_400_000
    page.mouse.click(box["x"] + max(2.0, frac * box["width"]), box["y"] + 20)
    page.wait_for_selector("[data-test=playback-state][data-state=playing]", timeout=30000)
    advances(page, PLAYBACK_CLOCK)
    (key,) = sessions_of(platform, "Playback")
    assert key.startswith(f"{first}~")
    assert page.get_attribute("[data-test=playback-state]", "data-source") == "device"
    page.wait_for_selector("[data-test=playhead]")
    head = float(page.get_attribute("[data-test=playhead]", "data-at") or 0)
    assert ranges[0][0] <= head <= now, (head, ranges)
    assert not page.is_disabled("[data-test=export]")  # downloads from the device (exports tests)

    # Speed and pause go to the device (MANSRTSP); the browser follows.
    with page.expect_response(lambda r: r.url.endswith(f"{key}/control")) as speed:
        page.click("[data-speed='2']")
    assert speed.value.status == 204
    assert page.evaluate("document.querySelector('[data-test=playback-video]').playbackRate") == 2
    assert "active" in (page.get_attribute("[data-speed='2']", "class") or "")
    with page.expect_response(lambda r: r.url.endswith(f"{key}/control")) as paused:
        page.click("[data-test=pause]")
    assert paused.value.status == 204
    page.wait_for_function("document.querySelector('[data-test=playback-video]').paused")
    assert (page.text_content("[data-test=pause]") or "").strip() == "继续"
    with page.expect_response(lambda r: r.url.endswith(f"{key}/control")) as resumed:
        page.click("[data-test=pause]")
    assert resumed.value.status == 204
    advances(page, PLAYBACK_CLOCK, 0.5)
    assert page.locator("[data-test=playback-error]").count() == 0
    shot(page, "playback-device")

    # English framing.
    page.click("[data-test=lang]")
    page.wait_for_function(
        "document.querySelector('[data-test=playback-source]').textContent.includes('Device')"
    )
    shot(page, "playback-device-en")
    page.click("[data-test=lang]")

    # Stop: the device's playback ends (BYE) at once.
    with page.expect_response(lambda r: r.request.method == "DELETE") as ended:
        page.click("[data-test=stop]")
    assert ended.value.status == 204
    wait_until(lambda: not sessions_of(platform, "Playback"), 15, "the playback to end")
    # Back to the platform's recordings: the device is not asked again.
    page.click("[data-test=source-platform]")
    page.wait_for_function(
        "!document.querySelector('[data-test=recorded-total]').textContent.includes('设备')"
    )
    page.close()
    wait_until(lambda: platform.gb28181.streams.sessions() == [], 15, "every stream to end")


def test_an_unregistered_gb_channel_says_why_in_its_tile_and_can_retry(
    gb: tuple[Platform, str], browser: Browser, client: TestClient, admin_headers: dict[str, str]
) -> None:
    platform, base = gb
    channel = unregistered_channel(client, admin_headers, "未注册NVR", "东门")

    page = browser.new_page(viewport=VIEWPORT)
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    # Hold the ticket's answer, as a device being INVITEd does: the tile says it is asking,
    # and asks once.
    held: list[Route] = []
    page.route("**/live/ticket", lambda route: held.append(route))
    sign_in(page, base, "admin", ADMIN_PASSWORD, then="[data-test=wall]")
    page.wait_for_selector(f'[data-channel="{channel}"]')
    page.click(f'[data-channel="{channel}"]')
    page.wait_for_selector(".tile[data-index='0'][data-state='requesting']")
    page.wait_for_selector("[data-test=tile-requesting]")
    assert "请求视频" in (page.text_content(".tile[data-index='0']") or "")
    shot(page, "live-gb-requesting")
    page.wait_for_timeout(1500)
    assert len(held) == 1
    held[0].continue_()
    page.unroute("**/live/ticket")

    # The platform's 422 stream_failed, in its words, framed; no relay is tried.
    page.wait_for_selector("[data-test=tile-failure]", timeout=20000)
    message = page.text_content("[data-test=tile-failure-message]") or ""
    assert "offline (not registered)" in message, message
    assert "无法获取视频" in (page.text_content("[data-test=tile-failure]") or "")
    assert page.get_attribute(".tile[data-index='0']", "data-state") == "error"
    assert "错误" in (page.text_content(".tile[data-index='0'] .status") or "")
    shot(page, "live-gb-failed")
    page.click("[data-test=lang]")
    page.wait_for_function(
        "document.querySelector('[data-test=tile-failure]').textContent.includes('Could not')"
    )
    assert "Retry" in (page.text_content("[data-test=tile-retry]") or "")
    shot(page, "live-gb-failed-en")
    page.click("[data-test=lang]")

    # Retry asks again (once), and fails the same way.
    with page.expect_response(lambda r: r.url.endswith("/live/ticket")) as again:
        page.click("[data-test=tile-retry]")
    assert again.value.status == 422
    page.wait_for_selector("[data-test=tile-failure-message]")
    assert "offline (not registered)" in (page.text_content("[data-test=tile-failure]") or "")
    assert sockets == []
    assert platform.gb28181.streams._ports.in_use == 0

    # Its device's recordings cannot be searched either: the platform's words, framed.
    page.click("[data-test=nav-playback]")
    page.click(f'[data-channel="{channel}"]')
    page.click("[data-test=source-device]")
    page.wait_for_selector("[data-test=playback-error]", timeout=20000)
    error = page.text_content("[data-test=playback-error]") or ""
    assert error.startswith("设备录像检索失败：") and "not registered" in error, error
    assert page.locator("[data-test=range]").count() == 0
    shot(page, "playback-device-failed")
    page.close()
