"""The platform's side of the ONVIF segment test, run inside the client namespace.

Builds a platform in a temporary directory, then through its HTTP API (in-process): discovers
devices out of ``--interface``, probes the first one found, and registers it. Prints one JSON
object with each answer and the warnings the discovery logged, for the test to check.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from tests.support.onvif_app import with_onvif
from tests.support.onvif_peer import PeerConfig
from xueliang.api.app import create_app
from xueliang.app import build_platform
from xueliang.config import Settings
from xueliang.datadir import DataDir

ADMIN = "Admin-Passw0rd-for-segment"


class _Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def run(interface: str, timeout: float) -> dict[str, Any]:
    warnings = _Warnings()
    logging.getLogger("xueliang.onvif").addHandler(warnings)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings()
        settings.database.url = f"sqlite:///{Path(tmp) / 'x.db'}"
        settings.media.enabled = False
        data = DataDir(Path(tmp) / "data")
        data.create(settings)
        platform = build_platform(data.root, settings=settings)
        platform.users.bootstrap_admin(ADMIN)
        try:
            with TestClient(with_onvif(create_app(platform))) as client:
                login = client.post(
                    "/api/v1/auth/login", json={"username": "admin", "password": ADMIN}
                )
                headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
                r = client.post(
                    "/api/v1/onvif/discover",
                    headers=headers,
                    json={"interface_address": interface, "timeout_seconds": timeout},
                )
                out["discover"] = {"status": r.status_code, "body": r.json()}
                found = r.json() if r.status_code == 200 else []
                if found:
                    peer = PeerConfig()
                    access = {
                        "url": found[0]["xaddrs"][0],
                        "username": peer.username,
                        "password": peer.password,
                    }
                    r = client.post("/api/v1/onvif/probe", headers=headers, json=access)
                    out["probe"] = {"status": r.status_code, "body": r.json()}
                    r = client.post("/api/v1/onvif/devices", headers=headers, json=access)
                    out["register"] = {"status": r.status_code, "body": r.json()}
                    if r.status_code == 201:
                        chans = client.get(
                            "/api/v1/channels",
                            headers=headers,
                            params={"device": r.json()["id"]},
                        )
                        out["channels"] = chans.json()["items"]
        finally:
            platform.close()
    out["warnings"] = warnings.messages
    return out


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="onvif_segment_client")
    parser.add_argument("--interface", required=True)
    parser.add_argument("--timeout", type=float, default=1.5)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.interface, args.timeout)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
