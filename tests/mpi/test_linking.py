"""The master index's parts against plain reference values: ID numbers, scoring, linking rules."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from yunying.auth.store import open_store
from yunying.mpi.facts import PatientFacts
from yunying.mpi.linker import MpiConflict, PatientIndex
from yunying.mpi.scoring import Demographics, compare, pinyin_of, score
from yunying.pii import keys_for
from yunying.records import idcard

# GB 11643-1999's own example number, and one made here
KNOWN_VALID = ["11010519491231002X", "440524188001010014"]


def with_check(first17: str) -> str:
    return first17 + idcard.check_character(first17)


@pytest.mark.parametrize("number", KNOWN_VALID)
def test_known_numbers_check(number: str) -> None:
    assert idcard.is_valid(number) and idcard.is_valid(number.lower())


@pytest.mark.parametrize("number", ["110105194912310021", "11010519491231002", "1101051949123100200",
                                    with_check("11010519491331002"),
                                    with_check("11010529991231002"), "11010519491231002Y", ""])
def test_wrong_check_digit_shape_or_date_is_refused(number: str) -> None:
    assert not idcard.is_valid(number)


@given(st.from_regex(r"[1-9]\d{5}(19[5-9]\d|200\d)(0[1-9]|1[0-2])(0[1-9]|1\d|2[0-8])\d{3}", fullmatch=True),
       st.sampled_from("0123456789X"))
def test_exactly_one_check_character_fits(first17: str, char: str) -> None:
    assert idcard.is_valid(first17 + char) == (char == idcard.check_character(first17))
    if char == idcard.check_character(first17):
        assert idcard.parse_id_card(first17 + char).birth_date == first17[6:14]


def test_a_record_without_birth_date_or_sex_takes_them_from_its_number(index: PatientIndex) -> None:
    done = index.observe(PatientFacts("his", "A", "1", id_number="11010519491231002x"))
    from yunying.mpi.views import find_identities
    shown = find_identities(index, "1")[0]
    assert (shown["birth_date"], shown["sex"], shown["id_invalid"]) == ("19491231", "F", False) and done.link == "new"


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


@pytest.mark.parametrize("tf_minimum, link", [(20, "review"), (10_000, "auto")])
def test_a_common_name_weighs_less(tmp_path: Path, tf_minimum: int, link: str) -> None:
    """Term-frequency adjustment: with 张伟 on half the records, name + birth date + sex agreeing
    is a review, not an automatic link (the same evidence links while the registry is too small
    for frequencies to count)."""
    index = PatientIndex(open_store(tmp_path / "data").engine, keys_for(tmp_path / "data"), tf_minimum=tf_minimum)
    for n in range(12):
        index.observe(facts("OLD", str(n), birth=f"19{n + 10}0101"))  # twelve other 张伟
        index.observe(facts("OTHER", str(n), name=f"路人{n}", birth=f"19{n + 30}0202"))
    a = index.observe(facts("A", "1", birth="19800101"))
    b = index.observe(facts("B", "1", birth="19800101"))
    assert b.link == link and (b.person_id == a.person_id) == (link == "auto")


def test_the_name_frequency_adjustment() -> None:
    from yunying.mpi.scoring import name_frequency_adjustment as adjust

    assert adjust(1, 100_000) == 0.0  # rarer than the prior: the prior stands
    assert adjust(50_000, 100_000) == pytest.approx(-9.97, abs=0.01)  # log2(0.0005 / 0.5)
    assert adjust(50, 100) == 0.0  # too few records to estimate a share
