"""C-FIND response identifiers: the already-encoded text elements encode as pydicom's own."""
from __future__ import annotations

from typing import Any

import pytest
from pydicom import Dataset
from pynetdicom.dsutils import encode

from dimse.identifier import _element, response_identifier, response_keys

RESULT: dict[str, Any] = {
    "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Wang^Xiaodong", "Ideographic": "王^小东"}]},
    "00100020": {"vr": "LO", "Value": ["CN001"]},
    "0020000D": {"vr": "UI", "Value": ["1.2.3.45"]},
    "00080061": {"vr": "CS", "Value": ["CT", "MR"]},
    "00080020": {"vr": "DA", "Value": ["20240105"]},
    "00080050": {"vr": "SH"},
    "00201208": {"vr": "IS", "Value": [17]},
    "00201206": {"vr": "IS", "Value": [2]},
    "00081030": {"vr": "LO", "Value": ["Thorax ärztlich 胸部"]},
    "00080090": {"vr": "PN", "Value": [{"Alphabetic": "Li^Na", "Ideographic": "", "Phonetic": "li^na"}]},
    "00180050": {"vr": "DS", "Value": [1.25]},
    "00280010": {"vr": "US", "Value": [512]},
    "00081032": {"vr": "SQ", "Value": [{"00080100": {"vr": "SH", "Value": ["X"]}}]},
    "00100030": {"vr": "DA", "Value": [None]},
    "00200011": {"vr": "IS", "Value": [3.0]},
}


def old_identifier(result: dict[str, Any], identifier: Dataset, level: str, aet: str) -> Dataset:
    """Every attribute converted by pydicom (the implementation before raw elements)."""
    rsp = Dataset()
    rsp.SpecificCharacterSet = "ISO_IR 192"
    for elem in identifier:
        tag = int(elem.tag)
        if tag in (0x00080005, 0x00080052, 0x00080054, 0x00080056):
            continue
        item = result.get(f"{tag:08X}")
        rsp[tag] = _element(tag, item) if item is not None else _empty(tag, elem.VR)
    rsp.QueryRetrieveLevel = level
    rsp.RetrieveAETitle = aet
    return rsp


def _empty(tag: int, vr: str) -> Any:
    ds = Dataset()
    ds.add_new(tag, vr, [] if vr == "SQ" else None)
    return ds[tag]


def request() -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.QueryRetrieveLevel = "STUDY"
    for tag, vr in [(0x00100010, "PN"), (0x00100020, "LO"), (0x0020000D, "UI"), (0x00080061, "CS"),
                    (0x00080020, "DA"), (0x00080050, "SH"), (0x00201208, "IS"), (0x00201206, "IS"),
                    (0x00081030, "LO"), (0x00080090, "PN"), (0x00180050, "DS"), (0x00280010, "US"),
                    (0x00081032, "SQ"), (0x00100030, "DA"), (0x00200011, "IS"), (0x00200010, "SH"),
                    (0x00080030, "TM"), (0x00280011, "US"), (0x00081110, "SQ")]:
        ds.add_new(tag, vr, [] if vr == "SQ" else None)
    return ds


@pytest.mark.parametrize(("implicit", "little"), [(True, True), (False, True)])
def test_raw_text_elements_encode_as_pydicom_does(implicit: bool, little: bool) -> None:
    ident = request()
    old = encode(old_identifier(RESULT, ident, "STUDY", "YUNYING"), implicit, little)
    for hint in (None, implicit):  # hint: written as encoded here, else converted by pydicom
        for keys in (ident, response_keys(ident)):
            new = response_identifier(RESULT, keys, "STUDY", "YUNYING", hint)
            assert encode(new, implicit, little) == old


def test_raw_elements_read_back_as_values() -> None:
    rsp = response_identifier(RESULT, request(), "STUDY", "YUNYING")
    assert str(rsp.PatientName) == "Wang^Xiaodong=王^小东"
    assert rsp.ModalitiesInStudy == ["CT", "MR"] and rsp.NumberOfStudyRelatedInstances == 17
    assert rsp.StudyInstanceUID == "1.2.3.45" and rsp.QueryRetrieveLevel == "STUDY"
    assert rsp.AccessionNumber == "" and rsp.RetrieveAETitle == "YUNYING"


def _text_only(ident: Dataset) -> Dataset:
    """The request without the keys only pydicom can encode (sequences, binary VRs)."""
    out = Dataset()
    for elem in ident:
        if elem.VR in ("SQ", "US") or int(elem.tag) in (0x00180050, 0x00200011):  # JSON numbers
            continue
        out.add(elem)
    return out


@pytest.mark.parametrize("implicit", [True, False])
def test_response_bytes_are_what_pydicom_writes(implicit: bool) -> None:
    from dimse.identifier import response_bytes

    ident = _text_only(request())
    keys = response_keys(ident)
    expected = encode(response_identifier(RESULT, keys, "STUDY", "YUNYING", None), implicit, True)
    assert response_bytes(RESULT, keys, "STUDY", "YUNYING", implicit) == expected
    # an empty result: every requested key present with an empty value
    assert response_bytes({}, keys, "IMAGE", "AE1", implicit) == \
        encode(response_identifier({}, keys, "IMAGE", "AE1", None), implicit, True)


@pytest.mark.parametrize("tag", [0x00081032, 0x00280010, 0x00180050, 0x00200011])
def test_response_bytes_leave_sequences_and_binary_values_to_pydicom(tag: int) -> None:
    from dimse.identifier import response_bytes

    ident = _text_only(request())
    ident.add_new(tag, request()[tag].VR, [] if request()[tag].VR == "SQ" else None)
    assert response_bytes(RESULT, response_keys(ident), "STUDY", "YUNYING", True) is None


@pytest.mark.parametrize("implicit", [True, False])
def test_one_encoder_for_many_matches_writes_what_pydicom_writes(implicit: bool) -> None:
    # find_scp builds one ResponseEncoder per request and encodes every match with it
    from dimse.identifier import ResponseEncoder

    ident = _text_only(request())
    ident.add_new(0x00081080, "LO", None)  # AdmittingDiagnosesDescription: a long value below
    ident.add_new(0x00324000, "LT", None)  # StudyComments (LT, a short length field)
    keys = response_keys(ident)
    encoder = ResponseEncoder(keys, "STUDY", "YUNYING", implicit)
    matches: list[dict[str, Any]] = [
        RESULT, {},
        {**RESULT, "0020000D": {"vr": "UI", "Value": ["1.2.3"]},  # odd: padded with NUL
         "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Zhang^San", "Ideographic": "张^三",
                                             "Phonetic": "zhang^san"}]},
         "00100020": {"vr": "LO", "Value": ["ÄÖÜ-ß"]}, "00080061": {"vr": "CS", "Value": ["MR"]}},
        {"00324000": {"vr": "LT", "Value": ["病历 " * 3000]}},  # UTF-8 over 16 KiB, fits LT
        {"00081030": {"vr": "LO", "Value": [None]}, "00201208": {"vr": "IS", "Value": [0]}},
    ]
    for match in matches:
        assert encoder.encode(match) == \
            encode(response_identifier(match, keys, "STUDY", "YUNYING", None), implicit, True), match.keys()


def test_a_value_too_long_for_its_length_field_is_left_to_pydicom() -> None:
    from dimse.identifier import ResponseEncoder

    ident = _text_only(request())
    keys = response_keys(ident)
    too_long = {"00081030": {"vr": "LO", "Value": ["x" * 70000]}}
    assert ResponseEncoder(keys, "STUDY", "YUNYING", False).encode(too_long) is None
    # implicit VR has a 4-byte length for every element
    assert ResponseEncoder(keys, "STUDY", "YUNYING", True).encode(too_long) == \
        encode(response_identifier(too_long, keys, "STUDY", "YUNYING", None), True, True)
