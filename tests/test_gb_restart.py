"""A device that restarts (TeleBoot, a power cut) registers again under a new Call-ID while its
registration is still live: the platform sees a restart, not a renewal. It stays online
throughout, is asked for its information and catalogue again, is subscribed anew (its
subscriptions died with it), and the media sessions it held end at once with the reason, so
viewers hear why and the next viewer's INVITE reaches the restarted device."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.support.gb import SimThread, gb_platform, online_channels, sim_thread
from tests.support.wait import wait_until
from xueliang.app import Platform
from xueliang.gb28181.simulator.device import Device

pytestmark = pytest.mark.media


@pytest.fixture
def gb(platform: Platform) -> Iterator[Platform]:
    platform.gb28181.subscriptions.settle = 0.2
    with gb_platform(platform, media=True):
        platform.gb28181.streams.idle_seconds = 60.0  # sessions end by the restart only
        yield platform


@pytest.fixture
def sim(gb: Platform) -> Iterator[SimThread]:
    with sim_thread(gb, channels=1, keepalive=1.0, width=320, height=180) as thread:
        yield thread


def subscribed(gb: Platform, device: Device) -> bool:
    views = gb.gb28181.subscriptions.subscriptions(device.config.device_id)
    return len(views) == 3 and all(v.state == "active" for v in views)


def test_a_restarted_device_stays_online_is_asked_again_and_its_streams_end(
    gb: Platform, sim: SimThread, client: TestClient, admin_headers: dict[str, str]
) -> None:
    device = sim.start()
    device_id = device.config.device_id
    (channel,) = online_channels(client, admin_headers, 1, "the simulated camera's channel")
    wait_until(lambda: subscribed(gb, device), 30, "three active subscriptions")
    server = gb.gb28181.server
    assert server is not None
    before = client.get(f"/api/v1/devices/{device_id}", headers=admin_headers).json()
    assert before["status"] == "online"
    r = client.post(f"/api/v1/channels/{channel['id']}/live/ticket", headers=admin_headers)
    assert r.status_code == 200, r.text
    streams = gb.gb28181.streams
    assert len(streams.sessions()) == 1
    subscribes, catalogues = device.counters.subscribes, device.counters.messages_in

    sim.act(lambda d, now: d.restart(now))

    def restarted() -> bool:
        reg = server.registrar.get(device_id)
        return reg is not None and reg.restarts == 1

    wait_until(restarted, 15, "the restart to be seen")
    wait_until(lambda: streams.sessions() == [], 15, "the restarted device's stream to end")
    assert streams._ports.in_use == 0
    # Asked again (DeviceInfo and Catalog are MESSAGEs to it) and subscribed anew.
    wait_until(lambda: device.counters.subscribes >= subscribes + 3, 30, "new subscriptions")
    wait_until(lambda: subscribed(gb, device), 30, "three active subscriptions again")
    assert device.counters.messages_in >= catalogues + 2
    after = client.get(f"/api/v1/devices/{device_id}", headers=admin_headers).json()
    assert after["status"] == "online" and after["status_since"] == before["status_since"]
    sip = client.get(f"/api/v1/devices/{device_id}/sip", headers=admin_headers).json()
    assert sip["registered"] and sip["restarts"] == 1
    # The next viewer's INVITE reaches the restarted device.
    r = client.post(f"/api/v1/channels/{channel['id']}/live/ticket", headers=admin_headers)
    assert r.status_code == 200, r.text
    (session,) = streams.sessions()
    assert session.online
