"""``xueliang simulate``: simulated devices for load and interoperability tests."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import TYPE_CHECKING, Annotated

import typer

from xueliang.cli.common import fail

if TYPE_CHECKING:
    from xueliang.gb28181.simulator.runner import SimulatorRunner

app = typer.Typer(help="Run simulated devices against a platform.", no_args_is_help=True)


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise fail(f"--server must be HOST:PORT, got {text!r}", 2)
    return host.strip("[]"), int(port)


def _digits(name: str, value: str, count: int) -> None:
    if len(value) != count or not value.isascii() or not value.isdigit():
        raise fail(f"{name} must be {count} digits, got {value!r}", 2)


@app.command("gb28181")
def gb28181(
    server: Annotated[str, typer.Option(help="The platform's SIP address, HOST:PORT")],
    server_id: Annotated[str, typer.Option(help="The platform's 20-digit SIP server ID")],
    domain: Annotated[str, typer.Option(help="The 10-digit SIP domain")],
    password: Annotated[str, typer.Option(help="The registration password")],
    devices: Annotated[int, typer.Option(min=1, help="Number of devices")] = 1,
    channels: Annotated[
        int, typer.Option(min=1, help="Channels per device (1: IPC, more: NVR)")
    ] = 1,
    transport: Annotated[str, typer.Option(help="Signalling transport: udp or tcp")] = "udp",
    keepalive: Annotated[float, typer.Option(min=1, help="Keepalive interval, seconds")] = 30,
    id_prefix: Annotated[
        str, typer.Option(help="10-digit centre+industry prefix of the IDs (default: domain)")
    ] = "",
    ramp: Annotated[float, typer.Option(min=1, help="First REGISTERs per second")] = 200,
    expires: Annotated[int, typer.Option(min=60, help="Registration lifetime, seconds")] = 3600,
    local_ip: Annotated[
        str, typer.Option(help="Address put in Via, Contact and SDP (default: the route's)")
    ] = "",
    sip_port: Annotated[int, typer.Option(help="Local UDP signalling port (0: any)")] = 0,
    size: Annotated[str, typer.Option(help="Picture size WIDTHxHEIGHT")] = "640x360",
    duration: Annotated[float, typer.Option(help="Stop after this many seconds (0: never)")] = 0,
    mobile: Annotated[
        bool, typer.Option(help="Moving devices: MobilePosition notifies when subscribed")
    ] = False,
) -> None:
    """Simulated GB/T 28181 IPCs or NVRs: register, keep alive, answer queries and stream."""
    from xueliang.gb28181.simulator.runner import RunnerSettings, SimulatorRunner

    if transport.lower() not in ("udp", "tcp"):
        raise fail("--transport must be udp or tcp", 2)
    _digits("--server-id", server_id, 20)
    _digits("--domain", domain, 10)
    if id_prefix:
        _digits("--id-prefix", id_prefix, 10)
    try:
        width, height = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise fail(f"--size must be WIDTHxHEIGHT, got {size!r}", 2) from None
    settings = RunnerSettings(
        server=_address(server),
        server_id=server_id,
        domain=domain,
        password=password,
        devices=devices,
        channels=channels,
        transport=transport.lower(),
        keepalive=keepalive,
        id_prefix=id_prefix,
        advertise_host=local_ip,
        sip_port=sip_port,
        ramp_rate=ramp,
        expires=expires,
        width=width,
        height=height,
        mobile=mobile,
    )
    asyncio.run(_run(SimulatorRunner(settings), duration))


async def _run(runner: SimulatorRunner, duration: float) -> None:
    """Print one summary line a second until interrupted (or ``duration`` is over)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await runner.open()
    typer.echo(
        f"{runner.settings.devices} devices x {runner.settings.channels} channels, "
        f"SIP {'tcp' if runner.tcp else f'udp :{runner.sip_port}'}, RTP udp :{runner.rtp_port}, "
        f"server {runner.server[0]}:{runner.server[1]}"
    )
    task = asyncio.create_task(runner.run(stop))
    started = loop.time()
    while not task.done():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), timeout=1.0)
        typer.echo(runner.snapshot().line())
        if duration and loop.time() - started >= duration:
            stop.set()
    await task
