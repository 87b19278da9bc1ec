"""The web console's playback and system status pages in a real browser (Debian's Chromium,
headless, driven by Playwright), through the public API only: a simulated camera records short
segments; the playback page's 24-hour timeline shows the recorded range, a click on it plays it
(streamed into Media Source Extensions), 4x plays faster than 1x, a snapshot at the playhead is an
image, an export with a reason downloads a file and is audited; the status page's online/total
match the API, and storage says "no permission" to a user without system.manage. Screenshots go
to test-artifacts/console/."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, Page
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.conftest import ADMIN_PASSWORD, TOWN_A, seed_two_towns
from tests.support.media import Events, add_sim_camera, status
from tests.support.server import serve
from tests.test_console_browser import VIEWPORT, needs_build, shot, sign_in
from xueliang.api.app import create_app
from xueliang.app import Platform
from xueliang.core.clock import ManualClock

VIDEO = "document.querySelector('[data-test=playback-video]')"
CLOCK = f"{VIDEO}.currentTime"
# [performance.now() in seconds, the video's currentTime]: a rate over the page's wall clock.
SAMPLE = f"[performance.now() / 1000, {CLOCK}]"


# The total is shown (an element not rendered yet must not count as loaded).
STATUS_LOADED = (
    "(document.querySelector('[data-test=status-total]')?.textContent ?? '—').trim() !== '—'"
)


def catch_up(clock: ManualClock) -> None:
    """The test platform's clock stands still; recordings carry the wall clock. Bring the
    platform's "now" (which ends gap reports) up to the wall clock."""
    behind = (datetime.now(UTC) - clock.now()).total_seconds()
    if behind > 0:
        clock.advance(behind + 1)


def rate(page: Page, media_seconds: float) -> float:
    """Media seconds per wall second while the video plays on by ``media_seconds``."""
    t0, c0 = page.evaluate(SAMPLE)
    try:
        page.wait_for_function(f"{CLOCK} >= {c0 + media_seconds}", timeout=30000)
    except PlaywrightTimeout:
        # Say where the player stood (a CI run once saw 1x stall here under full load).
        state = page.evaluate(
            f"(v => ({{t: v.currentTime, ready: v.readyState, paused: v.paused, "
            f"buffered: Array.from({{length: v.buffered.length}}, (_, i) => "
            f"[v.buffered.start(i), v.buffered.end(i)]), error: v.error?.message}}))({VIDEO})"
        )
        raise AssertionError(f"playback stalled at {c0}: {state}") from None
    t1, c1 = page.evaluate(SAMPLE)
    return float((c1 - c0) / (t1 - t0))


@needs_build
@pytest.mark.media
def test_playback_timeline_play_speed_snapshot_export_and_status(
    platform: Platform,
    browser: Browser,
    client: TestClient,
    admin_headers: dict[str, str],
    clock: ManualClock,
) -> None:
    seed_two_towns(platform)
    sim = add_sim_camera(client, admin_headers)
    platform.settings.media.enabled = True
    platform.media.segment_seconds = 1.0  # segments close fast
    events = Events(platform)
    with serve(create_app(platform)) as base:
        events.wait(status(sim, "online"), 30, "online")
        events.segments(sim, 10, 30)
        catch_up(clock)
        recs = client.get(
            "/api/v1/recordings", params={"channel_id": sim}, headers=admin_headers
        ).json()
        assert recs["total"] >= 10
        first = datetime.fromisoformat(recs["items"][0]["start"]).timestamp() * 1000

        page = browser.new_page(viewport=VIEWPORT)
        sign_in(page, base, "admin", ADMIN_PASSWORD, then="[data-test=nav-playback]")
        page.click("[data-test=nav-playback]")
        page.wait_for_selector("text=点击或拖拽左侧点位到此处回放录像")
        assert "录像回放" in (page.text_content(".nav") or "")
        # The channel from the panel (a click, on this page, chooses it for playback).
        page.click(f'[data-channel="{sim}"]')
        page.wait_for_function(
            f"document.querySelector('[data-test=playback-channel]').textContent.includes('{sim}')"
        )
        # Today's 24-hour bar: one recorded range at least, covering the recordings.
        page.wait_for_selector("[data-test=range]", timeout=15000)
        ranges = page.eval_on_selector_all(
            "[data-test=range]",
            "rs => rs.map(r => [Number(r.dataset.start), Number(r.dataset.end)])",
        )
        assert any(a <= first + 2000 and b > first for a, b in ranges), (ranges, first)
        assert page.locator(".timeline .label").count() >= 12  # hour ticks

        # A click on the range plays it: the video's clock advances, the playhead follows.
        # At the range's start (not its middle), so that 4x below has seconds of media ahead.
        page.click("[data-test=range] >> nth=0", position={"x": 1, "y": 4})
        page.wait_for_function(f"{CLOCK} > 0.5", timeout=20000)
        page.wait_for_selector("[data-test=playback-state][data-state=playing]")
        page.wait_for_selector("[data-test=playhead]")
        head = float(page.get_attribute("[data-test=playhead]", "data-at") or 0)
        assert first - 2000 <= head <= datetime.now(UTC).timestamp() * 1000, (head, first)

        # Speed: 4x plays clearly faster than 1x (the API has no speed parameter: playbackRate).
        normal = rate(page, 1.0)
        page.click("[data-speed='4']")
        assert page.evaluate(f"{VIDEO}.playbackRate") == 4
        fast = rate(page, 3.0)
        assert 0.4 < normal < 1.6, normal
        assert fast > 2.0 * normal, (fast, normal)
        page.click("[data-speed='1']")

        # Snapshot at the playhead: a JPEG shown in the page.
        page.click("[data-test=snapshot]")
        page.wait_for_function(
            "document.querySelector('[data-test=snapshot-img]')?.naturalWidth > 0", timeout=20000
        )
        assert (
            page.evaluate("document.querySelector('[data-test=snapshot-img]').naturalWidth") == 320
        )
        shot(page, "playback")

        # Export: the reason is required (the API's minimum length); the API's error is shown;
        # then a good range gives a file to download, and an audit record.
        catch_up(clock)
        page.click("[data-test=export]")
        page.wait_for_selector("[data-test=export-dialog]")
        page.fill("[data-test=export-reason]", "案件调阅")
        assert page.is_disabled("[data-test=export-submit]") is False
        page.fill("[data-test=export-reason]", " 案件调 ")  # 3 characters once trimmed
        assert page.is_disabled("[data-test=export-submit]")
        day = page.input_value("[data-test=export-start]")[:10]
        page.fill("[data-test=export-start]", f"{day}T00:00:00")
        page.fill("[data-test=export-end]", f"{day}T00:00:05")
        page.fill("[data-test=export-reason]", "测试案件 2026-001 调阅")
        page.click("[data-test=export-submit]")
        page.wait_for_selector("[data-test=export-error]", timeout=20000)
        assert "404" in (page.text_content("[data-test=export-error]") or "")
        start = datetime.fromtimestamp(first / 1000 - 1).astimezone()
        end = datetime.fromtimestamp(first / 1000 + 6).astimezone()
        page.fill("[data-test=export-start]", start.strftime("%Y-%m-%dT%H:%M:%S"))
        page.fill("[data-test=export-end]", end.strftime("%Y-%m-%dT%H:%M:%S"))
        page.click("[data-test=export-submit]")
        page.wait_for_selector("[data-test=export-link]", timeout=30000)
        with page.expect_download() as info:
            page.click("[data-test=export-link]")
        saved = Path(info.value.path())
        assert saved.stat().st_size > 0
        assert saved.read_bytes()[4:8] == b"ftyp"
        shot(page, "playback-export")
        audit = client.get(
            "/api/v1/audit", params={"action": "video.export"}, headers=admin_headers
        ).json()
        assert audit["total"] >= 1
        assert any(sim in str(r) for r in audit["items"]), audit["items"]

        # System status: online/total and 在线率 as the API counts them; storage for the admin.
        page.click("[data-test=nav-status]")
        page.wait_for_function(STATUS_LOADED)
        total = client.get("/api/v1/channels", params={"limit": 1}, headers=admin_headers)
        online = client.get(
            "/api/v1/channels", params={"limit": 1, "status": "online"}, headers=admin_headers
        )
        n_total, n_online = total.json()["total"], online.json()["total"]
        assert n_online >= 1
        assert page.text_content("[data-test=status-total]") == str(n_total)
        assert page.text_content("[data-test=status-online]") == str(n_online)
        ratio = page.text_content("[data-test=status-ratio]") or ""
        assert ratio == f"{n_online / n_total * 100:.1f}%"
        page.wait_for_selector("[data-test=storage-tier]", timeout=15000)
        page.wait_for_function(
            "document.querySelector('[data-test=status-recording]').textContent.includes('/')",
            timeout=15000,
        )
        assert (page.text_content("[data-test=status-recording]") or "").strip().startswith("1 /")
        page.wait_for_function(
            "document.querySelector('[data-test=status-orgs]').textContent.includes('甲镇')",
            timeout=15000,
        )
        shot(page, "status")
        page.close()


@needs_build
def test_status_without_system_manage_says_no_permission(
    platform: Platform, browser: Browser, client: TestClient, admin_headers: dict[str, str]
) -> None:
    seed_two_towns(platform)
    password = "Town-A-viewer-pass1"
    r = client.post(
        "/api/v1/users",
        headers=admin_headers,
        json={
            "username": "viewer_a",
            "password": password,
            "roles": ["viewer"],
            "scope": {"all": False, "orgs": [TOWN_A], "channels": []},
        },
    )
    assert r.status_code == 201, r.text
    with serve(create_app(platform)) as base:
        page = browser.new_page(viewport=VIEWPORT)
        sign_in(page, base, "viewer_a", password, then="[data-test=nav-playback]")
        page.click("[data-test=nav-status]")
        page.wait_for_selector("[data-test=storage-forbidden]", timeout=15000)
        assert "无权查看存储状态" in (page.text_content("[data-test=storage-forbidden]") or "")
        page.wait_for_function(STATUS_LOADED)
        viewer = client.post(
            "/api/v1/auth/login", json={"username": "viewer_a", "password": password}
        ).json()["access_token"]
        mine = client.get(
            "/api/v1/channels", params={"limit": 1}, headers={"Authorization": f"Bearer {viewer}"}
        ).json()["total"]
        assert page.text_content("[data-test=status-total]") == str(mine)
        shot(page, "status-no-permission")
        page.close()
