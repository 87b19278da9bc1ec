from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xueliang.core.errors import InvalidInput
from xueliang.core.gbcode import centre_code_for, generate_gb_id, is_gb_id, parse_gb_id


def test_parse_fields() -> None:
    gb = parse_gb_id("34020000001320000001")
    assert gb.centre == "34020000"
    assert gb.industry == "00"
    assert gb.type_code == "132"
    assert gb.describe() == "IPC"
    assert gb.network == "0"
    assert gb.serial == 1


@pytest.mark.parametrize(
    "bad", ["", "3402000000132000000", "340200000013200000011", "3402000000132000000x", "３４" * 10]
)
def test_rejects_malformed(bad: str) -> None:
    assert not is_gb_id(bad)
    with pytest.raises(InvalidInput):
        parse_gb_id(bad)


def test_unknown_type_codes_are_accepted() -> None:
    assert parse_gb_id("34020000009990000001").describe() == "type 999"


def test_generation_continues_after_the_highest_serial() -> None:
    taken = ["34020000001310000007", "34020000001310000003", "34020000001320000099"]
    assert generate_gb_id(centre="34020000", type_code="131", taken=taken) == "34020000001310000008"
    assert generate_gb_id(centre="340202", type_code="131", taken=[]) == "34020200001310000001"


def test_generation_exhausted() -> None:
    with pytest.raises(InvalidInput, match="exhausted"):
        generate_gb_id(centre="34020000", type_code="131", taken=["34020000001310999999"])


@given(st.text(max_size=30))
def test_is_gb_id_never_raises(text: str) -> None:
    assert is_gb_id(text) == (len(text) == 20 and text.isascii() and text.isdigit())


def test_centre_code_padding() -> None:
    assert centre_code_for("34") == "34000000"
    assert centre_code_for("340202001001") == "34020200"
