"""A throw-away PostgreSQL cluster for the test run: initdb + pg_ctl in a temporary directory,
listening on 127.0.0.1 on a free port, removed afterwards. Used when no server is given through
XUELIANG_TEST_DATABASE_URL, so `make test` works on a fresh machine without a configured server.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SEARCH = [Path("/usr/lib/postgresql") / v / "bin" for v in ("17", "16", "15", "14")]


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for d in SEARCH:
        if (d / name).exists():
            return str(d / name)
    raise RuntimeError(f"{name} not found: install PostgreSQL (Debian: postgresql)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def throwaway_cluster() -> Iterator[str]:
    """Yield a superuser URL of a fresh cluster; stop and delete it on exit."""
    root = Path(tempfile.mkdtemp(prefix="xl-pg-"))
    data = root / "data"
    prefix: list[str] = []
    if os.geteuid() == 0:
        # PostgreSQL refuses to run as root; run it as the postgres system user.
        shutil.chown(root, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
    subprocess.run(
        [
            *prefix,
            _binary("initdb"),
            "-D",
            str(data),
            "-U",
            "xl",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
        env=env,
    )
    subprocess.run(
        [
            *prefix,
            _binary("pg_ctl"),
            "-D",
            str(data),
            "-w",
            "-t",
            "60",
            "-l",
            str(root / "log"),
            "-o",
            f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off -c full_page_writes=off "
            "-c max_connections=200",
            "start",
        ],
        check=True,
        capture_output=True,
        env=env,
    )
    try:
        yield f"postgresql+psycopg://xl@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*prefix, _binary("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            env=env,
            check=False,
        )
        shutil.rmtree(root, ignore_errors=True)
