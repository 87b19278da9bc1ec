"""Encryption of stored device credentials with the data directory's secret key (Fernet)."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken

from xueliang.core.errors import ConfigError


class SecretBox:
    def __init__(self, key: bytes) -> None:
        try:
            self._fernet = Fernet(key)
        except ValueError as exc:
            raise ConfigError("the data directory's secret key is malformed") from exc

    @staticmethod
    def new_key() -> bytes:
        return Fernet.generate_key()

    def seal(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode()).decode()

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken as exc:
            raise ConfigError(
                "a stored credential does not match this data directory's key"
            ) from exc
