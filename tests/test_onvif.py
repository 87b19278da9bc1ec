"""ONVIF: WS-Discovery, reading a device with onvif-zeep-async, and registering it.

The device is a stand-in (tests/support/onvif_peer.py): no real ONVIF device can run here, and
the one maintained virtual camera with ONVIF (ipycam) needs OpenCV with the X/GL libraries and an
external streaming binary. The stand-in speaks the protocol on the wire: SOAP 1.2 over HTTP
with WS-UsernameToken digests checked, WS-Discovery over UDP multicast. Discovery runs only
inside two network namespaces joined by a veth pair, never on the host's network.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.conftest import login
from tests.support import netns
from tests.support.onvif_app import with_onvif
from tests.support.onvif_peer import (
    PEER_ENDPOINT,
    OnvifPeer,
    PeerConfig,
    PeerProfile,
    malformed_matches,
    probe_match,
)
from tests.support.process import wait_for_output
from xueliang.access.principal import SYSTEM
from xueliang.access.schemas import UserCreate
from xueliang.api.routers.onvif import onvif_service
from xueliang.app import Platform
from xueliang.core.errors import (
    DeviceAuthFailed,
    DeviceProtocolError,
    DeviceUnreachable,
    InvalidInput,
)
from xueliang.onvif import discovery
from xueliang.onvif.client import read_device
from xueliang.onvif.model import DeviceReport, DeviceTarget
from xueliang.onvif.service import OnvifService
from xueliang.store.models import Device

API = "/api/v1"
ROOT = Path(__file__).resolve().parent.parent
PEER = PeerConfig()


@pytest.fixture
def camera() -> Iterator[OnvifPeer]:
    with OnvifPeer() as p:
        yield p


@pytest.fixture
def onvif_client(client: TestClient) -> TestClient:
    with_onvif(client.app)  # type: ignore[arg-type]
    return client


def _read(url: str, password: str = PEER.password, deadline: float = 15) -> DeviceReport:
    return asyncio.run(read_device(DeviceTarget(url, PEER.username, password), deadline=deadline))


def _access(camera: OnvifPeer, **extra: Any) -> dict[str, Any]:
    return {"url": camera.device_url, "username": PEER.username, "password": PEER.password, **extra}


# --- WS-Discovery, sans I/O -------------------------------------------------------------------

MID = "urn:uuid:11111111-2222-4333-8444-555555555555"


def test_probe_asks_for_network_video_transmitters() -> None:
    root = ET.fromstring(discovery.build_probe(MID))  # noqa: S314
    soap, wsa, wsd = discovery.NS_SOAP, discovery.NS_WSA, discovery.NS_WSD
    assert root.findtext(f"{{{soap}}}Header/{{{wsa}}}MessageID") == MID
    assert root.findtext(f"{{{soap}}}Header/{{{wsa}}}Action") == discovery.ACTION_PROBE
    assert root.findtext(f"{{{soap}}}Body/{{{wsd}}}Probe/{{{wsd}}}Types") == (
        "dn:NetworkVideoTransmitter"
    )


def test_probe_match_is_parsed_into_scopes() -> None:
    xaddr = "http://10.1.2.3:8080/onvif/device_service"
    (device,) = discovery.parse_probe_matches(
        probe_match(MID, xaddr), relates_to=MID, source="10.1.2.3"
    )
    assert device.endpoint == PEER_ENDPOINT
    assert device.xaddrs == (xaddr,)
    assert device.name == "Gate Camera 1"  # percent-decoded
    assert device.hardware == "XL-ONVIF-2"
    assert device.locations == ("country/china", "city/anqing")
    assert device.profiles == ("Streaming",)
    assert device.types == ("dn:NetworkVideoTransmitter", "tds:Device")
    assert (device.metadata_version, device.source) == (3, "10.1.2.3")


@pytest.mark.parametrize("bad", malformed_matches(MID), ids=["broken", "no-endpoint", "dtd"])
def test_malformed_probe_matches_are_refused(bad: bytes) -> None:
    with pytest.raises(discovery.MalformedMessage):
        discovery.parse_probe_matches(bad, relates_to=MID)


def test_answers_to_another_probe_or_without_xaddrs_are_refused() -> None:
    good = probe_match(MID, "http://10.1.2.3/onvif/device_service")
    with pytest.raises(discovery.MalformedMessage, match="another probe"):
        discovery.parse_probe_matches(good, relates_to="urn:uuid:other")
    ftp = probe_match(MID, "ftp://10.1.2.3/x")
    with pytest.raises(discovery.MalformedMessage, match="XAddr"):
        discovery.parse_probe_matches(ftp, relates_to=MID)


def test_devices_that_are_not_video_transmitters_are_left_out() -> None:
    printer = probe_match(MID, "http://10.1.2.3/x").replace(
        b"dn:NetworkVideoTransmitter tds:Device", b"tds:Device"
    )
    assert discovery.parse_probe_matches(printer, relates_to=MID) == []


def test_the_collector_logs_and_ignores_what_it_cannot_read(
    caplog: pytest.LogCaptureFixture,
) -> None:
    collector = discovery._Collector(MID)
    for bad in malformed_matches(MID):
        collector.datagram_received(bad, ("10.1.2.3", 3702))
    collector.datagram_received(probe_match(MID, "http://10.1.2.3/a"), ("10.1.2.3", 3702))
    collector.datagram_received(probe_match(MID, "http://10.1.2.4/b"), ("10.1.2.4", 3702))
    assert collector.ignored == 3
    assert sum("ignoring a WS-Discovery reply" in r.getMessage() for r in caplog.records) == 3
    # Two answers from one endpoint: one device, every XAddr kept.
    assert list(collector.devices) == [PEER_ENDPOINT]
    assert collector.devices[PEER_ENDPOINT].xaddrs == ("http://10.1.2.3/a", "http://10.1.2.4/b")


def test_discovery_refuses_an_address_that_is_not_this_hosts() -> None:
    for address in ("192.0.2.77", "239.1.1.1", "not-an-ip"):
        with pytest.raises(InvalidInput):
            asyncio.run(discovery.discover(address, 0.1))


# --- WS-Discovery on a private segment (network namespaces) ------------------------------------


@pytest.fixture
def segment() -> Iterator[netns.Segment]:
    reason = netns.unavailable()
    if reason:
        pytest.skip(reason)
    with netns.segment() as seg:
        yield seg


def test_discovery_probe_and_register_on_a_private_segment(segment: netns.Segment) -> None:
    """The device (SOAP and WS-Discovery, with three malformed answers before the good one)
    in one namespace; the platform, through its API, in the other. The client namespace has no
    route anywhere else, so this also shows the WSDLs are read offline."""
    device = subprocess.Popen(
        [
            *segment.exec_prefix(segment.device_ns),
            sys.executable,
            "-m",
            "tests.support.onvif_peer",
            "discovery",
            "--address",
            segment.device_address,
            "--malformed",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_output(device, "discovery ready", 30)
        run = subprocess.run(
            [
                *segment.exec_prefix(segment.client_ns),
                sys.executable,
                "-m",
                "tests.support.onvif_segment_client",
                "--interface",
                segment.client_address,
                "--timeout",
                "1.5",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        device.kill()
        device.wait(timeout=10)
    assert run.returncode == 0, run.stderr[-4000:]
    out = json.loads(run.stdout)

    assert out["discover"]["status"] == 200, out["discover"]
    (found,) = out["discover"]["body"]
    assert found["endpoint"] == PEER_ENDPOINT
    assert found["source"] == segment.device_address
    assert found["xaddrs"][0].startswith(f"http://{segment.device_address}:")
    assert (found["name"], found["hardware"]) == ("Gate Camera 1", "XL-ONVIF-2")
    assert found["locations"] == ["country/china", "city/anqing"]
    # The malformed answers were logged and ignored (each probe is sent twice).
    ignored = [w for w in out["warnings"] if "ignoring a WS-Discovery reply" in w]
    assert len(ignored) >= 3, out["warnings"]

    assert out["probe"]["status"] == 200, out["probe"]
    assert out["probe"]["body"]["device"]["serial"] == PEER.serial
    assert out["register"]["status"] == 201, out["register"]
    assert sorted(c["remote_id"] for c in out["channels"]) == ["prof_fixed", "prof_main"]
    assert all(
        c["stream_url"].startswith(f"rtsp://{segment.device_address}:") for c in out["channels"]
    )


# --- the client against the stand-in device ----------------------------------------------------


def test_read_device_reads_identity_profiles_stream_uris_and_ptz(camera: OnvifPeer) -> None:
    report = _read(camera.device_url)
    info = report.info
    assert (info.manufacturer, info.model, info.firmware, info.serial) == (
        PEER.manufacturer,
        PEER.model,
        PEER.firmware,
        PEER.serial,
    )
    assert report.ptz_supported and report.ptz_url == f"{camera.base}/onvif/ptz_service"
    by_token = {p.token: p for p in report.profiles}
    assert list(by_token) == ["prof_main", "prof_sub", "prof_fixed"]
    main = by_token["prof_main"]
    assert (main.encoding, main.width, main.height, main.frame_rate) == ("H264", 1920, 1080, 25)
    assert main.video_source == "vs_ptz" and main.ptz
    assert by_token["prof_fixed"].encoding == "H265" and not by_token["prof_fixed"].ptz
    assert {t: p.stream_uri for t, p in by_token.items()} == {
        t: camera.stream_uri(t) for t in by_token
    }
    # The main stream of each video source: the sub-stream is left out.
    assert [p.token for p in report.main_profiles()] == ["prof_main", "prof_fixed"]


def test_older_devices_without_get_services_or_ptz() -> None:
    config = PeerConfig(
        get_services=False,
        ptz_service=False,
        profiles=[PeerProfile("only", "Only", "vs0", "H264", 1280, 720, ptz=True)],
    )
    with OnvifPeer(config) as peer:
        report = _read(peer.device_url)
        assert "GetCapabilities" in peer.calls  # the fallback was taken
    assert not report.ptz_supported
    (profile,) = report.profiles
    assert profile.stream_uri == peer.stream_uri("only") and not profile.ptz


@pytest.mark.parametrize("mode", ["soap", "http401"])
def test_wrong_password_is_an_authentication_error(mode: str) -> None:
    with OnvifPeer(PeerConfig(auth_mode=mode)) as peer, pytest.raises(DeviceAuthFailed) as e:
        _read(peer.device_url, password="wrong")
    assert "refused the username or password" in e.value.message


def test_no_credentials_sends_no_security_header_and_is_refused(camera: OnvifPeer) -> None:
    with pytest.raises(DeviceAuthFailed, match="needs a username and password"):
        asyncio.run(read_device(DeviceTarget(camera.device_url)))
    assert camera.calls == ["GetDeviceInformation"]


def test_malformed_soap_is_a_protocol_error() -> None:
    with (
        OnvifPeer(PeerConfig(malformed={"GetProfiles"})) as peer,
        pytest.raises(DeviceProtocolError),
    ):
        _read(peer.device_url)


def test_unreachable_device() -> None:
    with OnvifPeer() as peer:
        url = peer.device_url  # a port that was just open, now closed
    with pytest.raises(DeviceUnreachable):
        _read(url, deadline=5)


# --- the API ------------------------------------------------------------------------------------


def _audit(client: TestClient, headers: dict[str, str], action: str) -> list[dict[str, Any]]:
    r = client.get(f"{API}/audit", headers=headers, params={"action": action})
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def test_probe_over_the_api(
    onvif_client: TestClient, admin_headers: dict[str, str], camera: OnvifPeer
) -> None:
    r = onvif_client.post(f"{API}/onvif/probe", headers=admin_headers, json=_access(camera))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["device"]["firmware"] == PEER.firmware and body["ptz"] is True
    profiles = {p["token"]: p for p in body["profiles"]}
    assert profiles["prof_main"]["stream_uri"] == camera.stream_uri("prof_main")
    assert {t for t, p in profiles.items() if p["main"]} == {"prof_main", "prof_fixed"}
    assert [t for t, p in profiles.items() if p["ptz"]] == ["prof_main", "prof_sub"]
    (record,) = _audit(onvif_client, admin_headers, "onvif.probe")
    assert record["outcome"] == "ok"
    assert PEER.password not in json.dumps(record)


def test_probe_by_host_and_port(
    onvif_client: TestClient, admin_headers: dict[str, str], camera: OnvifPeer
) -> None:
    access = {"host": "127.0.0.1", "port": camera.port, "username": "admin"}
    access["password"] = PEER.password
    r = onvif_client.post(f"{API}/onvif/probe", headers=admin_headers, json=access)
    assert r.status_code == 200, r.text
    assert r.json()["service_url"] == camera.device_url


def test_wrong_password_over_the_api_is_a_clear_4xx(
    onvif_client: TestClient, admin_headers: dict[str, str], camera: OnvifPeer
) -> None:
    for path in ("probe", "devices"):
        r = onvif_client.post(
            f"{API}/onvif/{path}", headers=admin_headers, json=_access(camera, password="nope")
        )
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == "device_unauthorized"
        assert "WWW-Authenticate" not in r.headers  # the caller's own session is fine
    # Nothing was registered; the failed attempts are on record.
    assert onvif_client.get(f"{API}/devices", headers=admin_headers).json()["total"] == 0
    records = _audit(onvif_client, admin_headers, "onvif.probe")
    assert [r["outcome"] for r in records] == ["failed", "failed"]


def test_unreachable_over_the_api(onvif_client: TestClient, admin_headers: dict[str, str]) -> None:
    with OnvifPeer() as gone:
        url = gone.device_url
    r = onvif_client.post(
        f"{API}/onvif/probe", headers=admin_headers, json={"url": url, "username": "a"}
    )
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "device_unreachable"


def test_register_creates_a_channel_per_main_stream(
    onvif_client: TestClient, admin_headers: dict[str, str], camera: OnvifPeer
) -> None:
    r = onvif_client.post(
        f"{API}/onvif/devices", headers=admin_headers, json=_access(camera, name="Gate")
    )
    assert r.status_code == 201, r.text
    device = r.json()
    assert (device["protocol"], device["kind"], device["channel_count"]) == ("onvif", "nvr", 2)
    assert (device["manufacturer"], device["firmware"]) == (PEER.manufacturer, PEER.firmware)
    assert device["url"] == camera.device_url and device["has_password"] is True
    assert "password" not in device
    chans = onvif_client.get(
        f"{API}/channels", headers=admin_headers, params={"device": device["id"]}
    ).json()["items"]
    got = {c["remote_id"]: (c["name"], c["stream_url"], c["ptz_type"], c["ptz"]) for c in chans}
    assert got == {
        "prof_main": ("Gate 1", camera.stream_uri("prof_main"), "dome", True),
        "prof_fixed": ("Gate 2", camera.stream_uri("prof_fixed"), "fixed", False),
    }
    assert len(_audit(onvif_client, admin_headers, "device.create")) == 1
    assert len(_audit(onvif_client, admin_headers, "channel.create")) == 2


def test_register_chosen_profiles(
    onvif_client: TestClient,
    admin_headers: dict[str, str],
    camera: OnvifPeer,
    platform: Platform,
) -> None:
    r = onvif_client.post(
        f"{API}/onvif/devices",
        headers=admin_headers,
        json=_access(camera, name="Sub only", kind="ipc", profiles=["prof_sub"]),
    )
    assert r.status_code == 201, r.text
    assert r.json()["kind"] == "ipc"
    (channel,) = platform.channels.list(SYSTEM, device=r.json()["id"])[0]
    assert (channel.name, channel.stream_url) == ("Sub only", camera.stream_uri("prof_sub"))
    # The password is kept sealed for ingest, as any device's.
    assert _credentials(platform, r.json()["id"]) == (PEER.username, PEER.password)

    r = onvif_client.post(
        f"{API}/onvif/devices", headers=admin_headers, json=_access(camera, profiles=["nope"])
    )
    assert r.status_code == 422 and "nope" in r.json()["error"]["message"]


def _credentials(platform: Platform, gb_id: str) -> tuple[str | None, str | None]:
    with platform.db.read() as s:
        device = s.scalar(select(Device).where(Device.gb_id == gb_id))
        assert device is not None
        return platform.devices.credentials(device)


def test_a_viewer_may_not_discover_probe_or_register(
    onvif_client: TestClient, platform: Platform, camera: OnvifPeer
) -> None:
    platform.users.create_user(
        SYSTEM, UserCreate(username="watcher", password="Watcher-Passw0rd-1", roles=["viewer"])
    )
    viewer = login(onvif_client, "watcher", "Watcher-Passw0rd-1")
    for path, body in (
        ("discover", {"interface_address": "127.0.0.1", "timeout_seconds": 0.1}),
        ("probe", _access(camera)),
        ("devices", _access(camera)),
    ):
        r = onvif_client.post(f"{API}/onvif/{path}", headers=viewer, json=body)
        assert r.status_code == 403, (path, r.text)
        assert r.json()["error"]["code"] == "forbidden"
    assert camera.calls == []  # refused before any packet went to the device


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("probe", {"username": "a"}),  # neither url nor host
        ("probe", {"url": "http://h/onvif/device_service", "host": "h"}),  # both
        ("probe", {"url": "ftp://h/x"}),
        ("probe", {"url": "http://u:p@h/onvif/device_service"}),  # credentials in the URL
        ("probe", {"host": "a/b"}),
        ("probe", {"host": "a:b"}),
        ("discover", {"timeout_seconds": 11}),
        ("discover", {"timeout_seconds": 0}),
        ("discover", {"interface_address": "example"}),
        ("devices", {"host": "h", "profiles": []}),
    ],
)
def test_invalid_requests_are_refused_before_the_network(
    onvif_client: TestClient, admin_headers: dict[str, str], path: str, body: dict[str, Any]
) -> None:
    r = onvif_client.post(f"{API}/onvif/{path}", headers=admin_headers, json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "invalid"


def test_discover_over_the_api_is_audited(
    onvif_client: TestClient, admin_headers: dict[str, str], platform: Platform
) -> None:
    """The route with a discovery that answers at once (the network side is tested in the
    namespaces above); no body means the default interface and timeout."""
    seen: list[tuple[str | None, float]] = []

    async def fake(interface: str | None, seconds: float) -> list[Any]:
        seen.append((interface, seconds))
        xaddr = "http://10.9.9.9/onvif/device_service"
        return discovery.parse_probe_matches(probe_match(MID, xaddr), relates_to=MID)

    service = OnvifService(platform.db, platform.audit, platform.devices, discover=fake)
    onvif_client.app.dependency_overrides[onvif_service] = lambda: service  # type: ignore[attr-defined]
    r = onvif_client.post(f"{API}/onvif/discover", headers=admin_headers)
    assert r.status_code == 200, r.text
    assert [d["name"] for d in r.json()] == ["Gate Camera 1"]
    assert seen == [(None, 3.0)]
    (record,) = _audit(onvif_client, admin_headers, "onvif.discover")
    assert record["detail"]["endpoints"] == [PEER_ENDPOINT]
