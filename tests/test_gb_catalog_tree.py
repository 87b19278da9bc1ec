"""A device's own catalogue tree: SIPp as an NVR (or lower platform) whose catalogue groups its
channels under a business group (215), virtual organisations (216; one named by a 2016-style
ParentID path) and a region; the platform keeps the tree as the device sent it, and a complete
catalogue that drops a group removes it."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.gb import gb_platform
from tests.support.rtsp_peer import free_port
from tests.support.wait import wait_until
from tests.test_gb_server import CHANNELS, DEVICE, register, sipp_args
from xueliang.access.principal import SYSTEM
from xueliang.app import Platform
from xueliang.gb28181 import manscdp
from xueliang.registry.schemas import DeviceCreate

GROUP = "3402000000" + "215" + "000000" + "1"
EAST = "3402000000" + "216" + "000000" + "1"
NORTH = "3402000000" + "216" + "000000" + "2"


@pytest.fixture
def gb(platform: Platform) -> Iterator[Platform]:
    with gb_platform(platform, keepalive=60.0):
        yield platform


def answering_with_groups(p: Platform) -> tuple[int, subprocess.Popen[str]]:
    port = free_port()
    args = [*sipp_args(p, "nvr_answer_groups.xml", port, 30), "-m", "2"]
    args += ["-key", "suffix", "000000"]
    return port, subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def tree(client: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    r = client.get(f"/api/v1/devices/{DEVICE}/catalog", headers=headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_business_groups_and_virtual_organisations_build_the_devices_tree(
    gb: Platform, client: TestClient, admin_headers: dict[str, str]
) -> None:
    port, answers = answering_with_groups(gb)
    try:
        run = register(gb, password=gb.data.gb28181_password(), answer_port=port)
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
        out, err = answers.communicate(timeout=30)
        assert answers.returncode == 0, out[-2000:] + err[-2000:]
    finally:
        if answers.poll() is None:
            answers.kill()
    wait_until(lambda: len(tree(client, admin_headers)["groups"]) == 2, 10, "the tree")
    t = tree(client, admin_headers)
    # Groups are not channels: only the two cameras joined the register.
    channels = client.get(
        "/api/v1/channels", params={"device_id": DEVICE}, headers=admin_headers
    ).json()
    assert sorted(c["id"] for c in channels["items"]) == sorted(CHANNELS)
    assert t["channels"] == [CHANNELS[1]]  # West gate hangs at the device's root
    group, region = sorted(t["groups"], key=lambda g: g["kind"])
    assert (region["id"], region["kind"], region["name"]) == ("340202", "region", "Jinghu district")
    assert (group["id"], group["kind"]) == (GROUP, "business_group")
    assert group["name"] == "Traffic police"
    (east,) = group["children"]
    assert (east["id"], east["kind"], east["name"]) == (EAST, "virtual_org", "East district")
    (north,) = east["children"]  # its ParentID was a path: the last element is its parent
    assert (north["id"], north["name"], north["channels"]) == (NORTH, "North gate", [CHANNELS[0]])

    # A complete catalogue without the region and the north gate group: both go, the camera
    # under the north gate moves to where the device now puts it.
    items = [
        manscdp.CatalogItem(device_id=GROUP, name="Traffic police", parent_id=DEVICE),
        manscdp.CatalogItem(device_id=EAST, name="East district", parent_id=GROUP),
        manscdp.CatalogItem(device_id=CHANNELS[0], name="East gate", parent_id=EAST),
        manscdp.CatalogItem(device_id=CHANNELS[1], name="West gate", parent_id=DEVICE),
    ]
    gb.gb28181.directory.catalog(DEVICE, items, complete=True)
    t = tree(client, admin_headers)
    (group,) = t["groups"]
    (east,) = group["children"]
    assert east["children"] == [] and east["channels"] == [CHANNELS[0]]


def test_a_cycle_in_the_devices_tree_is_shown_not_lost(
    gb: Platform, client: TestClient, admin_headers: dict[str, str]
) -> None:
    gb.devices.create(SYSTEM, DeviceCreate(id=DEVICE, name="nvr", protocol="gb28181", kind="nvr"))
    items = [
        manscdp.CatalogItem(device_id=EAST, name="A", parent_id=NORTH),
        manscdp.CatalogItem(device_id=NORTH, name="B", parent_id=EAST),
    ]
    gb.gb28181.directory.catalog(DEVICE, items, complete=True)
    t = tree(client, admin_headers)
    (a,) = t["groups"]
    assert a["id"] == EAST and [c["id"] for c in a["children"]] == [NORTH]
