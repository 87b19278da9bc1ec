"""URLs that carry credentials (``rtsp://user:pass@host/x``): kept apart, never logged."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit, urlunsplit


def split_userinfo(url: str) -> tuple[str, str | None, str | None]:
    """The URL without its user info, and the user and password it carried (decoded)."""
    parts = urlsplit(url)
    if parts.username is None:
        return url, None, None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    clean = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    password = unquote(parts.password) if parts.password is not None else None
    return clean, unquote(parts.username), password
