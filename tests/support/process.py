"""Waiting on a child process's output: the condition a test waits for, with a deadline."""

from __future__ import annotations

import os
import re
import selectors
import subprocess
import time


def wait_for_output(proc: subprocess.Popen[bytes], pattern: str, timeout: float) -> str:
    """Read the process's stdout until it matches ``pattern``; returns what was read.

    Reads the raw pipe (not a buffered file object, whose buffer select() cannot see) and fails
    when the process exits first or the deadline passes, with its output in the message.
    """
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    seen = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while True:
            text = seen.decode(errors="replace")
            if re.search(pattern, text):
                return text
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no output matching {pattern!r} in {timeout} s:\n{text}")
            if not sel.select(timeout=left):
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError(f"process exited before {pattern!r}:\n{text}")
            seen += chunk
