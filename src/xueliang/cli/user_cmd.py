"""``xueliang user``: accounts from the host."""

from __future__ import annotations

from typing import Annotated

import typer

from xueliang.access.passwords import generate_password
from xueliang.access.principal import cli_principal
from xueliang.access.schemas import ScopeSpec, UserCreate
from xueliang.cli.common import DEFAULT_DATA, DataOption, open_platform, read_secret, reports_errors

app = typer.Typer(help="Manage user accounts.", no_args_is_help=True)


@app.command("add")
@reports_errors
def add(
    username: str,
    data: DataOption = DEFAULT_DATA,
    role: Annotated[list[str], typer.Option("--role", "-r", help="Role (repeatable)")] = ["viewer"],  # noqa: B006
    org: Annotated[
        list[str], typer.Option("--org", help="Organisation subtree in scope (repeatable)")
    ] = [],  # noqa: B006
    channel: Annotated[
        list[str], typer.Option("--channel", help="Single channel in scope (repeatable)")
    ] = [],  # noqa: B006
    all_areas: Annotated[bool, typer.Option("--all-areas", help="Scope: everything")] = False,
    display_name: Annotated[str, typer.Option(help="Name shown in the console")] = "",
    password_stdin: Annotated[
        bool, typer.Option(help="Read the password from standard input")
    ] = False,
) -> None:
    """Add a user. Without --password-stdin a password is generated and printed once."""
    password = read_secret("", from_stdin=True) if password_stdin else generate_password()
    p = open_platform(data)
    try:
        spec = UserCreate(
            username=username,
            password=password,
            display_name=display_name,
            roles=role,
            scope=ScopeSpec(all=all_areas, orgs=org, channels=channel),
        )
        view = p.users.create_user(cli_principal(), spec)
    finally:
        p.close()
    typer.echo(f"User {view.username} (id {view.id}) added with roles {', '.join(view.roles)}.")
    if not password_stdin:
        typer.echo(f"Password: {password}")


@app.command("passwd")
@reports_errors
def passwd(
    username: str,
    data: DataOption = DEFAULT_DATA,
    password_stdin: Annotated[
        bool, typer.Option(help="Read the password from standard input")
    ] = False,
    generate: Annotated[bool, typer.Option(help="Generate a password and print it once")] = False,
) -> None:
    """Set a user's password (also unlocks the account and ends its sessions)."""
    if generate:
        password = generate_password()
    else:
        password = read_secret("New password", from_stdin=password_stdin)
    p = open_platform(data)
    try:
        p.users.set_password(cli_principal(), username, password)
    finally:
        p.close()
    typer.echo(f"Password of {username} changed.")
    if generate:
        typer.echo(f"Password: {password}")


@app.command("list")
@reports_errors
def list_(data: DataOption = DEFAULT_DATA) -> None:
    """List user accounts."""
    p = open_platform(data)
    try:
        users, _ = p.users.list_users(cli_principal(), q=None, offset=0, limit=100_000)
    finally:
        p.close()
    typer.echo(f"{'ID':>4}  {'USERNAME':<20} {'ROLES':<24} {'SCOPE':<30} STATE")
    for u in users:
        scope = "all" if u.scope.all else ",".join(u.scope.orgs + u.scope.channels) or "-"
        state = "enabled" if u.enabled else "disabled"
        if u.locked_until is not None:
            state += f", locked until {u.locked_until:%Y-%m-%d %H:%M:%S}Z"
        typer.echo(f"{u.id:>4}  {u.username:<20} {','.join(u.roles):<24} {scope:<30} {state}")
