"""Search semantics per VR and level, answer shaping, paging (PS3.4 C.2.2.2, PS3.18 10.6)."""
from __future__ import annotations

from typing import Any

import pytest

from index import Index, Query, parse_match
from index.query import Level

from .conftest import el, make, record_of


def uids(ix: Index, level: Level = "STUDY", *matches: tuple[str, str], fuzzy: bool = False,
         **kw: Any) -> list[str]:
    """The UIDs (study/series/sop per level) of a search."""
    tag = {"STUDY": "0020000D", "SERIES": "0020000E", "IMAGE": "00080018"}[level]
    q = Query(level, [parse_match(k, v) for k, v in matches], fuzzy=fuzzy, **kw)
    return [r[tag]["Value"][0] for r in ix.search(q)]


@pytest.fixture
def corpus(ix: Index) -> Index:
    """Five studies with varied attributes."""
    study_1 = {"00080050": el("SH", "ACC_1"), "00081030": el("LO", "Chest 100%"),
               "00080090": el("PN", {"Alphabetic": "Li^Na"})}
    ix.upsert([
        make(study="1.1", series="1.1.1", sop="1.1.1.1", pid="A1", name="Wang^Xiaodong",
             study_date="20240105", study_time="103015", modality="CT",
             json={**study_1, "00080080": el("LO", "Peking Union"), "00180015": el("CS", "CHEST"),
                   "00400275": el("SQ", {"00400009": el("SH", "SPS1"),
                                         "00401001": el("SH", "RP1")})}),
        make(study="1.1", series="1.1.2", sop="1.1.2.1", pid="A1", name="Wang^Xiaodong",
             study_date="20240105", study_time="103015", modality="MR", series_number=2,
             json={**study_1, "00080080": el("LO", "Ruijin")}),
        make(study="1.2", series="1.2.1", sop="1.2.1.1", pid="B2",
             name={"Alphabetic": "Zhang^San", "Ideographic": "张^三", "Phonetic": "zhang^san"},
             study_date="20231231", study_time="2359", modality="MR",
             json={"00081030": el("LO", "Chest_abd"), "00080050": el("SH", "ACC2")}),
        make(study="1.3", series="1.3.1", sop="1.3.1.1", pid="C3", name="王小东",
             study_date="20240301", study_time="080000.5", modality="US",
             json={"00081030": el("LO", "chest\\x")}),
        make(study="1.4", series="1.4.1", sop="1.4.1.1", pid="D4", name="O'Brien^Mary Ann",
             study_date=None, study_time=None, modality="CR"),
        make(study="1.5", series="1.5.1", sop="1.5.1.1", pid="E5",
             name={"Alphabetic": "Wang^Xiaodong", "Ideographic": "王^小东"},
             study_date="20240105", study_time="09", modality="CT"),
    ])
    return ix


def test_order_and_universal(corpus: Index) -> None:
    # StudyDate desc, StudyTime desc, UID; studies without a date last.
    assert uids(corpus) == ["1.3", "1.1", "1.5", "1.2", "1.4"]
    assert uids(corpus, "STUDY", ("PatientName", ""), ("StudyDate", "*")) == uids(corpus)


def test_limit_offset_stable(corpus: Index) -> None:
    full = uids(corpus)
    pages = [uids(corpus, limit=2, offset=o) for o in (0, 2, 4, 6)]
    assert [u for page in pages for u in page] == full and pages[-1] == []
    assert uids(corpus, offset=3) == full[3:]
    assert uids(corpus, limit=0) == []


def test_single_values_are_exact_and_case_sensitive(corpus: Index) -> None:
    assert uids(corpus, "STUDY", ("PatientID", "B2")) == ["1.2"]
    assert uids(corpus, "STUDY", ("PatientID", "b2")) == []
    assert uids(corpus, "STUDY", ("AccessionNumber", "ACC_1")) == ["1.1"]
    assert uids(corpus, "STUDY", ("StudyDescription", "chest 100%")) == []


def test_wildcards_escape_sql_metacharacters(corpus: Index) -> None:
    assert uids(corpus, "STUDY", ("StudyDescription", "Chest*")) == ["1.1", "1.2"]
    assert uids(corpus, "STUDY", ("StudyDescription", "*100%")) == ["1.1"]
    assert uids(corpus, "STUDY", ("StudyDescription", "*1_0*")) == []
    assert uids(corpus, "STUDY", ("StudyDescription", "Chest?abd")) == ["1.2"]
    assert uids(corpus, "STUDY", ("StudyDescription", "chest\\*")) == ["1.3"]
    assert uids(corpus, "STUDY", ("AccessionNumber", "ACC?1")) == ["1.1"]
    assert uids(corpus, "STUDY", ("AccessionNumber", "ACC_?")) == ["1.1"]


def test_uid_single_and_list(corpus: Index) -> None:
    assert uids(corpus, "STUDY", ("StudyInstanceUID", "1.2")) == ["1.2"]
    assert uids(corpus, "STUDY", ("StudyInstanceUID", "1.2,1.4,9.9")) == ["1.2", "1.4"]
    assert uids(corpus, "IMAGE", ("SOPInstanceUID", "1.1.2.1\\1.5.1.1")) == ["1.1.2.1", "1.5.1.1"]


def test_dates(corpus: Index) -> None:
    assert uids(corpus, "STUDY", ("StudyDate", "20240105")) == ["1.1", "1.5"]
    assert uids(corpus, "STUDY", ("StudyDate", "20240101-20240131")) == ["1.1", "1.5"]
    assert uids(corpus, "STUDY", ("StudyDate", "-20231231")) == ["1.2"]
    assert uids(corpus, "STUDY", ("StudyDate", "20240106-")) == ["1.3"]


def test_times_cover_their_unit(corpus: Index) -> None:
    assert uids(corpus, "STUDY", ("StudyTime", "-1030")) == ["1.3", "1.1", "1.5"]
    assert uids(corpus, "STUDY", ("StudyTime", "-1029")) == ["1.3", "1.5"]
    assert uids(corpus, "STUDY", ("StudyTime", "1030")) == ["1.1"]
    assert uids(corpus, "STUDY", ("StudyTime", "09-09")) == ["1.5"]
    assert uids(corpus, "STUDY", ("StudyTime", "2359-")) == ["1.2"]
    assert uids(corpus, "STUDY", ("StudyTime", "080000.5")) == ["1.3"]
    assert uids(corpus, "STUDY", ("StudyTime", "080000.6-")) == ["1.1", "1.5", "1.2"]


def test_modalities_institutions_and_sop_classes_any_series(corpus: Index) -> None:
    assert uids(corpus, "STUDY", ("ModalitiesInStudy", "MR")) == ["1.1", "1.2"]
    assert uids(corpus, "STUDY", ("ModalitiesInStudy", "US,CR")) == ["1.3", "1.4"]
    assert uids(corpus, "STUDY", ("ModalitiesInStudy", "C?")) == ["1.1", "1.5", "1.4"]
    assert uids(corpus, "STUDY", ("InstitutionName", "Ruijin")) == ["1.1"]
    assert uids(corpus, "STUDY", ("InstitutionName", "Peking*")) == ["1.1"]
    assert uids(corpus, "STUDY", ("SOPClassesInStudy", "1.2.840.10008.5.1.4.1.1.2")) == uids(corpus)


def test_series_keys(corpus: Index) -> None:
    assert uids(corpus, "SERIES", ("Modality", "CT")) == ["1.1.1", "1.5.1"]
    assert uids(corpus, "SERIES", ("StudyInstanceUID", "1.1"), ("SeriesNumber", "2")) == ["1.1.2"]
    assert uids(corpus, "SERIES", ("InstitutionName", "Ruijin")) == ["1.1.2"]
    assert uids(corpus, "SERIES", ("BodyPartExamined", "CHEST")) == ["1.1.1"]
    assert uids(corpus, "SERIES", ("00400275.00400009", "SPS1")) == ["1.1.1"]
    assert uids(corpus, "SERIES", ("RequestAttributesSequence.RequestedProcedureID", "RP*")) == ["1.1.1"]
    assert uids(corpus, "SERIES", ("PatientID", "A1")) == ["1.1.1", "1.1.2"]


def test_image_keys(corpus: Index) -> None:
    assert uids(corpus, "IMAGE", ("StudyDate", "20240105"), ("Modality", "MR")) == ["1.1.2.1"]
    assert uids(corpus, "IMAGE", ("InstanceNumber", "1"), ("PatientID", "C3")) == ["1.3.1.1"]
    assert uids(corpus, "IMAGE", ("SOPClassUID", "1.2.840.10008.5.1.4.1.1.2"), ("PatientID", "D4")) == ["1.4.1.1"]


def test_pn_any_group_case_insensitive(corpus: Index) -> None:
    assert uids(corpus, "STUDY", ("PatientName", "wang^xiaodong")) == ["1.1", "1.5"]
    assert uids(corpus, "STUDY", ("PatientName", "王^小东")) == ["1.5"]
    assert uids(corpus, "STUDY", ("PatientName", "张^三")) == ["1.2"]
    assert uids(corpus, "STUDY", ("PatientName", "张*")) == ["1.2"]
    assert uids(corpus, "STUDY", ("PatientName", "Zhang^San=张^三")) == ["1.2"]
    assert uids(corpus, "STUDY", ("PatientName", "Zhang^San=李^四")) == []
    assert uids(corpus, "STUDY", ("PatientName", "=王*")) == ["1.5"]
    assert uids(corpus, "STUDY", ("PatientName", "Wang")) == []
    assert uids(corpus, "STUDY", ("PatientName", "Wang^Xiaodong^^")) == ["1.1", "1.5"]
    assert uids(corpus, "STUDY", ("ReferringPhysicianName", "LI^NA")) == ["1.1"]


def test_pn_fuzzy(corpus: Index) -> None:
    def fz(value: str) -> list[str]:
        return uids(corpus, "STUDY", ("PatientName", value), fuzzy=True)
    assert fz("wang xiao") == ["1.1", "1.5"]
    assert fz("xiao WANG") == ["1.1", "1.5"]
    assert fz("小东") == ["1.5"]
    assert fz("王小东") == ["1.3", "1.5"]
    assert fz("王") == ["1.3", "1.5"]
    assert fz("zhang,san") == ["1.2"]
    assert fz("三") == ["1.2"]
    assert fz("zhang 三") == []  # tokens must match within one group
    assert fz("mary o'b") == ["1.4"]
    assert fz("ann") == ["1.4"]
    assert fz("%") == [] and fz("_") == []


def test_pn_from_real_charset_files(ix: Index) -> None:
    ix.upsert([record_of(n) for n in ("chrX1.dcm", "chrX2.dcm", "chrH31.dcm", "chrI2.dcm")])
    def names(value: str, fuzzy: bool = False) -> list[str]:
        q = Query("STUDY", [parse_match("PatientName", value)], fuzzy=fuzzy)
        return sorted(r["00100020"]["Value"][0] for r in ix.search(q))
    assert names("Wang^XiaoDong") == ["X1EXAMPLE", "X2EXAMPLE"]
    assert names("王^小东") == ["X2EXAMPLE"]
    assert names("王^小東") == ["X1EXAMPLE"]
    assert names("王*") == ["X1EXAMPLE", "X2EXAMPLE"]
    assert names("山田^太郎") == ["H31EXAMPLE"]
    assert names("やまだ*") == ["H31EXAMPLE"]
    assert names("gildong hong", fuzzy=True) == ["I2EXAMPLE"]
    assert names("吉洞", fuzzy=True) == ["I2EXAMPLE"]


def test_study_defaults_and_computed(corpus: Index) -> None:
    (st,) = corpus.search(Query("STUDY", [parse_match("StudyInstanceUID", "1.1")]))
    assert set(st) == {"00080005", "00080020", "00080030", "00080050", "00080056", "00080061",
                       "00080090", "00100010", "00100020", "0020000D", "00201206", "00201208"}
    assert st["00080061"] == el("CS", "CT", "MR") and st["00080056"] == el("CS", "ONLINE")
    assert list(st) == sorted(st)
    assert st["00100010"] == el("PN", {"Alphabetic": "Wang^Xiaodong"})


def test_includefield_and_matching_keys_returned(corpus: Index) -> None:
    q = Query("STUDY", [parse_match("StudyDescription", "Chest*")],
              includefields={"00080080", "00180015", "00081190", "00102000"})
    st = next(iter(corpus.search(q)))
    assert st["00081030"] == el("LO", "Chest 100%")  # a matching key
    # Not study-level: looked up in the representative (newest) instance of the study.
    assert st["00080080"] == el("LO", "Ruijin")
    assert st["00180015"] == {"vr": "CS"}  # asked, absent in that instance: empty
    assert st["00102000"] == {"vr": "LO"}
    assert "00081190" not in st  # RetrieveURL is the HTTP face's


def test_include_all(corpus: Index) -> None:
    q = Query("STUDY", [parse_match("StudyInstanceUID", "1.1")], include_all=True,
              includefields={"00080080"})
    (st,) = corpus.search(q)
    assert {"00080062", "00080090", "00100010", "00080080"} <= set(st)
    assert "00080060" not in st and "7FE00010" not in st
    (im,) = corpus.search(Query("IMAGE", [parse_match("SOPInstanceUID", "1.1.1.1")], include_all=True))
    assert im["00400275"]["Value"][0]["00400009"] == el("SH", "SPS1")
    assert "7FE00010" not in im and im["00080056"] == el("CS", "ONLINE")


def test_series_answers(corpus: Index) -> None:
    scoped = list(corpus.search(Query("SERIES", [parse_match("StudyInstanceUID", "1.1")])))
    assert [s["00201209"] for s in scoped] == [el("IS", 1), el("IS", 1)]
    assert set(scoped[0]) == {"00080005", "00080060", "0008103E", "0020000D", "0020000E",
                              "00200011", "00201209", "00400275"} - {"0008103E"}
    unscoped = list(corpus.search(Query("SERIES", [parse_match("Modality", "MR")])))[1]
    assert unscoped["00100020"] == el("LO", "A1") and unscoped["00201206"] == el("IS", 2)
    assert unscoped["00080061"] == el("CS", "CT", "MR")
    inc = next(iter(corpus.search(Query("SERIES", [parse_match("StudyInstanceUID", "1.1")],
                                        includefields={"00081030", "00280010"}))))
    assert inc["00081030"] == el("LO", "Chest 100%") and inc["00280010"] == el("US", 4)


def test_image_answers(corpus: Index) -> None:
    q = Query("IMAGE", [parse_match("StudyInstanceUID", "1.1"), parse_match("SeriesInstanceUID", "1.1.1")])
    (im,) = corpus.search(q)
    assert set(im) == {"00080005", "00080016", "00080018", "00080056", "00200013", "00280010",
                       "00280011", "00280100", "0020000D", "0020000E"}
    (im,) = corpus.search(Query("IMAGE", [parse_match("SOPInstanceUID", "1.1.2.1")]))
    assert im["00201209"] == el("IS", 1) and im["00201208"] == el("IS", 2)
    assert im["00080060"] == el("CS", "MR") and im["00100020"] == el("LO", "A1")
    (im,) = corpus.search(Query("IMAGE", [parse_match("StudyInstanceUID", "1.2")]))
    assert "00080060" in im and "00201208" not in im


def test_patient_level(corpus: Index) -> None:
    pats = list(corpus.search(Query("PATIENT", [parse_match("PatientName", "wang*")])))
    assert [p["00100020"]["Value"][0] for p in pats] == ["A1", "E5"]
    assert set(pats[0]) == {"00080005", "00100010", "00100020", "00100021", "00201200",
                            "00201202", "00201204"}
    assert pats[0]["00201202"] == el("IS", 2)


def test_real_files_answers(ix: Index) -> None:
    ix.upsert([record_of("CT_small.dcm"), record_of("MR_small.dcm")])
    (st,) = ix.search(Query("STUDY", [parse_match("ModalitiesInStudy", "CT")]))
    assert st["00100010"] == el("PN", {"Alphabetic": "CompressedSamples^CT1"})
    assert st["00080020"] == el("DA", "20040119")
    (im,) = ix.search(Query("IMAGE", [parse_match("PatientID", "4MR1")]))
    assert im["00280010"] == el("US", 64) and im["00200013"]["vr"] == "IS"


def test_series_and_instance_dates(ix: Index) -> None:
    ix.upsert([make(series="1.2.3.1", sop="1.2.3.1.1", json={
                   "00400244": el("DA", "20240101"), "00400245": el("TM", "0800"),
                   "00080021": el("DA", "20240101"), "00080031": el("TM", "080010"),
                   "00080023": el("DA", "20240102"), "00080033": el("TM", "120000")}),
               make(series="1.2.3.2", sop="1.2.3.2.1", series_number=2, json={
                   "00080023": el("DA", "20240103"), "00080033": el("TM", "1300")})])
    assert uids(ix, "SERIES", ("PerformedProcedureStepStartDate", "20240101-")) == ["1.2.3.1"]
    assert uids(ix, "SERIES", ("PerformedProcedureStepStartTime", "08")) == ["1.2.3.1"]
    assert uids(ix, "SERIES", ("SeriesDate", "-20231231")) == []
    assert uids(ix, "SERIES", ("SeriesTime", "0800-0800")) == ["1.2.3.1"]
    assert uids(ix, "IMAGE", ("ContentDate", "20240103")) == ["1.2.3.2.1"]
    assert uids(ix, "IMAGE", ("ContentTime", "-1259")) == ["1.2.3.1.1"]
    (se,) = ix.search(Query("SERIES", [parse_match("SeriesInstanceUID", "1.2.3.1")]))
    assert se["00400244"] == el("DA", "20240101") and se["00400245"] == el("TM", "0800")


def test_writing_while_iterating_a_search(ix: Index) -> None:
    ix.upsert([make(study=f"1.{n}", series=f"1.{n}.1", sop=f"1.{n}.1.1") for n in range(1200)])
    seen = 0
    for n, st in enumerate(ix.search(Query("STUDY"))):
        seen += 1
        if n % 400 == 0:  # the answer streams from its own cursor; writes and reads go on
            ix.upsert([make(study="2.1", series="2.1.1", sop=f"2.1.1.{n}")])
            assert ix.lookup(f"2.1.1.{n}") is not None
    assert seen == 1200
    assert ix.counts()["studies"] == 1201
