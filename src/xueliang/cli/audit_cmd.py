"""``xueliang audit``: check the audit chain from the host."""

from __future__ import annotations

import typer

from xueliang.cli.common import DEFAULT_DATA, DataOption, open_platform, reports_errors

app = typer.Typer(help="Inspect the audit chain.", no_args_is_help=True)


@app.command("verify")
@reports_errors
def verify(data: DataOption = DEFAULT_DATA) -> None:
    """Walk the hash chain; exit 1 and name the first bad record when it is broken."""
    p = open_platform(data)
    try:
        report = p.audit_records.verify()
    finally:
        p.close()
    if report.ok:
        typer.echo(f"audit chain intact: {report.checked} records")
        return
    typer.echo(
        f"audit chain BROKEN at record {report.first_bad_seq}: {report.problem} "
        f"({report.checked} records before it are intact)",
        err=True,
    )
    raise typer.Exit(1)
