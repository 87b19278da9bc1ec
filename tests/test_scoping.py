"""Area scoping through every registry list, detail and write endpoint.

The contract (src/xueliang/api/errors.py): a target outside the caller's area answers 403 with
``{"error": {"code": "forbidden", ...}}``, the same as a forbidden action; an object that does
not exist answers 404 ``not_found``. Lists and the register export are narrowed to the area; a
filter that points outside it gives an empty page, not an error.

The world: seed_two_towns() plus a second NVR channel placed in town B (so the NVR, visible to
town A through its channel in A's grid, also has a channel the town-A user must not see) and an
empty village in town A (something a town-A operator may delete).
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from tests.conftest import GRID_A, TOWN_A, TOWN_B, VILLAGE_A, VILLAGE_B, login, seed_two_towns
from xueliang.access.principal import SYSTEM
from xueliang.app import Platform
from xueliang.registry.schemas import ChannelCreate, OrgCreate

API = "/api/v1"
PASSWORD = "Scoped-Passw0rd-for-tests"
COUNTY = "340202"
SPARE_A = "340202001002"  # an empty village in town A
MISSING_ORG = "340202009"
MISSING_DEVICE = "34020200001329999999"
MISSING_CHANNEL = "34020200001319999999"

Headers = dict[str, str]


@dataclass
class World:
    client: TestClient
    admin: Headers
    a: list[str]  # channels in town A: two cameras' channels and the NVR's channel in A's grid
    b: list[str]  # channels in town B: two cameras' channels and the NVR's second channel
    devices_a: list[str]
    devices_b: list[str]
    nvr: str
    nvr_ch_a: str
    nvr_ch_b: str
    _names: itertools.count[int] = field(default_factory=itertools.count)

    def user(
        self,
        roles: list[str],
        *,
        orgs: tuple[str, ...] = (),
        channels: tuple[str, ...] = (),
        everything: bool = False,
    ) -> Headers:
        name = f"user{next(self._names)}"
        r = self.client.post(
            f"{API}/users",
            headers=self.admin,
            json={
                "username": name,
                "password": PASSWORD,
                "roles": roles,
                "scope": {"all": everything, "orgs": list(orgs), "channels": list(channels)},
            },
        )
        assert r.status_code == 201, r.text
        return login(self.client, name, PASSWORD)

    def viewer_a(self) -> Headers:
        return self.user(["viewer"], orgs=(TOWN_A,))

    def operator_a(self) -> Headers:
        return self.user(["operator"], orgs=(TOWN_A,))

    def ids(self, endpoint: str, headers: Headers, **params: Any) -> tuple[list[str], int]:
        r = self.client.get(f"{API}/{endpoint}", headers=headers, params={"limit": 1000, **params})
        assert r.status_code == 200, r.text
        body = r.json()
        return [item["id"] for item in body["items"]], body["total"]

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        """Everything in the registry as the admin sees it (to show a refusal changed nothing)."""
        out = {}
        for endpoint in ("orgs", "devices", "channels"):
            r = self.client.get(f"{API}/{endpoint}", headers=self.admin, params={"limit": 1000})
            assert r.status_code == 200, r.text
            out[endpoint] = [
                {k: v for k, v in item.items() if k not in ("updated_at", "status_since")}
                for item in r.json()["items"]
            ]
        return out


@pytest.fixture
def world(platform: Platform, client: TestClient, admin_headers: Headers) -> World:
    seed = seed_two_towns(platform)
    platform.orgs.create(
        SYSTEM, OrgCreate(code=SPARE_A, name="甲二村", level="village", parent=TOWN_A)
    )
    nvr_ch_b = platform.channels.create(
        SYSTEM, ChannelCreate(device=seed["nvr"], name="nvr-ch-in-b", org=VILLAGE_B)
    ).id
    return World(
        client=client,
        admin=admin_headers,
        a=list(seed["a"]),
        b=[*seed["b"], nvr_ch_b],
        devices_a=list(seed["devices_a"]),
        devices_b=list(seed["devices_b"]),
        nvr=seed["nvr"],
        nvr_ch_a=seed["a"][2],
        nvr_ch_b=nvr_ch_b,
    )


def assert_forbidden(r: Any) -> None:
    assert r.status_code == 403, r.text
    body = r.json()
    assert body["error"]["code"] == "forbidden", body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


def assert_not_found(r: Any) -> None:
    assert r.status_code == 404, r.text
    assert r.json()["error"]["code"] == "not_found"


# --- who sees what -------------------------------------------------------------------------


@dataclass(frozen=True)
class Persona:
    """A user's scope and, for the world above, exactly what it must see."""

    roles: list[str]
    scope: Callable[[World], dict[str, Any]]
    channels: Callable[[World], set[str]]
    devices: Callable[[World], set[str]]
    orgs: set[str]

    def login(self, w: World) -> Headers:
        return w.user(self.roles, **self.scope(w))


ALL_ORGS = {COUNTY, TOWN_A, TOWN_B, VILLAGE_A, VILLAGE_B, GRID_A, SPARE_A}

PERSONAS: dict[str, Persona] = {
    "admin": Persona(
        ["admin"],
        lambda w: {"everything": True},
        lambda w: {*w.a, *w.b},
        lambda w: {*w.devices_a, *w.devices_b, w.nvr},
        ALL_ORGS,
    ),
    # The NVR sits in town B but has a channel in A's grid: visible as a device, and only its
    # channel in A is listed.
    "town_a": Persona(
        ["viewer"],
        lambda w: {"orgs": (TOWN_A,)},
        lambda w: set(w.a),
        lambda w: {*w.devices_a, w.nvr},
        {TOWN_A, VILLAGE_A, GRID_A, SPARE_A},
    ),
    "town_b": Persona(
        ["viewer"],
        lambda w: {"orgs": (TOWN_B,)},
        lambda w: set(w.b),
        lambda w: {*w.devices_b, w.nvr},
        {TOWN_B, VILLAGE_B},
    ),
    "grid_a": Persona(
        ["viewer"],
        lambda w: {"orgs": (GRID_A,)},
        lambda w: {w.nvr_ch_a},
        lambda w: {w.nvr},
        {GRID_A},
    ),
    # A single-channel grant shows the channel and its device, but no organisation tree.
    "one_channel": Persona(
        ["viewer"],
        lambda w: {"channels": (w.a[0],)},
        lambda w: {w.a[0]},
        lambda w: {w.devices_a[0]},
        set(),
    ),
    "village_b_plus_channel": Persona(
        ["grid_worker"],
        lambda w: {"orgs": (VILLAGE_B,), "channels": (w.a[1],)},
        lambda w: {*w.b, w.a[1]},
        lambda w: {*w.devices_b, w.nvr, w.devices_a[1]},
        {VILLAGE_B},
    ),
    "empty": Persona(["viewer"], lambda w: {}, lambda w: set(), lambda w: set(), set()),
    "auditor_town_a": Persona(
        ["auditor"],
        lambda w: {"orgs": (TOWN_A,)},
        lambda w: set(w.a),
        lambda w: {*w.devices_a, w.nvr},
        {TOWN_A, VILLAGE_A, GRID_A, SPARE_A},
    ),
}


def expected(persona: Persona, endpoint: str, w: World) -> set[str]:
    if endpoint == "orgs":
        return persona.orgs
    return persona.channels(w) if endpoint == "channels" else persona.devices(w)


@pytest.mark.parametrize("endpoint", ["channels", "devices", "orgs"])
@pytest.mark.parametrize("name", list(PERSONAS))
def test_every_list_shows_exactly_the_area(world: World, name: str, endpoint: str) -> None:
    persona = PERSONAS[name]
    headers = world.admin if name == "admin" else persona.login(world)
    ids, total = world.ids(endpoint, headers)
    want = expected(persona, endpoint, world)
    assert set(ids) == want
    assert len(ids) == len(set(ids)), "an object is listed twice"
    assert total == len(want)


@pytest.mark.parametrize("name", list(PERSONAS))
def test_register_export_holds_only_the_area(world: World, name: str) -> None:
    persona = PERSONAS[name]
    headers = world.admin if name == "admin" else persona.login(world)
    r = world.client.get(
        f"{API}/registry/export", headers=headers, params={"format": "csv", "lang": "en"}
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    channel_ids = [row["channel_id"] for row in rows]
    assert sorted(channel_ids) == sorted(persona.channels(world))
    assert {row["device_id"] for row in rows} <= persona.devices(world)


def test_xlsx_export_holds_only_the_area(world: World) -> None:
    r = world.client.get(
        f"{API}/registry/export", headers=world.viewer_a(), params={"format": "xlsx", "lang": "en"}
    )
    assert r.status_code == 200, r.text
    sheet = load_workbook(io.BytesIO(r.content), read_only=True).active
    assert sheet is not None
    rows = list(sheet.iter_rows(values_only=True))
    col = list(rows[0]).index("channel_id")
    assert sorted(str(row[col]) for row in rows[1:]) == sorted(world.a)


@pytest.mark.parametrize("endpoint", ["channels", "devices", "orgs"])
def test_paging_walks_only_the_area_with_a_steady_total(world: World, endpoint: str) -> None:
    headers = world.viewer_a()
    want = expected(PERSONAS["town_a"], endpoint, world)
    seen: list[str] = []
    for offset in range(len(want) + 1):
        r = world.client.get(
            f"{API}/{endpoint}", headers=headers, params={"limit": 1, "offset": offset}
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["total"] == len(want)
        assert len(body["items"]) == (1 if offset < len(want) else 0)
        seen += [item["id"] for item in body["items"]]
    assert sorted(seen) == sorted(want)


# Filters narrow the caller's area; pointed outside it they give an empty page, not an error.
FILTERS: list[tuple[str, str, Callable[[World], dict[str, str]], Callable[[World], set[str]]]] = [
    ("channels-org-b", "channels", lambda w: {"org": TOWN_B}, lambda w: set()),
    ("channels-village-b", "channels", lambda w: {"org": VILLAGE_B}, lambda w: set()),
    ("channels-county", "channels", lambda w: {"org": COUNTY}, lambda w: set(w.a)),
    ("channels-grid-a", "channels", lambda w: {"org": GRID_A}, lambda w: {w.nvr_ch_a}),
    ("channels-missing-org", "channels", lambda w: {"org": MISSING_ORG}, lambda w: set()),
    ("channels-b-device", "channels", lambda w: {"device_id": w.devices_b[0]}, lambda w: set()),
    ("channels-nvr", "channels", lambda w: {"device_id": w.nvr}, lambda w: {w.nvr_ch_a}),
    ("channels-q-name", "channels", lambda w: {"q": "b-"}, lambda w: set()),
    ("channels-q-nvr", "channels", lambda w: {"q": "nvr-ch"}, lambda w: {w.nvr_ch_a}),
    ("channels-q-id", "channels", lambda w: {"q": w.b[0]}, lambda w: set()),
    ("channels-status", "channels", lambda w: {"status": "offline"}, lambda w: set(w.a)),
    ("channels-class", "channels", lambda w: {"point_class": "3"}, lambda w: set(w.a)),
    # The NVR is placed in town B and visible through its channel in A: an org=B filter may
    # show it (it is in the caller's list anyway), but none of B's own cameras.
    ("devices-org-b", "devices", lambda w: {"org": TOWN_B}, lambda w: {w.nvr}),
    ("devices-village-b", "devices", lambda w: {"org": VILLAGE_B}, lambda w: {w.nvr}),
    ("devices-missing-org", "devices", lambda w: {"org": MISSING_ORG}, lambda w: set()),
    ("devices-q-b-cam", "devices", lambda w: {"q": "b-cam"}, lambda w: set()),
    ("devices-q-id", "devices", lambda w: {"q": w.devices_b[0]}, lambda w: set()),
    ("devices-q-nvr", "devices", lambda w: {"q": "b-nvr"}, lambda w: {w.nvr}),
    ("devices-rtsp", "devices", lambda w: {"protocol": "rtsp"}, lambda w: set(w.devices_a)),
    ("devices-gb", "devices", lambda w: {"protocol": "gb28181"}, lambda w: {w.nvr}),
    ("orgs-parent-b", "orgs", lambda w: {"parent": TOWN_B}, lambda w: set()),
    ("orgs-parent-county", "orgs", lambda w: {"parent": COUNTY}, lambda w: {TOWN_A}),
    ("orgs-level-town", "orgs", lambda w: {"level": "town"}, lambda w: {TOWN_A}),
    ("orgs-level-county", "orgs", lambda w: {"level": "county"}, lambda w: set()),
    ("orgs-q-name-b", "orgs", lambda w: {"q": "乙"}, lambda w: set()),
    ("orgs-q-code-b", "orgs", lambda w: {"q": TOWN_B}, lambda w: set()),
    (
        "orgs-q-code-county",
        "orgs",
        lambda w: {"q": COUNTY},
        lambda w: {TOWN_A, VILLAGE_A, GRID_A, SPARE_A},
    ),
]


@pytest.mark.parametrize(
    ("endpoint", "params", "want"), [f[1:] for f in FILTERS], ids=[f[0] for f in FILTERS]
)
def test_filters_stay_inside_the_area(
    world: World,
    endpoint: str,
    params: Callable[[World], dict[str, str]],
    want: Callable[[World], set[str]],
) -> None:
    ids, total = world.ids(endpoint, world.viewer_a(), **params(world))
    assert set(ids) == want(world)
    assert total == len(want(world))


def test_devices_org_filter_covers_the_town_a_cameras(world: World) -> None:
    ids, _ = world.ids("devices", world.viewer_a(), org=TOWN_A)
    assert set(world.devices_a) <= set(ids) <= {*world.devices_a, world.nvr}


# --- single objects --------------------------------------------------------------------------

OUTSIDE: list[tuple[str, str, Callable[[World], str]]] = [
    ("org-town-b", "orgs", lambda w: TOWN_B),
    ("org-village-b", "orgs", lambda w: VILLAGE_B),
    ("org-county-above-a", "orgs", lambda w: COUNTY),
    ("device-b-0", "devices", lambda w: w.devices_b[0]),
    ("device-b-1", "devices", lambda w: w.devices_b[1]),
    ("channel-b-0", "channels", lambda w: w.b[0]),
    ("channel-b-1", "channels", lambda w: w.b[1]),
    ("channel-nvr-in-b", "channels", lambda w: w.nvr_ch_b),
]
INSIDE: list[tuple[str, str, Callable[[World], str]]] = [
    ("org-town-a", "orgs", lambda w: TOWN_A),
    ("org-village-a", "orgs", lambda w: VILLAGE_A),
    ("org-grid-a", "orgs", lambda w: GRID_A),
    ("device-a-0", "devices", lambda w: w.devices_a[0]),
    ("device-nvr-via-channel", "devices", lambda w: w.nvr),
    ("channel-a-0", "channels", lambda w: w.a[0]),
    ("channel-nvr-in-a", "channels", lambda w: w.nvr_ch_a),
]
MISSING = [("orgs", MISSING_ORG), ("devices", MISSING_DEVICE), ("channels", MISSING_CHANNEL)]


@pytest.mark.parametrize(
    ("endpoint", "target"), [o[1:] for o in OUTSIDE], ids=[o[0] for o in OUTSIDE]
)
def test_detail_outside_the_area_is_forbidden(
    world: World, endpoint: str, target: Callable[[World], str]
) -> None:
    r = world.client.get(f"{API}/{endpoint}/{target(world)}", headers=world.viewer_a())
    assert_forbidden(r)
    # The admin sees the very same object: the 403 is about the area, not the object.
    assert (
        world.client.get(f"{API}/{endpoint}/{target(world)}", headers=world.admin).status_code
        == 200
    )


@pytest.mark.parametrize(
    ("endpoint", "target"), [i[1:] for i in INSIDE], ids=[i[0] for i in INSIDE]
)
def test_detail_inside_the_area_is_shown(
    world: World, endpoint: str, target: Callable[[World], str]
) -> None:
    r = world.client.get(f"{API}/{endpoint}/{target(world)}", headers=world.viewer_a())
    assert r.status_code == 200, r.text
    assert r.json()["id"] == target(world)


@pytest.mark.parametrize(("endpoint", "missing"), MISSING)
@pytest.mark.parametrize("who", ["viewer_a", "admin"])
def test_detail_of_nothing_is_not_found(
    world: World, who: str, endpoint: str, missing: str
) -> None:
    headers = world.admin if who == "admin" else world.viewer_a()
    assert_not_found(world.client.get(f"{API}/{endpoint}/{missing}", headers=headers))


@pytest.mark.parametrize(
    ("name", "endpoint", "target"),
    [
        ("grid_a", "channels", lambda w: w.a[0]),  # in village A but not in the grid
        ("grid_a", "orgs", lambda w: VILLAGE_A),  # the grid's parent
        ("grid_a", "devices", lambda w: w.devices_a[0]),
        ("one_channel", "channels", lambda w: w.a[1]),  # same village, other channel
        ("one_channel", "orgs", lambda w: VILLAGE_A),  # its channel's organisation
        ("one_channel", "devices", lambda w: w.nvr),
        ("empty", "channels", lambda w: w.a[0]),
        ("empty", "devices", lambda w: w.devices_a[0]),
        ("empty", "orgs", lambda w: TOWN_A),
    ],
)
def test_narrow_scopes_refuse_their_neighbours(
    world: World, name: str, endpoint: str, target: Callable[[World], str]
) -> None:
    headers = PERSONAS[name].login(world)
    assert_forbidden(world.client.get(f"{API}/{endpoint}/{target(world)}", headers=headers))


def test_narrow_scopes_show_their_own_objects(world: World) -> None:
    grid = PERSONAS["grid_a"].login(world)
    for path in (f"channels/{world.nvr_ch_a}", f"devices/{world.nvr}", f"orgs/{GRID_A}"):
        assert world.client.get(f"{API}/{path}", headers=grid).status_code == 200, path
    one = PERSONAS["one_channel"].login(world)
    for path in (f"channels/{world.a[0]}", f"devices/{world.devices_a[0]}"):
        assert world.client.get(f"{API}/{path}", headers=one).status_code == 200, path


def test_out_of_area_and_forbidden_action_answer_alike(world: World) -> None:
    viewer = world.viewer_a()
    outside = world.client.get(f"{API}/channels/{world.b[0]}", headers=viewer)
    not_allowed = world.client.patch(
        f"{API}/channels/{world.a[0]}", headers=viewer, json={"name": "renamed"}
    )
    assert_forbidden(outside)
    assert_forbidden(not_allowed)
    assert outside.json()["error"].keys() == not_allowed.json()["error"].keys()


def test_scope_change_takes_effect_on_the_next_request(world: World) -> None:
    headers = world.viewer_a()
    me = world.client.get(f"{API}/auth/me", headers=headers).json()
    r = world.client.patch(
        f"{API}/users/{me['id']}", headers=world.admin, json={"scope": {"orgs": [TOWN_B]}}
    )
    assert r.status_code == 200, r.text
    ids, total = world.ids("channels", headers)
    assert set(ids) == set(world.b) and total == len(world.b)
    assert_forbidden(world.client.get(f"{API}/channels/{world.a[0]}", headers=headers))


# --- writes ----------------------------------------------------------------------------------

Write = tuple[str, str, Callable[[World], str], Callable[[World], dict[str, Any] | None], int]

# Writes inside town A: an operator scoped to A may do each; a viewer scoped to A none.
WRITES_IN_A: list[Write] = [
    (
        "create-org",
        "POST",
        lambda w: "orgs",
        lambda w: {"code": "340202001003", "name": "甲三村", "level": "village", "parent": TOWN_A},
        201,
    ),
    ("rename-org", "PATCH", lambda w: f"orgs/{VILLAGE_A}", lambda w: {"name": "甲村改"}, 200),
    ("delete-org", "DELETE", lambda w: f"orgs/{SPARE_A}", lambda w: None, 204),
    (
        "create-device",
        "POST",
        lambda w: "devices",
        lambda w: {
            "name": "a-cam-new",
            "protocol": "rtsp",
            "url": "rtsp://127.0.0.1:8554/an",
            "org": VILLAGE_A,
        },
        201,
    ),
    (
        "rename-device",
        "PATCH",
        lambda w: f"devices/{w.devices_a[0]}",
        lambda w: {"name": "renamed"},
        200,
    ),
    ("delete-device", "DELETE", lambda w: f"devices/{w.devices_a[0]}", lambda w: None, 204),
    (
        "create-channel",
        "POST",
        lambda w: "channels",
        lambda w: {"device": w.devices_a[0], "name": "a-extra", "org": VILLAGE_A},
        201,
    ),
    (
        "create-channel-in-grid",
        "POST",
        lambda w: "channels",
        lambda w: {"device": w.devices_a[1], "name": "a-grid", "org": VILLAGE_A, "grid": GRID_A},
        201,
    ),
    ("rename-channel", "PATCH", lambda w: f"channels/{w.a[0]}", lambda w: {"name": "renamed"}, 200),
    (
        "move-channel-within-a",
        "PATCH",
        lambda w: f"channels/{w.a[0]}",
        lambda w: {"org": SPARE_A},
        200,
    ),
    ("delete-channel", "DELETE", lambda w: f"channels/{w.a[0]}", lambda w: None, 204),
]

# Writes that touch town B (or unplaced objects): refused to an operator scoped to A.
WRITES_OUTSIDE_A: list[Write] = [
    (
        "create-org-in-b",
        "POST",
        lambda w: "orgs",
        lambda w: {"code": "340202002009", "name": "乙九村", "level": "village", "parent": TOWN_B},
        403,
    ),
    (
        "create-top-level-org",
        "POST",
        lambda w: "orgs",
        lambda w: {"code": "340203", "name": "邻县", "level": "county"},
        403,
    ),
    ("rename-org-b", "PATCH", lambda w: f"orgs/{VILLAGE_B}", lambda w: {"name": "x"}, 403),
    ("rename-county-above-a", "PATCH", lambda w: f"orgs/{COUNTY}", lambda w: {"name": "x"}, 403),
    ("move-org-a-into-b", "PATCH", lambda w: f"orgs/{SPARE_A}", lambda w: {"parent": TOWN_B}, 403),
    (
        "move-org-b-into-a",
        "PATCH",
        lambda w: f"orgs/{VILLAGE_B}",
        lambda w: {"parent": TOWN_A},
        403,
    ),
    ("delete-org-b", "DELETE", lambda w: f"orgs/{VILLAGE_B}", lambda w: None, 403),
    (
        "create-device-in-b",
        "POST",
        lambda w: "devices",
        lambda w: {
            "name": "x",
            "protocol": "rtsp",
            "url": "rtsp://127.0.0.1:8554/x",
            "org": VILLAGE_B,
        },
        403,
    ),
    (
        "create-unplaced-device",
        "POST",
        lambda w: "devices",
        lambda w: {"name": "x", "protocol": "rtsp", "url": "rtsp://127.0.0.1:8554/x"},
        403,
    ),
    (
        "move-device-a-into-b",
        "PATCH",
        lambda w: f"devices/{w.devices_a[0]}",
        lambda w: {"org": VILLAGE_B},
        403,
    ),
    (
        "rename-device-b",
        "PATCH",
        lambda w: f"devices/{w.devices_b[0]}",
        lambda w: {"name": "x"},
        403,
    ),
    ("rename-nvr-placed-in-b", "PATCH", lambda w: f"devices/{w.nvr}", lambda w: {"name": "x"}, 403),
    (
        "move-device-b-into-a",
        "PATCH",
        lambda w: f"devices/{w.devices_b[0]}",
        lambda w: {"org": VILLAGE_A},
        403,
    ),
    ("delete-device-b", "DELETE", lambda w: f"devices/{w.devices_b[0]}", lambda w: None, 403),
    ("delete-nvr-placed-in-b", "DELETE", lambda w: f"devices/{w.nvr}", lambda w: None, 403),
    (
        "create-channel-in-b",
        "POST",
        lambda w: "channels",
        lambda w: {"device": w.devices_a[0], "name": "x", "org": VILLAGE_B},
        403,
    ),
    (
        "create-channel-on-b-device",
        "POST",
        lambda w: "channels",
        lambda w: {"device": w.devices_b[0], "name": "x", "org": VILLAGE_A},
        403,
    ),
    (
        "create-channel-defaulting-to-b",
        "POST",
        lambda w: "channels",
        lambda w: {"device": w.nvr, "name": "x"},
        403,
    ),
    (
        "move-channel-a-into-b",
        "PATCH",
        lambda w: f"channels/{w.a[0]}",
        lambda w: {"org": VILLAGE_B},
        403,
    ),
    (
        "move-nvr-channel-into-b",
        "PATCH",
        lambda w: f"channels/{w.nvr_ch_a}",
        lambda w: {"org": VILLAGE_B, "grid": None},
        403,
    ),
    ("rename-channel-b", "PATCH", lambda w: f"channels/{w.b[0]}", lambda w: {"name": "x"}, 403),
    (
        "move-channel-b-into-a",
        "PATCH",
        lambda w: f"channels/{w.b[0]}",
        lambda w: {"org": VILLAGE_A},
        403,
    ),
    ("delete-channel-b", "DELETE", lambda w: f"channels/{w.b[0]}", lambda w: None, 403),
    ("delete-nvr-channel-in-b", "DELETE", lambda w: f"channels/{w.nvr_ch_b}", lambda w: None, 403),
]


def send(w: World, headers: Headers, write: Write) -> Any:
    _, method, path, body, _ = write
    return w.client.request(method, f"{API}/{path(w)}", headers=headers, json=body(w))


@pytest.mark.parametrize("write", WRITES_IN_A, ids=[w[0] for w in WRITES_IN_A])
def test_viewer_cannot_write_even_in_its_own_area(world: World, write: Write) -> None:
    before = world.snapshot()
    assert_forbidden(send(world, world.viewer_a(), write))
    assert world.snapshot() == before


@pytest.mark.parametrize("write", WRITES_IN_A, ids=[w[0] for w in WRITES_IN_A])
def test_operator_writes_inside_its_area(world: World, write: Write) -> None:
    before = world.snapshot()
    r = send(world, world.operator_a(), write)
    assert r.status_code == write[4], r.text
    assert world.snapshot() != before


@pytest.mark.parametrize("write", WRITES_OUTSIDE_A, ids=[w[0] for w in WRITES_OUTSIDE_A])
def test_operator_is_refused_outside_its_area(world: World, write: Write) -> None:
    before = world.snapshot()
    assert_forbidden(send(world, world.operator_a(), write))
    assert world.snapshot() == before


@pytest.mark.parametrize("write", WRITES_OUTSIDE_A, ids=[w[0] for w in WRITES_OUTSIDE_A])
def test_admin_may_do_what_the_operator_may_not(world: World, write: Write) -> None:
    """The refusals above come from the area, not from the requests being invalid."""
    r = send(world, world.admin, write)
    # Deleting a village that still holds devices is a conflict even for the admin.
    ok = (409,) if write[0] == "delete-org-b" else (200, 201, 204)
    assert r.status_code in ok, r.text


def test_channel_created_by_the_operator_is_seen_by_the_viewer(world: World) -> None:
    operator, viewer = world.operator_a(), world.viewer_a()
    r = world.client.post(
        f"{API}/channels",
        headers=operator,
        json={"device": world.devices_a[0], "name": "a-new", "org": VILLAGE_A},
    )
    assert r.status_code == 201, r.text
    new = r.json()["id"]
    ids, total = world.ids("channels", viewer)
    assert set(ids) == {*world.a, new} and total == len(world.a) + 1
    b_viewer = PERSONAS["town_b"].login(world)
    assert_forbidden(world.client.get(f"{API}/channels/{new}", headers=b_viewer))


def test_operator_import_into_another_town_is_refused_and_writes_nothing(world: World) -> None:
    sheet = (
        "channel_name,protocol,url,org\r\n"
        "in-a,rtsp,rtsp://127.0.0.1:8554/ia,340202001001\r\n"
        "in-b,rtsp,rtsp://127.0.0.1:8554/ib,340202002001\r\n"
    )
    before = world.snapshot()
    r = world.client.post(
        f"{API}/registry/import",
        headers=world.operator_a(),
        files={"file": ("register.csv", sheet.encode(), "text/csv")},
    )
    # An import reports every bad row at once (documented on the endpoint), so an out-of-area
    # row is one of the 422's row problems rather than a bare 403.
    assert r.status_code == 422, r.text
    problems = r.json()["error"]["details"]
    assert [(p["row"], p["column"]) for p in problems] == [(3, "org")]
    assert "outside your area" in problems[0]["message"]
    assert world.snapshot() == before


def test_viewer_cannot_import(world: World) -> None:
    sheet = "channel_name,protocol,url,org\r\nin-a,rtsp,rtsp://127.0.0.1:8554/ia,340202001001\r\n"
    before = world.snapshot()
    r = world.client.post(
        f"{API}/registry/import",
        headers=world.viewer_a(),
        files={"file": ("register.csv", sheet.encode(), "text/csv")},
    )
    assert_forbidden(r)
    assert world.snapshot() == before


@pytest.mark.parametrize("elsewhere", [{"org": VILLAGE_B}, {"org": None}], ids=["in-b", "unplaced"])
def test_deleting_a_device_with_a_channel_elsewhere_is_forbidden(
    world: World, elsewhere: dict[str, Any]
) -> None:
    """A town-A camera with a second channel in town B (or nowhere): deleting the camera would
    delete that channel too, so it is refused like any other object outside the area."""
    r = world.client.post(
        f"{API}/channels",
        headers=world.admin,
        json={"device": world.devices_a[0], "name": "a-cam-second-view", "org": VILLAGE_A},
    )
    assert r.status_code == 201, r.text
    moved = world.client.patch(
        f"{API}/channels/{r.json()['id']}", headers=world.admin, json=elsewhere
    )
    assert moved.status_code == 200 and moved.json()["org"] == elsewhere["org"], moved.text
    operator = world.operator_a()
    device = f"{API}/devices/{world.devices_a[0]}"
    # The device itself lies in the operator's area ...
    assert world.client.get(device, headers=operator).status_code == 200
    before = world.snapshot()
    # ... but deleting it is refused with the one status for "outside your area".
    assert_forbidden(world.client.delete(device, headers=operator))
    assert world.snapshot() == before
    assert world.client.delete(device, headers=world.admin).status_code == 204


def test_channel_counts_reveal_nothing_outside_the_area(world: World) -> None:
    viewer = world.viewer_a()
    seen = world.client.get(f"{API}/devices/{world.nvr}", headers=viewer).json()
    listed = world.client.get(f"{API}/devices", headers=viewer, params={"limit": 1000}).json()
    full = world.client.get(f"{API}/devices/{world.nvr}", headers=world.admin).json()
    assert full["channel_count"] == 2
    assert seen["channel_count"] == 1
    assert next(d for d in listed["items"] if d["id"] == world.nvr)["channel_count"] == 1
