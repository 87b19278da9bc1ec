"""Debian's Chromium for the browser tests, headless, offline and quiet."""

from __future__ import annotations

CHROMIUM = "/usr/bin/chromium"
# No background connections (the machine may have no network), and video may play unmuted.
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]
