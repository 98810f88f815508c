"""The master index's parts against plain reference values: ID numbers, scoring, linking rules."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from yunying.auth.store import open_store
from yunying.mpi import idcard
from yunying.mpi.facts import PatientFacts
from yunying.mpi.linker import MpiConflict, PatientIndex
from yunying.mpi.scoring import Demographics, compare, pinyin_of, score
from yunying.pii import keys_for

# GB 11643-1999's own example number, and one made here
KNOWN_VALID = ["11010519491231002X", "440524188001010014"]


def with_check(first17: str) -> str:
    return first17 + idcard.check_character(first17)


@pytest.mark.parametrize("number", KNOWN_VALID)
def test_known_numbers_check(number: str) -> None:
    assert idcard.is_valid(number) and idcard.is_valid(number.lower())


@pytest.mark.parametrize("number", ["110105194912310021", "11010519491231002", "1101051949123100200",
                                    "01010519491231002X", with_check("11010519491331002"),
                                    with_check("11010529991231002"), "11010519491231002Y", ""])
def test_wrong_check_digit_shape_or_date_is_refused(number: str) -> None:
    assert not idcard.is_valid(number)


@given(st.from_regex(r"[1-9]\d{5}(19[5-9]\d|200\d)(0[1-9]|1[0-2])(0[1-9]|1\d|2[0-8])\d{3}", fullmatch=True),
       st.sampled_from("0123456789X"))
def test_exactly_one_check_character_fits(first17: str, char: str) -> None:
    assert idcard.is_valid(first17 + char) == (char == idcard.check_character(first17))
    assert idcard.birth_date(first17 + char) == first17[6:14]


def test_sex_and_birth_date_from_the_number() -> None:
    assert idcard.sex("11010519491231002X") == "F" and idcard.sex("440524188001010014") == "M"
    assert idcard.birth_date("11010519491231002X") == "19491231"


def test_names_compare_by_characters_then_pinyin() -> None:
    assert pinyin_of("张伟") == pinyin_of("ZHANG^WEI") == "zhangwei"
    d = Demographics
    assert compare(d("张伟"), d("张 伟"))["name"] == "exact"
    assert compare(d("张伟"), d("章伟"))["name"] == "pinyin"
    assert compare(d("张伟"), d("张玮"))["name"] == "pinyin"
    assert compare(d("张伟"), d("张维嘉"))["name"] == "close"
    assert compare(d("张伟"), d("李娜"))["name"] == "different"
    assert compare(d(birth_date="19800101"), d(birth_date="19800110"))["birth_date"] == "close"
    assert compare(d(birth_date="19800312"), d(birth_date="19801203"))["birth_date"] == "close"
    assert compare(d(birth_date="19800101"), d(birth_date="19911231"))["birth_date"] == "different"
    assert compare(d(), d()) == {}  # nothing known: nothing compared
    exact = score(d("张伟", "M", "19800101"), d("张伟", "M", "19800101"))[0]
    assert exact > score(d("张伟", "M", "19800101"), d("章伟", "M", "19800101"))[0] > 0
    assert score(d("张伟", "M", "19800101"), d("张伟", "F", "19800101"))[0] < exact


@pytest.fixture
def index(tmp_path: Path) -> PatientIndex:
    return PatientIndex(open_store(tmp_path / "data").engine, keys_for(tmp_path / "data"))


def facts(issuer: str, pid: str, name: str = "张伟", birth: str = "19800101", id_number: str = "",
          phone: str = "", sex: str = "M") -> PatientFacts:
    return PatientFacts("test", issuer, pid, "h", name, sex, birth, id_number, phone)


def test_two_different_valid_numbers_never_link_by_score(index: PatientIndex) -> None:
    a = index.observe(facts("A", "1", id_number=with_check("11010519800101123")))
    b = index.observe(facts("B", "1", id_number=with_check("11010519800101456")))
    assert a.person_id != b.person_id and b.link == "new"


def test_a_phone_joins_the_same_name_and_sends_a_homophone_to_review(index: PatientIndex) -> None:
    a = index.observe(facts("A", "1", phone="+86 138-0013-8000"))
    b = index.observe(facts("B", "2", birth="", phone="13800138000"))
    assert b.person_id == a.person_id and b.link == "auto"
    # a parent's phone on a child's record is common: a homophone with it waits for a person
    c = index.observe(facts("C", "3", name="章伟", birth="", phone="13800138000"))
    assert c.person_id != a.person_id and c.link == "review"


def test_a_manual_decision_outlives_new_facts_and_reverts_in_order(index: PatientIndex) -> None:
    a = index.observe(facts("A", "1"))
    b = index.observe(facts("B", "1"))
    assert b.person_id == a.person_id and b.link == "auto"
    alone = index.unlink(b.identity_id, "user:tester")
    again = index.observe(facts("B", "1", phone="13900000000"))  # facts change: stays as decided
    assert again.person_id == alone.person_id and again.link == "manual"
    with pytest.raises(MpiConflict):
        index.unlink(b.identity_id, "user:tester")  # its person's only identity
    index.link(b.identity_id, a.person_id, "user:tester")
    from yunying.mpi.views import event_list
    unlink_ev, link_ev = [e for e in reversed(event_list(index, b.identity_id)) if e["action"] in ("unlink", "link")][-2:]
    with pytest.raises(MpiConflict):
        index.revert(unlink_ev["id"], "user:tester")  # moved since: revert the later one first
    assert index.revert(link_ev["id"], "user:tester").person_id == alone.person_id
    assert index.revert(unlink_ev["id"], "user:tester").person_id == a.person_id


def test_sealed_values_are_not_in_the_database_file(index: PatientIndex, tmp_path: Path) -> None:
    number = with_check("11010519800101123")
    index.observe(facts("A", "1", id_number=number, phone="13800138000"))
    raw = (tmp_path / "data" / "app.sqlite").read_bytes() + (tmp_path / "data" / "app.sqlite-wal").read_bytes() \
        if (tmp_path / "data" / "app.sqlite-wal").exists() else (tmp_path / "data" / "app.sqlite").read_bytes()
    assert number.encode() not in raw and b"13800138000" not in raw
