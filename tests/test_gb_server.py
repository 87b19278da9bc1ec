"""The platform's GB/T 28181 SIP server against SIPp acting as an IP camera (a SIP peer nobody
here wrote): digest registration, keepalive, the platform's own DeviceInfo and Catalog queries,
wrong passwords, and a camera that goes quiet."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.rtsp_peer import free_port
from tests.support.server import serve
from tests.support.wait import wait_until
from xueliang.api.app import create_app
from xueliang.app import Platform

SIPP = Path(__file__).parent / "sipp"
DEVICE = "34020000001320000101"
CHANNELS = ("34020000001310000101", "34020000001310000102")


@pytest.fixture
def gb(platform: Platform) -> Iterator[Platform]:
    platform.settings.gb28181.enabled = True
    platform.settings.gb28181.keepalive_seconds = 1.0
    platform.settings.gb28181.keepalive_missed = 2
    with serve(create_app(platform)):
        yield platform


def sipp_args(p: Platform, scenario: str, port: int, timeout: int) -> list[str]:
    server = p.gb28181.server
    assert server is not None
    return [
        "sipp", f"127.0.0.1:{server.port}", "-sf", str(SIPP / scenario),
        "-s", p.gb28181.platform_id,
        "-key", "device", DEVICE, "-key", "domain", p.gb28181.domain,
        "-key", "channel1", CHANNELS[0], "-key", "channel2", CHANNELS[1],
        "-i", "127.0.0.1", "-p", str(port),
        "-timeout", f"{timeout}s", "-timeout_error",
        "-nostdin", "-trace_err", "-error_file", "/dev/stderr",
    ]  # fmt: skip


def register(
    p: Platform, *, password: str, timeout: int = 20, answer_port: int = 0
) -> subprocess.CompletedProcess[str]:
    """SIPp as the camera: registers and keeps alive once (its queries answered elsewhere)."""
    args = sipp_args(p, "ipc_register.xml", free_port(), timeout)
    args += ["-key", "contact_port", str(answer_port or free_port())]
    args += ["-au", DEVICE, "-ap", password, "-m", "1", "-l", "1"]
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout + 10)


@contextmanager
def answering(p: Platform, queries: int) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    """SIPp as the camera's query side (UAS): answers ``queries`` MESSAGEs."""
    port = free_port()
    args = [*sipp_args(p, "ipc_answer.xml", port, 30), "-m", str(queries), "-sn", "uas"]
    args = [a for a in args if a != "uas"]  # the scenario file replaces the built-in one
    args.remove("-sn")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield port, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def device(client: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    r = client.get(f"/api/v1/devices/{DEVICE}", headers=headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_camera_registers_with_digest_and_its_catalogue_becomes_channels(
    gb: Platform, client: TestClient, admin_headers: dict[str, str]
) -> None:
    with answering(gb, 2) as (port, answers):
        run = register(gb, password=gb.data.gb28181_password(), answer_port=port)
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
        out, err = answers.communicate(timeout=30)  # both queries answered: it exits
        assert answers.returncode == 0, out[-2000:] + err[-2000:]
    wait_until(
        lambda: client.get("/api/v1/channels", params={"device_id": DEVICE},
                           headers=admin_headers).json()["total"] == 2,
        10, "the catalogue's two channels",
    )  # fmt: skip
    d = device(client, admin_headers)
    assert d["protocol"] == "gb28181"
    assert (d["manufacturer"], d["model"], d["firmware"]) == ("SIPp", "UAC-1", "V3.6.1")
    assert d["name"] == "SIPp camera"
    chans = {
        c["id"]: c
        for c in client.get(
            "/api/v1/channels", params={"device_id": DEVICE}, headers=admin_headers
        ).json()["items"]
    }
    east, west = chans[CHANNELS[0]], chans[CHANNELS[1]]
    assert east["name"] == "East gate" and east["status"] == "online"
    assert east["ptz"] is True and (east["longitude"], east["latitude"]) == (117.28, 31.86)
    assert west["status"] == "offline"
    # Added by the platform on the device's own registration: audited as the system's act.
    audit = client.get(
        "/api/v1/audit", params={"target": f"device:{DEVICE}"}, headers=admin_headers
    ).json()
    assert {r["action"] for r in audit["items"]} >= {"device.create", "channel.import"}
    server = gb.gb28181.server
    assert server is not None
    assert server.keepalives == 1 and server.registrations == 1

    # The camera goes quiet (SIPp's scenario has ended): two missed keepalives, offline.
    wait_until(lambda: device(client, admin_headers)["status"] == "offline", 10, "offline")
    d = device(client, admin_headers)
    assert "no keepalive" in d["status_reason"]
    ch = client.get(f"/api/v1/channels/{CHANNELS[0]}", headers=admin_headers).json()
    assert ch["status"] == "offline" and ch["status_reason"].startswith("device offline")


def test_wrong_password_is_refused_and_nothing_is_added(
    gb: Platform, client: TestClient, admin_headers: dict[str, str]
) -> None:
    run = register(gb, password="not-the-password", timeout=5)
    assert run.returncode != 0
    assert "403" in run.stdout + run.stderr
    assert client.get(f"/api/v1/devices/{DEVICE}", headers=admin_headers).status_code == 404
    server = gb.gb28181.server
    assert server is not None and server.refused == 1 and len(server.registrar) == 0


def test_malformed_input_is_dropped_and_the_server_keeps_serving(
    gb: Platform, client: TestClient, admin_headers: dict[str, str]
) -> None:
    server = gb.gb28181.server
    assert server is not None
    garbage = [
        b"\x00\xff" * 300,
        b"REGISTER sip:x SIP/2.0\r\nVia: nonsense\r\n\r\n",
        b"SIP/2.0 200 OK\r\nCSeq: banana\r\n\r\n",
        b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 99999\r\n\r\n<Notify>",
        b"\r\n\r\n",  # a CRLF keepalive: not malformed, just ignored
    ]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        for data in garbage:
            udp.sendto(data, ("127.0.0.1", server.port))
    wait_until(lambda: server.stats().malformed >= 3, 5, "malformed datagrams counted")
    # A TCP peer that sends garbage is disconnected; others are not affected.
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as tcp:
        tcp.sendall(b"GARBAGE / SIP/9.9\r\n" + b"X" * 70000)
        assert tcp.recv(100) == b""  # closed on us
    with answering(gb, 2) as (port, answers):
        run = register(gb, password=gb.data.gb28181_password(), answer_port=port)
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
        answers.communicate(timeout=30)
    assert len(server.registrar) == 1
