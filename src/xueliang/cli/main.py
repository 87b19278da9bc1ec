"""``xueliang``: init, run, and the administration sub-commands."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from xueliang import __version__
from xueliang.access.passwords import generate_password
from xueliang.cli import audit_cmd, registry_cmd, simulate_cmd, user_cmd
from xueliang.cli.common import DEFAULT_DATA, DataOption, fail, reports_errors
from xueliang.config import load_settings
from xueliang.datadir import DataDir

app = typer.Typer(
    name="xueliang",
    help="Xueliang (雪亮) video networking platform.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(user_cmd.app, name="user")
app.add_typer(registry_cmd.org_app, name="org")
app.add_typer(registry_cmd.device_app, name="device")
app.add_typer(registry_cmd.channel_app, name="channel")
app.add_typer(audit_cmd.app, name="audit")
app.add_typer(simulate_cmd.app, name="simulate")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"xueliang {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    _version_flag: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version")
    ] = False,
) -> None:
    """Xueliang (雪亮) video networking platform."""


@app.command()
@reports_errors
def init(
    data: DataOption = DEFAULT_DATA,
    demo: Annotated[bool, typer.Option(help="Fill the register with a demonstration area")] = False,
) -> None:
    """Create a data directory, its database and keys, and the admin account.

    The admin password is XUELIANG_ADMIN_PASSWORD when set, otherwise generated and printed once.
    Running it again on an initialised directory changes nothing.
    """
    from xueliang.app import build_platform

    d = DataDir(data)
    fresh = not d.exists()
    settings = load_settings(d.root if d.config_file.exists() else None)
    if demo:
        settings.demo.enabled = True
    d.create(settings)
    platform = build_platform(d.root)
    try:
        given = os.environ.get("XUELIANG_ADMIN_PASSWORD")
        with platform.db.read() as s:
            from sqlalchemy import select

            from xueliang.store.models import User

            has_admin = s.scalar(select(User.pk).where(User.username == "admin")) is not None
        if not has_admin:
            password = given or generate_password()
            platform.users.bootstrap_admin(password)
            typer.echo(f"Initialised {d.root}")
            if given:
                typer.echo("Admin account: admin (password from XUELIANG_ADMIN_PASSWORD)")
            else:
                typer.echo("Admin account: admin")
                typer.echo(f"Admin password: {password}")
                typer.echo("This password is shown once. Change it after the first login.")
            gb = platform.settings.gb28181
            if not gb.password:
                typer.echo(
                    f"GB/T 28181: platform ID {platform.gb28181.platform_id}, domain "
                    f"{platform.gb28181.domain}, device password {d.gb28181_password()} "
                    f"(kept in {d.keys / 'gb28181.password'})"
                )
        elif fresh:
            typer.echo(f"Initialised {d.root}")
        else:
            typer.echo(f"{d.root} is already initialised; nothing changed.")
        if demo or platform.settings.demo.enabled:
            from xueliang.demo import seed_demo

            added = seed_demo(platform)
            if added:
                typer.echo(f"Demo register: {added} channels added.")
    finally:
        platform.close()


@app.command()
@reports_errors
def run(
    data: DataOption = DEFAULT_DATA,
    host: Annotated[str | None, typer.Option(help="Listen address (default from config)")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (default from config)")] = None,
) -> None:
    """Start the platform (HTTP API and every role) on one data directory."""
    import uvicorn

    from xueliang.api.app import create_app
    from xueliang.app import build_platform

    platform = build_platform(data)
    http = platform.settings.http
    bind_host = host or http.host
    bind_port = port if port is not None else http.port
    typer.echo(f"Xueliang {__version__} listening on http://{bind_host}:{bind_port}")
    gb = platform.settings.gb28181
    if gb.enabled:
        typer.echo(
            f"GB/T 28181 SIP server {platform.gb28181.platform_id}@{platform.gb28181.domain} "
            f"on {gb.host}:{gb.port} (UDP and TCP)"
        )
    try:
        uvicorn.run(
            create_app(platform),
            host=bind_host,
            port=bind_port,
            log_level="info",
            access_log=False,
            proxy_headers=False,
        )
    finally:
        platform.close()


@app.command("check-config")
@reports_errors
def check_config(data: DataOption = DEFAULT_DATA) -> None:
    """Validate the configuration file and XUELIANG_* variables, and print the result."""
    import tomli_w

    d = DataDir(data)
    settings = load_settings(d.root)
    typer.echo(tomli_w.dumps(settings.model_dump(mode="json")))


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        raise fail("interrupted", 130) from None
