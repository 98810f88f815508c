"""Parsing raw matching values into typed Matches (PS3.4 C.2.2.2)."""
from __future__ import annotations

import pytest

from index import InvalidQueryValue, Match, parse_match, supported_match_tags, tag_of
from index.parse import high_bound, like_pattern, low_bound
from index.query import MatchKind


def test_tag_of_keywords_hex_and_paths() -> None:
    assert tag_of("PatientName") == "00100010"
    assert tag_of("0020000d") == "0020000D"
    assert tag_of("RequestAttributesSequence.ScheduledProcedureStepID") == "00400275.00400009"
    assert tag_of("00400275.00401001") == "00400275.00401001"
    assert tag_of("NoSuchKeyword") is None
    assert tag_of("0010001") is None


def test_supported_tags_per_level() -> None:
    assert "00100010" in supported_match_tags("PATIENT")
    assert "0020000D" not in supported_match_tags("PATIENT")
    study = supported_match_tags("STUDY")
    assert {"00080061", "00080062", "00080080", "00100010", "0020000D"} <= study
    assert "00080060" not in study
    series = supported_match_tags("SERIES")
    assert {"00080060", "00400275.00400009", "00400275.00401001", "00080020"} <= series
    image = supported_match_tags("IMAGE")
    assert {"00080018", "00200013", "00080023", "00080060", "00100020"} <= image


@pytest.mark.parametrize("raw,kind,values", [
    ("", "universal", ()),
    ("*", "universal", ()),
    ("Wang^*", "wildcard", ("Wang^*",)),
    ("W?ng", "wildcard", ("W?ng",)),
    ("Wang^Xiaodong", "single", ("Wang^Xiaodong",)),
])
def test_pn_kinds(raw: str, kind: MatchKind, values: tuple[str, ...]) -> None:
    assert parse_match("PatientName", raw) == Match("00100010", kind, values)


def test_uid_lists_both_separators() -> None:
    assert parse_match("StudyInstanceUID", "1.2.3,1.2.4").values == ("1.2.3", "1.2.4")
    assert parse_match("0020000D", "1.2.3\\1.2.4", list_sep="\\") == Match(
        "0020000D", "list", ("1.2.3", "1.2.4"))
    assert parse_match("StudyInstanceUID", "1.2.3").kind == "single"


def test_cs_list_and_lo_comma_is_single() -> None:
    assert parse_match("ModalitiesInStudy", "CT,MR") == Match("00080061", "list", ("CT", "MR"))
    assert parse_match("StudyDescription", "Chest, abdomen").kind == "single"


@pytest.mark.parametrize("raw,lo,hi", [
    ("20240101-20241231", "20240101", "20241231"),
    ("-20241231", "", "20241231"),
    ("20240101-", "20240101", ""),
])
def test_date_ranges(raw: str, lo: str, hi: str) -> None:
    assert parse_match("StudyDate", raw) == Match("00080020", "range", (lo, hi))


def test_time_and_datetime_ranges() -> None:
    assert parse_match("StudyTime", "0800-1030").values == ("0800", "1030")
    dt = parse_match("00080015", "20240101120000-0500-20240102")  # DT with a UTC offset
    assert dt == Match("00080015", "range", ("20240101120000-0500", "20240102"))


def test_bounds_cover_whole_units() -> None:
    assert low_bound("TM", "10") == "100000.000000"
    assert high_bound("TM", "1030") == "103059.999999"
    assert high_bound("TM", "103015.5") == "103015.599999"
    assert low_bound("DT", "2024") == "20240101000000.000000"
    assert high_bound("DT", "202402") == "20240231235959.999999"


def test_like_pattern_escapes() -> None:
    assert like_pattern("a%b_c\\d*e?") == "a\\%b\\_c\\\\d%e_"


@pytest.mark.parametrize("key,raw", [
    ("StudyDate", "2024-13-01"),
    ("StudyDate", "20241301"),
    ("StudyDate", "20240230"),
    ("StudyDate", "2024010"),
    ("StudyDate", "2024*"),
    ("StudyDate", "20241231-20240101"),
    ("StudyDate", "-"),
    ("StudyTime", "2500"),
    ("StudyTime", "10:7"),
    ("StudyTime", "1061"),
    ("00080015", "2024011"),
    ("StudyInstanceUID", "1.2.abc"),
    ("StudyInstanceUID", "1." + "2" * 70),
    ("StudyInstanceUID", "1.2.*"),
    ("StudyInstanceUID", "1..2"),
    ("SOPInstanceUID", "1.2,x"),
    ("SeriesNumber", "one"),
    ("InstanceNumber", "1.5"),
    ("Rows", "-3"),
    ("Rows", "70000"),
    ("SeriesNumber", "99999999999"),
])
def test_rejects_malformed_values_naming_the_tag(key: str, raw: str) -> None:
    with pytest.raises(InvalidQueryValue) as exc:
        parse_match(key, raw)
    assert exc.value.tag == tag_of(key)
    assert exc.value.tag in str(exc.value)


def test_unknown_attribute_is_refused() -> None:
    with pytest.raises(InvalidQueryValue):
        parse_match("NotAKeyword", "x")


def test_numbers_accept_signs_and_spaces() -> None:
    assert parse_match("SeriesNumber", " 12 ") == Match("00200011", "single", ("12",))
    assert parse_match("InstanceNumber", "+3").kind == "single"
