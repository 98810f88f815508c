"""The one-pass ingest (yunying.ingest_fast) makes exactly what the pydicom path makes, or declines.

Every case is parsed both ways: the same UIDs, pixel payload, header bytes, extra facts and
DICOM JSON (compared as the bytes the index keeps), or the fast path returns None and the
pydicom path decides (it is the only one that refuses an instance).
"""
from __future__ import annotations

import hashlib
import io
from typing import Any

import numpy as np
import orjson
import pydicom
import pytest
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    generate_uid,
)

from benchmarks.data import Phantom, _ct_dataset, _small_instance
from tests.dicomweb.helpers import make_ct, part10
from tests.yunying.pydicom_files import FILES
from yunying.errors import ArchiveError
from yunying.ingest import Parsed, instance_json, parse_pydicom
from yunying.ingest_fast import parse_fast
from yunying.lenient import noting


def _both(data: bytes) -> tuple[Parsed | None, Parsed | BaseException]:
    digest, size = hashlib.sha256(data).hexdigest(), len(data)
    fast = parse_fast(data, digest, size)
    try:
        with noting():
            slow: Parsed | BaseException = parse_pydicom(io.BytesIO(data), digest, size)
    except ArchiveError as exc:
        slow = exc
    return fast, slow


def _facts(p: Parsed) -> dict[str, Any]:
    native = p.native
    with noting():
        js = instance_json(p.header, p)
    return {
        "uids": (p.transfer_syntax, p.sop_class, p.sop, p.study, p.series, p.digest, p.size),
        "form": (p.pixel_form, p.frames, p.meta_agrees),
        "native": None if native is None else (native.dtype.str, native.shape, np.asarray(native).tobytes()),
        "blob": None if p.blob is None else bytes(p.blob),
        "head": p.head,
        "extra": orjson.dumps(p.extra),
        "json": orjson.dumps(js),
    }


def check(data: bytes, fast_expected: bool | None = True) -> None:
    """Both paths agree; fast_expected: the fast path must take it (True) or decline (False)."""
    fast, slow = _both(data)
    if fast_expected is not None:
        assert (fast is not None) == fast_expected
    if fast is None:
        return
    assert isinstance(slow, Parsed), f"pydicom refused what the fast path took: {slow}"
    a, b = _facts(fast), _facts(slow)
    for key in a:
        assert a[key] == b[key], key


def test_pydicoms_files_both_ways() -> None:
    taken = 0
    for path in FILES:
        data = path.read_bytes()
        check(data, None)
        taken += parse_fast(data, "d", len(data)) is not None
    assert taken >= 20  # the comparison covered real variety (many files are implicit VR or odd)


def test_the_benchmark_instances_take_the_fast_path() -> None:
    phantom = Phantom(64)
    stored = np.clip(np.rint(phantom.slice_hu(0.5) + 1024), -1024, 3071).astype(np.int16)
    check(part10(_ct_dataset(3, 10, generate_uid(), generate_uid(), generate_uid(), stored, "T")))
    study = {"StudyInstanceUID": generate_uid(), "StudyDate": "20240101", "StudyTime": "101500",
             "AccessionNumber": "A1", "InstitutionName": "Ruijin Hospital", "StudyDescription": "CT HEAD",
             "PatientName": "Wang^Wei=王^伟", "PatientID": "PID1", "PatientBirthDate": "19700101",
             "PatientSex": "M", "StudyID": "7"}
    pixels = np.array(np.arange(64) * 37 % 4096, dtype="<u2").tobytes()
    check(part10(_small_instance(study, generate_uid(), 1, "MR", 1, generate_uid(), pixels)))


def _variety(charset: str | None = "ISO_IR 192") -> Dataset:
    ds = make_ct(rows=4, cols=4, frames=3, charset=charset, name="Doe^John", ideographic=None)
    ds.ImageType = ["ORIGINAL", "", "AXIAL"]
    ds.OtherPatientIDs = ["X1", "", "X3"]
    ds.ReferringPhysicianName = ["A^B", "", "=C"]
    ds.PerformingPhysicianName = "=="
    ds.NameOfPhysiciansReadingStudy = "A^B=C^D=E^F"
    ds.StationAETitle = "  STATION  "  # not an image attribute, but AE
    ds.RetrieveURL = "http://example.org/a  "
    ds.WindowCenter = [" 40", "-600 ", "1e3", ".5"]
    ds.WindowWidth = "400"
    ds.SliceThickness = "   "
    ds.InstanceNumber = "+3"
    ds.SeriesNumber = "007"
    ds.add_new(0x00200012, "IS", "")  # AcquisitionNumber, empty
    ds.FrameIncrementPointer = [0x00181063, 0x00181065]
    ds.ImagePositionPatient = [-1.5, 2, 3.25]
    ds.add_new(0x00189219, "FD", [1.5, -2.25])  # TagAngleSecondAxis
    ds.add_new(0x00181310, "US", [0, 4, 4, 0])  # AcquisitionMatrix
    ds.add_new(0x0018605A, "FL", [0.1, 2.5])
    ds.add_new(0x00089459, "FL", 1.0)
    ds.add_new(0x0008041F, "SV", [-(2**40), 5])
    ds.add_new(0x00080420, "UV", [2**40])
    ds.add_new(0x00081150, "UI", "1.2.3\0")
    ds.StudyDescription = "Chest\\Abdomen "
    ds.ImageComments = "a \\ b  "
    ds.add_new(0x00081030, "LO", "")
    ds.add_new(0x00321060, "LO", "x" * 64)
    ds.add_new(0x00091010, "LO", "PRIVATE CREATOR")
    ds.add_new(0x00091011, "OB", b"\x01\x02\x03")
    ds.add_new(0x00091012, "OB", bytes(range(256)) * 3)  # 768 bytes: inline
    ds.add_new(0x00091013, "OB", bytes(769))  # bulk data
    ds.add_new(0x00091014, "OW", bytes(2000))
    ds.add_new(0x00091015, "OF", bytes(16))
    ds.add_new(0x00091016, "UT", "unlimited\\text  ")
    ds.add_new(0x00091017, "UC", "a\\b")
    ds.add_new(0x00091018, "SS", [-1, 2])
    ds.add_new(0x00091019, "SL", -70000)
    ds.add_new(0x0009101A, "UL", 70000)
    ds.add_new(0x0009101B, "ST", "short text  ")
    ds.add_new(0x0009101C, "LT", "")
    ds.add_new(0x0009101D, "AS", "030Y")
    ds.add_new(0x0009101E, "DT", "20240101101500.123456+0800\\2024")
    ds.add_new(0x0009101F, "OD", bytes(8))
    ds.add_new(0x00091020, "OL", bytes(8))
    ds.add_new(0x00091021, "OV", bytes(8))
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "T-D4000", "SRT", "Abdomen"
    inner = Dataset()
    inner.PatientName = "Inner^Name"
    inner.add_new(0x00091013, "OB", bytes(900))
    item.add_new(0x00400275, "SQ", Sequence([inner]))
    ds.AnatomicRegionSequence = Sequence([item, Dataset()])
    ds.add_new(0x00082112, "SQ", Sequence([]))  # SourceImageSequence, empty
    icon = Dataset()
    icon.Rows = icon.Columns = 2
    icon.BitsAllocated, icon.SamplesPerPixel, icon.PhotometricInterpretation = 8, 1, "MONOCHROME2"
    icon.PixelData = bytes(8)
    ds.IconImageSequence = Sequence([icon])
    ds.add_new(0xFFFCFFFC, "OB", bytes(6))  # DataSetTrailingPadding, after the pixel data
    return ds


@pytest.mark.parametrize("defined", [False, True])
def test_a_variety_of_elements_both_ways(defined: bool) -> None:
    ds = _variety()
    for elem in ds.iterall():
        if elem.VR == "SQ":
            elem.is_undefined_length = not defined
            for it in elem.value:
                it.is_undefined_length_sequence_item = not defined
    check(part10(ds))


@pytest.mark.parametrize("charset,name", [(None, "Muller^Jose"), ("ISO_IR 100", "Müller^José"),
                                          ("ISO_IR 192", "Wang^Wei=王^伟"), ("GB18030", "Wang^Wei=王^伟"),
                                          ("GBK", "Li^Na=李^娜")])
def test_character_sets_both_ways(charset: str | None, name: str) -> None:
    ds = make_ct(charset=charset, name=name)
    ds.InstitutionName = name.split("=")[-1].replace("^", " ")
    seq_item = Dataset()
    seq_item.PatientName = name  # an item inherits the data set's character set
    ds.OtherPatientIDsSequence = Sequence([seq_item])
    check(part10(ds))


def test_the_unusual_goes_to_pydicom() -> None:
    iso2022 = make_ct(charset=["ISO 2022 IR 6", "ISO 2022 IR 87"], name="Yamada^Tarou=山田^太郎")
    check(part10(iso2022), False)
    item_charset = make_ct(charset="ISO_IR 192")
    inner = Dataset()
    inner.SpecificCharacterSet = "ISO_IR 100"
    inner.PatientName = "Müller"
    item_charset.OtherPatientIDsSequence = Sequence([inner])
    check(part10(item_charset), False)
    bad_utf8 = part10(make_ct(charset="ISO_IR 192", name="Doe^John")).replace(b"Doe^John", b"Doe^J\xffhn")
    check(bad_utf8, False)
    odd = make_ct()
    odd.add_new(0x00200013, "IS", "1.0")  # pydicom accepts it as 1: left to pydicom
    odd.WindowCenter = "nan"
    check(part10(odd), False)
    for ts in (ImplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian):
        ds = make_ct()
        ds.file_meta.TransferSyntaxUID = ts
        check(part10(ds), False)
    no_preamble = part10(make_ct())[128:]
    check(no_preamble, False)
    other_sop = make_ct()
    data = part10(other_sop)
    other = generate_uid()
    check(data.replace(other_sop.SOPInstanceUID.encode(), other.encode(), 1), False)  # meta disagrees
    un = make_ct()
    un.add_new(0x00091010, "UN", b"abcd")
    check(part10(un), False)
    lut = make_ct()
    item = Dataset()
    item.add_new(0x00283002, "SS", [61440, -2048, 12])  # LUTDescriptor: read as SS, pydicom adds 65536 to -4096
    item.add_new(0x00283006, "US", [0, 1])
    lut.ModalityLUTSequence = Sequence([item])
    check(part10(lut), False)
    lut.ModalityLUTSequence[0]["LUTDescriptor"].VR = "US"
    lut.ModalityLUTSequence[0].LUTDescriptor = [61440, 0, 12]
    check(part10(lut))


def test_bad_instances_are_left_to_pydicom() -> None:
    good = part10(make_ct(rows=4, cols=4))
    for cut in (200, len(good) - 7, len(good) // 2):
        fast, _slow = _both(good[:cut])
        assert fast is None
    no_uid = make_ct()
    del no_uid.SeriesInstanceUID
    fast, slow = _both(part10(no_uid))
    assert fast is None and isinstance(slow, ArchiveError)
    short = make_ct(rows=4, cols=4)
    short.PixelData = bytes(10)
    fast, slow = _both(part10(short))
    assert fast is None and isinstance(slow, ArchiveError)


def test_encapsulated_and_odd_native_pixels_both_ways() -> None:
    jpeg = make_ct(rows=4, cols=4, frames=2)
    jpeg.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    jpeg.PhotometricInterpretation = "YBR_FULL_422"
    jpeg.BitsAllocated, jpeg.BitsStored, jpeg.HighBit = 8, 8, 7
    frames = [b"\xff\xd8" + bytes(30) + b"\xff\xd9", b"\xff\xd8" + bytes(11) + b"\xff\xd9\0"]
    jpeg.PixelData = pydicom.encaps.encapsulate(frames)
    jpeg["PixelData"].VR = "OB"
    check(part10(jpeg))
    odd = make_ct(rows=3, cols=3)
    odd.BitsAllocated, odd.BitsStored, odd.HighBit = 8, 8, 7
    odd.PixelData = bytes(range(9)) + b"\0"  # padded to even length
    check(part10(odd))
    rgb = make_ct(rows=2, cols=2, frames=2)
    rgb.SamplesPerPixel, rgb.PhotometricInterpretation, rgb.PlanarConfiguration = 3, "RGB", 1
    rgb.BitsAllocated, rgb.BitsStored, rgb.HighBit = 8, 8, 7
    rgb.PixelData = bytes(range(24))
    check(part10(rgb))
    bits1 = make_ct(rows=8, cols=8)
    bits1.BitsAllocated, bits1.BitsStored, bits1.HighBit = 1, 1, 0
    bits1.PixelData = bytes(8)
    check(part10(bits1))  # a blob: not plain frames
    no_pixels = make_ct()
    del no_pixels.PixelData
    check(part10(no_pixels))


def test_file_meta_kept_as_received() -> None:
    ds = make_ct()
    ds.file_meta = FileMetaDataset(ds.file_meta)
    ds.file_meta.SourceApplicationEntityTitle = "MODALITY"
    data = part10(ds)
    fast, _ = _both(data)
    assert fast is not None and b"MODALITY" in fast.head
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    check(data)


def test_damaged_bytes_both_ways() -> None:
    """Random damage to valid instances: the fast path declines, or makes what pydicom makes."""
    import random

    rng = random.Random(20261207)
    jpeg = make_ct(rows=4, cols=4)
    jpeg.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    jpeg.BitsAllocated, jpeg.BitsStored, jpeg.HighBit = 8, 8, 7
    jpeg.PixelData = pydicom.encaps.encapsulate([b"\xff\xd8" + bytes(30) + b"\xff\xd9"])
    jpeg["PixelData"].VR = "OB"
    bases = [part10(_variety()), part10(make_ct(charset="ISO_IR 192", name="Wang^Wei=王^伟")), part10(jpeg)]
    taken = 0
    for base in bases:
        for _ in range(250):
            data = bytearray(base)
            for _ in range(rng.randint(1, 3)):
                at = rng.randrange(132, len(data))
                kind = rng.random()
                if kind < 0.6:
                    data[at] = rng.randrange(256)
                elif kind < 0.8:
                    del data[at:at + rng.randint(1, 4)]
                else:
                    data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
            check(bytes(data), None)
            taken += parse_fast(bytes(data), "d", len(data)) is not None
    assert taken > 50  # many damaged copies still took the fast path, and matched
