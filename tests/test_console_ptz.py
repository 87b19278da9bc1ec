"""The live wall's PTZ pad (Playwright, headless Chromium): press and hold to move, release to
stop, presets. The pad is what is tested here: the platform's PTZ service receives the commands
through the public API and hands them to a recording driver registered for the simulated
camera's protocol. The ONVIF driver itself is tested against the ONVIF stand-in device in
tests/test_ptz.py."""

from __future__ import annotations

from fastapi.testclient import TestClient
from playwright.sync_api import Browser

from tests.conftest import ADMIN_PASSWORD
from tests.support.media import Events, status
from tests.support.server import serve
from tests.support.wait import wait_until
from tests.test_console_browser import VIEWPORT, add_sim_camera, needs_build, shot, sign_in
from xueliang.api.app import create_app
from xueliang.app import Platform
from xueliang.ptz.commands import Move, Preset
from xueliang.ptz.driver import PresetView, PtzTarget

pytestmark = [needs_build]


class RecordingDriver:
    def __init__(self) -> None:
        self.seen: list[object] = []

    async def move(self, target: PtzTarget, move: Move) -> None:
        self.seen.append(move)

    async def stop(self, target: PtzTarget) -> None:
        self.seen.append("stop")

    async def presets(self, target: PtzTarget) -> list[PresetView]:
        return [PresetView("1", "大门"), PresetView("2", "路口")]

    async def preset(self, target: PtzTarget, preset: Preset) -> str | None:
        self.seen.append(preset)
        return "3" if preset.op == "set" else None


def test_ptz_pad_moves_while_held_and_stops_on_release(
    platform: Platform, browser: Browser, client: TestClient, admin_headers: dict[str, str]
) -> None:
    driver = RecordingDriver()
    platform.ptz.register_driver("sim", driver)
    dome = add_sim_camera(client, admin_headers, "球机")
    fixed = add_sim_camera(client, admin_headers, "枪机")
    r = client.patch(f"/api/v1/channels/{dome}", json={"ptz_type": "dome"}, headers=admin_headers)
    assert r.status_code == 200 and r.json()["ptz"] is True
    platform.settings.media.enabled = True
    events = Events(platform)
    with serve(create_app(platform)) as base:
        events.wait(status(dome, "online"), 30, "online")
        page = browser.new_page(viewport=VIEWPORT)
        sign_in(page, base, "admin", ADMIN_PASSWORD)
        page.click("[data-layout='4']")
        page.click(f'[data-channel="{fixed}"]')
        page.wait_for_selector(".tile[data-index='0'] .name")
        assert page.locator("[data-test=ptz-pad]").count() == 0  # a fixed camera: no pad
        page.click(f'[data-channel="{dome}"]')
        page.wait_for_selector(".tile[data-index='1'] .name")
        assert page.locator("[data-test=ptz-pad]").count() == 0  # the next, empty tile is selected
        page.click(".tile[data-index='1']")  # the operator picks the dome's tile
        page.wait_for_selector("[data-test=ptz-pad]")
        page.wait_for_selector("[data-test=ptz-presets] option:has-text('大门')", state="attached")

        # Press and hold "up" at speed 0.5: a move upwards; release: a stop.
        page.hover("[data-ptz=up]")
        page.mouse.down()
        wait_until(lambda: any(isinstance(x, Move) for x in driver.seen), 10, "a move")
        move = next(x for x in driver.seen if isinstance(x, Move))
        assert move.tilt == 0.5 and move.pan == 0 and move.timeout == 2
        page.mouse.up()
        wait_until(lambda: "stop" in driver.seen, 10, "a stop on release")
        shot(page, "live-ptz")

        # Zoom in, then a preset: go to 大门, and save the view as a new one.
        page.hover("[data-ptz=zoom-in]")
        page.mouse.down()
        wait_until(lambda: any(isinstance(x, Move) and x.zoom > 0 for x in driver.seen), 10, "zoom")
        page.mouse.up()
        page.select_option("[data-test=ptz-presets]", "1")
        page.click("[data-test=ptz-goto]")
        wait_until(lambda: Preset("goto", "1", None) in driver.seen, 10, "goto preset 1")
        page.click("[data-test=ptz-save]")
        wait_until(
            lambda: any(isinstance(x, Preset) and x.op == "set" for x in driver.seen), 10, "set"
        )
        saved = next(x for x in driver.seen if isinstance(x, Preset) and x.op == "set")
        assert saved.preset == "3" and saved.name == "预置位3"  # 1 and 2 are taken
        audit = client.get(
            "/api/v1/audit", params={"action": "ptz.control"}, headers=admin_headers
        ).json()
        assert audit["total"] >= 4  # every move and preset, not the stops
        page.close()
