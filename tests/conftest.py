"""Fixtures shared by the suite.

The database under test is SQLite unless XUELIANG_TEST_DB=postgresql; then it is the server at
XUELIANG_TEST_DATABASE_URL, or a throw-away cluster this run starts itself. `make test` runs the
suite both ways.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, sync_playwright
from sqlalchemy import create_engine, text

from tests.support.browser import ARGS, CHROMIUM
from tests.support.media import Events, add_camera, status
from tests.support.postgres import throwaway_cluster
from tests.support.rtsp_peer import RtspPeer
from xueliang.access import passwords
from xueliang.access.principal import SYSTEM
from xueliang.api.app import create_app
from xueliang.app import Platform, build_platform
from xueliang.config import Settings
from xueliang.core.clock import ManualClock
from xueliang.datadir import DataDir
from xueliang.registry.schemas import ChannelCreate, DeviceCreate, OrgCreate
from xueliang.store import migrate
from xueliang.store.db import Database

# A simulated GB/T 28181 NVR registered with the platform (gb, sim, device, dome), for the
# tests of controls, presets and configuration; a module defining its own fixture of a name wins.
pytest_plugins = ["tests.support.gb_fixtures"]

ADMIN_PASSWORD = "Admin-Passw0rd-for-tests"
DB_KIND = os.environ.get("XUELIANG_TEST_DB", "sqlite")
# Media tests whose subject is what the database holds (the recordings index, retention,
# holds, plans): they run on PostgreSQL too.
MEDIA_STORE_MODULES = frozenset({"test_storage", "test_recording_plans"})
# Tests with a database whose subject is a device protocol or the browser: what they store is
# a device row and an audit record, which the API tests cover on both backends.
PROTOCOL_MODULES = frozenset(
    {
        "test_onvif",
        "test_gb_config",
        "test_gb_snapshots",
        "test_gb_presets",
        "test_gb_control",
        "test_gb_redirect",
    }
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The PostgreSQL pass (``make test`` runs the suite on SQLite first) runs what depends on
    the database backend: every test with a database, except those whose subject is not the
    store (the browser's view of the console, media pipelines and protocol timing: they run
    the same queries the API tests run on both backends). Without a database a test is the
    same on either pass, so it runs once. (Only ever a subset of the SQLite pass.)"""
    if DB_KIND != "postgresql":
        return
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        names = getattr(item, "fixturenames", ())
        module = item.path.stem
        media = item.get_closest_marker("media") is not None
        store = "database_url" in names and "browser" not in names
        store = store and module not in PROTOCOL_MODULES and not module.startswith("test_console")
        if store and (not media or module in MEDIA_STORE_MODULES):
            keep.append(item)
        else:
            dropped.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


_counter = itertools.count()


@pytest.fixture(autouse=True)
def _cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2id at production cost takes tens of ms a hash and the suite hashes thousands of
    times; tests keep the algorithm and lower the cost. (Subprocess tests use the real cost.)"""
    monkeypatch.setattr(
        passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str | None]:
    if DB_KIND != "postgresql":
        yield None
        return
    given = os.environ.get("XUELIANG_TEST_DATABASE_URL")
    if given:
        yield given
        return
    with throwaway_cluster() as url:
        yield url


@pytest.fixture(scope="session")
def pg_template(pg_server: str | None) -> str | None:
    """A migrated template database; each test gets a copy (CREATE DATABASE … TEMPLATE)."""
    if pg_server is None:
        return None
    name = f"xl_template_{os.getpid()}"
    admin = create_engine(pg_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    db = Database(_with_db(pg_server, name))
    migrate.upgrade(db)
    db.dispose()
    return name


def _with_db(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture
def database_url(tmp_path: Path, pg_server: str | None, pg_template: str | None) -> Iterator[str]:
    if pg_server is None:
        yield f"sqlite:///{tmp_path / 'xueliang.db'}"
        return
    name = f"xl_test_{os.getpid()}_{next(_counter)}"
    admin = create_engine(pg_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"'))
    try:
        yield _with_db(pg_server, name)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def settings(database_url: str) -> Settings:
    s = Settings()
    s.database.url = database_url
    s.auth.lockout_seconds = 300
    # Tests that pull streams start the media service themselves, against their own peers.
    s.media.enabled = False
    # Likewise the GB/T 28181 SIP server (on a free port when a test starts it).
    s.gb28181.enabled = False
    s.gb28181.port = 0
    return s


@pytest.fixture
def data_dir(tmp_path: Path, settings: Settings) -> DataDir:
    d = DataDir(tmp_path / "data")
    d.create(settings)
    return d


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def platform(data_dir: DataDir, settings: Settings, clock: ManualClock) -> Iterator[Platform]:
    p = build_platform(data_dir.root, settings=settings, clock=clock)
    p.users.bootstrap_admin(ADMIN_PASSWORD)
    try:
        yield p
    finally:
        p.close()


@pytest.fixture
def client(platform: Platform) -> Iterator[TestClient]:
    with TestClient(create_app(platform)) as c:
        yield c


# --- media: a real RTSP camera (GStreamer's server) and a platform that records briefly ------


@pytest.fixture
def peer() -> Iterator[RtspPeer]:
    p = RtspPeer()
    p.start()
    try:
        yield p
    finally:
        p.kill()


@pytest.fixture
def media_platform(platform: Platform) -> Iterator[Platform]:
    platform.media.segment_seconds = 1.0  # short segments keep the test short
    platform.media.backoff_cap = 0.5
    yield platform
    platform.media.stop()


@pytest.fixture
def live_channel(
    platform: Platform, client: TestClient, admin_headers: dict[str, str], peer: RtspPeer
) -> Iterator[str]:
    """A camera on GStreamer's RTSP server, pulled and online."""
    events = Events(platform)
    channel = add_camera(client, admin_headers, peer.url("/h264"))
    platform.media.start()
    events.wait(status(channel, "online"), 20, "online")
    yield channel
    platform.media.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless (the console's tests)."""
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


def login(client: TestClient, username: str, password: str) -> dict[str, str]:
    r = client.post("/api/v1/auth/login", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture
def admin_headers(client: TestClient) -> dict[str, str]:
    return login(client, "admin", ADMIN_PASSWORD)


# --- a small area with two towns, used by scoping tests ------------------------------------

TOWN_A, TOWN_B = "340202001", "340202002"
VILLAGE_A, VILLAGE_B = "340202001001", "340202002001"
GRID_A = "340202001001001"


def seed_two_towns(p: Platform) -> dict[str, Any]:
    """County → towns A and B → a village each → a grid in A; two cameras per village."""
    for code, name, level, parent in [
        ("340202", "县", "county", None),
        (TOWN_A, "甲镇", "town", "340202"),
        (TOWN_B, "乙镇", "town", "340202"),
        (VILLAGE_A, "甲村", "village", TOWN_A),
        (VILLAGE_B, "乙村", "village", TOWN_B),
        (GRID_A, "甲村网格", "grid", VILLAGE_A),
    ]:
        p.orgs.create(SYSTEM, OrgCreate(code=code, name=name, level=level, parent=parent))
    out: dict[str, Any] = {"a": [], "b": [], "devices_a": [], "devices_b": []}
    for side, village in (("a", VILLAGE_A), ("b", VILLAGE_B)):
        for n in range(2):
            d = p.devices.create(
                SYSTEM,
                DeviceCreate(
                    name=f"{side}-cam-{n}",
                    protocol="rtsp",
                    url=f"rtsp://127.0.0.1:8554/{side}{n}",
                    org=village,
                ),
            )
            out[f"devices_{side}"].append(d.id)
            chans, _ = p.channels.list(SYSTEM, device=d.id)
            out[side].append(chans[0].id)
    # An NVR in town B with an extra channel in town A's grid: visible device for A via channel.
    nvr = p.devices.create(
        SYSTEM, DeviceCreate(name="b-nvr", protocol="gb28181", kind="nvr", org=VILLAGE_B)
    )
    ch = p.channels.create(
        SYSTEM, ChannelCreate(device=nvr.id, name="nvr-ch-in-a", org=VILLAGE_A, grid=GRID_A)
    )
    out["nvr"] = nvr.id
    out["a"].append(ch.id)
    return out
