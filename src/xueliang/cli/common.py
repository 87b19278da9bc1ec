"""Shared pieces of the CLI: the data-directory option, platform loading, error reporting."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, ParamSpec, TypeVar

import typer

from xueliang.app import Platform, build_platform
from xueliang.core.errors import XueliangError

DataOption = Annotated[
    Path,
    typer.Option(
        "--data",
        "-d",
        envvar="XUELIANG_DATA",
        help="Data directory (config, database, keys)",
        show_default=True,
    ),
]
DEFAULT_DATA = Path("data")

P = ParamSpec("P")
R = TypeVar("R")


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def reports_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn the platform's errors into one line on stderr and exit status 1."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except XueliangError as exc:
            detail = ""
            if isinstance(exc.details, list):
                detail = "\n" + "\n".join(f"  {d}" for d in exc.details[:50])
            raise fail(exc.message + detail) from None

    return wrapper


def open_platform(data: Path) -> Platform:
    return build_platform(data)


def read_secret(prompt: str, *, from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return str(typer.prompt(prompt, hide_input=True, confirmation_prompt=True))
