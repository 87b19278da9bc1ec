"""Helpers shared by the GB/T 28181 tests that run the platform's SIP server for real: the
platform served by uvicorn (its lifespan starting GB/T 28181), optionally with its media
workers; the project's simulator as a subprocess or on a loop of its own in this process; and
waiting for the simulated channels to register."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from fastapi.testclient import TestClient

from tests.support.server import serve
from tests.support.wait import wait_until
from xueliang.api.app import create_app
from xueliang.app import Platform
from xueliang.gb28181.simulator.device import Device, Output
from xueliang.gb28181.simulator.runner import RunnerSettings, SimulatorRunner


@contextmanager
def gb_platform(
    platform: Platform, *, keepalive: float = 2.0, media: bool = False
) -> Iterator[str]:
    """The platform with its SIP server, served by uvicorn; yields the base URL.

    With ``media`` its workers run too, briefly: 1 s segments, a short back-off, and a GB/T 28181
    stream nobody watches is closed after 1 s.
    """
    platform.settings.gb28181.enabled = True
    platform.settings.gb28181.keepalive_seconds = keepalive
    if not media:
        with serve(create_app(platform)) as base:
            yield base
        return
    platform.gb28181.streams.idle_seconds = 1.0
    platform.media.segment_seconds = 1.0
    platform.media.backoff_cap = 0.5
    platform.media.start()
    try:
        with serve(create_app(platform)) as base:
            yield base
    finally:
        platform.media.stop()


# --- the simulator as a subprocess (``xueliang simulate gb28181``) -----------------------------


def simulator_command(
    p: Platform,
    *,
    devices: int = 1,
    channels: int = 2,
    keepalive: int = 2,
    size: str | None = "320x180",
    extra: Sequence[str] = (),
) -> list[str]:
    """The command line of the project's simulator registering with ``p``'s SIP server."""
    server = p.gb28181.server
    assert server is not None
    args = [sys.executable, "-m", "xueliang", "simulate", "gb28181"]
    args += ["--server", f"127.0.0.1:{server.port}", "--server-id", p.gb28181.platform_id]
    args += ["--domain", p.gb28181.domain, "--password", p.data.gb28181_password()]
    args += ["--devices", str(devices), "--channels", str(channels)]
    args += ["--keepalive", str(keepalive), "--local-ip", "127.0.0.1"]
    if size is not None:
        args += ["--size", size]
    return [*args, *extra]


@contextmanager
def simulator_process(p: Platform, **options: Any) -> Iterator[subprocess.Popen[str]]:
    """The simulator running (see ``simulator_command`` for the options); killed at the end."""
    sim = subprocess.Popen(
        simulator_command(p, **options),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield sim
    finally:
        os.kill(sim.pid, signal.SIGKILL)
        sim.wait()


# --- the simulator in this process, on a loop of its own ---------------------------------------


class SimThread:
    """A SimulatorRunner on its own event loop in a thread; as a context manager, stopped at
    the end (it is started by ``start``)."""

    def __init__(self, settings: RunnerSettings) -> None:
        self._settings = settings
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True)
        self.runner: SimulatorRunner | None = None

    def _main(self) -> None:
        self._loop.run_until_complete(self._run())
        self._loop.close()

    async def _run(self) -> None:
        self.runner = SimulatorRunner(self._settings)
        self._stop = asyncio.Event()
        await self.runner.open()
        self._ready.set()
        await self.runner.run(self._stop)

    def start(self) -> Device:
        self._thread.start()
        assert self._ready.wait(30), "the simulator did not open its sockets"
        assert self.runner is not None
        return self.runner.devices[0]

    def act(self, action: Callable[[Device, float], list[Output]]) -> None:
        """Make the device do something, on the simulator's loop."""
        assert self.runner is not None
        self._loop.call_soon_threadsafe(self.runner.act, 0, action)

    def stop(self) -> None:
        if self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)

    def __enter__(self) -> SimThread:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def sim_thread(p: Platform, *, devices: int = 1, **overrides: Any) -> SimThread:
    """Simulated devices registering with ``p``'s SIP server from 127.0.0.1 (not started yet);
    ``overrides`` are other RunnerSettings fields (channels, keepalive, mobile…)."""
    server = p.gb28181.server
    assert server is not None
    return SimThread(
        RunnerSettings(
            server=("127.0.0.1", server.port),
            server_id=p.gb28181.platform_id,
            domain=p.gb28181.domain,
            password=p.data.gb28181_password(),
            devices=devices,
            bind_host="127.0.0.1",
            advertise_host="127.0.0.1",
            **overrides,
        )
    )


# --- the platform's view of the simulated channels ---------------------------------------------


def channels_of(client: TestClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    """Every channel (the simulator's are the only ones)."""
    r = client.get("/api/v1/channels", headers=headers)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def online_channels(
    client: TestClient,
    headers: dict[str, str],
    count: int = 2,
    what: str = "the simulated NVR's two channels",
) -> list[dict[str, Any]]:
    """The channels once exactly ``count`` of them are online (registered)."""
    found: list[dict[str, Any]] = []

    def arrived() -> bool:
        found[:] = [c for c in channels_of(client, headers) if c["status"] == "online"]
        return len(found) == count

    wait_until(arrived, 30, what)
    return found


def registered_channels(client: TestClient, headers: dict[str, str]) -> list[str]:
    """The ids of the simulated NVR's two channels, once both are online."""
    return sorted(c["id"] for c in online_channels(client, headers))


def unregistered_channel(
    client: TestClient, headers: dict[str, str], device: str = "nvr", channel: str = "gate"
) -> str:
    """A channel of a GB/T 28181 NVR added by hand and never registered; its id."""
    r = client.post(
        "/api/v1/devices",
        json={"protocol": "gb28181", "name": device, "kind": "nvr"},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    r = client.post(
        "/api/v1/channels", json={"device": r.json()["id"], "name": channel}, headers=headers
    )
    assert r.status_code == 201, r.text
    channel_id: str = r.json()["id"]
    return channel_id


def is_registered(platform: Platform, device_id: str) -> bool:
    """Whether the platform's SIP server holds the device's registration now."""
    server = platform.gb28181.server
    if server is None:
        return False
    try:
        server.target(device_id)
    except LookupError:
        return False
    return True


def stop_and_unregister(platform: Platform, sim: SimThread, device_id: str) -> None:
    """Stop the simulated device (it unregisters) and wait until the server has let it go."""
    sim.stop()
    wait_until(lambda: not is_registered(platform, device_id), 15, "the device to unregister")
