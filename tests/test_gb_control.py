"""PTZ and device control of a GB/T 28181 device through the platform.

The platform's SIP server runs as in production (uvicorn serving the app, its lifespan starting
GB/T 28181); the project's simulator runs in this process on a loop of its own, so the tests
read what the device received: the decoded PTZCmd bytes, the DeviceControls, and make it answer
``<Result>ERROR</Result>`` as Hikvision devices do. The HTTP calls come from a TestClient, on
another loop than the SIP server's: the control path has to cross over.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import login
from tests.support.gb import SimThread, stop_and_unregister
from tests.support.wait import wait_until
from xueliang.access.principal import SYSTEM
from xueliang.access.schemas import ScopeSpec, UserCreate
from xueliang.app import Platform
from xueliang.core.errors import DeviceUnreachable, InvalidInput
from xueliang.gb28181 import manscdp
from xueliang.gb28181 import ptz as codec
from xueliang.gb28181.control import GbControl, GbPtzDriver, preset_number, ptz_move
from xueliang.gb28181.simulator.device import Device
from xueliang.ptz.commands import Move
from xueliang.ptz.driver import PtzTarget

API = "/api/v1"
PASSWORD = "Viewer-Passw0rd-1"


def _ptz(client: TestClient, headers: dict[str, str], channel: str, **body: Any) -> Any:
    return client.post(f"{API}/channels/{channel}/ptz", headers=headers, json=body)


def _control(client: TestClient, headers: dict[str, str], device: str, **body: Any) -> Any:
    return client.post(f"{API}/devices/{device}/control", headers=headers, json=body)


def _audit(client: TestClient, headers: dict[str, str], action: str) -> list[dict[str, Any]]:
    r = client.get(f"{API}/audit", headers=headers, params={"action": action})
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return sorted(items, key=lambda x: x["seq"])


def _received(device: Device, count: int) -> list[tuple[str, codec.PtzCommand]]:
    """The device's PTZ commands, once ``count`` of them have come."""
    got: list[tuple[str, codec.PtzCommand]] = []

    def arrived() -> bool:
        got[:] = [(ch, d.command) for ch, d in list(device.ptz_commands)]
        return len(got) >= count

    wait_until(arrived, 10, f"{count} PTZ command(s) at the device")
    return got


def _controls(device: Device, count: int) -> list[manscdp.DeviceControl]:
    got: list[manscdp.DeviceControl] = []

    def arrived() -> bool:
        got[:] = list(device.controls)
        return len(got) >= count

    wait_until(arrived, 10, f"{count} DeviceControl(s) at the device")
    return got


# --- without a device ----------------------------------------------------------------------------


def test_speeds_scale_to_the_ptzcmd_bytes_and_presets_are_numbers() -> None:
    assert ptz_move(Move(pan=1, tilt=-0.5, zoom=0.2)) == codec.PtzMove(1, -1, 1, 255, 128, 3)
    assert ptz_move(Move(pan=-0.001)) == codec.PtzMove(-1, 0, 0, 1, 0, 0)  # never speed 0
    assert preset_number("7") == 7
    for bad in (None, "0", "256", "front"):
        with pytest.raises(InvalidInput, match="preset"):
            preset_number(bad)


# --- through the platform ------------------------------------------------------------------------


def test_move_then_stop_reach_the_device_as_ptzcmd_bytes(
    device: Device, dome: dict[str, Any], client: TestClient, admin_headers: dict[str, str]
) -> None:
    remote = device.config.channels[0].channel_id
    r = _ptz(client, admin_headers, dome["id"], action="move", pan=0.5, tilt=1, zoom=-1, timeout=5)
    assert r.status_code == 204, r.text
    r = _ptz(client, admin_headers, dome["id"], action="stop")
    assert r.status_code == 204, r.text
    moved = codec.PtzMove(pan=1, tilt=1, zoom=-1, pan_speed=128, tilt_speed=255, zoom_speed=15)
    assert _received(device, 2) == [(remote, moved), (remote, codec.STOP)]
    # Byte for byte what went out: A5 0F 01, right+up+zoom-out, speeds, zoom speed, checksum.
    move = codec.encode_hex(ptz_move(Move(pan=0.5, tilt=1, zoom=-1)))
    assert move == "A50F012980FFF04D"
    records = _audit(client, admin_headers, "ptz.control")
    assert [(x["outcome"], x["detail"]["action"], x["target"]) for x in records] == [
        ("ok", "move", f"channel:{dome['id']}")
    ]  # the stop is not audited


def test_a_move_is_stopped_by_the_platform_after_its_timeout(
    device: Device, dome: dict[str, Any], client: TestClient, admin_headers: dict[str, str]
) -> None:
    r = _ptz(client, admin_headers, dome["id"], action="move", pan=-1, timeout=0.2)
    assert r.status_code == 204, r.text
    assert [c for _, c in _received(device, 2)] == [codec.PtzMove(-1, 0, 0, 255, 0, 0), codec.STOP]


def test_presets_call_set_remove(
    device: Device, dome: dict[str, Any], client: TestClient, admin_headers: dict[str, str]
) -> None:
    ch = dome["id"]
    r = _ptz(client, admin_headers, ch, action="preset", op="set", preset=3)
    assert r.status_code == 200 and r.json() == {"token": "3"}, r.text
    assert (
        _ptz(client, admin_headers, ch, action="preset", op="goto", preset="3").status_code == 204
    )
    assert (
        _ptz(client, admin_headers, ch, action="preset", op="remove", preset=3).status_code == 204
    )
    assert [c for _, c in _received(device, 3)] == [
        codec.Preset(codec.PresetOp.SET, 3),
        codec.Preset(codec.PresetOp.CALL, 3),
        codec.Preset(codec.PresetOp.DELETE, 3),
    ]
    # No number, or one out of range: refused before anything is sent.
    r = _ptz(client, admin_headers, ch, action="preset", op="set")
    assert r.status_code == 422 and "1..255" in r.json()["error"]["message"], r.text
    r = _ptz(client, admin_headers, ch, action="preset", op="goto", preset=300)
    assert r.status_code == 422, r.text
    assert len(device.ptz_commands) == 3
    # The device is asked (PresetQuery): preset 3 was set and removed again, so none is left.
    r = client.get(f"{API}/channels/{ch}/ptz/presets", headers=admin_headers)
    assert r.status_code == 200 and r.json() == [], r.text


def test_a_viewer_without_ptz_control_is_refused(
    gb: Platform, device: Device, dome: dict[str, Any], client: TestClient
) -> None:
    gb.users.create_user(
        SYSTEM,
        UserCreate(
            username="watcher", password=PASSWORD, roles=["viewer"], scope=ScopeSpec(all=True)
        ),
    )
    viewer = login(client, "watcher", PASSWORD)
    r = _ptz(client, viewer, dome["id"], action="move", pan=1)
    assert r.status_code == 403, r.text
    r = _control(client, viewer, device.config.device_id, action="guard")
    assert r.status_code == 403, r.text
    assert list(device.ptz_commands) == [] and list(device.controls) == []


def test_reboot_guard_and_record_are_sent_and_audited(
    device: Device, dome: dict[str, Any], client: TestClient, admin_headers: dict[str, str]
) -> None:
    dev = device.config.device_id
    remote = device.config.channels[0].channel_id
    r = _control(client, admin_headers, dev, action="reboot")
    assert r.status_code == 200, r.text
    assert r.json() == {"device_id": dev, "channel_id": None, "action": "reboot", "result": "OK"}
    assert _control(client, admin_headers, dev, action="guard").status_code == 200
    r = _control(client, admin_headers, dev, action="record", channel_id=dome["id"])
    assert r.status_code == 200 and r.json()["channel_id"] == dome["id"], r.text
    assert (
        _control(
            client, admin_headers, dev, action="stop_record", channel_id=dome["id"]
        ).status_code
        == 200
    )
    assert _control(client, admin_headers, dev, action="unguard").status_code == 200
    sent = [(c.device_id, c.tele_boot, c.guard_cmd, c.record_cmd) for c in _controls(device, 5)]
    assert sent == [
        (dev, "Boot", None, None),
        (dev, None, "SetGuard", None),
        (remote, None, None, "Record"),
        (remote, None, None, "StopRecord"),
        (dev, None, "ResetGuard", None),
    ]
    records = _audit(client, admin_headers, "device.control")
    assert [(x["outcome"], x["target"], x["detail"]) for x in records] == [
        ("ok", f"device:{dev}", {"action": "reboot", "result": "OK"}),
        ("ok", f"device:{dev}", {"action": "guard", "result": "OK"}),
        ("ok", f"device:{dev}", {"action": "record", "channel_id": dome["id"], "result": "OK"}),
        (
            "ok",
            f"device:{dev}",
            {"action": "stop_record", "channel_id": dome["id"], "result": "OK"},
        ),
        ("ok", f"device:{dev}", {"action": "unguard", "result": "OK"}),
    ]
    # A reboot is for the whole device; an unknown action is a validation error.
    r = _control(client, admin_headers, dev, action="reboot", channel_id=dome["id"])
    assert r.status_code == 422, r.text
    assert _control(client, admin_headers, dev, action="explode").status_code == 422


def test_a_device_answering_error_is_a_device_error(
    device: Device, dome: dict[str, Any], client: TestClient, admin_headers: dict[str, str]
) -> None:
    dev = device.config.device_id
    device.control_result = "ERROR"
    r = _control(client, admin_headers, dev, action="record", channel_id=dome["id"])
    assert r.status_code == 422, r.text
    body = r.json()["error"]
    assert body["code"] == "device_error", body
    assert body["message"] == (
        f"device {dev} answered ERROR to the record start (Record): "
        "it did not carry out the command"
    )
    (record,) = _audit(client, admin_headers, "device.control")
    assert record["outcome"] == "failed" and record["reason"].startswith("device_error: ")
    assert record["detail"] == {"action": "record", "channel_id": dome["id"], "result": "ERROR"}


def test_an_offline_device_is_a_clear_error(
    gb: Platform,
    sim: SimThread,
    device: Device,
    dome: dict[str, Any],
    client: TestClient,
    admin_headers: dict[str, str],
) -> None:
    dev = device.config.device_id
    stop_and_unregister(gb, sim, dev)
    r = _control(client, admin_headers, dev, action="reboot")
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "device_unreachable"
    assert r.json()["error"]["message"] == f"device {dev} is offline (not registered)"
    r = _ptz(client, admin_headers, dome["id"], action="move", pan=1)
    assert r.status_code == 422 and r.json()["error"]["code"] == "device_unreachable", r.text
    (record,) = _audit(client, admin_headers, "device.control")
    assert record["outcome"] == "failed" and record["reason"].startswith("device_unreachable")


def test_the_driver_without_a_running_server_says_so() -> None:
    driver = GbPtzDriver(GbControl(lambda: None, lambda: None))
    target = PtzTarget("34020000001320000001", "34020000001310000001", "gb28181", None, None)
    with pytest.raises(DeviceUnreachable, match="server is not running"):
        asyncio.run(driver.move(target, Move(pan=1)))
