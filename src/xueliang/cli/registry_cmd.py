"""``xueliang org|device|channel``: the register from the host."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from xueliang.access.principal import cli_principal
from xueliang.cli.common import DEFAULT_DATA, DataOption, open_platform, reports_errors
from xueliang.registry.schemas import DeviceCreate, OrgCreate

org_app = typer.Typer(help="Manage the organisation tree.", no_args_is_help=True)
device_app = typer.Typer(help="Manage devices.", no_args_is_help=True)
channel_app = typer.Typer(
    help="Manage channels (点位) and the register sheet.", no_args_is_help=True
)


@org_app.command("add")
@reports_errors
def org_add(
    code: str,
    name: str,
    level: Annotated[str, typer.Option(help="province|city|county|town|village|grid|virtual")],
    parent: Annotated[str | None, typer.Option(help="Parent organisation code")] = None,
    data: DataOption = DEFAULT_DATA,
) -> None:
    """Add an organisation."""
    p = open_platform(data)
    try:
        spec = OrgCreate.model_validate(
            {"code": code, "name": name, "level": level, "parent": parent}
        )
        view = p.orgs.create(cli_principal(), spec)
    finally:
        p.close()
    typer.echo(f"Organisation {view.id} {view.name} added.")


@org_app.command("list")
@reports_errors
def org_list(data: DataOption = DEFAULT_DATA) -> None:
    """List organisations in tree order."""
    p = open_platform(data)
    try:
        orgs, _ = p.orgs.list(cli_principal(), limit=1_000_000)
    finally:
        p.close()
    for o in orgs:
        typer.echo(f"{o.id:<14} {o.level:<8} {o.name}  (parent {o.parent or '-'})")


@device_app.command("add")
@reports_errors
def device_add(
    name: str,
    protocol: Annotated[str, typer.Option(help="rtsp|onvif|gb28181|push")],
    url: Annotated[str | None, typer.Option(help="Stream or service URL")] = None,
    org: Annotated[str | None, typer.Option(help="Organisation code")] = None,
    kind: Annotated[str, typer.Option(help="ipc|camera|nvr|dvr|encoder|platform")] = "ipc",
    device_id: Annotated[
        str | None, typer.Option("--id", help="20-digit GB ID (generated if absent)")
    ] = None,
    data: DataOption = DEFAULT_DATA,
) -> None:
    """Register a device (an rtsp device gets its channel at once)."""
    p = open_platform(data)
    try:
        spec = DeviceCreate.model_validate(
            {
                "id": device_id,
                "name": name,
                "protocol": protocol,
                "url": url,
                "org": org,
                "kind": kind,
            }
        )
        view = p.devices.create(cli_principal(), spec)
    finally:
        p.close()
    typer.echo(f"Device {view.id} {view.name} added ({view.channel_count} channel(s)).")


@device_app.command("list")
@reports_errors
def device_list(
    data: DataOption = DEFAULT_DATA,
    org: Annotated[str | None, typer.Option(help="Within this organisation")] = None,
) -> None:
    """List devices."""
    p = open_platform(data)
    try:
        devices, total = p.devices.list(cli_principal(), org=org, limit=1_000_000)
    finally:
        p.close()
    for d in devices:
        typer.echo(f"{d.id}  {d.protocol:<8} {d.status:<8} {d.channel_count:>4} ch  {d.name}")
    typer.echo(f"{total} device(s)")


@device_app.command("remove")
@reports_errors
def device_remove(device_id: str, data: DataOption = DEFAULT_DATA) -> None:
    """Remove a device and its channels."""
    p = open_platform(data)
    try:
        p.devices.delete(cli_principal(), device_id)
    finally:
        p.close()
    typer.echo(f"Device {device_id} removed.")


@channel_app.command("list")
@reports_errors
def channel_list(
    data: DataOption = DEFAULT_DATA,
    org: Annotated[str | None, typer.Option(help="Within this organisation")] = None,
    device: Annotated[str | None, typer.Option(help="Of this device")] = None,
) -> None:
    """List channels."""
    p = open_platform(data)
    try:
        channels, total = p.channels.list(cli_principal(), org=org, device=device, limit=1_000_000)
    finally:
        p.close()
    for c in channels:
        typer.echo(f"{c.id}  {c.status:<8} {c.org or '-':<14} {c.name}")
    typer.echo(f"{total} channel(s)")


@channel_app.command("import")
@reports_errors
def channel_import(file: Path, data: DataOption = DEFAULT_DATA) -> None:
    """Import a register sheet (CSV or XLSX): every row, or none when any row is bad."""
    p = open_platform(data)
    try:
        result = p.register.import_sheet(cli_principal(), file.read_bytes(), filename=file.name)
    finally:
        p.close()
    typer.echo(
        f"{result.rows} rows: {result.channels_created} channels created, "
        f"{result.channels_updated} updated, {result.devices_created} devices created."
    )
    if result.ignored_columns:
        typer.echo(f"Ignored columns: {', '.join(result.ignored_columns)}")


@channel_app.command("export")
@reports_errors
def channel_export(
    file: Path,
    data: DataOption = DEFAULT_DATA,
    lang: Annotated[str, typer.Option(help="Column headings: zh or en")] = "zh",
) -> None:
    """Export the register to a sheet; the format follows the file's extension (.csv/.xlsx)."""
    fmt: Literal["csv", "xlsx"] = "csv" if file.suffix.lower() == ".csv" else "xlsx"
    language: Literal["zh", "en"] = "en" if lang == "en" else "zh"
    p = open_platform(data)
    try:
        body = p.register.export_sheet(cli_principal(), fmt=fmt, lang=language)
    finally:
        p.close()
    file.write_bytes(body)
    typer.echo(f"Register written to {file}.")
