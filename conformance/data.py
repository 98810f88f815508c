"""The runner's own test data: small instances made with pydicom, fresh UIDs on every run."""

from __future__ import annotations

import io
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
import pydicom.data
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
MF_GRAYSCALE_WORD_SC = "1.2.840.10008.5.1.4.1.1.7.3"
TEST_FILES = Path(pydicom.data.__file__).parent / "test_files"
CHINESE_NAME = "Zhang^San=张^三"
LATIN_NAME = "Smith^John"


@dataclass
class Instance:
    ds: Dataset

    @property
    def study(self) -> str:
        return str(self.ds.StudyInstanceUID)

    @property
    def series(self) -> str:
        return str(self.ds.SeriesInstanceUID)

    @property
    def sop(self) -> str:
        return str(self.ds.SOPInstanceUID)

    @property
    def sop_class(self) -> str:
        return str(self.ds.SOPClassUID)

    @property
    def transfer_syntax(self) -> str:
        return str(self.ds.file_meta.TransferSyntaxUID)

    @property
    def path(self) -> str:
        return f"studies/{self.study}/series/{self.series}/instances/{self.sop}"

    def encode(self) -> bytes:
        buf = io.BytesIO()
        self.ds.save_as(buf, enforce_file_format=True)
        return buf.getvalue()


@dataclass
class TestData:
    run: str
    studies: dict[str, list[Instance]] = field(default_factory=dict)

    def patient_id(self, name: str) -> str:
        return f"YYC{self.run}{name}"

    def study_uid(self, name: str) -> str:
        return self.studies[name][0].study

    def series_of(self, name: str) -> dict[str, list[Instance]]:
        out: dict[str, list[Instance]] = {}
        for inst in self.studies[name]:
            out.setdefault(inst.series, []).append(inst)
        return out

    def find(self, name: str, predicate) -> Instance:
        return next(i for i in self.studies[name] if predicate(i))

    @property
    def ct(self) -> Instance:
        return self.find("A", lambda i: i.sop_class == CT_IMAGE)

    @property
    def multiframe(self) -> Instance:
        return self.find("A", lambda i: i.sop_class == MF_GRAYSCALE_WORD_SC)

    @property
    def compressed(self) -> Instance:
        return self.find("A", lambda i: i.ds.file_meta.TransferSyntaxUID.is_compressed)


def _patient(ds: Dataset, pid: str, name: str, charset: str | None) -> None:
    if charset:
        ds.SpecificCharacterSet = charset
    ds.PatientName = name
    ds.PatientID = pid
    ds.PatientBirthDate = "19800102"
    ds.PatientSex = "M"


def _study(ds: Dataset, study: str, date: str, accession: str) -> None:
    ds.StudyInstanceUID = study
    ds.StudyDate = date
    ds.StudyTime = "101500"
    ds.AccessionNumber = accession
    ds.StudyID = "1"
    ds.ReferringPhysicianName = "Li^Si"
    ds.StudyDescription = "Yunying conformance"


def _image(
    sop_class: str, modality: str, series: str, number: int, frames: np.ndarray
) -> Dataset:
    """A native 16-bit grayscale image; frames has shape (n, rows, cols)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = UID(sop_class)
    ds.SOPClassUID = UID(sop_class)
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.Modality = modality
    ds.SeriesInstanceUID = series
    ds.SeriesNumber = 1 if modality == "CT" else 2
    ds.SeriesDescription = f"{modality} series"
    ds.InstanceNumber = number
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.Laterality = ""
    ds.Manufacturer = "Yunying conformance"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    n, rows, cols = frames.shape
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.WindowCenter, ds.WindowWidth = 2048, 4096
    if sop_class == CT_IMAGE:
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
        ds.ImagePositionPatient = [0, 0, float(number) * 2.5]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [0.5, 0.5]
        ds.SliceThickness = 2.5
        ds.KVP = 120
        ds.PatientPosition = "HFS"
        ds.AcquisitionNumber = 1
        ds.FrameOfReferenceUID = generate_uid(entropy_srcs=[series])   # one per series
        ds.PositionReferenceIndicator = ""
    else:
        ds.NumberOfFrames = n
        ds.FrameIncrementPointer = 0x00181063
        ds.FrameTime = 100
        ds.ConversionType = "WSD"
        ds.PatientOrientation = ""
        ds.BurnedInAnnotation = "NO"
        ds.PresentationLUTShape = "IDENTITY"
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = 0, 1, "US"
    ds.PixelData = frames.astype("<u2").tobytes()
    return ds


def _pattern(seed: int, rows: int, cols: int) -> np.ndarray:
    """A non-trivial 12-bit pattern: a bright disc on a gradient, different per seed."""
    y, x = np.mgrid[0:rows, 0:cols]
    disc = ((y - rows / 2) ** 2 + (x - cols / 2) ** 2) < (rows / (3 + seed % 3)) ** 2
    return ((x * 31 + y * 17 + seed * 401) % 2048 + disc * 2000).astype(np.uint16)


def _from_test_file(name: str) -> Dataset:
    ds = pydicom.dcmread(TEST_FILES / name)
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.SeriesInstanceUID = generate_uid()
    if "OtherPatientIDs" in ds:
        del ds.OtherPatientIDs
    ds.FrameOfReferenceUID = generate_uid()
    return ds


def build_test_data() -> TestData:
    """Study A: CT x2, a 3-frame SC and a JPEG 2000 MR under a Chinese name (ISO_IR 192);
    study B: a native MR under a Latin name; study D: two CTs kept for C-STORE."""
    data = TestData(secrets.token_hex(3).upper())
    study_a, study_b, study_d = generate_uid(), generate_uid(), generate_uid()

    a: list[Instance] = []
    ct_series = generate_uid()
    for n in (1, 2):
        ds = _image(CT_IMAGE, "CT", ct_series, n, _pattern(n, 64, 64)[None])
        a.append(Instance(ds))
    mf = _image(
        MF_GRAYSCALE_WORD_SC, "OT", generate_uid(), 1,
        np.stack([_pattern(10 + k, 32, 48) for k in range(3)]),
    )
    a.append(Instance(mf))
    a.append(Instance(_from_test_file("MR_small_jp2klossless.dcm")))
    for inst in a:
        _patient(inst.ds, data.patient_id("A"), CHINESE_NAME, "ISO_IR 192")
        _study(inst.ds, study_a, "20240115", f"ACC{data.run}A")
    data.studies["A"] = a

    b = Instance(_from_test_file("MR_small.dcm"))
    _patient(b.ds, data.patient_id("B"), LATIN_NAME, None)
    _study(b.ds, study_b, "20230301", f"ACC{data.run}B")
    data.studies["B"] = [b]

    d_series = generate_uid()
    d = [Instance(_image(CT_IMAGE, "CT", d_series, n, _pattern(n + 20, 64, 64)[None]))
         for n in (1, 2)]
    for inst in d:
        _patient(inst.ds, data.patient_id("D"), "Wang^Wu=王^五", "ISO_IR 192")
        _study(inst.ds, study_d, "20220607", f"ACC{data.run}D")
    data.studies["D"] = d
    return data


def extra_instance(data: TestData, study_uid: str, name: str = "C") -> Instance:
    """A fresh CT instance in a given study (for mismatch and partial-STOW checks)."""
    ds = _image(CT_IMAGE, "CT", generate_uid(), 1, _pattern(7, 16, 16)[None])
    if name == "A":     # same patient and study attributes as study A's instances
        _patient(ds, data.patient_id(name), CHINESE_NAME, "ISO_IR 192")
        _study(ds, study_uid, "20240115", f"ACC{data.run}{name}")
    else:
        _patient(ds, data.patient_id(name), LATIN_NAME, None)
        _study(ds, study_uid, "20210101", f"ACC{data.run}{name}")
    return Instance(ds)


def native_frames(inst: Instance) -> list[bytes]:
    """Each frame's native little-endian pixel bytes (decoding compressed originals)."""
    arr = inst.ds.pixel_array
    n = int(inst.ds.get("NumberOfFrames", 1) or 1)
    arr = arr.reshape((n,) + arr.shape[-2:]) if n > 1 or arr.ndim == 2 else arr
    if arr.ndim == 2:
        arr = arr[None]
    dtype = arr.dtype.newbyteorder("<")
    return [np.ascontiguousarray(f).astype(dtype).tobytes() for f in arr]
