"""The platform's SIP server with the project's GB/T 28181 simulator as the fleet: 200 NVRs of
4 channels register with digest, their catalogues become channels, and when the simulator is
killed they all go offline within the keepalive budget."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.support.server import serve
from tests.support.wait import wait_until
from xueliang.api.app import create_app
from xueliang.app import Platform
from xueliang.store.models import Channel, Device

DEVICES, CHANNELS = 200, 4


@pytest.fixture
def gb(platform: Platform) -> Iterator[Platform]:
    platform.settings.gb28181.enabled = True
    platform.settings.gb28181.keepalive_seconds = 2.0
    platform.settings.gb28181.keepalive_missed = 2
    with serve(create_app(platform)):
        yield platform


def counts(p: Platform) -> tuple[int, int, int]:
    with p.db.read() as s:
        online = s.scalar(
            select(func.count())
            .select_from(Device)
            .where(Device.protocol == "gb28181", Device.status == "online")
        )
        offline = s.scalar(
            select(func.count())
            .select_from(Device)
            .where(Device.protocol == "gb28181", Device.status == "offline")
        )
        channels = s.scalar(select(func.count()).select_from(Channel))
    return int(online or 0), int(offline or 0), int(channels or 0)


def test_two_hundred_simulated_nvrs_register_and_go_offline_when_killed(
    gb: Platform, client: TestClient, admin_headers: dict[str, str]
) -> None:
    server = gb.gb28181.server
    assert server is not None
    sim = subprocess.Popen(
        [
            sys.executable, "-m", "xueliang", "simulate", "gb28181",
            "--server", f"127.0.0.1:{server.port}",
            "--server-id", gb.gb28181.platform_id, "--domain", gb.gb28181.domain,
            "--password", gb.data.gb28181_password(),
            "--devices", str(DEVICES), "--channels", str(CHANNELS),
            "--keepalive", "1", "--ramp", "400", "--local-ip", "127.0.0.1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        wait_until(
            lambda: counts(gb) == (DEVICES, 0, DEVICES * CHANNELS), 60, "all online, all channels"
        )
        listed = client.get(
            "/api/v1/devices", params={"protocol": "gb28181", "limit": 1}, headers=admin_headers
        ).json()
        assert listed["total"] == DEVICES
        assert server.stats().registered == DEVICES
        wait_until(lambda: server.keepalives >= DEVICES, 10, "a keepalive from every device")
    finally:
        os.kill(sim.pid, signal.SIGKILL)
        sim.wait()
    # Two missed keepalives at 2 s: offline 4 s after each device's last one (and a tick).
    wait_until(lambda: counts(gb)[:2] == (0, DEVICES), 10, "all offline")
    # (Read once all are offline: keepalives a device sent just before it was killed may
    # still have been in the socket's buffer when it died.)
    killed = server.keepalives
    one = client.get("/api/v1/devices", params={"protocol": "gb28181", "limit": 1},
                     headers=admin_headers).json()["items"][0]  # fmt: skip
    assert "no keepalive" in one["status_reason"]
    assert server.keepalives == killed and len(server.registrar) == 0
