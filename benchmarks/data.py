"""Synthetic benchmark data built with pydicom: a CT study and a metadata-heavy corpus.

Everything is deterministic (seeded RNG, UIDs derived from names) and cached under the
output directory, so reruns reuse the files.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
SOP_CLASSES = {
    "CT": CT_IMAGE_STORAGE,
    "MR": "1.2.840.10008.5.1.4.1.1.4",
    "CR": "1.2.840.10008.5.1.4.1.1.1",
    "DX": "1.2.840.10008.5.1.4.1.1.1.1",
    "US": "1.2.840.10008.5.1.4.1.1.6.1",
    "MG": "1.2.840.10008.5.1.4.1.1.1.2",
    "PT": "1.2.840.10008.5.1.4.1.1.128",
    "NM": "1.2.840.10008.5.1.4.1.1.20",
}
CACHE_VERSION = 2


def uid(*parts: object) -> str:
    """A stable 2.25 UID derived from `parts` (so cached data keeps its UIDs).

    pydicom's generate_uid(prefix=None) ignores its entropy sources, hence the hash here.
    """
    text = "|".join([f"yunying-bench-v{CACHE_VERSION}", *map(str, parts)])
    return "2.25." + str(int.from_bytes(hashlib.sha256(text.encode()).digest()[:16], "big"))


@dataclass(frozen=True)
class CtStudy:
    directory: Path
    study_uid: str
    series_uid: str
    sop_uids: tuple[str, ...]
    files: tuple[Path, ...]

    @property
    def total_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.files)


@dataclass(frozen=True)
class Corpus:
    directory: Path
    files: tuple[Path, ...]
    studies: tuple[dict[str, Any], ...]  # query-relevant values per study, with its series

    @property
    def total_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.files)


def _file_meta(sop_class: str, sop_uid: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return meta


# --- CT -------------------------------------------------------------------------------------

class Phantom:
    """A smooth abdominal/thoracic phantom in HU, varying along z, plus quantum-like noise."""

    def __init__(self, size: int = 512, seed: int = 7) -> None:
        self.size = size
        c = (np.arange(size) - size / 2 + 0.5) / (size / 2)
        self.x, self.y = np.meshgrid(c, c)
        self.rng = np.random.default_rng(seed)
        self.fov = self.x**2 + self.y**2 <= 1.0

    def slice_hu(self, t: float) -> np.ndarray:
        """Slice at relative height t in [0, 1)."""
        x, y = self.x, self.y
        hu = np.full((self.size, self.size), -1000.0)
        body = (x / 0.85) ** 2 + (y / (0.62 + 0.04 * np.sin(3 * t))) ** 2 <= 1
        hu[body] = 40.0 + 15 * np.cos(6 * x[body]) * np.sin(4 * y[body] + 5 * t)
        fat = body & ((x / 0.80) ** 2 + (y / (0.57 + 0.04 * np.sin(3 * t))) ** 2 > 1)
        hu[fat] = -100.0
        lung_r = 0.22 * max(0.0, np.sin(np.pi * min(1.0, t * 1.6)))
        for cx in (-0.38, 0.38):
            lung = ((x - cx) / (lung_r + 1e-6)) ** 2 + ((y + 0.05) / (lung_r * 1.5 + 1e-6)) ** 2 <= 1
            hu[lung] = -820.0 + 60 * np.sin(20 * x[lung] * y[lung])
        organ = ((x - 0.25 + 0.1 * t) / 0.22) ** 2 + ((y + 0.1) / 0.16) ** 2 <= 1
        hu[organ & ~(hu < -500)] = 65.0
        spine = (x / 0.07) ** 2 + ((y - 0.42) / 0.07) ** 2 <= 1
        hu[spine] = 900.0 + 300 * np.exp(-((x[spine] / 0.04) ** 2))
        cortex = spine & ((x / 0.055) ** 2 + ((y - 0.42) / 0.055) ** 2 > 1)
        hu[cortex] = 1500.0
        for k in range(6):
            ang = np.pi * (0.1 + 0.16 * k)
            rib = ((x - 0.72 * np.cos(ang)) / 0.03) ** 2 + ((y - 0.55 * np.sin(ang)) / 0.03) ** 2 <= 1
            if t > 0.2:
                hu[rib] = 1100.0
        vessel = ((x + 0.05) / 0.05) ** 2 + ((y - 0.25) / 0.05) ** 2 <= 1
        hu[vessel] = 180.0
        noise = self.rng.normal(0.0, 12.0, hu.shape)
        hu = hu + np.where(hu > -950, noise, noise * 0.3)
        return hu


def _ct_dataset(i: int, n: int, study_uid: str, series_uid: str, sop_uid: str,
                pixels: np.ndarray, tag: str) -> Dataset:
    ds = Dataset()
    ds.file_meta = _file_meta(CT_IMAGE_STORAGE, sop_uid)
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CT_IMAGE_STORAGE
    ds.SOPInstanceUID = sop_uid
    # Dated before every corpus study and named unlike any, so corpus queries never match it.
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = "19991215"
    ds.StudyTime = ds.SeriesTime = "101500"
    ds.ContentTime = f"1016{i % 60:02d}"
    ds.AccessionNumber = f"CTBENCH{tag}"
    ds.Modality = "CT"
    ds.Manufacturer = "Yunying Bench"
    ds.InstitutionName = "Benchmark Hospital"
    ds.ReferringPhysicianName = "Li^Hua=李^华"
    ds.StudyDescription = "CT CHEST ABDOMEN"
    ds.SeriesDescription = "AXIAL 1.25mm"
    ds.PatientName = "Ceshi^Bingren=测试^病人"
    ds.PatientID = f"CTBENCH{tag}"
    ds.IssuerOfPatientID = "BENCH"
    ds.PatientBirthDate = "19650412"
    ds.PatientSex = "M"
    ds.SliceThickness = "1.25"
    ds.KVP = "120"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = 2
    ds.InstanceNumber = i + 1
    z = -(i * 1.25) + 100.0
    ds.ImagePositionPatient = ["-180.0", "-180.0", f"{z:.2f}"]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.FrameOfReferenceUID = uid("ct-for", tag)
    ds.PositionReferenceIndicator = ""
    ds.SliceLocation = f"{z:.2f}"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.PixelSpacing = ["0.703125", "0.703125"]
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.PixelPaddingValue = -2000
    ds.WindowCenter = ["40", "-600"]
    ds.WindowWidth = ["400", "1500"]
    ds.WindowCenterWidthExplanation = ["ABDOMEN", "LUNG"]
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    ds.PixelData = pixels.astype("<i2").tobytes()
    return ds


def build_ct(root: Path, slices: int = 300, tag: str = "A") -> CtStudy:
    """The CT study `tag` (cached): `slices` 512x512 signed 16-bit axial images."""
    directory = root / f"ct-{tag}-{slices}-v{CACHE_VERSION}"
    study_uid, series_uid = uid("ct-study", tag, slices), uid("ct-series", tag, slices)
    sop_uids = tuple(uid("ct-sop", tag, slices, i) for i in range(slices))
    files = tuple(directory / f"CT{i:04d}.dcm" for i in range(slices))
    done = directory.parent / f"{directory.name}.complete"  # outside: the folder is pure DICOM
    legacy = directory / ".complete"  # where earlier versions put it
    if legacy.exists():
        done.write_text("ok")
        legacy.unlink()
    if not done.exists():
        directory.mkdir(parents=True, exist_ok=True)
        phantom = Phantom()
        for i, path in enumerate(files):
            hu = phantom.slice_hu(i / slices)
            stored = np.clip(np.rint(hu + 1024.0), -1024, 3071).astype(np.int16)
            stored[~phantom.fov] = -2000
            ds = _ct_dataset(i, slices, study_uid, series_uid, sop_uids[i], stored, tag)
            ds.save_as(path, enforce_file_format=True)
        done.write_text("ok")
    return CtStudy(directory, study_uid, series_uid, sop_uids, files)


# --- corpus ---------------------------------------------------------------------------------

SURNAMES = [("Wang", "王"), ("Li", "李"), ("Zhang", "张"), ("Liu", "刘"), ("Chen", "陈"),
            ("Yang", "杨"), ("Huang", "黄"), ("Zhao", "赵"), ("Wu", "吴"), ("Zhou", "周"),
            ("Xu", "徐"), ("Sun", "孙"), ("Ma", "马"), ("Zhu", "朱"), ("Hu", "胡"),
            ("Guo", "郭"), ("He", "何"), ("Lin", "林"), ("Gao", "高"), ("Luo", "罗")]
GIVEN = [("Wei", "伟"), ("Fang", "芳"), ("Na", "娜"), ("Min", "敏"), ("Jing", "静"),
         ("Li", "丽"), ("Qiang", "强"), ("Lei", "磊"), ("Jun", "军"), ("Yang", "洋"),
         ("Yong", "勇"), ("Yan", "艳"), ("Jie", "杰"), ("Tao", "涛"), ("Ming", "明"),
         ("Chao", "超"), ("Xiuying", "秀英"), ("Xiaoming", "小明"), ("Guiying", "桂英"),
         ("Jianhua", "建华"), ("Haiyan", "海燕"), ("Zhiqiang", "志强")]
LATIN_FAMILY = ["Smith", "Johnson", "Müller", "García", "Dubois", "Rossi", "Nguyen", "Kim",
                "Brown", "Silva", "Novak", "Andersson", "O'Brien", "Kowalski", "Tanaka"]
LATIN_GIVEN = ["John", "Mary", "José", "Anna", "Lukas", "Sophie", "Ahmed", "Élodie",
               "Marco", "Olga", "Pedro", "Ingrid", "Sean", "Yuki"]
DESCRIPTIONS = {"CT": ["CT HEAD", "CT CHEST", "CT ABDOMEN PELVIS"], "MR": ["MR BRAIN", "MR KNEE", "MR SPINE"],
                "CR": ["CHEST PA"], "DX": ["HAND 2 VIEWS", "CHEST PA LAT"], "US": ["US ABDOMEN"],
                "MG": ["SCREENING MAMMO"], "PT": ["PET CT WHOLE BODY"], "NM": ["BONE SCAN"]}
MODALITY_WEIGHTS = [("CT", 30), ("MR", 20), ("CR", 15), ("DX", 12), ("US", 10), ("MG", 6),
                    ("PT", 4), ("NM", 3)]


def _pick_modality(rng: random.Random) -> str:
    return rng.choices([m for m, _ in MODALITY_WEIGHTS], [w for _, w in MODALITY_WEIGHTS])[0]


def _patients(n: int, rng: random.Random) -> list[dict[str, str]]:
    out = []
    for p in range(n):
        if rng.random() < 0.6:
            (fa, fi), (ga, gi) = rng.choice(SURNAMES), rng.choice(GIVEN)
            name = f"{fa}^{ga}={fi}^{gi}"
        else:
            name = f"{rng.choice(LATIN_FAMILY)}^{rng.choice(LATIN_GIVEN)}"
        birth = f"{rng.randint(1930, 2020)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
        out.append({"PatientID": f"PID{p:06d}", "PatientName": name, "PatientBirthDate": birth,
                    "PatientSex": rng.choice("MF")})
    return out


def _small_instance(study: dict[str, str], series_uid: str, series_no: int, modality: str,
                    inst_no: int, sop_uid: str, pixels: bytes) -> Dataset:
    sop_class = SOP_CLASSES[modality]
    ds = Dataset()
    ds.file_meta = _file_meta(sop_class, sop_uid)
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = ds.SeriesDate = study["StudyDate"]
    ds.StudyTime = study["StudyTime"]
    ds.AccessionNumber = study["AccessionNumber"]
    ds.Modality = modality
    ds.InstitutionName = study["InstitutionName"]
    ds.ReferringPhysicianName = "Chen^Jing=陈^静"
    ds.StudyDescription = study["StudyDescription"]
    ds.SeriesDescription = f"{modality} series {series_no}"
    ds.PatientName = study["PatientName"]
    ds.PatientID = study["PatientID"]
    ds.PatientBirthDate = study["PatientBirthDate"]
    ds.PatientSex = study["PatientSex"]
    ds.StudyInstanceUID = study["StudyInstanceUID"]
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = study["StudyID"]
    ds.SeriesNumber = series_no
    ds.InstanceNumber = inst_no
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = 8
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelData = pixels
    return ds


def build_corpus(root: Path, studies: int = 5000, seed: int = 20240601) -> Corpus:
    """`studies` small studies (cached): 1-3 series of 1-2 8x8 instances, mixed names/dates."""
    directory = root / f"corpus-{studies}-v{CACHE_VERSION}"
    manifest = directory / "manifest.json"
    if manifest.exists():
        data = json.loads(manifest.read_text())
        return Corpus(directory, tuple(directory / f for f in data["files"]), tuple(data["studies"]))
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    patients = _patients(max(1, studies * 3 // 5), rng)
    files: list[str] = []
    rows: list[dict[str, Any]] = []
    pixels = np.array(np.arange(64) * 37 % 4096, dtype="<u2").tobytes()
    for s in range(studies):
        patient = rng.choice(patients)
        modality = _pick_modality(rng)
        year = rng.randint(2000, 2025)
        study: dict[str, Any] = dict(patient)
        study.update({
            "StudyInstanceUID": uid("corpus-study", studies, s),
            "StudyDate": f"{year}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}",
            "StudyTime": f"{rng.randint(7, 19):02d}{rng.randint(0, 59):02d}00",
            "AccessionNumber": f"A{year % 100:02d}{s:07d}",
            "StudyID": str(s % 10000),
            "StudyDescription": rng.choice(DESCRIPTIONS[modality]),
            "InstitutionName": rng.choice(["First People's Hospital", "West China Hospital",
                                           "St. Mary's Clinic", "Ruijin Hospital"]),
        })
        modalities = [modality] + ([_pick_modality(rng)] if rng.random() < 0.25 else [])
        sub = directory / f"{s // 500:03d}"
        sub.mkdir(exist_ok=True)
        series_list = []
        for se, mod in enumerate(modalities * (1 + (rng.random() < 0.3))):
            series_uid = uid("corpus-series", studies, s, se)
            sops = []
            for i in range(rng.randint(1, 2)):
                sop_uid = uid("corpus-sop", studies, s, se, i)
                ds = _small_instance(study, series_uid, se + 1, mod, i + 1, sop_uid, pixels)
                name = f"{s:06d}_{se}_{i}.dcm"
                ds.save_as(sub / name, enforce_file_format=True)
                files.append(f"{sub.name}/{name}")
                sops.append(sop_uid)
            series_list.append({"SeriesInstanceUID": series_uid, "Modality": mod, "sops": sops})
        study["ModalitiesInStudy"] = "\\".join(sorted(set(modalities)))
        study["series"] = series_list
        rows.append(study)
    manifest.write_text(json.dumps({"files": files, "studies": rows}, ensure_ascii=False))
    return Corpus(directory, tuple(directory / f for f in files), tuple(rows))


def clone_ct(ct: CtStudy, root: Path, tag: str) -> CtStudy:
    """A copy of `ct` with new Study/Series/SOP UIDs (for the C-STORE runs); cached."""
    return build_ct(root, slices=len(ct.files), tag=tag)


def study_index(path: Path) -> int:
    """The corpus study a file belongs to (its name starts with the study number)."""
    return int(path.name.split("_", 1)[0])


def corpus_subset(corpus: Corpus, sent: set[Path]) -> tuple[Corpus, list[Path]]:
    """The studies touched by `sent`, and their files still missing (to complete them)."""
    touched = {study_index(f) for f in sent}
    files = tuple(f for f in corpus.files if study_index(f) in touched)
    missing = [f for f in files if f not in sent]
    return Corpus(corpus.directory, files, tuple(corpus.studies[i] for i in sorted(touched))), missing
