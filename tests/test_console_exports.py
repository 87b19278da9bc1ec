"""Exports in the web console (Debian's Chromium, headless, driven by Playwright): the project's
simulator registers a GB/T 28181 camera; on the playback page, with the device's recordings
chosen, the export dialog downloads a range from the device at the speed chosen
(POST /channels/{id}/device-download) and follows the job (GET /exports/{id} about once a
second) with a progress bar until the file is ready: its SHA-256 shown, a link that saves it. A
running download is cancelled from the dialog (what arrived is kept: partial, with the server's
words), another is left running when the dialog closes (the dialog stops asking) and is cancelled
from 导出记录, the list of exports, which only users allowed to export see. Screenshots go to
test-artifacts/console/."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, Page

from tests.conftest import ADMIN_PASSWORD
from tests.support.gb import gb_platform, online_channels, simulator_process
from tests.support.server import serve
from tests.support.wait import wait_until
from tests.test_console_browser import VIEWPORT, needs_build, shot, sign_in
from xueliang.api.app import create_app
from xueliang.app import Platform

pytestmark = [pytest.mark.media, needs_build]

LOCAL = "%Y-%m-%dT%H:%M:%S"  # <input type="datetime-local" step="1">


@pytest.fixture
def gb(platform: Platform) -> Iterator[tuple[Platform, str]]:
    """The platform with its SIP server and media workers, served by uvicorn (console and API)."""
    with gb_platform(platform, media=True) as base:
        yield platform, base


@pytest.fixture
def simulator(gb: tuple[Platform, str]) -> Iterator[subprocess.Popen[str]]:
    with simulator_process(gb[0], channels=1) as sim:  # a camera of one channel
        yield sim


def export_of(client: TestClient, headers: dict[str, str], export_id: int) -> dict[str, Any]:
    r = client.get(f"/api/v1/exports/{export_id}", headers=headers)
    assert r.status_code == 200, r.text
    view: dict[str, Any] = r.json()
    return view


def progressing(client: TestClient, headers: dict[str, str], export_id: int) -> None:
    """The download has received something (a cancel then keeps it as partial)."""
    wait_until(
        lambda: export_of(client, headers, export_id)["progress"] > 0,
        30,
        f"export {export_id} to make progress",
    )


def start_download(page: Page, start: datetime, seconds: int, speed: int, reason: str) -> int:
    """Fill the open export dialog and start; the 202's export (running), its id."""
    page.fill("[data-test=export-start]", start.strftime(LOCAL))
    page.fill("[data-test=export-end]", (start + timedelta(seconds=seconds)).strftime(LOCAL))
    page.fill("[data-test=export-reason]", reason)
    page.select_option("[data-test=export-speed]", str(speed))
    with page.expect_response(lambda r: r.url.endswith("/device-download")) as answer:
        page.click("[data-test=export-submit]")
    assert answer.value.status == 202, answer.value.text()
    body = json.loads(answer.value.request.post_data or "{}")
    assert body["speed"] == speed and body["reason"] == reason, body
    view: dict[str, Any] = answer.value.json()
    assert view["status"] == "running" and view["source"] == "device", view
    return int(view["id"])


def test_device_downloads_are_followed_cancelled_and_listed(
    gb: tuple[Platform, str],
    simulator: subprocess.Popen[str],
    browser: Browser,
    client: TestClient,
    admin_headers: dict[str, str],
) -> None:
    platform, base = gb
    (channel,) = online_channels(client, admin_headers, 1, "the simulated camera's channel")
    cid = str(channel["id"])
    page = browser.new_page(viewport=VIEWPORT, accept_downloads=True)
    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.url) if "/api/v1/exports/" in r.url else None)
    sign_in(page, base, "admin", ADMIN_PASSWORD, then="[data-test=wall]")
    page.wait_for_selector("[data-test=nav-exports]")  # once the permissions are known
    assert (page.text_content("[data-test=nav-exports]") or "").strip() == "导出记录"

    # Playback, the device's recordings: the export button downloads from the device.
    page.click("[data-test=nav-playback]")
    page.click(f'[data-channel="{cid}"]')
    page.click("[data-test=source-device]")
    page.wait_for_selector("[data-test=range].device", timeout=20000)
    assert not page.is_disabled("[data-test=export]")
    page.click("[data-test=export]")
    page.wait_for_selector("[data-test=export-dialog][data-source=device]")
    assert "从设备下载录像" in (page.text_content("[data-test=export-dialog]") or "")
    assert page.input_value("[data-test=export-speed]") == "4"  # the API's default
    speeds = page.eval_on_selector_all(
        "[data-test=export-speed] option", "os => os.map(o => o.value)"
    )
    assert speeds == ["1", "2", "4", "8", "16"]

    # 8 s recorded an hour ago, at 8x: followed to done, the SHA-256 shown, the file saved.
    an_hour_ago = datetime.now().replace(microsecond=0) - timedelta(hours=1)
    first = start_download(page, an_hour_ago, 8, 8, "案件 2026-120 调取")
    page.wait_for_selector("[data-test=download-job][data-status=done]", timeout=60000)
    status = page.text_content("[data-test=download-status]") or ""
    assert status.startswith("下载完成") and "MB" in status, status
    assert page.get_attribute("[data-test=download-progress]", "aria-valuenow") == "100"
    page.wait_for_selector("[data-test=export-link]", timeout=20000)
    done = export_of(client, admin_headers, first)
    assert done["status"] == "done" and len(done["sha256"]) == 64, done
    assert page.text_content("[data-test=export-sha]") == f"SHA-256 {done['sha256']}"
    assert page.locator("[data-test=download-cancel]").count() == 0
    assert page.locator("[data-test=download-error]").count() == 0
    shot(page, "export-device-done")
    with page.expect_download() as info:
        page.click("[data-test=export-link]")
    saved = Path(info.value.path()).read_bytes()
    assert saved[4:8] == b"ftyp"
    assert hashlib.sha256(saved).hexdigest() == done["sha256"]

    # Ten minutes at 1x: running with its progress; cancelled from the dialog, kept as partial
    # with the server's words and a file.
    second = start_download(page, an_hour_ago + timedelta(minutes=1), 600, 1, "案件 2026-121 调取")
    page.wait_for_selector("[data-test=download-job][data-status=running]")
    progressing(client, admin_headers, second)
    page.wait_for_function(
        "document.querySelector('[data-test=download-status]').textContent.includes('下载中')"
    )
    assert page.is_visible("[data-test=download-cancel]")
    assert page.is_disabled("[data-test=export-submit]")  # one download at a time here
    shot(page, "export-device-running")
    with page.expect_response(lambda r: r.url.endswith(f"/exports/{second}/cancel")) as cancel:
        page.click("[data-test=download-cancel]")
    assert cancel.value.status == 200
    page.wait_for_selector("[data-test=download-job][data-status=partial]", timeout=20000)
    assert "部分下载" in (page.text_content("[data-test=download-status]") or "")
    assert "cancelled" in (page.text_content("[data-test=download-error]") or "")
    page.wait_for_selector("[data-test=export-link]", timeout=20000)
    assert len(page.text_content("[data-test=export-sha]") or "") == len("SHA-256 ") + 64
    shot(page, "export-device-partial")

    # Another, left running: the dialog closed, it stops asking about it.
    third = start_download(page, an_hour_ago + timedelta(minutes=20), 600, 1, "案件 2026-122 调取")
    page.wait_for_selector("[data-test=download-job][data-status=running]")
    page.wait_for_function(
        f"performance.getEntriesByType('resource').some(e => e.name.endsWith('/exports/{third}'))"
    )
    page.click("[data-test=export-dialog] .actions button[type=button]")  # 关闭
    page.wait_for_selector("[data-test=export-dialog]", state="detached")
    page.wait_for_timeout(300)  # a poll already on its way
    asked = sum(u.endswith(f"/exports/{third}") for u in polls)
    page.wait_for_timeout(2500)
    assert sum(u.endswith(f"/exports/{third}") for u in polls) == asked
    assert export_of(client, admin_headers, third)["status"] == "running"

    # 导出记录: the three, newest first; the running one with its progress and a cancel.
    page.click("[data-test=nav-exports]")
    page.wait_for_selector("[data-test=export-row]")
    page.wait_for_function(
        "document.querySelectorAll('[data-test=export-row]').length === 3", timeout=10000
    )
    rows = page.eval_on_selector_all(
        "[data-test=export-row]",
        "rs => rs.map(r => [Number(r.dataset.id), r.dataset.status, r.dataset.source])",
    )
    assert rows == [
        [third, "running", "device"],
        [second, "partial", "device"],
        [first, "done", "device"],
    ], rows
    table = page.locator("[data-test=exports-table]")
    assert table.locator("[data-test=export-source]").first.text_content() == "设备录像"
    statuses = table.locator("[data-test=export-status]").all_text_contents()
    assert statuses[0].strip().startswith("下载中") and statuses[2].strip() == "已完成", statuses
    sha = table.locator("[data-test=export-sha]").last
    assert sha.get_attribute("title") == done["sha256"]
    assert (sha.text_content() or "") == done["sha256"][:12] + "…"
    assert "案件 2026-120 调取" in (table.text_content() or "")
    assert "admin" in (table.text_content() or "")
    assert table.locator("[data-test=export-download]").count() == 2
    assert table.locator("[data-test=export-cancel]").count() == 1
    progressing(client, admin_headers, third)
    shot(page, "exports-list-running")

    # Cancelled from the list: partial, with a file.
    with page.expect_response(lambda r: r.url.endswith(f"/exports/{third}/cancel")) as cancel:
        page.click("[data-test=export-cancel]")
    assert cancel.value.status == 200
    page.wait_for_selector(f"[data-test=export-row][data-id='{third}'][data-status=partial]")
    page.wait_for_selector("[data-test=exports-notice]")
    assert table.locator("[data-test=export-cancel]").count() == 0
    assert table.locator("[data-test=export-download]").count() == 3
    with page.expect_download() as info:
        table.locator("[data-test=export-download]").last.click()
    assert hashlib.sha256(Path(info.value.path()).read_bytes()).hexdigest() == done["sha256"]
    wait_until(lambda: platform.gb28181.streams.sessions() == [], 15, "every download to end")
    page.mouse.move(0, 0)
    shot(page, "exports-list")

    page.click("[data-test=lang]")
    page.wait_for_function(
        "document.querySelector('[data-test=nav-exports]').textContent.trim() === 'Exports'"
    )
    assert "Device" in (table.text_content() or "")
    assert "cancelled; what arrived is kept" in (
        page.text_content("[data-test=exports-notice]") or ""
    )
    assert "Done" in (table.text_content() or "")
    shot(page, "exports-list-en")
    page.click("[data-test=lang]")
    page.close()


def test_the_exports_page_is_offered_only_to_those_allowed_to_export(
    platform: Platform, browser: Browser, client: TestClient, admin_headers: dict[str, str]
) -> None:
    password = "Viewer-pass-2026"
    r = client.post(
        "/api/v1/users",
        headers=admin_headers,
        json={
            "username": "viewer",
            "password": password,
            "roles": ["viewer"],
            "scope": {"all": True, "orgs": [], "channels": []},
        },
    )
    assert r.status_code == 201, r.text
    with serve(create_app(platform)) as base:
        page = browser.new_page(viewport=VIEWPORT)
        sign_in(page, base, "viewer", password, then="[data-test=nav-playback]")
        page.wait_for_selector(
            "[data-test=nav-devices]"
        )  # its permissions are known (registry.read)
        assert page.locator("[data-test=nav-exports]").count() == 0
        # Typed in by hand, the page says which permission it needs.
        page.goto(f"{base}/console/#/exports")
        page.wait_for_selector("[data-test=api-error][data-status='403']", timeout=15000)
        assert "录像导出" in (page.text_content("[data-test=api-error]") or "")
        page.close()
