"""Sequences whose bytes break PS3.5 7.5 are refused at ingest; well-formed ones of every shape pass."""
from __future__ import annotations

import io
import struct
from pathlib import Path

import pydicom
import pytest
from pydicom import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from tests.dicomweb.helpers import make_ct, part10
from yunying.errors import InvalidInstance
from yunying.ingest import Parsed, instance_json, parse_instance

SQ_TAG = b"\x40\x00\x75\x02"  # (0040,0275) Request Attributes Sequence


def _with_sequence(value: bytes) -> bytes:
    """A valid instance with a defined-length (0040,0275) SQ of the given raw value, explicit VR LE."""
    data = part10(make_ct())
    at = data.find(b"\xe0\x7f\x10\x00")  # before PixelData: tags stay in ascending order
    return data[:at] + SQ_TAG + b"SQ\0\0" + struct.pack("<I", len(value)) + value + data[at:]


def _item(body: bytes, length: int | None = None) -> bytes:
    return b"\xfe\xff\x00\xe0" + struct.pack("<I", len(body) if length is None else length) + body


def _seq(parsed: Parsed) -> list[dict]:
    """The items of (0040,0275) in the instance's DICOM JSON (the header is read in one pass)."""
    return list(instance_json(parsed.header, parsed)["00400275"]["Value"])


LO = b"\x40\x00\x01\x10LO" + struct.pack("<H", 4) + b"ABCD"  # (0040,1001) Requested Procedure ID


def test_a_well_formed_defined_length_sequence_is_stored() -> None:
    parsed = parse_instance(_with_sequence(_item(LO) + _item(LO)))
    assert [item["00401001"]["Value"] for item in _seq(parsed)] == [["ABCD"], ["ABCD"]]


@pytest.mark.parametrize("value, why", [
    (b"\x01\x02\x03\x04garbage!garb", "expected an item tag"),
    (_item(LO, length=len(LO) + 20), "longer than its sequence"),
    (_item(LO)[:-2], "longer than its sequence"),
    (_item(LO) + b"\x40\x00", "ends inside an element header"),
    (_item(b"\x40\x00\x01\x10zz\x04\x00ABCD"), "unknown VR"),
    (_item(b"\x40\x00\x01\x10LO\x40\x00ABCD"), "runs past its item"),
    (_item(b"\xfe\xff\x0d\xe0\0\0\0\0"), "delimiter"),
    (_item(LO, length=0xFFFFFFFF), "no item delimiter"),
])
def test_malformed_sequences_are_refused(value: bytes, why: str) -> None:
    with pytest.raises(InvalidInstance, match=why):
        parse_instance(_with_sequence(value))


def test_an_undefined_vr_in_an_item_is_kept_with_a_warning() -> None:
    """Issue 10 part 2: two capital letters PS3.5 does not define are a vendor's VR (2-byte length)."""
    parsed = parse_instance(_with_sequence(_item(b"\x40\x00\x01\x10ZZ\x04\x00ABCD")))
    assert parsed.extra["warnings"] == [("element (0040,1001) has the undefined VR 'ZZ': kept as received, "
                                        "read as UN or its dictionary VR")]
    assert _seq(parsed)[0]["00401001"]["Value"] == ["ABCD"]


def _nested() -> Dataset:
    inner = Dataset()
    inner.CodeValue, inner.CodingSchemeDesignator, inner.CodeMeaning = "T-D1100", "SRT", "Head"
    item = Dataset()
    item.RequestedProcedureID = "RP1"
    item.ScheduledProtocolCodeSequence = Sequence([inner, inner])
    ds = make_ct()
    ds.RequestAttributesSequence = Sequence([item, Dataset()])
    return ds


@pytest.mark.parametrize("ts", [ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian])
@pytest.mark.parametrize("undefined", [False, True])
def test_nested_sequences_in_every_native_syntax_pass(ts: str, undefined: bool) -> None:
    ds = _nested()
    if undefined:
        ds["RequestAttributesSequence"].is_undefined_length = True
        for item in ds.RequestAttributesSequence:
            item.is_undefined_length_sequence_item = True
    ds.file_meta.TransferSyntaxUID = UID(ts)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True, implicit_vr=ts == ImplicitVRLittleEndian,
               little_endian=ts != ExplicitVRBigEndian)
    parsed = parse_instance(buf.getvalue())
    assert _seq(parsed)[0]["00400008"]["Value"][1]["00080104"]["Value"] == ["Head"]


def test_every_pydicom_file_with_sequences_still_parses() -> None:
    from pydicom.data import get_testdata_file

    for name in ("rtplan.dcm", "rtstruct.dcm", "rtdose.dcm", "CT_small.dcm", "JPEG2000.dcm", "waveform_ecg.dcm"):
        path = get_testdata_file(name)
        assert path is not None, name
        assert pydicom.dcmread(path, force=True)  # the reference reads it
        parse_instance(Path(path))
