"""Snapshots taken by GB/T 28181-2022 devices: SnapShotConfig, HTTP uploads, UploadSnapShotFinished.

Sans-I/O: the notify's bytes (GB2312 and UTF-8, with and without the list element). Through the
platform served by uvicorn (devices upload over real HTTP) against the project's simulator on a
loop of its own: a session whose JPEGs are stored and listed, uploads that are refused and why
(nothing stored is lost), a device refusing, a session that times out.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.conftest import login
from tests.support.gb import SimThread, gb_platform, online_channels, sim_thread
from tests.support.wait import wait_until
from xueliang.access.principal import SYSTEM
from xueliang.access.schemas import ScopeSpec, UserCreate
from xueliang.api.routers.device_config import services
from xueliang.app import Platform
from xueliang.gb28181 import manscdp
from xueliang.gb28181.simulator.device import Device
from xueliang.gb28181.simulator.snapshots import snapshot_jpeg

API = "/api/v1"
CAMERA = "34020000001310000001"
SESSION = "9a7d3a146a1e420dbd00020ed01b39e7"
PASSWORD = "Watcher-Passw0rd-1"


# --- sans-I/O ------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["GB2312", "UTF-8"])
def test_upload_snapshot_finished_round_trip(encoding: str) -> None:
    note = manscdp.UploadSnapShotFinished(
        device_id=CAMERA,
        sn=42,
        session_id=SESSION,
        file_ids=(f"{CAMERA}022025081609220800001", f"{CAMERA}022025081609220900002"),
    )
    body = manscdp.to_xml(note, encoding)
    assert body.startswith(f'<?xml version="1.0" encoding="{encoding}"?>\r\n<Notify>'.encode())
    assert b"<CmdType>UploadSnapShotFinished</CmdType>\r\n<SN>42</SN>" in body
    assert f"<SessionID>{SESSION}</SessionID>\r\n<SnapShotList>\r\n".encode() in body
    assert f"<SnapShotFileID>{CAMERA}022025081609220800001</SnapShotFileID>".encode() in body
    parsed = manscdp.parse(body)
    assert parsed.message == note and parsed.encoding == encoding
    assert manscdp.cmd_type_of(note) == "UploadSnapShotFinished"


def test_upload_snapshot_finished_as_devices_send_it() -> None:
    # GB2312 with a Chinese extra element, no list element, mixed-case tags.
    body = (
        '<?xml version="1.0" encoding="GB2312"?>\r\n<Notify>\r\n'
        "<CmdType>uploadsnapshotfinished</CmdType>\r\n<SN>7</SN>\r\n"
        f"<DeviceID>{CAMERA}</DeviceID>\r\n<SessionId> {SESSION} </SessionId>\r\n"
        "<SnapShotFileID>a1</SnapShotFileID>\r\n<SnapShotFileID>a2</SnapShotFileID>\r\n"
        "<Info>抓拍完成</Info>\r\n</Notify>\r\n"
    ).encode("gb2312")
    parsed = manscdp.parse(body)
    assert parsed.encoding == "GB2312"
    assert parsed.message == manscdp.UploadSnapShotFinished(
        device_id=CAMERA,
        sn=7,
        session_id=SESSION,
        file_ids=("a1", "a2"),
        extra={"Info": "抓拍完成"},
    )
    # UTF-8 declared as GB2312, an empty list: a session with nothing uploaded.
    utf8 = (
        '<?xml version="1.0" encoding="GB2312"?><Notify><CmdType>UploadSnapShotFinished'
        f"</CmdType><SN>8</SN><DeviceID>{CAMERA}</DeviceID><SessionID>{SESSION}</SessionID>"
        "<SnapShotList></SnapShotList><Note>东门</Note></Notify>"
    ).encode()
    message = manscdp.parse_message(utf8)
    assert isinstance(message, manscdp.UploadSnapShotFinished)
    assert message.file_ids == () and message.extra == {"Note": "东门"}


def test_the_simulator_makes_a_real_jpeg() -> None:
    jpeg = snapshot_jpeg(320, 180, 1, time.time())
    assert jpeg.startswith(b"\xff\xd8\xff") and jpeg.endswith(b"\xff\xd9")


# --- through the platform ------------------------------------------------------------------------


@pytest.fixture
def gb(platform: Platform) -> Iterator[str]:
    with gb_platform(platform) as base:
        yield base


@pytest.fixture
def sim(platform: Platform, gb: str) -> Iterator[SimThread]:
    with sim_thread(platform, channels=2, keepalive=2.0, width=320, height=180) as thread:
        yield thread


@pytest.fixture
def device(sim: SimThread) -> Device:
    return sim.start()


@pytest.fixture
def channel(device: Device, client: TestClient, admin_headers: dict[str, str]) -> str:
    channels: list[str] = sorted(c["id"] for c in online_channels(client, admin_headers))
    return channels[0]


@pytest.fixture
def http(gb: str, admin_headers: dict[str, str]) -> Iterator[httpx.Client]:
    """The platform over real HTTP (what the device reaches), as the admin."""
    with httpx.Client(base_url=gb, headers=admin_headers, timeout=30) as c:
        yield c


def _sessions(client: TestClient, headers: dict[str, str], channel: str) -> list[dict[str, Any]]:
    r = client.get(f"{API}/channels/{channel}/device-snapshots", headers=headers)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()
    return items


def _session(
    client: TestClient, headers: dict[str, str], channel: str, session_id: str
) -> dict[str, Any]:
    (found,) = [s for s in _sessions(client, headers, channel) if s["session_id"] == session_id]
    return found


def _wait_status(
    client: TestClient, headers: dict[str, str], channel: str, session_id: str, status: str
) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def reached() -> bool:
        seen.update(_session(client, headers, channel, session_id))
        return bool(seen["status"] == status)

    wait_until(reached, 20, f"snapshot session {session_id} to be {status}")
    return seen


def _upload_url(device: Device) -> str:
    """The upload address the device was given (the platform never shows its token)."""
    got: list[str] = []

    def arrived() -> bool:
        got[:] = [
            b.upload_url
            for m in device.device_configs
            for b in m.configs
            if isinstance(b, manscdp.SnapShotConfig)
        ]
        return bool(got)

    wait_until(arrived, 10, "the SnapShotConfig at the device")
    return got[-1]


def _audit(client: TestClient, headers: dict[str, str], action: str) -> list[dict[str, Any]]:
    r = client.get(f"{API}/audit", headers=headers, params={"action": action})
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return sorted(items, key=lambda x: x["seq"])


def test_a_session_stores_the_uploaded_jpegs(
    platform: Platform,
    device: Device,
    channel: str,
    http: httpx.Client,
    client: TestClient,
    admin_headers: dict[str, str],
) -> None:
    remote = device.config.channels[0].channel_id
    # No upload_base: the address this request came to is where the device uploads.
    r = http.post(f"{API}/channels/{channel}/device-snapshots", json={"count": 3, "interval": 1})
    assert r.status_code == 201, r.text
    started = r.json()
    session_id = started["session_id"]
    assert started["status"] == "running" and started["snapshots"] == []
    assert (started["count"], started["interval"]) == (3, 1)
    url = _upload_url(device)
    root = str(http.base_url).rstrip("/")
    assert url.startswith(f"{root}/api/v1/device-snapshots/upload/")
    token = url.rsplit("/", 1)[-1]
    assert len(token) >= 40 and session_id not in url
    (config,) = list(device.device_configs)
    assert config.device_id == remote
    assert config.configs[0] == manscdp.SnapShotConfig(
        snap_num=3, interval=1, upload_url=url, session_id=session_id
    )

    done = _wait_status(client, admin_headers, channel, session_id, "done")
    (report,) = list(device.snapshot_reports)
    assert report[0] == session_id and len(report[1]) == 3
    assert done["reported"] == list(report[1])
    assert [s["file_id"] for s in done["snapshots"]] == list(report[1])
    assert all(s["file_id"].startswith(f"{remote}02") for s in done["snapshots"])
    folder = platform.data.root / "device-snapshots" / channel / session_id
    stored = sorted(p.name for p in folder.iterdir())
    assert stored == sorted([*(f"{i}.jpg" for i in report[1]), "session.json"])
    # Fetch one by its URL: the JPEG as uploaded.
    first = done["snapshots"][0]
    got = client.get(first["url"], headers=admin_headers)
    assert got.status_code == 200, got.text
    assert got.headers["content-type"] == "image/jpeg"
    assert got.content.startswith(b"\xff\xd8\xff") and len(got.content) == first["size"]
    assert got.content == (folder / f"{first['file_id']}.jpg").read_bytes()
    # Audited: the request, the listings (searches) and the picture seen.
    (request,) = _audit(client, admin_headers, "video.snapshot.request")
    assert request["target"] == f"channel:{channel}" and request["outcome"] == "ok"
    assert request["detail"] == {
        "where": "device",
        "session_id": session_id,
        "count": 3,
        "interval": 1,
    }
    (seen,) = _audit(client, admin_headers, "video.snapshot")
    assert seen["detail"] == {
        "where": "device",
        "session_id": session_id,
        "file_id": first["file_id"],
    }
    searches = _audit(client, admin_headers, "video.search")
    assert searches and searches[-1]["detail"]["where"] == "device-snapshots"
    # A finished session takes nothing more: its address is closed.
    jpeg = snapshot_jpeg(320, 180, 9, time.time())
    r = httpx.post(url, content=jpeg, headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 404, r.text


def test_bad_uploads_are_refused_and_lose_nothing(
    platform: Platform,
    sim: SimThread,
    device: Device,
    channel: str,
    gb: str,
    client: TestClient,
    admin_headers: dict[str, str],
) -> None:
    _, snapshots = services(platform)
    snapshots.max_bytes = 64 * 1024
    device.take_snapshots = False  # answers OK, the test plays the uploads
    r = client.post(
        f"{API}/channels/{channel}/device-snapshots",
        headers=admin_headers,
        json={"count": 2, "interval": 1, "upload_base": gb},
    )
    assert r.status_code == 201, r.text
    session_id = r.json()["session_id"]
    url = _upload_url(device)
    jpeg = snapshot_jpeg(320, 180, 1, time.time())
    assert len(jpeg) < snapshots.max_bytes

    # A good one first, under its name.
    got = httpx.put(f"{url}/cam-1.jpg", content=jpeg, headers={"Content-Type": "image/jpeg"})
    assert got.status_code == 200, got.text
    assert got.json() == {"session_id": session_id, "file_id": "cam-1", "size": len(jpeg)}

    def refused(response: httpx.Response, status: int, code: str, words: str) -> None:
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert error["code"] == code and words in error["message"], error

    base = url.rsplit("/", 1)[0]
    refused(httpx.post(f"{base}/not-the-token", content=jpeg), 404, "not_found", "no snapshot")
    refused(httpx.post(f"{base}/", content=jpeg), 404, "not_found", "")
    refused(httpx.post(url, content=b"GIF89a" + bytes(100)), 422, "invalid", "not a JPEG")
    refused(httpx.post(url, content=b""), 422, "invalid", "not a JPEG")
    big = jpeg[:-2] + bytes(snapshots.max_bytes) + b"\xff\xd9"
    refused(httpx.post(url, content=big), 413, "too_large", "limit")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while reading
        yield big[: len(big) // 2]
        yield big[len(big) // 2 :]

    refused(httpx.post(url, content=chunks()), 413, "too_large", "limit")
    refused(
        httpx.post(url, files={"file": ("x.jpg", b"not a picture", "image/jpeg")}),
        422,
        "invalid",
        "not a JPEG",
    )
    refused(
        httpx.post(url, data={"SessionID": "someone-else"}, files={"file": ("y.jpg", jpeg)}),
        422,
        "invalid",
        "SessionID",
    )
    refused(
        httpx.put(f"{url}/cam-1.jpg", content=jpeg), 409, "conflict", "cam-1"
    )  # already stored: never overwritten
    # A second good one, as devices send it (multipart, the SessionID beside the file).
    got = httpx.post(
        url, data={"SessionID": session_id}, files={"file": ("cam-2.jpg", jpeg, "image/jpeg")}
    )
    assert got.status_code == 200 and got.json()["file_id"] == "cam-2", got.text
    refused(httpx.put(f"{url}/cam-3.jpg", content=jpeg), 409, "conflict", "asked for")

    folder = platform.data.root / "device-snapshots" / channel / session_id
    assert sorted(p.name for p in folder.iterdir()) == ["cam-1.jpg", "cam-2.jpg", "session.json"]
    assert (folder / "cam-1.jpg").read_bytes() == jpeg
    listed = _session(client, admin_headers, channel, session_id)
    assert listed["status"] == "running" and listed["reported"] is None
    assert [s["file_id"] for s in listed["snapshots"]] == ["cam-1", "cam-2"]

    # The device reports a file that never came: incomplete until it does.
    remote = device.config.channels[0].channel_id
    sim.act(lambda d, now: d.snapshots_uploaded(remote, session_id, ["cam-1", "cam-9"], now))
    listed = _wait_status(client, admin_headers, channel, session_id, "incomplete")
    assert listed["reported"] == ["cam-1", "cam-9"]
    assert [s["file_id"] for s in listed["snapshots"]] == ["cam-1", "cam-2"]


def test_a_device_refusing_and_a_session_timing_out(
    platform: Platform,
    device: Device,
    channel: str,
    gb: str,
    client: TestClient,
    admin_headers: dict[str, str],
) -> None:
    _, snapshots = services(platform)
    device.config_result = "ERROR"
    body = {"count": 1, "interval": 1, "upload_base": gb}
    r = client.post(f"{API}/channels/{channel}/device-snapshots", headers=admin_headers, json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "device_error"
    assert "SnapShotConfig" in r.json()["error"]["message"]
    (failed,) = _sessions(client, admin_headers, channel)
    assert failed["status"] == "failed" and "ERROR" in failed["error"]
    (record,) = _audit(client, admin_headers, "video.snapshot.request")
    assert record["outcome"] == "failed" and record["reason"].startswith("device_error")

    device.config_result = None
    device.take_snapshots = False
    snapshots.settle_seconds = 0.0  # the deadline is count x interval: 1 s
    r = client.post(f"{API}/channels/{channel}/device-snapshots", headers=admin_headers, json=body)
    assert r.status_code == 201, r.text
    session_id = r.json()["session_id"]
    url = _upload_url(device)
    timed_out = _wait_status(client, admin_headers, channel, session_id, "timed_out")
    assert timed_out["finished_at"] and "in time" in timed_out["error"]
    jpeg = snapshot_jpeg(320, 180, 1, time.time())
    got = httpx.post(url, content=jpeg)
    assert got.status_code == 404, got.text
    assert list(Path(platform.data.root / "device-snapshots" / channel / session_id).iterdir())
    assert not list((platform.data.root / "device-snapshots" / channel / session_id).glob("*.jpg"))


def test_snapshots_need_the_snapshot_permission_and_a_gb_channel(
    platform: Platform,
    device: Device,
    channel: str,
    gb: str,
    client: TestClient,
    admin_headers: dict[str, str],
) -> None:
    platform.users.create_user(
        SYSTEM,
        UserCreate(
            username="gridder", password=PASSWORD, roles=["grid_worker"], scope=ScopeSpec(all=True)
        ),
    )
    worker = login(client, "gridder", PASSWORD)
    r = client.post(f"{API}/channels/{channel}/device-snapshots", headers=worker, json={})
    assert r.status_code == 403, r.text
    r = client.get(f"{API}/channels/{channel}/device-snapshots", headers=worker)
    assert r.status_code == 403, r.text
    r = client.get(f"{API}/channels/{channel}/device-snapshots/{SESSION}/x", headers=worker)
    assert r.status_code == 403, r.text
    r = client.get(f"{API}/channels/{channel}/device-snapshots/{SESSION}/x", headers=admin_headers)
    assert r.status_code == 404, r.text
    r = client.get(
        f"{API}/channels/{channel}/device-snapshots/..%2f..%2fkeys/x", headers=admin_headers
    )
    assert r.status_code == 404, r.text
    r = client.post(
        f"{API}/channels/{channel}/device-snapshots", headers=admin_headers, json={"count": 11}
    )
    assert r.status_code == 422, r.text
    assert list(device.device_configs) == []
