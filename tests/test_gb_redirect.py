"""Redirecting registrations to access nodes (clustered mode, gb28181-interop.md "redirect").

The node choice as a pure function; ``[gb28181] redirect_to`` validated; the simulated device
following a 302 with bytes; then for real: SIPp (a SIP peer nobody here wrote) at a front that
answers 302 only once the digest is right, and the project's simulator sent by a front platform
to a second platform, where it ends up registered and online, and never at the front.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.gb import SimThread, gb_platform, sim_thread
from tests.support.rtsp_peer import free_port
from tests.support.server import serve
from tests.support.wait import wait_until
from xueliang.access.principal import SYSTEM
from xueliang.api.app import create_app
from xueliang.app import Platform, build_platform
from xueliang.config import Settings, load_settings
from xueliang.core.errors import ConfigError, NotFound
from xueliang.datadir import DataDir
from xueliang.gb28181.redirect import Node, choose_node, parse_node, redirect_contact
from xueliang.gb28181.simulator.catalog import device_id, make_channels
from xueliang.gb28181.simulator.device import Device, DeviceConfig, Output, Transmit
from xueliang.gb28181.simulator.runner import RunnerSettings
from xueliang.gb28181.sip import (
    DigestAuthenticator,
    SipRequest,
    make_response,
    parse_message,
)

SIPP = Path(__file__).parent / "sipp"
DOMAIN = "3402000000"
SERVER_ID = "34020000002000000001"
PASSWORD = "12345678"
T0 = 1_780_000_000.0
CAMERA = "34020000001320000201"
NODES = ("192.0.2.10:5060", "192.0.2.11:5070", "[2001:db8::1]:5060")


# --- the node choice ---------------------------------------------------------------------------


def test_every_device_always_gets_the_same_node_and_the_fleet_is_spread() -> None:
    nodes = [parse_node(n) for n in NODES]
    ids = [device_id(DOMAIN, i, nvr=False) for i in range(3000)]
    chosen = {d: choose_node(d, nodes) for d in ids}
    # The same whatever the order of the list, call after call.
    assert all(choose_node(d, nodes[::-1]) == chosen[d] for d in ids)
    assert all(choose_node(d, nodes) == chosen[d] for d in ids[:100])
    counts = {node: sum(1 for n in chosen.values() if n == node) for node in nodes}
    assert all(800 < c < 1200 for c in counts.values()), counts
    # A node taken out of the list moves its own devices only.
    fewer = nodes[:2]
    moved = [d for d in ids if choose_node(d, fewer) != chosen[d]]
    assert moved and all(chosen[d] == nodes[2] for d in moved)
    assert redirect_contact(CAMERA, nodes[2]) == f"<sip:{CAMERA}@[2001:db8::1]:5060>"
    assert parse_node(" node-2.example:5062 ") == Node("node-2.example", 5062)


# --- [gb28181] redirect_to ---------------------------------------------------------------------


def test_redirect_to_from_the_file_and_from_a_variable(tmp_path: Path) -> None:
    assert load_settings(tmp_path, environ={}).gb28181.redirect_to == ()
    (tmp_path / "xueliang.toml").write_text(
        '[gb28181]\nredirect_to = ["192.0.2.10:5060", " [2001:db8::1]:5060", "node-3:5062"]\n'
    )
    cfg = load_settings(tmp_path, environ={}).gb28181
    assert cfg.redirect_to == ("192.0.2.10:5060", "[2001:db8::1]:5060", "node-3:5062")
    for value, expected in [
        ("192.0.2.10:5060, 192.0.2.11:5070", ("192.0.2.10:5060", "192.0.2.11:5070")),
        ('["192.0.2.10:5060", "[2001:db8::1]:5060"]', ("192.0.2.10:5060", "[2001:db8::1]:5060")),
        ("[2001:db8::1]:5060", ("[2001:db8::1]:5060",)),  # not JSON: one IPv6 node
        ("", ()),  # the variable switches the file's list off
    ]:
        env = {"XUELIANG_GB28181_REDIRECT_TO": value}
        assert load_settings(tmp_path, environ=env).gb28181.redirect_to == expected, value


@pytest.mark.parametrize(
    "entries",
    [
        ["192.0.2.10"],  # no port
        ["192.0.2.10:0"],
        ["192.0.2.10:65536"],
        ["node one:5060"],
        ["34020000002000000001@192.0.2.10:5060"],
        ["192.0.2.10:5060;transport=tcp"],
        [""],
        ["192.0.2.10:5060", "192.0.2.10:5060"],
    ],
)
def test_bad_access_nodes_are_refused_naming_the_key(tmp_path: Path, entries: list[str]) -> None:
    quoted = ", ".join(f'"{e}"' for e in entries)
    (tmp_path / "xueliang.toml").write_text(f"[gb28181]\nredirect_to = [{quoted}]\n")
    with pytest.raises(ConfigError, match=r"gb28181\.redirect_to"):
        load_settings(tmp_path, environ={})


def test_bad_access_node_from_a_variable_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"XUELIANG_GB28181_REDIRECT_TO.*no port"):
        load_settings(tmp_path, environ={"XUELIANG_GB28181_REDIRECT_TO": "192.0.2.10, x:1"})
    with pytest.raises(ConfigError, match="redirect_to names this server itself"):
        load_settings(
            tmp_path,
            environ={
                "XUELIANG_GB28181_HOST": "192.0.2.10",
                "XUELIANG_GB28181_REDIRECT_TO": "192.0.2.11:5060,192.0.2.10:5060",
            },
        )


# --- the simulated device follows a 302 (bytes) ------------------------------------------------


def _device() -> Device:
    return Device(
        DeviceConfig(
            device_id=device_id(DOMAIN, 0, nvr=False),
            server_id=SERVER_ID,
            domain=DOMAIN,
            password=PASSWORD,
            channels=make_channels(DOMAIN, 0, 1),
            keepalive_interval=10,
        )
    )


def _sent(outputs: list[Output]) -> list[tuple[SipRequest, tuple[str, int] | None]]:
    found = []
    for out in outputs:
        if isinstance(out, Transmit):
            message = parse_message(out.data)
            if isinstance(message, SipRequest):
                found.append((message, out.to))
    return found


def _challenged(device: Device, outputs: list[Output], now: float) -> list[Output]:
    """Answer the REGISTER in ``outputs`` with a challenge; the device's answer to it."""
    [(register, _)] = _sent(outputs)
    auth = DigestAuthenticator(DOMAIN)
    challenge = make_response(
        register, 401, headers=[("WWW-Authenticate", auth.challenge(now).to_header())]
    )
    return device.receive(challenge.to_bytes(), now)


def _moved(register: SipRequest, contact: str) -> bytes:
    return make_response(register, 302, headers=[("Contact", contact)]).to_bytes()


def test_simulated_device_registers_where_a_302_sends_it() -> None:
    device = _device()
    outputs = device.start(T0)
    [(_, to)] = _sent(outputs)
    assert to is None  # the configured server
    [(front, to)] = _sent(_challenged(device, outputs, T0))
    assert to is None and "Authorization" in front.headers
    outputs = device.receive(_moved(front, f"<sip:{CAMERA}@192.0.2.11:5070>"), T0)
    [(there, to)] = _sent(outputs)
    node = ("192.0.2.11", 5070)
    assert to == node
    # A new registration at the node: its own Call-ID, challenged anew there.
    assert there.method == "REGISTER" and there.call_id != front.call_id
    assert "Authorization" not in there.headers
    [(authorised, to)] = _sent(_challenged(device, outputs, T0))
    assert to == node and "Authorization" in authorised.headers
    device.receive(make_response(authorised, 200).to_bytes(), T0)
    assert device.registered and device.counters.registrations == 1
    # Keepalives and refreshes go to the node, and so does the unregistration.
    [(keepalive, to)] = _sent(device.tick(T0 + 10))
    assert keepalive.method == "MESSAGE" and to == node
    device.receive(make_response(keepalive, 200).to_bytes(), T0 + 10)
    refresh_at = device.next_register
    assert refresh_at is not None
    [(refresh, to)] = [(r, t) for r, t in _sent(device.tick(refresh_at)) if r.method == "REGISTER"]
    assert to == node
    device.receive(make_response(refresh, 200).to_bytes(), refresh_at)
    [(bye, to)] = _sent(device.stop(refresh_at + 1))
    assert bye.expires == 0 and to == node


def test_a_lost_node_sends_the_device_back_to_the_front() -> None:
    device = _device()
    [(front, _)] = _sent(device.start(T0))
    [(there, to)] = _sent(device.receive(_moved(front, "<sip:x@[2001:db8::1]>"), T0))
    assert to == ("2001:db8::1", 5060)  # no port: SIP's own
    device.receive(make_response(there, 200).to_bytes(), T0)
    [(keepalive, _)] = _sent(device.tick(T0 + 10))
    device.receive(make_response(keepalive, 403).to_bytes(), T0 + 10)  # the node forgot it
    assert not device.registered
    retry = device.next_register
    assert retry is not None
    [(again, to)] = _sent(device.tick(retry))
    assert again.method == "REGISTER" and to is None  # the front again, to be redirected anew


def test_a_redirect_from_the_node_is_not_followed_in_circles() -> None:
    device = _device()
    [(front, _)] = _sent(device.start(T0))
    [(there, _)] = _sent(device.receive(_moved(front, "<sip:x@192.0.2.11:5070>"), T0))
    assert _sent(device.receive(_moved(there, "<sip:x@192.0.2.12:5070>"), T0)) == []
    assert device.counters.register_failures == 1 and device.next_register is not None
    # A 302 without a Contact to follow fails too.
    device = _device()
    [(front, _)] = _sent(device.start(T0))
    assert _sent(device.receive(make_response(front, 302).to_bytes(), T0)) == []
    assert device.counters.register_failures == 1


# --- the front for real, with SIPp as the camera -----------------------------------------------


@pytest.fixture
def front(platform: Platform) -> Iterator[Platform]:
    platform.settings.gb28181.enabled = True
    platform.settings.gb28181.redirect_to = NODES
    with serve(create_app(platform)):
        yield platform


def _sipp(
    p: Platform, password: str, log: Path, timeout: int = 15
) -> subprocess.CompletedProcess[str]:
    server = p.gb28181.server
    assert server is not None
    args = [
        "sipp", f"127.0.0.1:{server.port}", "-sf", str(SIPP / "ipc_redirect.xml"),
        "-s", p.gb28181.platform_id,
        "-key", "device", CAMERA, "-key", "domain", p.gb28181.domain,
        "-key", "contact_port", str(free_port()),
        "-au", CAMERA, "-ap", password, "-m", "1", "-l", "1",
        "-i", "127.0.0.1", "-p", str(free_port()),
        "-timeout", f"{timeout}s", "-timeout_error",
        "-nostdin", "-trace_err", "-error_file", "/dev/stderr",
        "-trace_logs", "-log_file", str(log),
    ]  # fmt: skip
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout + 10)


def test_front_answers_302_with_the_devices_node_and_registers_nothing(
    front: Platform, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="xueliang.gb28181.server")
    password = front.data.gb28181_password()
    expected = choose_node(CAMERA, [parse_node(n) for n in NODES])
    for attempt in (1, 2):
        log = tmp_path / f"sipp-{attempt}.log"
        run = _sipp(front, password, log)
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
        assert f"redirected {CAMERA} to {expected}" in log.read_text()  # the same node each time
    server = front.gb28181.server
    assert server is not None
    stats = server.stats()
    assert stats.redirected == 2 and stats.registered == 0 and stats.registrations == 0
    with pytest.raises(NotFound):  # not added to the register, as a registration would
        front.devices.get(SYSTEM, CAMERA)
    logged = [r for r in caplog.records if "redirected to access node" in r.getMessage()]
    assert len(logged) == 1  # once per device, not per REGISTER


def test_wrong_password_learns_no_node(front: Platform, tmp_path: Path) -> None:
    run = _sipp(front, "not-the-password", tmp_path / "sipp.log", timeout=5)
    assert run.returncode != 0
    assert "403" in run.stdout + run.stderr
    assert not any(node in run.stdout + run.stderr for node in NODES)
    server = front.gb28181.server
    assert server is not None and server.refused == 1 and server.redirected == 0


# --- two platforms: the simulator sent from the front to a node --------------------------------


@pytest.fixture
def node(tmp_path: Path, platform: Platform) -> Iterator[Platform]:
    """A second platform (its own data and database) taking the front's device password, as
    the nodes of one cluster do."""
    settings = Settings()
    settings.database.url = f"sqlite:///{tmp_path / 'node.db'}"
    settings.media.enabled = False
    settings.gb28181.enabled = False  # started by gb_platform
    settings.gb28181.port = 0
    settings.gb28181.password = platform.data.gb28181_password()
    data = DataDir(tmp_path / "node")
    data.create(settings)
    p = build_platform(data.root, settings=settings)
    try:
        yield p
    finally:
        p.close()


def _status(p: Platform, gb_id: str) -> str | None:
    """The device's status in ``p``'s register; None while it is not there."""
    try:
        return p.devices.get(SYSTEM, gb_id).status
    except NotFound:
        return None


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_simulated_device_is_redirected_and_registers_at_the_node(
    platform: Platform, node: Platform, transport: str
) -> None:
    # Over TCP the device closes its connection to the front and opens one to the node,
    # down which the node then sends its catalogue query.
    with gb_platform(node):
        node_server = node.gb28181.server
        assert node_server is not None
        # The node first in the list or not: a list of one sends every device there.
        platform.settings.gb28181.redirect_to = (f"127.0.0.1:{node_server.port}",)
        with (
            gb_platform(platform),
            sim_thread(platform, channels=2, keepalive=1.0, transport=transport) as thread,
        ):
            device = thread.start()
            gb_id = device.config.device_id
            wait_until(lambda: _status(node, gb_id) == "online", 30, "online at the node")
            wait_until(lambda: node_server.keepalives >= 2, 10, "keepalives at the node")
            front_server = platform.gb28181.server
            assert front_server is not None
            assert device.registered
            assert node_server.registrar.get(gb_id) is not None
            assert front_server.stats().redirected == 1
            assert len(front_server.registrar) == 0 and front_server.keepalives == 0
            with pytest.raises(NotFound):
                platform.devices.get(SYSTEM, gb_id)
            # The node asked its catalogue: the NVR's channels are there.
            wait_until(
                lambda: node.devices.get(SYSTEM, gb_id).channel_count == 2, 10, "its channels"
            )


def test_wrong_password_at_the_front_goes_nowhere(platform: Platform) -> None:
    platform.settings.gb28181.redirect_to = NODES
    with gb_platform(platform):
        server = platform.gb28181.server
        assert server is not None
        settings = RunnerSettings(
            server=("127.0.0.1", server.port),
            server_id=platform.gb28181.platform_id,
            domain=platform.gb28181.domain,
            password="not-the-password",
            bind_host="127.0.0.1",
            advertise_host="127.0.0.1",
        )
        with SimThread(settings) as thread:
            device = thread.start()
            wait_until(lambda: server.refused >= 1, 10, "the wrong password refused")
            assert server.redirected == 0 and not device.registered
            assert device.counters.register_failures >= 1
