"""Resident ID numbers (GB 11643-1999, ISO 7064 MOD 11-2) against a plain reference model."""
from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from yunying.records.idcard import InvalidIdCard, check_character, is_valid, parse_id_card


def reference(first17: str) -> str:
    """ISO 7064 MOD 11-2 as the standard states it: sum of a_i * 2^(i-1) mod 11, i from the right."""
    total = sum(int(d) * pow(2, 17 - i, 11) for i, d in enumerate(first17))
    return "0123456789X"[(12 - total % 11) % 11]


@given(st.text("0123456789", min_size=17, max_size=17))
def test_check_character_matches_the_reference(first17: str) -> None:
    assert check_character(first17) == reference(first17)


@given(st.integers(10**5, 10**6 - 1), st.dates(min_value=date(1900, 1, 1), max_value=date(2020, 12, 31)),
       st.integers(0, 999), st.integers(1, 10))
def test_every_other_check_character_is_refused(region: int, born: date, seq: int, shift: int) -> None:
    first17 = f"{region:06d}{born:%Y%m%d}{seq:03d}"
    good = first17 + check_character(first17)
    assert is_valid(good) and parse_id_card(good.lower()).birth_date == f"{born:%Y%m%d}"
    wrong = "0123456789X"[("0123456789X".index(good[17]) + shift) % 11]
    with pytest.raises(InvalidIdCard, match="check digit"):
        parse_id_card(first17 + wrong)


@pytest.mark.parametrize("value, says", [
    ("11010519491231002", "17 digits"), ("1101051949123100XX", "17 digits"), ("", "17 digits"),
    ("110105194913310025", "birth date"), ("110105" + "21000101" + "0011", "out of range"),
])
def test_malformed_numbers_say_what_is_wrong(value: str, says: str) -> None:
    first17 = value[:17]
    if len(value) == 18 and first17.isdigit():
        value = first17 + check_character(first17)
    with pytest.raises(InvalidIdCard, match=says):
        parse_id_card(value)


def test_the_published_example_and_sex() -> None:
    card = parse_id_card(" 11010519491231002x ")
    assert (card.number, card.region, card.birth_date, card.sex) == ("11010519491231002X", "110105", "19491231", "F")


def test_helpers_the_master_index_uses() -> None:
    from yunying.records.idcard import birth_date, normalise
    assert normalise(" 11010519491231002x ") == "11010519491231002X"
    assert birth_date("11010519491231002X") == "19491231" and birth_date("11010519491231002") is None
    assert not is_valid("01010519491231002" + check_character("01010519491231002"))  # no region begins with 0
