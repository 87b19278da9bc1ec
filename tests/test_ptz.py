"""PTZ: command validation, and steering a registered ONVIF camera through the HTTP API.

The camera is the ONVIF stand-in (tests/support/onvif_peer.py), a real HTTP SOAP peer on
127.0.0.1 that checks WS-UsernameToken digests and records every PTZ request as it arrived on
the wire, so these tests see what a camera would see: the velocity, the xs:duration timeout,
the preset tokens.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import login
from tests.support.onvif_peer import OnvifPeer, PeerConfig, PtzCall
from xueliang.access.principal import SYSTEM
from xueliang.access.schemas import ScopeSpec, UserCreate
from xueliang.app import Platform
from xueliang.core.errors import DeviceAuthFailed, DeviceProtocolError, InvalidInput
from xueliang.onvif.ptz import OnvifPtzDriver, velocity
from xueliang.ptz.commands import MAX_MOVE_TIMEOUT, Move, Preset, Stop
from xueliang.ptz.driver import PresetView, PtzTarget
from xueliang.registry.schemas import ChannelCreate, DeviceCreate, OrgCreate

API = "/api/v1"
PEER = PeerConfig()
COUNTY, TOWN_A, TOWN_B = "340202", "340202001", "340202002"
OPERATOR_PASSWORD = "Operator-Passw0rd-1"


# --- commands ------------------------------------------------------------------------------------


def test_move_keeps_valid_speeds_and_defaults_to_a_one_second_timeout() -> None:
    move = Move(pan=0.5, tilt=-1, zoom=1)
    assert (move.pan, move.tilt, move.zoom, move.timeout) == (0.5, -1.0, 1.0, 1.0)
    assert isinstance(move.tilt, float)
    assert Move(zoom=-0.1, timeout=MAX_MOVE_TIMEOUT).timeout == 10.0
    assert move.describe() == {
        "action": "move",
        "pan": 0.5,
        "tilt": -1.0,
        "zoom": 1.0,
        "timeout": 1.0,
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pan": 1.01}, "pan speed must be between -1 and 1"),
        ({"tilt": -2}, "tilt speed must be between -1 and 1"),
        ({"zoom": math.nan}, "zoom speed must be between -1 and 1"),
        ({"pan": math.inf}, "pan speed"),
        ({"pan": True}, "pan must be a number"),
        ({"pan": "0.5"}, "pan must be a number"),
        ({"pan": 0.5, "timeout": 0}, "timeout must be more than 0 and at most 10"),
        ({"pan": 0.5, "timeout": 10.5}, "timeout must be more than 0 and at most 10"),
        ({"pan": 0.5, "timeout": -1}, "timeout"),
        ({"pan": 0.5, "timeout": math.nan}, "timeout must be a number"),
        ({}, "non-zero pan, tilt or zoom"),
    ],
)
def test_bad_moves_are_refused_with_a_clear_message(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        Move(**kwargs)


def test_presets_need_a_token_except_to_save_a_new_one() -> None:
    assert Preset("set") == Preset("set", None, None)
    assert Preset("set", " 7 ", "大门").preset == "7"  # trimmed
    assert Preset("set", name="  ").name is None  # a blank name is no name
    assert Preset("goto", "1").describe() == {"action": "preset", "op": "goto", "preset": "1"}
    for op in ("goto", "remove"):
        with pytest.raises(InvalidInput, match=f"op {op} needs the preset"):
            Preset(op)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("jump", "1"), "op must be one of goto, set, remove"),
        (("goto", "1", "name"), "name can only be given with op set"),
        (("goto", "   "), "preset must not be empty"),
        (("goto", "a\x00b"), "control characters"),
        (("goto", "x" * 65), "at most 64"),
        (("set", None, "n" * 65), "name must be at most 64"),
        (("set", None, "a\nb"), "name must not contain control characters"),
    ],
)
def test_bad_preset_commands_are_refused(args: tuple[Any, ...], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        Preset(*args)


def test_onvif_velocity_leaves_out_axes_at_rest() -> None:
    assert velocity(Move(pan=0.5)) == {"PanTilt": {"x": 0.5, "y": 0.0}}
    assert velocity(Move(zoom=-0.25)) == {"Zoom": {"x": -0.25}}
    assert velocity(Move(0.1, 0.2, 0.3)) == {"PanTilt": {"x": 0.1, "y": 0.2}, "Zoom": {"x": 0.3}}


# --- the ONVIF driver on its own ------------------------------------------------------------------


def _target(
    peer: OnvifPeer, profile: str = "prof_main", password: str = PEER.password
) -> PtzTarget:
    return PtzTarget(
        device_id="34020200001110000001",
        channel_id="34020200001320000001",
        protocol="onvif",
        remote_id=profile,
        url=peer.device_url,
        username=PEER.username,
        password=password,
    )


def test_driver_finds_the_ptz_service_through_get_capabilities_on_older_firmware() -> None:
    with OnvifPeer(PeerConfig(get_services=False)) as peer:
        driver = OnvifPtzDriver()
        presets = asyncio.run(driver.presets(_target(peer)))
        assert presets == [PresetView("1", "Home")]
        assert "GetCapabilities" in peer.calls


def test_driver_errors_are_device_errors() -> None:
    driver = OnvifPtzDriver()
    with (
        OnvifPeer(PeerConfig(ptz_service=False)) as peer,
        pytest.raises(DeviceProtocolError, match="has no ONVIF PTZ service"),
    ):
        asyncio.run(driver.stop(_target(peer)))
    with (
        OnvifPeer(PeerConfig(malformed={"ContinuousMove"})) as peer,
        pytest.raises(DeviceProtocolError, match=r"malformed SOAP|not ONVIF"),
    ):
        asyncio.run(driver.move(_target(peer), Move(pan=1)))
    with OnvifPeer() as peer:
        # A profile without PTZ: the camera's fault comes back as a protocol error.
        with pytest.raises(DeviceProtocolError, match="ContinuousMove with a SOAP fault"):
            asyncio.run(driver.move(_target(peer, "prof_fixed"), Move(pan=1)))
        with pytest.raises(DeviceAuthFailed):
            asyncio.run(driver.stop(_target(peer, password="wrong")))
    with pytest.raises(InvalidInput, match="no ONVIF profile token"):
        asyncio.run(driver.stop(PtzTarget("d", "c", "onvif", None, "http://127.0.0.1:9/x")))


# --- through the API, against the stand-in camera -------------------------------------------------


@pytest.fixture
def camera() -> Iterator[OnvifPeer]:
    with OnvifPeer() as p:
        yield p


@pytest.fixture
def towns(platform: Platform) -> None:
    for code, name, level, parent in [
        (COUNTY, "县", "county", None),
        (TOWN_A, "甲镇", "town", COUNTY),
        (TOWN_B, "乙镇", "town", COUNTY),
    ]:
        platform.orgs.create(SYSTEM, OrgCreate(code=code, name=name, level=level, parent=parent))


@pytest.fixture
def channels(
    client: TestClient, admin_headers: dict[str, str], camera: OnvifPeer, towns: None
) -> dict[str, str]:
    """The stand-in registered in town A: profile token -> channel ID (prof_main is the PTZ
    sensor's main stream, prof_fixed the fixed sensor's)."""
    body = {
        "url": camera.device_url,
        "username": PEER.username,
        "password": PEER.password,
        "name": "Gate",
        "org": TOWN_A,
    }
    r = client.post(f"{API}/onvif/devices", headers=admin_headers, json=body)
    assert r.status_code == 201, r.text
    items = client.get(
        f"{API}/channels", headers=admin_headers, params={"device": r.json()["id"]}
    ).json()["items"]
    out = {c["remote_id"]: c["id"] for c in items}
    assert set(out) == {"prof_main", "prof_fixed"}
    camera.calls.clear()
    return out


def _ptz(client: TestClient, headers: dict[str, str], channel: str, **body: Any) -> Any:
    return client.post(f"{API}/channels/{channel}/ptz", headers=headers, json=body)


def _presets(client: TestClient, headers: dict[str, str], channel: str) -> list[dict[str, Any]]:
    r = client.get(f"{API}/channels/{channel}/ptz/presets", headers=headers)
    assert r.status_code == 200, r.text
    presets: list[dict[str, Any]] = r.json()
    return presets


def _audit(client: TestClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    r = client.get(f"{API}/audit", headers=headers, params={"action": "ptz.control"})
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return sorted(items, key=lambda x: x["seq"])


def _user(client: TestClient, platform: Platform, name: str, role: str, **scope: Any) -> Any:
    platform.users.create_user(
        SYSTEM,
        UserCreate(
            username=name, password=OPERATOR_PASSWORD, roles=[role], scope=ScopeSpec(**scope)
        ),
    )
    return login(client, name, OPERATOR_PASSWORD)


def test_move_then_stop_reach_the_camera_and_the_move_is_audited(
    client: TestClient,
    admin_headers: dict[str, str],
    camera: OnvifPeer,
    channels: dict[str, str],
) -> None:
    ch = channels["prof_main"]
    r = _ptz(client, admin_headers, ch, action="move", pan=0.5, tilt=-0.25, timeout=1.5)
    assert r.status_code == 204, r.text
    assert camera.ptz_calls == [
        PtzCall("ContinuousMove", "prof_main", pan="0.5", tilt="-0.25", timeout="PT1.5S")
    ]
    r = _ptz(client, admin_headers, ch, action="stop")
    assert r.status_code == 204, r.text
    # Zoom alone: no PanTilt velocity is sent; the default timeout travels as xs:duration.
    assert _ptz(client, admin_headers, ch, action="move", zoom=-1).status_code == 204
    assert camera.ptz_calls[1:] == [
        PtzCall("Stop", "prof_main"),
        PtzCall("ContinuousMove", "prof_main", zoom="-1.0", timeout="PT1S"),
    ]
    # The PTZ service address was asked for once, then remembered.
    assert camera.calls.count("GetServices") == 1

    records = _audit(client, admin_headers)
    assert [(x["target"], x["outcome"]) for x in records] == [(f"channel:{ch}", "ok")] * 2
    assert records[0]["detail"] == {
        "action": "move",
        "pan": 0.5,
        "tilt": -0.25,
        "zoom": 0.0,
        "timeout": 1.5,
    }
    assert PEER.password not in str(records)


def test_preset_set_goto_remove_round_trip(
    client: TestClient,
    admin_headers: dict[str, str],
    camera: OnvifPeer,
    channels: dict[str, str],
) -> None:
    ch = channels["prof_main"]
    assert _presets(client, admin_headers, ch) == [{"token": "1", "name": "Home"}]

    r = _ptz(client, admin_headers, ch, action="preset", op="set", name="大门")
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    assert token == "100"  # chosen by the camera
    assert _presets(client, admin_headers, ch) == [
        {"token": "1", "name": "Home"},
        {"token": token, "name": "大门"},
    ]
    # Overwriting an existing preset by token (a number is accepted as the token).
    r = _ptz(client, admin_headers, ch, action="preset", op="set", preset=1, name="Gate")
    assert r.status_code == 200 and r.json() == {"token": "1"}, r.text

    assert (
        _ptz(client, admin_headers, ch, action="preset", op="goto", preset=token).status_code == 204
    )
    r = _ptz(client, admin_headers, ch, action="preset", op="remove", preset=token)
    assert r.status_code == 204, r.text
    assert _presets(client, admin_headers, ch) == [{"token": "1", "name": "Gate"}]
    assert [c for c in camera.ptz_calls if c.operation != "GetPresets"] == [
        PtzCall("SetPreset", "prof_main", preset=token, name="大门"),
        PtzCall("SetPreset", "prof_main", preset="1", name="Gate"),
        PtzCall("GotoPreset", "prof_main", preset=token),
        PtzCall("RemovePreset", "prof_main", preset=token),
    ]

    # The camera refuses a preset it no longer has: a device error, on record as failed.
    r = _ptz(client, admin_headers, ch, action="preset", op="goto", preset=token)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "device_protocol" and "GotoPreset" in error["message"]

    records = _audit(client, admin_headers)
    assert [(x["detail"]["op"], x["detail"]["preset"], x["outcome"]) for x in records] == [
        ("set", token, "ok"),
        ("set", "1", "ok"),
        ("goto", token, "ok"),
        ("remove", token, "ok"),
        ("goto", token, "failed"),
    ]
    assert records[0]["detail"]["name"] == "大门"
    assert records[-1]["reason"].startswith("device_protocol:")


def test_permission_and_area_are_checked_before_the_camera_is_touched(
    client: TestClient,
    admin_headers: dict[str, str],
    platform: Platform,
    camera: OnvifPeer,
    channels: dict[str, str],
) -> None:
    ch = channels["prof_main"]
    viewer = _user(client, platform, "watcher", "viewer", all=True)  # no ptz.control
    outsider = _user(client, platform, "op_b", "operator", orgs=[TOWN_B])
    insider = _user(client, platform, "op_a", "operator", orgs=[TOWN_A])
    for headers in (viewer, outsider):
        for body in ({"action": "move", "pan": 1}, {"action": "stop"}):
            r = _ptz(client, headers, ch, **body)
            assert r.status_code == 403, r.text
            assert r.json()["error"]["code"] == "forbidden"
        r = client.get(f"{API}/channels/{ch}/ptz/presets", headers=headers)
        assert r.status_code == 403, r.text
    assert camera.calls == [] and camera.ptz_calls == []

    assert _ptz(client, insider, ch, action="move", tilt=0.3).status_code == 204
    assert [c.operation for c in camera.ptz_calls] == ["ContinuousMove"]
    assert _audit(client, admin_headers)[0]["actor"] == "op_a"


def test_a_fixed_camera_cannot_be_steered(
    client: TestClient, admin_headers: dict[str, str], camera: OnvifPeer, channels: dict[str, str]
) -> None:
    ch = channels["prof_fixed"]
    for r in (
        _ptz(client, admin_headers, ch, action="move", pan=0.2),
        client.get(f"{API}/channels/{ch}/ptz/presets", headers=admin_headers),
    ):
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == "invalid"
        assert "fixed camera: it has no PTZ" in r.json()["error"]["message"]
    assert camera.ptz_calls == []


BAD_BODIES: list[dict[str, Any]] = [
    {"action": "move", "pan": 1.5},
    {"action": "move", "tilt": -1.01},
    {"action": "move", "zoom": "fast"},
    {"action": "move", "pan": 0.5, "timeout": 11},
    {"action": "move", "pan": 0.5, "timeout": 0},
    {"action": "move"},  # no speed at all
    {"action": "move", "pan": 0.5, "speed": 1},  # unknown field
    {"action": "spin"},
    {"pan": 0.5},
    {"action": "preset", "op": "goto"},
    {"action": "preset", "op": "jump", "preset": "1"},
    {"action": "preset", "op": "goto", "preset": "1", "name": "x"},
    {"action": "preset", "op": "set", "preset": "x" * 65},
]


def test_bad_commands_are_422_before_the_camera(
    client: TestClient,
    admin_headers: dict[str, str],
    camera: OnvifPeer,
    channels: dict[str, str],
) -> None:
    for body in BAD_BODIES:
        r = _ptz(client, admin_headers, channels["prof_main"], **body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["error"]["code"] == "invalid", body
    assert camera.calls == []


def test_unreachable_and_refusing_cameras_are_clear_errors(
    client: TestClient, admin_headers: dict[str, str], camera: OnvifPeer, channels: dict[str, str]
) -> None:
    ch = channels["prof_main"]
    camera.config.password = "changed-on-the-camera"
    r = _ptz(client, admin_headers, ch, action="move", pan=0.5)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "device_unauthorized"

    camera.stop()
    for r in (
        _ptz(client, admin_headers, ch, action="move", pan=0.5),
        _ptz(client, admin_headers, ch, action="stop"),
        client.get(f"{API}/channels/{ch}/ptz/presets", headers=admin_headers),
    ):
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert error["code"] == "device_unreachable", error
        assert f"127.0.0.1:{camera.port}" in error["message"]
    outcomes = [(x["outcome"], x["reason"].split(":")[0]) for x in _audit(client, admin_headers)]
    assert outcomes == [("failed", "device_unauthorized"), ("failed", "device_unreachable")]


def test_unknown_channel_is_404(client: TestClient, admin_headers: dict[str, str]) -> None:
    r = _ptz(client, admin_headers, "34020200001320000099", action="stop")
    assert r.status_code == 404, r.text


# --- protocols without a driver, and the hook for one ---------------------------------------------


class _RecordingDriver:
    def __init__(self) -> None:
        self.seen: list[tuple[str, object]] = []

    async def move(self, target: PtzTarget, move: Move) -> None:
        self.seen.append((target.remote_id or "", move))

    async def stop(self, target: PtzTarget) -> None:
        self.seen.append((target.remote_id or "", Stop()))

    async def presets(self, target: PtzTarget) -> list[PresetView]:
        return [PresetView("3", None)]

    async def preset(self, target: PtzTarget, preset: Preset) -> str | None:
        self.seen.append((target.remote_id or "", preset))
        return "9"


def _dome(platform: Platform, protocol: str) -> str:
    url = "rtsp://127.0.0.1:8554/x" if protocol == "rtsp" else None
    device = platform.devices.create(
        SYSTEM, DeviceCreate(name=f"{protocol} dome", protocol=protocol, url=url)
    )
    channel = platform.channels.create(
        SYSTEM,
        ChannelCreate(
            device=device.id, name="dome", ptz_type="dome", remote_id="34020000001310000001"
        ),
    )
    return channel.id


def test_protocols_without_a_driver_are_refused_clearly(
    client: TestClient, admin_headers: dict[str, str], platform: Platform
) -> None:
    ch = _dome(platform, "rtsp")
    r = _ptz(client, admin_headers, ch, action="move", pan=0.5)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["message"] == "PTZ is not available for rtsp devices yet"
    assert _audit(client, admin_headers) == []


def test_gb28181_has_a_driver_that_needs_the_sip_server(
    client: TestClient, admin_headers: dict[str, str], platform: Platform
) -> None:
    # The SIP server is not started here (tests/test_gb_control.py steers a simulated device).
    ch = _dome(platform, "gb28181")
    r = _ptz(client, admin_headers, ch, action="move", pan=0.5)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "device_unreachable"
    assert "the GB/T 28181 server is not running" in r.json()["error"]["message"]
    assert [x["outcome"] for x in _audit(client, admin_headers)] == ["failed"]


def test_a_driver_registered_for_gb28181_gets_the_commands(
    client: TestClient, admin_headers: dict[str, str], platform: Platform
) -> None:
    driver = _RecordingDriver()
    platform.ptz.register_driver("gb28181", driver)
    ch = _dome(platform, "gb28181")
    assert _ptz(client, admin_headers, ch, action="move", pan=-0.5).status_code == 204
    r = _ptz(client, admin_headers, ch, action="preset", op="set", name="门")
    assert r.status_code == 200 and r.json() == {"token": "9"}
    assert _presets(client, admin_headers, ch) == [{"token": "3", "name": None}]
    assert driver.seen == [
        ("34020000001310000001", Move(pan=-0.5)),
        ("34020000001310000001", Preset("set", None, "门")),
    ]
    assert [x["detail"]["action"] for x in _audit(client, admin_headers)] == ["move", "preset"]
