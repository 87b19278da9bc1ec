"""Start and stop the GStreamer RTSP server (tests/support/gst_rtsp_server.py) as a process."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from tests.support.process import wait_for_output

SCRIPT = Path(__file__).with_name("gst_rtsp_server.py")
SYSTEM_PYTHON = "/usr/bin/python3"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RtspPeer:
    def __init__(
        self,
        port: int | None = None,
        user: str | None = None,
        password: str | None = None,
        file: Path | None = None,
    ):
        self.port = port or free_port()
        self.user, self.password = user, password
        self.file = file  # served at /file
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, path: str) -> str:
        return f"rtsp://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        args = [SYSTEM_PYTHON, str(SCRIPT), str(self.port)]
        if self.user:
            args += ["--user", self.user, "--password", self.password or ""]
        if self.file is not None:
            args += ["--file", str(self.file)]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        wait_for_output(self.proc, "READY", timeout=30)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None
