"""Configuration: TOML file plus XUELIANG_* overrides, validated with messages naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from xueliang.config import load_settings
from xueliang.core.errors import ConfigError


def test_defaults_bind_loopback(tmp_path: Path) -> None:
    s = load_settings(tmp_path, environ={})
    assert s.http.host == "127.0.0.1"
    assert s.http.port == 8080


def test_file_and_environment(tmp_path: Path) -> None:
    (tmp_path / "xueliang.toml").write_text("[http]\nport = 9000\n[auth]\nlockout_seconds = 60\n")
    s = load_settings(
        tmp_path, environ={"XUELIANG_HTTP_PORT": "9100", "XUELIANG_HTTP_HOST": "localhost"}
    )
    assert s.http.port == 9100  # the variable wins over the file
    assert s.http.host == "localhost"
    assert s.auth.lockout_seconds == 60


def test_unknown_key_in_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "xueliang.toml").write_text("[http]\nprot = 9000\n")
    with pytest.raises(ConfigError, match=r"http\.prot"):
        load_settings(tmp_path, environ={})


def test_unknown_section_is_named(tmp_path: Path) -> None:
    (tmp_path / "xueliang.toml").write_text("[htp]\nport = 9000\n")
    with pytest.raises(ConfigError, match="htp"):
        load_settings(tmp_path, environ={})


def test_bad_value_from_environment_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="XUELIANG_HTTP_PORT"):
        load_settings(tmp_path, environ={"XUELIANG_HTTP_PORT": "eighty"})
    with pytest.raises(ConfigError, match="XUELIANG_AUTH_NOPE"):
        load_settings(tmp_path, environ={"XUELIANG_AUTH_NOPE": "1"})


def test_malformed_toml(tmp_path: Path) -> None:
    (tmp_path / "xueliang.toml").write_text("[http\nport = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(tmp_path, environ={})


def test_unrelated_variables_are_ignored(tmp_path: Path) -> None:
    s = load_settings(
        tmp_path, environ={"XUELIANG_ADMIN_PASSWORD": "x", "XUELIANG_TEST_DB": "postgresql"}
    )
    assert s.http.port == 8080


def test_rtsp_client_choice(tmp_path: Path) -> None:
    assert load_settings(tmp_path, environ={}).media.rtsp_client == "own"
    s = load_settings(tmp_path, environ={"XUELIANG_MEDIA_RTSP_CLIENT": "ffmpeg"})
    assert s.media.rtsp_client == "ffmpeg"
    with pytest.raises(ConfigError, match="XUELIANG_MEDIA_RTSP_CLIENT"):
        load_settings(tmp_path, environ={"XUELIANG_MEDIA_RTSP_CLIENT": "gstreamer"})
