"""The console's map (Playwright, headless Chromium): channels as dots by status, coverage per
area, a plain background when no tile server is configured or reachable, tiles when one is."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from fastapi.testclient import TestClient
from playwright.sync_api import Browser, Route

from tests.conftest import ADMIN_PASSWORD, TOWN_A, TOWN_B, seed_two_towns
from tests.support.rtsp_peer import free_port
from tests.support.server import serve
from tests.test_console_browser import (  # the fixture and helpers of the console's other tests
    VIEWPORT,
    needs_build,
    shot,
    sign_in,
)
from xueliang.api.app import create_app
from xueliang.app import Platform

pytestmark = needs_build

DOTS = "Number(document.querySelector('[data-test=map]')?.dataset.dots ?? -1)"
# A 1×1 PNG: what a tile server answers, as far as the map cares.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def place(
    client: TestClient, headers: dict[str, str], channel: str, lon: float, lat: float
) -> None:
    r = client.patch(
        f"/api/v1/channels/{channel}", json={"longitude": lon, "latitude": lat}, headers=headers
    )
    assert r.status_code == 200, r.text


def test_map_shows_channels_by_status_with_coverage_per_area(
    platform: Platform, browser: Browser, client: TestClient, admin_headers: dict[str, str]
) -> None:
    area = seed_two_towns(platform)
    place(client, admin_headers, area["a"][0], 117.280, 31.860)
    place(client, admin_headers, area["a"][1], 117.300, 31.870)
    place(client, admin_headers, area["b"][0], 117.350, 31.900)
    platform.channels.set_status(area["a"][0], "online", None, datetime.now(UTC))
    with serve(create_app(platform)) as base:
        page = browser.new_page(viewport=VIEWPORT)
        sign_in(page, base, "admin", ADMIN_PASSWORD)
        page.click("[data-test=nav-map]")
        page.wait_for_function(f"{DOTS} === 3", timeout=15000)
        assert page.text_content("[data-test=map-online]") == "1"
        assert page.text_content("[data-test=map-offline]") == "2"
        # No tile server configured: the plain background says so, and has its grid.
        assert "简易底图" in (page.text_content("[data-test=map-plain]") or "")
        page.wait_for_selector(".grid-label")
        # Coverage: town A has its two cameras and the NVR channel in its grid; one online.
        page.wait_for_selector(f"tr[data-org='{TOWN_A}']")
        cells = page.locator(f"tr[data-org='{TOWN_A}'] td").all_text_contents()
        assert [c.strip() for c in cells] == ["甲镇", "3", "1", "33.3%", "2"]
        shot(page, "map")

        # Picking town B shows its one placed camera; the map centres on it.
        page.click(f"tr[data-org='{TOWN_B}']")
        page.wait_for_function(f"{DOTS} === 1")
        page.wait_for_timeout(400)  # the fit animation: the dot settles at the centre
        box = page.locator("[data-test=map]").bounding_box()
        assert box is not None
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        popup = page.wait_for_selector("[data-test=map-popup]")
        assert area["b"][0] in (popup.text_content() or "")
        page.click("[data-test=map-watch]")
        page.wait_for_selector("[data-test=wall]")
        page.wait_for_function(
            "Array.from(document.querySelectorAll('.tile .name'))"
            ".some(e => e.textContent === 'b-cam-0')"
        )

        page.click("[data-test=nav-map]")
        page.click("[data-test=lang]")
        page.wait_for_selector("text=Coverage by area")
        assert "coordinate grid" in (page.text_content("[data-test=map-plain]") or "")
        shot(page, "map-en")
        page.click("[data-test=lang]")
        page.close()


def test_map_tiles_when_reachable_and_a_plain_background_when_not(
    platform: Platform, browser: Browser, client: TestClient, admin_headers: dict[str, str]
) -> None:
    area = seed_two_towns(platform)
    place(client, admin_headers, area["a"][0], 117.28, 31.86)
    with serve(create_app(platform)) as base:
        # Configured but unreachable (a port nobody listens on): plain, and it says why.
        platform.settings.map.tile_url = f"http://127.0.0.1:{free_port()}/{{z}}/{{x}}/{{y}}.png"
        page = browser.new_page(viewport=VIEWPORT)
        sign_in(page, base, "admin", ADMIN_PASSWORD)
        page.click("[data-test=nav-map]")
        page.wait_for_function(f"{DOTS} === 1", timeout=15000)
        note = page.wait_for_selector("[data-test=map-plain]", timeout=15000)
        assert "不可达" in (note.text_content() or "")
        page.close()

        # A tile server that answers (this page's requests for tiles are served here).
        platform.settings.map.tile_url = "http://127.0.0.1:9/tiles/{z}/{x}/{y}.png"
        platform.settings.map.center = (117.28, 31.86)
        page = browser.new_page(viewport=VIEWPORT)
        served: list[str] = []

        def tile(route: Route) -> None:
            served.append(route.request.url)
            route.fulfill(body=PNG, content_type="image/png")

        page.route("http://127.0.0.1:9/tiles/**", tile)
        sign_in(page, base, "admin", ADMIN_PASSWORD)
        page.click("[data-test=nav-map]")
        page.wait_for_selector(".leaflet-tile-loaded", timeout=15000)
        page.wait_for_function(f"{DOTS} === 1")
        assert page.locator("[data-test=map-plain]").count() == 0
        assert served and all("/tiles/13/" in u for u in served[:4])  # the configured zoom
        page.close()
