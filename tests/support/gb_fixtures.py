"""Pytest fixtures of a simulated GB/T 28181 NVR registered with the platform (its SIP server
under uvicorn, no media workers), for tests of controls, presets and configuration.

tests/conftest.py loads this module as a plugin, so any test may take them by name; a module
that defines its own fixture of the same name uses its own."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.gb import SimThread, gb_platform, online_channels, sim_thread
from xueliang.app import Platform
from xueliang.gb28181.simulator.device import Device


@pytest.fixture
def gb(platform: Platform) -> Iterator[Platform]:
    with gb_platform(platform):
        yield platform


@pytest.fixture
def sim(gb: Platform) -> Iterator[SimThread]:
    # An NVR: channel 1 a dome, channel 2 fixed.
    with sim_thread(gb, channels=2, keepalive=2.0) as thread:
        yield thread


@pytest.fixture
def device(sim: SimThread) -> Device:
    return sim.start()


@pytest.fixture
def dome(device: Device, client: TestClient, admin_headers: dict[str, str]) -> dict[str, Any]:
    """The NVR's dome channel, registered and online."""
    (ch,) = [c for c in online_channels(client, admin_headers) if c["ptz"]]
    assert ch["device_id"] == device.config.device_id
    return ch
