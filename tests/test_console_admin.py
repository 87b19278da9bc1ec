"""The console's administration pages in a real browser (Debian's Chromium, headless, through
Playwright): devices and channels with the register's import, users and roles with a scoped user
who then sees only its town, and the audit log with its filters and a record's detail.
Screenshots of each page go to test-artifacts/console/ (admin-*.png)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from fastapi.testclient import TestClient
from playwright.sync_api import Browser, Page, ViewportSize
from sqlalchemy import update

from tests.conftest import ADMIN_PASSWORD, TOWN_A, VILLAGE_A, VILLAGE_B, seed_two_towns
from tests.support.server import serve
from tests.test_console_browser import (  # the fixture and helpers of the console's other tests
    needs_build,
    shot,
    sign_in,
)
from xueliang.access.principal import SYSTEM
from xueliang.access.schemas import ScopeSpec, UserCreate
from xueliang.api.app import create_app
from xueliang.app import Platform
from xueliang.store.models import Device

pytestmark = needs_build

VIEWPORT: ViewportSize = {"width": 1440, "height": 900}
NVR = "34020200001180000001"


def ch_id(serial: int) -> str:
    return f"34020200001310{serial:06d}"


def sheet(tmp_path: Path, name: str, rows: list[list[str]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows(rows)
    path = tmp_path / name
    path.write_bytes(buf.getvalue().encode("utf-8-sig"))
    return str(path)


HEADER = [
    "通道编码",
    "点位名称",
    "设备编码",
    "设备名称",
    "设备类型",
    "接入协议",
    "组织编码",
    "经度",
]


def row_texts(page: Page, table: str) -> list[str]:
    texts = page.eval_on_selector_all(
        f"[data-test={table}] .el-table__body tr", "rs => rs.map(r => r.textContent)"
    )
    return [str(t) for t in texts]


def settled(page: Page) -> None:
    """No dialog or drawer still opening or closing (a screenshot then shows the final state)."""
    page.wait_for_function(
        '!document.querySelector(\'[class*="-enter-active"], [class*="-leave-active"]\')'
    )


def open_page(page: Page, nav: str, ready: str) -> None:
    page.click(f"[data-test=nav-{nav}]")
    page.wait_for_selector(f"[data-test={ready}]")


def test_devices_page_create_import_and_channels(
    platform: Platform,
    browser: Browser,
    tmp_path: Path,
) -> None:
    seed_two_towns(platform)
    with platform.db.transaction() as s:  # as the GB/T 28181 registrar words it
        s.execute(
            update(Device)
            .where(Device.name == "b-nvr")
            .values(status="offline", status_reason="no keepalive for 180 s (3 missed)")
        )
    with serve(create_app(platform)) as base:
        page = browser.new_page(viewport=VIEWPORT)
        sign_in(page, base, "admin", ADMIN_PASSWORD)
        open_page(page, "devices", "device-table")
        page.wait_for_selector("[data-test=device-table] >> text=a-cam-0")
        rows = row_texts(page, "device-table")
        assert len(rows) == 5, rows
        # The platform's reasons, which it records in English, in the console's language.
        assert any("b-nvr" in r and "180 秒无心跳（漏 3 次）" in r for r in rows), rows
        assert any("a-cam-0" in r and "尚未连接" in r for r in rows), rows
        assert not any("keepalive" in r or "not yet connected" in r for r in rows), rows
        # Names of organisations, not their codes; and the NVR's one channel.
        assert any("b-nvr" in r and "乙村" in r and "GB28181" in r for r in rows), rows
        assert "设备管理" in (page.text_content(".nav") or "")
        assert page.locator(".org-tree").is_hidden()  # no channel panel beside the tables

        # Search narrows the table.
        page.fill("[data-test=device-search]", "b-cam")
        page.wait_for_function(
            "document.querySelectorAll('[data-test=device-table] .el-table__body tr').length === 2"
        )
        page.fill("[data-test=device-search]", "")

        # A new RTSP camera, through the form.
        page.click("[data-test=device-add]")
        form = "[data-test=device-form]"
        page.wait_for_selector(form)
        page.fill(f"{form} input[name=name]", "东门卡口")
        page.fill(f"{form} input[name=url]", "rtsp://10.0.0.9:554/main")
        page.fill(f"{form} input[name=username]", "admin")
        page.fill(f"{form} input[name=password]", "cam-secret")
        settled(page)
        shot(page, "admin-device-form")
        page.click("[data-test=device-save]")
        page.wait_for_selector("[data-test=device-table] >> text=东门卡口")
        page.wait_for_selector(form, state="hidden")
        assert "已创建" in (page.text_content("[data-test=notice]") or "")
        made, _ = platform.devices.list(SYSTEM, q="东门卡口")
        assert [(d.url, d.username, d.has_password) for d in made] == [
            ("rtsp://10.0.0.9:554/main", "admin", True)
        ]
        shot(page, "admin-devices")

        # A GB/T 28181 device's media transport (an RTSP camera's form has none).
        assert page.locator("[data-test=device-media-transport]").count() == 0
        page.click(
            "[data-test=device-table] .el-table__row:has-text('b-nvr') [data-test=device-edit]"
        )
        page.wait_for_selector(form)
        page.click("[data-test=device-media-transport]")
        page.click(".el-select-dropdown__item:visible:has-text('TCP 主动')")
        settled(page)
        shot(page, "admin-device-form-gb")
        page.click("[data-test=device-save]")
        page.wait_for_selector(form, state="hidden")
        nvr, _ = platform.devices.list(SYSTEM, q="b-nvr")
        assert [d.media_transport for d in nvr] == ["tcp-active"]

        # Export: the register as a sheet, through the API with the caller's token.
        with page.expect_download() as got:
            page.click("[data-test=export-csv]")
        exported = Path(got.value.path()).read_bytes().decode("utf-8-sig")
        assert "东门卡口" in exported and "a-cam-0" in exported

        # Delete, after confirming.
        doomed = "[data-test=device-table] .el-table__row:has-text('b-cam-1')"
        page.click(f"{doomed} [data-test=device-delete]")
        page.click(".el-popconfirm:visible .el-button--primary")
        page.wait_for_selector(doomed, state="detached")
        assert platform.devices.list(SYSTEM, q="b-cam-1")[1] == 0

        # Import: a bad line is reported by line and column, and nothing is imported.
        page.click("[data-test=import-open]")
        bad = [ch_id(2), "一号NVR-2", NVR, "一号NVR", "nvr", "gb28181", VILLAGE_A, "200", "30.5"]
        good = [ch_id(1), "一号NVR-1", NVR, "一号NVR", "nvr", "gb28181", VILLAGE_A, "117.3", "30.5"]
        page.set_input_files(
            "[data-test=import-file]", sheet(tmp_path, "bad.csv", [HEADER, good, bad])
        )
        page.click("[data-test=import-go]")
        page.wait_for_selector("[data-test=import-errors] .el-table__body tr")
        errors = row_texts(page, "import-errors")
        assert len(errors) == 1, errors
        assert errors[0].startswith("3经度"), errors  # line 3 (the header is line 1), 经度
        assert "共 1 处问题" in (page.text_content("[data-test=import-failed]") or "")
        settled(page)
        shot(page, "admin-import-errors")
        assert platform.devices.list(SYSTEM, q="一号NVR")[1] == 0

        # The fixed sheet: imported, and the NVR's channels are there.
        fixed = [
            good,
            [*bad[:7], "117.4", "30.6"],
            [ch_id(3), "一号NVR-3", NVR, "一号NVR", "nvr", "gb28181", VILLAGE_B, "", ""],
        ]
        page.set_input_files(
            "[data-test=import-file]", sheet(tmp_path, "good.csv", [HEADER, *fixed])
        )
        page.click("[data-test=import-go]")
        page.wait_for_selector("[data-test=import-ok]")
        assert "新增通道 3 个" in (page.text_content("[data-test=import-ok]") or "")
        assert page.locator("[data-test=import-errors]").count() == 0
        page.keyboard.press("Escape")
        nvr_row = "[data-test=device-table] .el-table__row:has-text('一号NVR')"
        page.wait_for_selector(nvr_row)
        page.click(f"{nvr_row} [data-test=device-channels]")
        page.wait_for_selector("[data-test=channel-table] >> text=一号NVR-3")
        chans = row_texts(page, "channel-table")
        assert len(chans) == 3, chans
        assert any(ch_id(3) in c and "乙村" in c for c in chans), chans

        # Edit a channel: a dome camera, so it can be steered.
        first = f"[data-test=channel-table] .el-table__row:has-text('{ch_id(1)}')"
        page.click(f"{first} [data-test=channel-edit]")
        page.wait_for_selector("[data-test=channel-form]")
        page.fill("[data-test=channel-form] input[name=channel-name]", "一号NVR-东")
        page.click("[data-test=channel-ptz]")
        page.click(".el-select-dropdown__item:visible:has-text('球机')")
        page.click("[data-test=channel-save]")
        page.wait_for_selector("[data-test=channel-table] >> text=一号NVR-东")
        assert "球机" in (page.text_content(first) or "")
        assert platform.channels.get(SYSTEM, ch_id(1)).ptz
        settled(page)
        shot(page, "admin-channels")
        page.keyboard.press("Escape")

        # English: the page's labels change.
        page.click("[data-test=lang]")
        page.wait_for_function(
            "document.querySelector('[data-test=devices-page] .adm-title')"
            ".textContent === 'Devices'"
        )
        header = page.text_content("[data-test=device-table] .el-table__header") or ""
        assert "Protocol" in header and "Channels" in header and "协议" not in header
        assert "Import register" in (page.text_content("[data-test=devices-page]") or "")
        shot(page, "admin-devices-en")
        page.click("[data-test=lang]")  # back to Chinese for the other tests
        page.close()


def test_user_scoped_to_a_town_sees_only_its_devices(
    platform: Platform,
    browser: Browser,
    client: TestClient,
) -> None:
    area = seed_two_towns(platform)
    with serve(create_app(platform)) as base:
        page = browser.new_page(viewport=VIEWPORT)
        sign_in(page, base, "admin", ADMIN_PASSWORD)
        open_page(page, "users", "user-table")
        page.wait_for_selector("[data-test=user-table] [data-user=admin]")

        # A viewer of town A, with a password of ours.
        page.click("[data-test=user-add]")
        form = "[data-test=user-form]"
        page.wait_for_selector(form)
        page.fill(f"{form} input[name=username]", "viewer_a")
        page.fill(f"{form} input[name=display_name]", "甲镇查看员")
        page.click(f"{form} >> text=手动输入")
        password = "Town-A-viewer-pass1"
        page.fill(f"{form} input[name=password]", password)
        assert page.is_checked(f"{form} [data-role=viewer] input")
        page.click("[data-test=scope-orgs] .el-select__wrapper")
        node = ".el-tree-node__content:visible:has-text('甲镇')"
        page.click(f"{node} .el-checkbox")
        page.keyboard.press("Escape")
        settled(page)
        shot(page, "admin-user-form")
        page.click("[data-test=user-save]")
        page.wait_for_selector("[data-test=user-table] [data-user=viewer_a]")
        row = page.text_content("[data-test=user-table] .el-table__row:has([data-user=viewer_a])")
        assert "查看员" in (row or "") and "甲镇" in (row or "") and "从未" in (row or "")
        made = next(
            u for u in platform.users.list_users(SYSTEM, q="viewer_a", offset=0, limit=5)[0]
        )
        assert made.scope.orgs == [TOWN_A] and not made.scope.all

        # Locked by failed logins: the table says so, and an unlock clears it.
        for _ in range(platform.settings.auth.max_failed_logins):
            client.post("/api/v1/auth/login", json={"username": "viewer_a", "password": "bad"})
        page.click("[data-test=user-search]")
        page.fill("[data-test=user-search]", "viewer")
        locked_row = "[data-test=user-table] .el-table__row:has([data-user=viewer_a])"
        page.wait_for_selector(f"{locked_row} [data-test=user-locked]")
        assert "锁定至" in (page.text_content(f"{locked_row} [data-test=user-locked]") or "")
        page.click(f"{locked_row} [data-test=user-unlock]")
        page.wait_for_selector(f"{locked_row} [data-test=user-locked]", state="detached")
        assert "已解锁" in (page.text_content("[data-test=notice]") or "")
        page.fill("[data-test=user-search]", "")

        # A generated password is shown once.
        page.click("[data-test=user-add]")
        page.fill(f"{form} input[name=username]", "gen_user")
        page.click("[data-test=user-save]")
        page.wait_for_selector("[data-test=generated-password]")
        assert len((page.text_content("[data-test=generated-password]") or "").strip()) >= 12
        page.click("[data-test=generated-close]")
        gen_row = "[data-test=user-table] .el-table__row:has([data-user=gen_user])"
        page.click(f"{gen_row} [data-test=user-toggle]")
        page.wait_for_selector(f"{gen_row} >> text=已停用")
        gen = platform.users.list_users(SYSTEM, q="gen_user", offset=0, limit=5)[0]
        assert [u.enabled for u in gen] == [False]

        # Roles: built-in ones read-only, with their permissions named.
        page.click(".el-tabs__item:has-text('角色')")
        page.wait_for_selector("[data-test=role-table] >> text=审计员")
        roles = row_texts(page, "role-table")
        assert any("auditor" in r and "内置" in r and "查看审计日志" in r for r in roles), roles
        # A custom role: added here, editable (built-in ones are not).
        page.click("[data-test=role-add]")
        page.wait_for_selector("[data-test=role-form]")
        page.fill("[data-test=role-form] input[name=role-name]", "patrol")
        page.fill("[data-test=role-form] input[name=role-title]", "巡逻员")
        for label in ("查看设备与点位", "实时预览"):
            page.click(f"[data-test=role-form] .el-checkbox:has-text('{label}')")
        page.click("[data-test=role-save]")
        page.wait_for_selector("[data-test=role-table] >> text=巡逻员")
        patrol = page.text_content("[data-test=role-table] .el-table__row:has-text('patrol')")
        assert "自定义" in (patrol or "") and "编辑" in (patrol or "")
        role = next(r for r in platform.users.list_roles(SYSTEM) if r.name == "patrol")
        assert sorted(role.permissions) == ["registry.read", "video.live"]
        settled(page)
        shot(page, "admin-roles")
        page.click(".el-tabs__item:has-text('用户')")
        shot(page, "admin-users")
        page.close()

        # Logged in as that user: only town A's devices, and no user or audit pages.
        ctx = browser.new_context(viewport=VIEWPORT)
        mine = ctx.new_page()
        sign_in(mine, base, "viewer_a", password)
        mine.wait_for_selector("[data-test=nav-devices]")
        assert mine.locator("[data-test=nav-users]").count() == 0
        assert mine.locator("[data-test=nav-audit]").count() == 0
        open_page(mine, "devices", "device-table")
        mine.wait_for_selector("[data-test=device-table] >> text=a-cam-0")
        shown = " ".join(row_texts(mine, "device-table"))
        for d in area["devices_a"]:
            assert d in shown
        for d in area["devices_b"]:
            assert d not in shown
        assert "b-cam" not in shown
        assert "导入点位表" not in (mine.text_content("[data-test=devices-page]") or "")
        shot(mine, "admin-devices-scoped")
        # The users page by its address: the API refuses, and the page says why.
        mine.goto(f"{base}/console/#/users")
        mine.wait_for_selector("[data-test=api-error][data-status='403']")
        assert "用户管理" in (mine.text_content("[data-test=api-error]") or "")
        assert mine.locator("[data-test=user-table]").count() == 0
        shot(mine, "admin-users-forbidden")
        ctx.close()


def test_audit_log_filters_and_detail(
    platform: Platform,
    browser: Browser,
) -> None:
    seed_two_towns(platform)
    platform.users.create_user(
        SYSTEM,
        UserCreate(
            username="auditor1",
            password="Auditor-pass-123",
            roles=["auditor"],
            scope=ScopeSpec(orgs=[VILLAGE_A]),
        ),
    )
    with serve(create_app(platform)) as base:
        page = browser.new_page(viewport=VIEWPORT)
        sign_in(page, base, "admin", ADMIN_PASSWORD)
        open_page(page, "audit", "audit-table")
        page.wait_for_selector("[data-test=audit-table] [data-action='auth.login']")
        shot(page, "admin-audit")
        page.fill("[data-test=audit-action]", "user.create")
        page.click("[data-test=audit-search]")
        page.wait_for_function(
            "(() => { const a = [...document.querySelectorAll("
            "'[data-test=audit-table] [data-action]')];"
            " return a.length > 0 && a.every(e => e.dataset.action === 'user.create') })()"
        )
        actions = page.eval_on_selector_all(
            "[data-test=audit-table] [data-action]", "es => es.map(e => e.dataset.action)"
        )
        assert set(actions) == {"user.create"}
        page.click("[data-test=audit-table] .el-table__row:has-text('user:auditor1')")
        page.wait_for_selector("[data-test=audit-detail]")
        detail = json.loads(page.text_content("[data-test=audit-json]") or "{}")
        assert detail == {
            "roles": ["auditor"],
            "scope": {"all": False, "orgs": [VILLAGE_A], "channels": []},
        }
        assert "审计记录" in (page.text_content(".el-drawer__header") or "")
        settled(page)
        shot(page, "admin-audit-detail")
        page.keyboard.press("Escape")

        page.click("[data-test=audit-verify]")
        page.wait_for_selector("[data-test=audit-verified]")
        assert "哈希链完整" in (page.text_content("[data-test=audit-verified]") or "")
        page.close()
