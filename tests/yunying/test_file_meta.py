"""The file meta group of a stored instance: kept as received when it agrees, rebuilt when not (PS3.10 7.1)."""
from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import UID

from index.model import Origin
from tests.dicomweb.helpers import make_ct, part10
from yunying.archive import Archive


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[Archive]:
    a = Archive(tmp_path / "data")
    yield a
    a.close()


def _as_stored(archive: Archive, data: bytes) -> pydicom.FileDataset:
    res = archive.store(data, Origin("import", "test"))
    got = archive.read_part10(archive.instance(res.study, res.series, res.sop_instance))
    assert got[:128] == b"\0" * 128 and got[128:132] == b"DICM"  # a received preamble is never served
    return pydicom.dcmread(io.BytesIO(got))


def test_a_complete_received_meta_is_kept_with_its_own_elements(archive: Archive) -> None:
    ds = make_ct()
    ds.file_meta.SourceApplicationEntityTitle = "MODALITY1"
    ds.file_meta.ImplementationVersionName = "VENDOR_1_0"
    data = bytearray(part10(ds))
    data[:4] = b"TIFF"  # a dual-personality preamble
    got = _as_stored(archive, bytes(data))
    assert got.file_meta.SourceApplicationEntityTitle == "MODALITY1"
    assert got.file_meta.ImplementationVersionName == "VENDOR_1_0"


def test_a_meta_that_disagrees_with_the_data_set_is_rebuilt(archive: Archive) -> None:
    ds = make_ct()
    good_sop = ds.SOPInstanceUID
    data = part10(ds)
    wrong = data.replace(good_sop.encode(), b"1.2.3.999".ljust(len(good_sop), b"9"), 1)  # the meta copy only
    assert wrong != data
    got = _as_stored(archive, wrong)
    assert got.file_meta.MediaStorageSOPInstanceUID == got.SOPInstanceUID == good_sop


def test_a_data_set_without_meta_gets_one(archive: Archive) -> None:
    ds = make_ct()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=False, implicit_vr=False, little_endian=True)
    raw = buf.getvalue()
    start = raw.find(b"\x08\x00")  # no preamble, no meta: the data set from its first element
    got = _as_stored(archive, raw[start:] if raw[128:132] == b"DICM" else raw)
    assert got.file_meta.MediaStorageSOPClassUID == got.SOPClassUID
    assert got.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian


@pytest.mark.parametrize(("sop", "syntax", "aet"), [
    ("1.2.3.45", "1.2.840.10008.1.2.4.50", "STORESCU"),  # odd-length UID, even AE title
    ("1.2.3.4", "1.2.840.10008.1.2", "MOD"),  # even UID, odd AE title (space padded)
    ("1.2.3.4", "1.2.840.10008.1.2.1", ""),  # no source AE title: no (0002,0016)
])
def test_the_c_store_file_meta_is_what_pydicom_writes(sop: str, syntax: str, aet: str) -> None:
    from pydicom.dataset import FileMetaDataset
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_file_meta_info
    from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION

    from yunying.part10 import file_meta

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.2")
    meta.MediaStorageSOPInstanceUID = UID(sop)
    meta.TransferSyntaxUID = UID(syntax)
    meta.ImplementationClassUID = PYNETDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = PYNETDICOM_IMPLEMENTATION_VERSION
    if aet:
        meta.SourceApplicationEntityTitle = aet
    expected = DicomBytesIO()
    write_file_meta_info(expected, meta, enforce_standard=True)
    got = file_meta("1.2.840.10008.5.1.4.1.1.2", sop, syntax,
                    (PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION), aet)
    assert got[:132] == b"\0" * 128 + b"DICM"
    assert got[132:] == expected.getvalue()
