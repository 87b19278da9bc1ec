"""The data directory: configuration, database, keys, and (later) recordings.

DATA/xueliang.toml      configuration
DATA/xueliang.db        SQLite database (when no database URL is configured)
DATA/keys/secret.key    encrypts stored device credentials
DATA/keys/audit.key     keys the audit chain's HMAC
DATA/recordings/        media segments
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import tomli_w

from xueliang.config import CONFIG_FILE_NAME, Settings
from xueliang.core.errors import ConfigError
from xueliang.core.secretbox import SecretBox


class DataDir:
    def __init__(self, root: Path) -> None:
        self.root = root.expanduser().resolve()

    @property
    def config_file(self) -> Path:
        return self.root / CONFIG_FILE_NAME

    @property
    def keys(self) -> Path:
        return self.root / "keys"

    @property
    def recordings(self) -> Path:
        return self.root / "recordings"

    def exists(self) -> bool:
        return self.config_file.exists() and (self.keys / "secret.key").exists()

    def require(self) -> None:
        if not self.exists():
            raise ConfigError(
                f"{self.root} is not an initialised data directory; run `xueliang init` first"
            )

    def create(self, settings: Settings) -> None:
        """Lay out a new data directory; keys are made once and never overwritten."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.keys.mkdir(mode=0o700, exist_ok=True)
        self.recordings.mkdir(exist_ok=True)
        if not self.config_file.exists():
            body = settings.model_dump(mode="json", exclude_defaults=True)
            header = "# Xueliang configuration. Override any key as XUELIANG_<SECTION>_<KEY>.\n"
            self.config_file.write_text(header + tomli_w.dumps(body), encoding="utf-8")
        self._make_key("secret.key", SecretBox.new_key())
        self._make_key("audit.key", secrets.token_hex(32).encode())
        self.gb28181_password()

    def gb28181_password(self) -> str:
        """The password GB/T 28181 devices register with unless configured: made once (also
        for a data directory older than this key), letters and digits without look-alikes,
        since it is typed into each device's settings page."""
        alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789"
        made = "".join(secrets.choice(alphabet) for _ in range(12))
        self._make_key("gb28181.password", made.encode())
        return self.read_key("gb28181.password").decode()

    def _make_key(self, name: str, value: bytes) -> None:
        path = self.keys / name
        if path.exists():
            return
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(value)

    def read_key(self, name: str) -> bytes:
        try:
            return (self.keys / name).read_bytes().strip()
        except FileNotFoundError as exc:
            raise ConfigError(f"key {name} is missing from {self.keys}") from exc
