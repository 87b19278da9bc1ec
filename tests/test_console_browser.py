"""The web console (console/, built into xueliang/web/console) in a real browser: Debian's
Chromium, headless, driven by Playwright. Log in, see the organisation tree and channels, open a
4-tile live wall of simulated cameras and see every tile's video advance, switch language; a user
scoped to one town sees only that town. Screenshots of each page go to test-artifacts/console/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, Page, Route

from tests.conftest import ADMIN_PASSWORD, TOWN_A, TOWN_B, VILLAGE_A, seed_two_towns
from tests.support.media import Events, status
from tests.support.rtsp_peer import free_port
from tests.support.server import serve
from xueliang.api import app as app_module
from xueliang.api.app import create_app
from xueliang.app import Platform
from xueliang.media.model import StatusChanged

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "test-artifacts" / "console"
BUILT = (app_module.CONSOLE / "index.html").is_file()
needs_build = pytest.mark.skipif(
    not BUILT, reason="the web console is not built (run `make install`, which builds console/)"
)
VIEWPORT = {"width": 1440, "height": 900}


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def sign_in(
    page: Page, base: str, username: str, password: str, *, then: str | None = None
) -> None:
    """Log in through the form; ``then``: a selector to wait for (the page after login)."""
    page.goto(f"{base}/")
    page.wait_for_selector("input[name=username]")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("[data-test=login-submit]")
    if then is not None:
        page.wait_for_selector(then)


def add_sim_camera(
    client: TestClient, headers: dict[str, str], name: str, org: str | None = None
) -> str:
    body = {"name": name, "protocol": "sim", "url": "sim://h264/320x240@25?gop=25"}
    if org:
        body["org"] = org
    r = client.post("/api/v1/devices", json=body, headers=headers)
    assert r.status_code == 201, r.text
    chans = client.get("/api/v1/channels", params={"device_id": r.json()["id"]}, headers=headers)
    return str(chans.json()["items"][0]["id"])


# --- serving: no browser needed ---------------------------------------------------------------


@needs_build
def test_root_redirects_to_the_console(client: TestClient) -> None:
    r = client.get("/", follow_redirects=False)
    assert r.status_code == 307
    assert r.headers["location"] == "/console/"
    page = client.get("/console/")
    assert page.status_code == 200
    assert '<div id="app">' in page.text
    assert client.get("/console/%00").status_code == 404
    assert client.get("/api/v1/health").status_code == 200


def test_without_a_build_the_root_says_how_to_build(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app_module, "CONSOLE", tmp_path / "no-console")
    with TestClient(create_app(platform)) as c:
        r = c.get("/", follow_redirects=False)
        assert r.status_code == 200
        assert "make install" in r.text
        missing = c.get("/console/")
        assert missing.status_code == 404
        assert "make install" in missing.text
        assert c.get("/api/v1/health").status_code == 200


def test_console_files_go_out_gzipped_and_hashed_assets_are_cached_for_good(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build = tmp_path / "console"
    (build / "assets").mkdir(parents=True)
    script = ("console.log('雪亮');\n" * 400).encode()
    (build / "index.html").write_text('<div id="app"></div>' + " " * 2000)
    (build / "assets" / "app-1a2b3c.js").write_bytes(script)
    (build / "assets" / "tiny-9f8e.css").write_text("a{}")
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "precompress.py"), str(build)],
        check=True,
        capture_output=True,
    )
    assert (build / "assets" / "app-1a2b3c.js.gz").is_file()
    assert not (build / "assets" / "tiny-9f8e.css.gz").exists()  # too small to gain
    monkeypatch.setattr(app_module, "CONSOLE", build)
    with TestClient(create_app(platform)) as c:
        r = c.get("/console/assets/app-1a2b3c.js", headers={"Accept-Encoding": "gzip"})
        assert r.status_code == 200
        assert r.headers["content-encoding"] == "gzip"
        assert r.headers["content-type"].startswith("text/javascript")
        assert int(r.headers["content-length"]) < len(script) / 10
        assert r.content == script  # the client unpacked it: the same bytes
        assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
        plain = c.get("/console/assets/app-1a2b3c.js", headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers and plain.content == script
        small = c.get("/console/assets/tiny-9f8e.css", headers={"Accept-Encoding": "gzip"})
        assert small.text == "a{}" and "content-encoding" not in small.headers
        page = c.get("/console/", headers={"Accept-Encoding": "gzip"})
        assert page.headers["content-encoding"] == "gzip"
        assert page.headers["cache-control"] == "no-cache"
        assert '<div id="app">' in page.text
        assert c.get("/console/assets/missing.js").status_code == 404


# --- in the browser ---------------------------------------------------------------------------


@needs_build
def test_login_errors_wrong_password_and_lockout(
    platform: Platform, browser: Browser, client: TestClient
) -> None:
    with serve(create_app(platform)) as base:
        page = browser.new_page(viewport=VIEWPORT)
        page.goto(f"{base}/")
        page.wait_for_selector("input[name=username]")
        assert page.title() == "雪亮视频联网平台"
        shot(page, "login")
        sign_in(page, base, "admin", "not-the-password")
        page.wait_for_selector("[data-test=login-error]")
        assert "用户名或密码错误" in page.text_content("[data-test=login-error]")
        shot(page, "login-wrong-password")
        # Lock the account (the failures before it) and try once more: the lock, with its time.
        for _ in range(platform.settings.auth.max_failed_logins):
            client.post("/api/v1/auth/login", json={"username": "admin", "password": "bad"})
        sign_in(page, base, "admin", ADMIN_PASSWORD)
        page.wait_for_function(
            "document.querySelector('[data-test=login-error]')?.textContent.includes('锁定')"
        )
        text = page.text_content("[data-test=login-error]") or ""
        assert "分钟" in text
        shot(page, "login-locked")
        page.close()


@needs_build
@pytest.mark.media
def test_live_wall_of_four_simulated_cameras_advances(
    platform: Platform, browser: Browser, client: TestClient, admin_headers: dict[str, str]
) -> None:
    area = seed_two_towns(platform)
    sims = [add_sim_camera(client, admin_headers, f"模拟相机{n + 1}", VILLAGE_A) for n in range(4)]
    platform.settings.media.enabled = True
    events = Events(platform)
    with serve(create_app(platform)) as base:
        waiting = set(sims)
        while waiting:  # one wait for all: an event is consumed by the wait that sees it
            ev = events.wait(
                lambda e: any(status(s, "online")(e) for s in waiting), 30, f"{waiting} online"
            )
            assert isinstance(ev, StatusChanged)
            waiting.discard(ev.channel_id)
        page = browser.new_page(viewport=VIEWPORT)
        sign_in(page, base, "admin", ADMIN_PASSWORD)
        page.wait_for_selector("[data-test=wall]")
        # The tree: the organisations, and the channels with the simulated cameras among them.
        page.wait_for_selector(".org-tree >> text=甲镇")
        for sim in sims:
            page.wait_for_selector(f'[data-channel="{sim}"]')
        assert "实时预览" in page.text_content(".nav")
        # Search by ID narrows the list to that channel.
        page.fill(".search input", sims[2])
        page.wait_for_function(
            "document.querySelectorAll('[data-channel]').length === 1", timeout=10000
        )
        assert page.get_attribute("[data-channel]", "data-channel") == sims[2]
        page.fill(".search input", "")
        page.wait_for_selector(f'[data-channel="{sims[0]}"]')

        # Four tiles: drag the first camera into tile 0, click-to-add the other three.
        page.click("[data-layout='4']")
        page.drag_and_drop(f'[data-channel="{sims[0]}"]', ".tile[data-index='0']")
        page.wait_for_selector(".tile[data-index='0'] .name")
        for sim in sims[1:]:
            page.click(f'[data-channel="{sim}"]')
        page.wait_for_function("document.querySelectorAll('.tile .name').length === 4")
        names = [page.text_content(f".tile[data-index='{i}'] .name") for i in range(4)]
        assert names == [f"模拟相机{n + 1}" for n in range(4)]

        # Every tile's video advances, near the live edge.
        clocks = "Array.from(document.querySelectorAll('.tile video')).map(v => v.currentTime)"
        page.wait_for_function(f"{clocks}.every(t => t > 0.5)", timeout=30000)
        first = page.evaluate(clocks)
        page.wait_for_function(
            f"(first => {clocks}.every((t, i) => t > first[i] + 1.0))", arg=first, timeout=30000
        )
        lags = page.evaluate(
            "Array.from(document.querySelectorAll('.tile video')).map(v =>"
            " v.buffered.end(v.buffered.length - 1) - v.currentTime)"
        )
        assert all(lag < 1.5 for lag in lags), lags
        # Straight from the media workers, with tickets: the platform relays nothing.
        assert platform.live.watching() == []
        assert (
            page.eval_on_selector_all(".tile", "ts => ts.map(t => t.dataset.state)")
            == ["playing"] * 4
        )
        assert all(
            "播放中" in (s or "")
            for s in page.eval_on_selector_all(".tile .status", "ss => ss.map(s => s.textContent)")
        )
        shot(page, "live-wall-4")

        # English: labels change, and the choice is remembered.
        page.click("[data-test=lang]")
        page.wait_for_function("document.querySelector('.nav').textContent.includes('Live view')")
        assert "Playing" in (page.text_content(".tile[data-index='0'] .status") or "")
        assert page.evaluate("localStorage.getItem('xl-locale')") == "en"
        assert page.evaluate("document.documentElement.lang") == "en"
        shot(page, "live-wall-4-en")
        page.reload()
        page.wait_for_selector("[data-test=wall]")
        assert "Live view" in page.text_content(".nav")

        # Nine tiles: the four stay, five empty tiles invite a drop.
        page.click("[data-layout='9']")
        page.wait_for_function("document.querySelectorAll('.tile').length === 9")
        assert page.locator(".tile.empty").count() == 5
        page.click("[data-test=lang]")  # back to Chinese
        page.wait_for_function("document.querySelector('.nav').textContent.includes('实时预览')")
        # An offline camera in a tile: the tile says so, with the reason (which the platform
        # records in English) in the console's language.
        page.click(f'[data-channel="{area["a"][0]}"]')
        page.wait_for_selector(".tile[data-index='4'][data-state='offline']", timeout=20000)
        assert "离线：连接被拒绝" in (page.text_content(".tile[data-index='4'] .status") or "")
        shot(page, "live-wall-9")
        page.close()


@needs_build
@pytest.mark.media
def test_live_tile_falls_back_to_the_relay_when_the_worker_is_unreachable(
    platform: Platform, browser: Browser, client: TestClient, admin_headers: dict[str, str]
) -> None:
    sim = add_sim_camera(client, admin_headers, "模拟相机", None)
    platform.settings.media.enabled = True
    events = Events(platform)
    with serve(create_app(platform)) as base:
        events.wait(status(sim, "online"), 30, "online")
        page = browser.new_page(viewport=VIEWPORT)
        # As behind a firewall that lets only the HTTP port through: the ticket names a worker
        # address the browser cannot reach (a port nobody listens on).
        closed_port = free_port()

        def unreachable(route: Route) -> None:
            body = route.fetch().json()
            body["url"] = f"ws://127.0.0.1:{closed_port}/live/{sim}?ticket=x"
            route.fulfill(json=body)

        page.route("**/live/ticket", unreachable)
        sign_in(page, base, "admin", ADMIN_PASSWORD)
        page.wait_for_selector(f'[data-channel="{sim}"]')
        page.click(f'[data-channel="{sim}"]')
        page.wait_for_function(
            "(document.querySelector('.tile video')?.currentTime ?? 0) > 0.5", timeout=30000
        )
        assert page.get_attribute(".tile[data-index='0']", "data-state") == "playing"
        assert platform.live.watching() == [sim]  # relayed by the platform
        page.close()


def test_scoped_user_sees_only_its_town_and_a_401_returns_to_login(
    platform: Platform, browser: Browser, client: TestClient, admin_headers: dict[str, str]
) -> None:
    area = seed_two_towns(platform)
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
        sign_in(page, base, "viewer_a", password)
        page.wait_for_selector("[data-test=wall]")
        page.wait_for_selector(".org-tree >> text=甲镇")
        for ch in area["a"]:
            page.wait_for_selector(f'[data-channel="{ch}"]')
        shown = page.eval_on_selector_all("[data-channel]", "cs => cs.map(c => c.dataset.channel)")
        assert sorted(shown) == sorted(area["a"])
        tree = page.text_content(".org-tree") or ""
        assert "乙镇" not in tree
        assert "乙村" not in tree
        assert TOWN_B not in (page.content())
        shot(page, "tree-scoped-town-a")

        # The session ends on the server (token revoked): the next API call returns to login.
        token = page.evaluate("sessionStorage.getItem('xl-token')")
        bye = client.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {token}"})
        assert bye.status_code == 204
        page.fill(".search input", "cam")
        page.wait_for_selector("[data-test=login-notice]", timeout=10000)
        assert "登录已过期" in (page.text_content("[data-test=login-notice]") or "")
        assert page.evaluate("sessionStorage.getItem('xl-token')") is None
        shot(page, "login-expired")
        page.close()


@needs_build
def test_ten_thousand_channels_stay_responsive(platform: Platform, browser: Browser) -> None:
    """The list is virtualised and paged: few rows in the DOM, the last one reachable."""
    from xueliang.access.principal import SYSTEM
    from xueliang.registry.schemas import ChannelCreate, DeviceCreate

    nvr = platform.devices.create(
        SYSTEM, DeviceCreate(name="大型NVR", protocol="gb28181", kind="nvr")
    )
    n = 10_000
    for i in range(n):
        platform.channels.create(SYSTEM, ChannelCreate(device=nvr.id, name=f"通道{i:05d}"))
    with serve(create_app(platform)) as base:
        page = browser.new_page(viewport=VIEWPORT)
        sign_in(page, base, "admin", ADMIN_PASSWORD)
        page.wait_for_function(
            f"document.querySelector('[data-test=channel-count]')?.textContent.includes('{n}')",
            timeout=20000,
        )
        assert page.locator(".channel").count() < 100
        page.eval_on_selector(".list", "el => { el.scrollTop = el.scrollHeight }")
        page.wait_for_selector("text=通道09999", timeout=15000)
        assert page.locator(".channel").count() < 100
        shot(page, "tree-10000-channels")
        page.close()
