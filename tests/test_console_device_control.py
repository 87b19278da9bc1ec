"""GB/T 28181 device control in the web console (Debian's Chromium, headless, Playwright).

The platform runs its SIP server; the project's simulator registers an NVR of two channels (a
dome and a fixed camera) from a loop of its own in this process, so the test reads what the
device received. On the devices page the NVR's control menu reboots it after a confirmation
(TeleBoot) and arms it (SetGuard); on the live wall, beside the PTZ pad, the dome's recording
on the device is started (RecordCmd Record) and its presets, read from the device with
PresetQuery, are listed. A device answering ERROR shows its error. A viewer without
``device.control`` sees none of it. Screenshots go to test-artifacts/console/.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, Page

from tests.conftest import ADMIN_PASSWORD
from tests.support.gb import gb_platform, online_channels, sim_thread
from tests.support.wait import wait_until
from tests.test_console_browser import VIEWPORT, needs_build, shot, sign_in
from xueliang.access.principal import SYSTEM
from xueliang.access.schemas import ScopeSpec, UserCreate
from xueliang.app import Platform
from xueliang.gb28181 import manscdp
from xueliang.gb28181 import ptz as codec
from xueliang.gb28181.simulator.device import Device

pytestmark = [needs_build]

VIEWER_PASSWORD = "Viewer-Passw0rd-1"


@pytest.fixture
def gb(platform: Platform) -> Iterator[tuple[Platform, str]]:
    """The platform with its SIP server, served by uvicorn (console and API); no media."""
    with gb_platform(platform) as base:
        yield platform, base


@pytest.fixture
def device(gb: tuple[Platform, str]) -> Iterator[Device]:
    with sim_thread(gb[0], channels=2, keepalive=2.0) as thread:
        yield thread.start()


def _controls(device: Device, count: int) -> list[manscdp.DeviceControl]:
    got: list[manscdp.DeviceControl] = []

    def arrived() -> bool:
        got[:] = list(device.controls)
        return len(got) >= count

    wait_until(arrived, 15, f"{count} DeviceControl(s) at the device")
    return got


def _settled(page: Page) -> None:
    """No dialog or menu still opening or closing (a screenshot then shows the final state)."""
    page.wait_for_function(
        '!document.querySelector(\'[class*="-enter-active"], [class*="-leave-active"]\')'
    )


def _notice(page: Page, text: str) -> None:
    page.wait_for_function(
        "t => (document.querySelector('[data-test=notice]')?.textContent ?? '').includes(t)",
        arg=text,
    )


def test_reboot_guard_record_and_presets_from_the_console(
    gb: tuple[Platform, str],
    device: Device,
    browser: Browser,
    client: TestClient,
    admin_headers: dict[str, str],
) -> None:
    platform, base = gb
    dev = device.config.device_id
    remote = device.config.channels[0].channel_id
    (dome,) = [c for c in online_channels(client, admin_headers) if c["ptz"]]
    # Two presets saved on the dome (PTZCmd set): the device's table is what the pad lists.
    for n in (4, 1):
        r = client.post(
            f"/api/v1/channels/{dome['id']}/ptz",
            headers=admin_headers,
            json={"action": "preset", "op": "set", "preset": n},
        )
        assert r.status_code == 200, r.text

    page = browser.new_page(viewport=VIEWPORT)
    sign_in(page, base, "admin", ADMIN_PASSWORD, then="[data-test=wall]")
    page.click("[data-test=nav-devices]")
    row = f"[data-test=device-table] .el-table__row:has-text('{dev}')"
    page.wait_for_selector(row)

    # 远程重启: from the row's control menu, only after the confirmation.
    page.click(f"{row} [data-test=device-control]")
    page.wait_for_selector("[data-test=control-reboot]:visible")
    menu = page.text_content(".el-dropdown-menu:visible") or ""
    assert all(word in menu for word in ("远程重启", "布防", "撤防")), menu
    _settled(page)
    shot(page, "devices-gb-control-menu")
    page.click("[data-test=control-reboot]:visible")
    page.wait_for_selector("[data-test=reboot-confirm]:visible")
    dialog = page.text_content(".el-dialog:visible") or ""
    assert "确定远程重启设备" in dialog, dialog
    _settled(page)
    shot(page, "devices-gb-reboot-confirm")
    assert list(device.controls) == []  # nothing is sent before the confirmation
    page.click("[data-test=reboot-confirm]")
    (boot,) = _controls(device, 1)
    assert (boot.device_id, boot.tele_boot) == (dev, "Boot")
    _notice(page, "远程重启：成功")

    # 布防.
    page.click(f"{row} [data-test=device-control]")
    page.click("[data-test=control-guard]:visible")
    guard = _controls(device, 2)[1]
    assert (guard.device_id, guard.guard_cmd) == (dev, "SetGuard")
    _notice(page, "布防：成功")
    _settled(page)
    shot(page, "devices-gb-guarded")

    # The live wall: the dome's tile selected shows the PTZ pad with the device's presets and,
    # below it, the device's own recording.
    page.click("a.nav-item:has-text('实时预览')")
    page.click("[data-layout='4']")
    page.click(f'[data-channel="{dome["id"]}"]')
    page.wait_for_selector(".tile[data-index='0'] .name")
    page.click(".tile[data-index='0']")
    page.wait_for_selector("[data-test=ptz-pad]")
    page.wait_for_selector("[data-test=ptz-presets] option:has-text('预置点4')", state="attached")
    options = page.eval_on_selector_all(
        "[data-test=ptz-presets] option", "os => os.map(o => [o.value, o.textContent.trim()])"
    )
    assert options == [["", "预置位"], ["1", "预置点1"], ["4", "预置点4"]], options
    page.select_option("[data-test=ptz-presets]", "4")
    page.click("[data-test=ptz-goto]")  # PTZCmd: call preset 4
    wait_until(
        lambda: any(
            d.command == codec.Preset(codec.PresetOp.CALL, 4) for _, d in device.ptz_commands
        ),
        15,
        "the call of preset 4 at the device",
    )
    page.click("[data-test=record-start]")
    record = _controls(device, 3)[2]
    assert (record.device_id, record.record_cmd) == (remote, "Record")
    page.wait_for_selector("[data-test=record-result]:has-text('开始录像：成功')")
    shot(page, "live-gb-device-control")

    # A device that refuses says so, in its words.
    device.control_result = "ERROR"
    page.click("[data-test=record-stop]")
    page.wait_for_selector("[data-test=record-error]")
    error = page.text_content("[data-test=record-error]") or ""
    assert "停止录像" in error and "ERROR" in error and "device_error" in error, error
    shot(page, "live-gb-device-control-error")
    r = client.get("/api/v1/audit", params={"action": "device.control"}, headers=admin_headers)
    assert r.status_code == 200, r.text
    records = sorted(r.json()["items"], key=lambda x: x["seq"])
    assert [(x["detail"]["action"], x["outcome"]) for x in records] == [
        ("reboot", "ok"),
        ("guard", "ok"),
        ("record", "ok"),
        ("stop_record", "failed"),
    ]
    page.close()

    # A viewer (no device.control): no control menu on the devices page and no device
    # recording beside the dome's PTZ pad.
    platform.users.create_user(
        SYSTEM,
        UserCreate(
            username="watcher",
            password=VIEWER_PASSWORD,
            roles=["viewer"],
            scope=ScopeSpec(all=True),
        ),
    )
    ctx = browser.new_context(viewport=VIEWPORT)
    mine = ctx.new_page()
    sign_in(mine, base, "watcher", VIEWER_PASSWORD, then="[data-test=wall]")
    mine.click("[data-test=nav-devices]")
    mine.wait_for_selector(row)
    assert mine.locator("[data-test=device-control]").count() == 0
    mine.click("a.nav-item:has-text('实时预览')")
    mine.click("[data-layout='4']")
    mine.click(f'[data-channel="{dome["id"]}"]')
    mine.wait_for_selector(".tile[data-index='0'] .name")
    mine.click(".tile[data-index='0']")
    mine.wait_for_selector("[data-test=ptz-pad]")
    assert mine.locator("[data-test=device-record]").count() == 0
    ctx.close()
