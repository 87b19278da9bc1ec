"""The `xueliang` command, run as a real process the way an operator runs it."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.support.process import wait_for_output

EXE = [sys.executable, "-m", "xueliang"]


def _run(
    args: list[str],
    env: dict[str, str] | None = None,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*EXE, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        input=stdin,
        timeout=120,
        check=False,
    )


@pytest.fixture
def cli_env(database_url: str) -> dict[str, str]:
    env = {"XUELIANG_DATABASE_URL": database_url}
    env.pop("XUELIANG_ADMIN_PASSWORD", None)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_init_generates_and_prints_the_admin_password_once(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    data = tmp_path / "data"
    first = _run(["init", "--data", str(data)], cli_env)
    assert first.returncode == 0, first.stderr
    match = re.search(r"Admin password: (\S+)", first.stdout)
    assert match and len(match.group(1)) >= 16
    again = _run(["init", "--data", str(data)], cli_env)
    assert again.returncode == 0
    assert "Admin password" not in again.stdout
    assert "already initialised" in again.stdout
    keys = data / "keys"
    assert (keys / "secret.key").stat().st_mode & 0o077 == 0


def test_init_takes_the_admin_password_from_the_environment(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    env = {**cli_env, "XUELIANG_ADMIN_PASSWORD": "Deploy-Passw0rd-123"}
    r = _run(["init", "--data", str(tmp_path / "d")], env)
    assert r.returncode == 0, r.stderr
    assert "Deploy-Passw0rd-123" not in r.stdout
    assert "XUELIANG_ADMIN_PASSWORD" in r.stdout


@pytest.fixture
def running(tmp_path: Path, cli_env: dict[str, str]) -> Iterator[tuple[str, str]]:
    data = tmp_path / "data"
    env = {**cli_env, "XUELIANG_ADMIN_PASSWORD": "Deploy-Passw0rd-123"}
    assert _run(["init", "--data", str(data), "--demo"], env).returncode == 0
    port = _free_port()
    proc = subprocess.Popen(
        [*EXE, "run", "--data", str(data)],
        env={**os.environ, **env, "XUELIANG_HTTP_PORT": str(port)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_output(proc, r"Uvicorn running on", timeout=60)
        yield base, str(data)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_run_serves_the_api_with_the_demo(running: tuple[str, str]) -> None:
    base, _ = running
    r = httpx.post(
        f"{base}/api/v1/auth/login", json={"username": "admin", "password": "Deploy-Passw0rd-123"}
    )
    assert r.status_code == 200
    headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
    channels = httpx.get(f"{base}/api/v1/channels", headers=headers).json()
    assert channels["total"] == 16
    assert httpx.get(f"{base}/api/v1/channels").status_code == 401
    spec = httpx.get(f"{base}/api/v1/openapi.json").json()
    assert "/api/v1/channels/{channel_id}" in spec["paths"]


def test_user_commands(tmp_path: Path, cli_env: dict[str, str]) -> None:
    data = str(tmp_path / "data")
    assert _run(["init", "--data", data, "--demo"], cli_env).returncode == 0
    added = _run(
        ["user", "add", "zhang", "--role", "viewer", "--org", "340202001", "--data", data], cli_env
    )
    assert added.returncode == 0, added.stderr
    assert re.search(r"Password: \S{16,}", added.stdout)
    listed = _run(["user", "list", "--data", data], cli_env)
    assert "zhang" in listed.stdout and "340202001" in listed.stdout
    changed = _run(
        ["user", "passwd", "zhang", "--password-stdin", "--data", data],
        cli_env,
        stdin="New-Passw0rd-zhang\n",
    )
    assert changed.returncode == 0, changed.stderr
    weak = _run(
        ["user", "passwd", "zhang", "--password-stdin", "--data", data], cli_env, stdin="short\n"
    )
    assert weak.returncode == 1 and "at least" in weak.stderr
    dup = _run(["user", "add", "zhang", "--data", data], cli_env)
    assert dup.returncode == 1 and "already exists" in dup.stderr
    bad_role = _run(["user", "add", "li", "--role", "emperor", "--data", data], cli_env)
    assert bad_role.returncode == 1 and "emperor" in bad_role.stderr


def test_device_and_channel_commands(tmp_path: Path, cli_env: dict[str, str]) -> None:
    data = str(tmp_path / "data")
    assert _run(["init", "--data", data, "--demo"], cli_env).returncode == 0
    r = _run(
        [
            "device",
            "add",
            "北门",
            "--protocol",
            "rtsp",
            "--url",
            "rtsp://127.0.0.1/x",
            "--org",
            "340202003001",
            "--data",
            data,
        ],
        cli_env,
    )
    assert r.returncode == 0, r.stderr
    device_id = re.search(r"Device (\d{20})", r.stdout)
    assert device_id
    chans = _run(["channel", "list", "--device", device_id.group(1), "--data", data], cli_env)
    assert "北门" in chans.stdout and "1 channel(s)" in chans.stdout
    listed = _run(["device", "list", "--org", "340202003", "--data", data], cli_env)
    assert "17" not in listed.stdout.splitlines()[-1] and "北门" in listed.stdout
    bad = _run(["device", "add", "x", "--protocol", "carrier-pigeon", "--data", data], cli_env)
    assert bad.returncode == 1 and "protocol" in bad.stderr
    gone = _run(["device", "remove", device_id.group(1), "--data", data], cli_env)
    assert gone.returncode == 0
    assert _run(["device", "remove", device_id.group(1), "--data", data], cli_env).returncode == 1


def test_clear_errors(tmp_path: Path, cli_env: dict[str, str]) -> None:
    r = _run(["run", "--data", str(tmp_path / "nowhere")], cli_env)
    assert r.returncode == 1
    assert "not an initialised data directory" in r.stderr
    data = tmp_path / "data"
    assert _run(["init", "--data", str(data)], cli_env).returncode == 0
    (data / "xueliang.toml").write_text("[http]\nprot = 1\n")
    r = _run(["run", "--data", str(data)], cli_env)
    assert r.returncode == 1 and "http.prot" in r.stderr
    assert _run(["--help"]).returncode == 0
    assert _run(["user", "--help"]).returncode == 0
    assert _run(["no-such-command"]).returncode == 2
