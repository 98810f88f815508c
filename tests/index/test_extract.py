"""index/extract.py's fast paths (remembered per-tag levels, cached names, first values without
copies) give exactly what the plain definitions give, for real instances' DICOM JSON."""
from __future__ import annotations

import warnings
from typing import Any

import pydicom
import pytest
from pydicom.data import get_testdata_files
from pydicom.errors import InvalidDicomError

from index import extract as ex
from index.keys import is_patient_attr, is_study_attr


def _jsons() -> list[dict[str, Any]]:
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for f in sorted(get_testdata_files("*.dcm"))[:60]:
            try:
                ds = pydicom.dcmread(f, stop_before_pixels=True)
                out.append(ds.to_json_dict(bulk_data_threshold=64, bulk_data_element_handler=lambda e: "x"))
            except (InvalidDicomError, ValueError, TypeError, KeyError, AttributeError, NotImplementedError,
                    OSError):  # some test files are deliberately broken
                continue
    return out


JSONS = _jsons()


def test_files_found() -> None:
    assert len(JSONS) > 20


@pytest.mark.parametrize("i", range(0, 60, 3))
def test_levels_match_the_predicates(i: int) -> None:
    js = JSONS[i % len(JSONS)]
    for _ in range(2):  # the second pass answers from what the first remembered
        study, patient = ex.study_patient_attrs(js)
        assert study == {t: el for t, el in js.items() if is_study_attr(t)}
        assert patient == {t: el for t, el in js.items() if is_patient_attr(t)}
        assert list(study) == [t for t in js if is_study_attr(t)]  # js's order: the stored bytes


def test_first_values_match_the_value_lists() -> None:
    for js in JSONS:
        for tag in js:
            vs = ex.values(js, tag)
            expected = str(vs[0]).strip() if vs and vs[0] is not None else None
            assert ex.text(js, tag) == expected


def test_cached_names_are_fresh_lists_each_time() -> None:
    js = {"00100010": {"vr": "PN", "Value": [{"Alphabetic": "Wang^Xiao Ming", "Ideographic": "王^小明"}]}}
    a, b = ex.pn(js, "00100010"), ex.pn(js, "00100010")
    assert a == b == (["wang^xiao ming", "王^小明", ""], [f"{ex.SEP}wang{ex.SEP}xiao{ex.SEP}ming{ex.SEP}wangxiaoming",
                                                          f"{ex.SEP}王{ex.SEP}小明{ex.SEP}王小明", ""])
    a[0].append("changed")
    assert ex.pn(js, "00100010")[0] == ["wang^xiao ming", "王^小明", ""]
