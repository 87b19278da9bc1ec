"""Per-device media transport of GB/T 28181 devices (WVP's "streamMode"): set on create and
update through the device API, audited, carried by the register sheet, and used when the
device is INVITEd (the channel's route; live, with the project's simulator)."""

from __future__ import annotations

import csv
import io
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.gb import gb_platform, registered_channels, simulator_process
from xueliang.app import Platform

DEVICES = "/api/v1/devices"


def create(client: TestClient, headers: dict[str, str], **body: Any) -> Any:
    return client.post(DEVICES, json={"name": "cam", **body}, headers=headers)


def gb_device(client: TestClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    r = create(client, headers, protocol="gb28181", kind="nvr", **body)
    assert r.status_code == 201, r.text
    device: dict[str, Any] = r.json()
    return device


def patch(client: TestClient, headers: dict[str, str], device: str, **body: Any) -> Any:
    return client.patch(f"{DEVICES}/{device}", json=body, headers=headers)


def audit(client: TestClient, headers: dict[str, str], action: str) -> list[dict[str, Any]]:
    r = client.get("/api/v1/audit", headers=headers, params={"action": action})
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def add_channel(client: TestClient, headers: dict[str, str], device: str) -> str:
    r = client.post("/api/v1/channels", json={"device": device, "name": "gate"}, headers=headers)
    assert r.status_code == 201, r.text
    channel: str = r.json()["id"]
    return channel


# --- the API ---------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["udp", "tcp-passive", "tcp-active"])
def test_created_with_a_transport(
    client: TestClient, admin_headers: dict[str, str], transport: str
) -> None:
    device = gb_device(client, admin_headers, media_transport=transport)
    assert device["media_transport"] == transport
    got = client.get(f"{DEVICES}/{device['id']}", headers=admin_headers).json()
    assert got["media_transport"] == transport
    listed = client.get(DEVICES, headers=admin_headers, params={"protocol": "gb28181"}).json()
    assert [d["media_transport"] for d in listed["items"]] == [transport]
    (record,) = audit(client, admin_headers, "device.create")
    assert record["target"] == f"device:{device['id']}"
    assert record["detail"]["media_transport"] == transport


def test_platform_default_unless_set(client: TestClient, admin_headers: dict[str, str]) -> None:
    assert gb_device(client, admin_headers)["media_transport"] is None
    r = create(client, admin_headers, protocol="rtsp", url="rtsp://10.0.0.1/main")
    assert r.status_code == 201, r.text
    assert r.json()["media_transport"] is None


def test_updated_and_reset_to_the_default(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    device = gb_device(client, admin_headers)["id"]
    r = patch(client, admin_headers, device, media_transport="tcp-active")
    assert r.status_code == 200, r.text
    assert r.json()["media_transport"] == "tcp-active"
    # Other changes leave it alone.
    r = patch(client, admin_headers, device, name="renamed")
    assert (r.json()["name"], r.json()["media_transport"]) == ("renamed", "tcp-active")
    r = patch(client, admin_headers, device, media_transport=None)
    assert r.status_code == 200, r.text
    assert r.json()["media_transport"] is None
    assert (
        client.get(f"{DEVICES}/{device}", headers=admin_headers).json()["media_transport"] is None
    )
    records = audit(client, admin_headers, "device.update")  # newest first
    assert [rec["detail"] for rec in records] == [
        {"media_transport": None},
        {"name": "renamed"},
        {"media_transport": "tcp-active"},
    ]
    assert all(rec["target"] == f"device:{device}" for rec in records)


@pytest.mark.parametrize(
    ("protocol", "extra"),
    [("rtsp", {"url": "rtsp://10.0.0.1/main"}), ("onvif", {"url": "http://10.0.0.2/onvif"})],
)
def test_refused_for_devices_that_are_not_gb(
    client: TestClient,
    admin_headers: dict[str, str],
    protocol: str,
    extra: dict[str, Any],
) -> None:
    r = create(client, admin_headers, protocol=protocol, media_transport="tcp-active", **extra)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid"
    assert error["message"] == (
        f"media_transport applies to gb28181 devices only, not to a {protocol} device"
    )
    assert client.get(DEVICES, headers=admin_headers).json()["total"] == 0
    assert audit(client, admin_headers, "device.create") == []


def test_refused_on_update_of_an_rtsp_device(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    r = create(client, admin_headers, protocol="rtsp", url="rtsp://10.0.0.1/main")
    device = r.json()["id"]
    r = patch(client, admin_headers, device, media_transport="udp")
    assert r.status_code == 422, r.text
    assert "gb28181 devices only" in r.json()["error"]["message"]
    assert (
        client.get(f"{DEVICES}/{device}", headers=admin_headers).json()["media_transport"] is None
    )
    assert audit(client, admin_headers, "device.update") == []
    # null is the default anyway: asking for it is no error.
    assert patch(client, admin_headers, device, media_transport=None).status_code == 200


@pytest.mark.parametrize("value", ["tcp", "TCP-ACTIVE", "rtp/avp", "", 1])
def test_unknown_values_are_refused(
    client: TestClient, admin_headers: dict[str, str], value: object
) -> None:
    r = create(client, admin_headers, protocol="gb28181", media_transport=value)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid"
    assert [d["loc"] for d in error["details"]] == [["body", "media_transport"]], error
    device = gb_device(client, admin_headers)["id"]
    r = patch(client, admin_headers, device, media_transport=value)
    assert r.status_code == 422, r.text
    assert (
        client.get(f"{DEVICES}/{device}", headers=admin_headers).json()["media_transport"] is None
    )


# --- the register sheet ------------------------------------------------------------------------


def sheet(rows: list[list[str]]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows(rows)
    return buf.getvalue().encode("utf-8-sig")


def upload(client: TestClient, headers: dict[str, str], data: bytes) -> Any:
    return client.post(
        "/api/v1/registry/import",
        headers=headers,
        files={"file": ("register.csv", data, "application/octet-stream")},
    )


NVR_1, NVR_2, NVR_3 = (f"3402020000118000000{n}" for n in (1, 2, 3))


def ch_id(serial: int) -> str:
    return f"34020200001310{serial:06d}"


def test_the_register_sheet_carries_it(client: TestClient, admin_headers: dict[str, str]) -> None:
    header = ["通道编码", "点位名称", "设备编码", "接入协议", "媒体传输"]
    rows = [
        [ch_id(1), "一号-1", NVR_1, "国标", "TCP主动"],
        [ch_id(2), "一号-2", NVR_1, "", "tcp-active"],
        [ch_id(3), "二号-1", NVR_2, "gb28181", "平台默认"],
        [ch_id(4), "三号-1", NVR_3, "gb28181", "TCP 被动"],
    ]
    r = upload(client, admin_headers, sheet([header, *rows]))
    assert r.status_code == 200, r.text
    got = {
        d["id"]: d["media_transport"]
        for d in client.get(DEVICES, headers=admin_headers).json()["items"]
    }
    assert got == {NVR_1: "tcp-active", NVR_2: None, NVR_3: "tcp-passive"}

    r = client.get(
        "/api/v1/registry/export", headers=admin_headers, params={"format": "csv", "lang": "en"}
    )
    assert r.status_code == 200, r.text
    exported = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert {row["channel_id"]: row["media_transport"] for row in exported} == {
        ch_id(1): "tcp-active",
        ch_id(2): "tcp-active",
        ch_id(3): "",
        ch_id(4): "tcp-passive",
    }
    r = client.get("/api/v1/registry/export", headers=admin_headers, params={"format": "csv"})
    assert "媒体传输" in r.content.decode("utf-8-sig").splitlines()[0]


def test_the_register_sheet_refuses_it_for_other_devices(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    header = ["点位名称", "设备编码", "接入协议", "取流地址", "media_transport"]
    rows = [
        ["枪机", "", "", "rtsp://10.0.0.1/main", "udp"],  # a camera of its own: rtsp
        ["一号-1", NVR_1, "gb28181", "", "主动"],
        ["一号-2", NVR_1, "gb28181", "", "tcp"],  # not a transport
        ["二号-1", NVR_2, "onvif", "", "udp"],
    ]
    r = upload(client, admin_headers, sheet([header, *rows]))
    assert r.status_code == 422, r.text
    problems = [(e["row"], e["column"]) for e in r.json()["error"]["details"]]
    assert problems == [(2, "media_transport"), (4, "media_transport"), (5, "media_transport")]
    assert client.get(DEVICES, headers=admin_headers).json()["total"] == 0


# --- the INVITE --------------------------------------------------------------------------------


def test_the_route_follows_the_device(
    platform: Platform, client: TestClient, admin_headers: dict[str, str]
) -> None:
    routes = platform.gb28181.routes
    assert platform.settings.gb28181.media_transport == "udp"
    device = gb_device(client, admin_headers)["id"]
    channel = add_channel(client, admin_headers, device)
    other = add_channel(client, admin_headers, gb_device(client, admin_headers)["id"])
    route = routes.route(channel)
    assert route is not None and route.transport == "udp"  # the platform's
    # The recorded channels (continuous by default) are cached: read now, then changed.
    assert {r.channel_id: r.transport for r in routes.recorded()} == {
        channel: "udp",
        other: "udp",
    }

    assert patch(client, admin_headers, device, media_transport="tcp-active").status_code == 200
    route = routes.route(channel)
    assert route is not None and route.transport == "tcp-active"
    assert {r.channel_id: r.transport for r in routes.recorded()} == {
        channel: "tcp-active",
        other: "udp",
    }

    assert patch(client, admin_headers, device, media_transport=None).status_code == 200
    route = routes.route(channel)
    assert route is not None and route.transport == "udp"
    assert {r.transport for r in routes.recorded()} == {"udp"}


def test_a_device_without_a_transport_follows_the_platform_default(
    platform: Platform, client: TestClient, admin_headers: dict[str, str]
) -> None:
    routes = platform.gb28181.routes
    routes._transport = "tcp-passive"
    plain = add_channel(client, admin_headers, gb_device(client, admin_headers)["id"])
    udp = add_channel(
        client, admin_headers, gb_device(client, admin_headers, media_transport="udp")["id"]
    )
    assert [routes.route(c).transport for c in (plain, udp)] == ["tcp-passive", "udp"]  # type: ignore[union-attr]


@pytest.fixture
def gb(platform: Platform) -> Iterator[Platform]:
    with gb_platform(platform, media=True):
        yield platform


@pytest.fixture
def simulator(gb: Platform) -> Iterator[subprocess.Popen[str]]:
    with simulator_process(gb) as sim:  # an NVR of two channels
        yield sim


@pytest.mark.media
def test_a_tcp_active_device_is_invited_with_tcp_active(
    gb: Platform,
    simulator: subprocess.Popen[str],
    client: TestClient,
    admin_headers: dict[str, str],
) -> None:
    assert gb.settings.gb28181.media_transport == "udp"
    channel = registered_channels(client, admin_headers)[0]
    device = client.get(f"/api/v1/channels/{channel}", headers=admin_headers).json()["device_id"]
    r = patch(client, admin_headers, device, media_transport="tcp-active")
    assert r.status_code == 200, r.text
    r = client.post(f"/api/v1/channels/{channel}/live/ticket", headers=admin_headers)
    assert r.status_code == 200, r.text
    (session,) = gb.gb28181.streams.sessions()
    assert (session.channel_id, session.kind, session.transport) == (channel, "Play", "tcp-active")
    assert session.online
    sip = client.get(f"/api/v1/devices/{device}/sip", headers=admin_headers).json()
    assert [(x["channel_id"], x["transport"], x["online"]) for x in sip["sessions"]] == [
        (channel, "tcp-active", True)
    ]
