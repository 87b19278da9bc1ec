"""Coverage per area (在线率) and the map's channels, narrowed to the caller's area."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import GRID_A, TOWN_A, TOWN_B, VILLAGE_A, login, seed_two_towns
from xueliang.app import Platform


def by_code(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {o["code"]: o for o in report["orgs"]}


def test_coverage_rolls_up_the_tree(
    platform: Platform, client: TestClient, admin_headers: dict[str, str]
) -> None:
    area = seed_two_towns(platform)
    now = datetime.now(UTC)
    platform.channels.set_status(area["a"][0], "online", None, now)
    platform.channels.set_status(area["b"][1], "online", None, now)
    r = client.patch(
        f"/api/v1/channels/{area['a'][0]}",
        json={"longitude": 117.28, "latitude": 31.86},
        headers=admin_headers,
    )
    assert r.status_code == 200, r.text
    report = client.get("/api/v1/coverage", headers=admin_headers).json()
    # Town A: two cameras in its village and the NVR channel placed in its grid; town B: two.
    assert (report["channels"], report["online"], report["located"]) == (5, 2, 1)
    assert report["online_rate"] == 0.4 and report["unplaced"] == 0
    orgs = by_code(report)
    assert orgs["340202"]["channels"] == 5
    assert (orgs[TOWN_A]["channels"], orgs[TOWN_A]["online"], orgs[TOWN_A]["located"]) == (3, 1, 1)
    assert orgs[TOWN_A]["online_rate"] == round(1 / 3, 4)
    assert (orgs[TOWN_B]["channels"], orgs[TOWN_B]["online_rate"]) == (2, 0.5)
    assert orgs[GRID_A]["channels"] == 1 and orgs[GRID_A]["online_rate"] == 0.0
    assert orgs[VILLAGE_A]["parent"] == TOWN_A

    located = client.get("/api/v1/map/channels", headers=admin_headers).json()
    assert located == [
        {
            "id": area["a"][0],
            "name": "a-cam-0",
            "lon": 117.28,
            "lat": 31.86,
            "status": "online",
            "ptz": False,
            "org": VILLAGE_A,
        }
    ]
    only_b = client.get("/api/v1/map/channels", params={"org": TOWN_B}, headers=admin_headers)
    assert only_b.json() == []


def test_a_scoped_user_sees_only_its_town(
    platform: Platform, client: TestClient, admin_headers: dict[str, str]
) -> None:
    area = seed_two_towns(platform)
    for side in ("a", "b"):
        client.patch(
            f"/api/v1/channels/{area[side][0]}",
            json={"longitude": 117.0, "latitude": 31.0},
            headers=admin_headers,
        )
    r = client.post(
        "/api/v1/users",
        json={
            "username": "town-b",
            "password": "Town-b-pass-1",
            "roles": ["viewer"],
            "scope": {"orgs": [TOWN_B]},
        },
        headers=admin_headers,
    )
    assert r.status_code == 201, r.text
    headers = login(client, "town-b", "Town-b-pass-1")
    report = client.get("/api/v1/coverage", headers=headers).json()
    assert report["channels"] == 2
    assert set(by_code(report)) == {TOWN_B, "340202002001"}
    located = client.get("/api/v1/map/channels", headers=headers).json()
    assert [c["id"] for c in located] == [area["b"][0]]


def test_map_settings_come_from_config(
    platform: Platform, client: TestClient, admin_headers: dict[str, str]
) -> None:
    plain = client.get("/api/v1/map/settings", headers=admin_headers).json()
    assert plain["tile_url"] == "" and plain["center"] is None
    platform.settings.map.tile_url = "http://tiles.local/{z}/{x}/{y}.png"
    platform.settings.map.center = (117.28, 31.86)
    tiled = client.get("/api/v1/map/settings", headers=admin_headers).json()
    assert tiled["tile_url"] == "http://tiles.local/{z}/{x}/{y}.png"
    assert tiled["center"] == [117.28, 31.86]
    assert client.get("/api/v1/map/settings").status_code == 401
