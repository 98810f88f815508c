"""The DICOMDIR of a portal download (yunying.portal.dicomdir): a 2000-instance study builds in
linear time (timed only in benchmarks/dicomdir.py), pydicom reads it back with every instance at
the File ID we answered, dicom3tools' dciodvfy finds no error in it, and it is record for record
what pydicom's public (quadratic) FileSet path writes. The module reaches into pydicom's FileSet
internals: these tests are the alarm when a pydicom upgrade changes them."""
from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pydicom
import pytest
from pydicom.fileset import FileSet

from benchmarks.dicomdir import headers, public_path
from tests.conftest import missing_tool
from yunying.portal import dicomdir
from yunying.portal.dicomdir import write_dicomdir


def dciodvfy(path: Path) -> str:
    if shutil.which("dciodvfy") is None:
        missing_tool("dciodvfy (dicom3tools) is not installed")
    done = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=120, check=False)
    return "\n".join(line for line in (done.stdout + done.stderr).splitlines() if line.startswith("Error"))


def place(items: list, file_ids: dict[str, str], root: Path) -> None:
    """Put each instance at its File ID, as yunying.portal.downloads does with the stored bytes."""
    for ds in items:
        path = root / file_ids[str(ds.SOPInstanceUID)]
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(path, enforce_file_format=True)


def test_a_2000_instance_study_reads_back_with_every_file_id(tmp_path: Path) -> None:
    items = list(headers(2000, series=4))
    file_ids = write_dicomdir(iter(items), tmp_path)
    assert len(file_ids) == 2000 and len(set(file_ids.values())) == 2000
    place(items, file_ids, tmp_path)

    fs = FileSet(pydicom.dcmread(tmp_path / "DICOMDIR"))
    assert len(fs) == 2000 and not fs.is_staged  # no instance where pydicom would not put it
    assert {str(i.SOPInstanceUID): Path(i.FileID).as_posix() for i in fs} == file_ids
    for instance in fs.find(InstanceNumber=7):  # each series' 7th image: the records hold the right values
        back = instance.load()
        assert back.InstanceNumber == 7 and instance.SeriesInstanceUID == back.SeriesInstanceUID

    records = pydicom.dcmread(tmp_path / "DICOMDIR").DirectoryRecordSequence
    assert Counter(r.DirectoryRecordType for r in records) == {"PATIENT": 1, "STUDY": 1, "SERIES": 4, "IMAGE": 2000}
    series_folders = Counter(f.rsplit("/", 1)[0] for f in file_ids.values())
    assert sorted(series_folders) == [f"PT000000/ST000000/SE00000{n}" for n in range(4)]
    assert set(series_folders.values()) == {500}
    assert dciodvfy(tmp_path / "DICOMDIR") == ""


def test_it_is_what_pydicoms_public_path_writes(tmp_path: Path) -> None:
    items = list(headers(40, series=3))
    write_dicomdir(iter(items), tmp_path / "ours")
    public_path(items, tmp_path / "public")
    ours, theirs = (relative(pydicom.dcmread(tmp_path / name / "DICOMDIR")) for name in ("ours", "public"))
    assert len(ours) == len(theirs) == 1 + 1 + 3 + 40
    for mine, public in zip(ours, theirs, strict=True):
        assert mine == public  # every element, the offsets and File IDs included


def relative(dicomdir: pydicom.Dataset) -> list[pydicom.Dataset]:
    """The records with their offsets counted from the first record: the File-set UID before them
    is random, and its length moves every record."""
    first = dicomdir.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity
    for record in dicomdir.DirectoryRecordSequence:
        for keyword in ("OffsetOfTheNextDirectoryRecord", "OffsetOfReferencedLowerLevelDirectoryEntity"):
            if record[keyword].value:
                record[keyword].value -= first
    return list(dicomdir.DirectoryRecordSequence)


def test_missing_type_1_values_are_filled_and_a_repeated_instance_listed_once(tmp_path: Path) -> None:
    items = list(headers(6, series=2))
    for ds in items:  # type 2 in an image, type 1 in the records: allowed empty in the instance
        ds.PatientID = ds.StudyDate = ds.StudyTime = ds.StudyID = ""
        ds.SeriesDate, ds.SeriesTime = "20261206", "080000"
    file_ids = write_dicomdir(iter([*items, items[0]]), tmp_path)
    assert len(file_ids) == 6
    place(items, file_ids, tmp_path)
    records = pydicom.dcmread(tmp_path / "DICOMDIR").DirectoryRecordSequence
    patient, study = records[0], records[1]
    assert patient.PatientID == items[0].StudyInstanceUID  # as DCMTK's dcmdir does
    assert (study.StudyDate, study.StudyTime, study.StudyID) == ("20261206", "080000", "1")
    assert dciodvfy(tmp_path / "DICOMDIR") == ""


def test_an_unchecked_pydicom_refuses_to_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert pydicom.__version__.startswith(dicomdir.PYDICOM_TESTED), \
        f"pydicom {pydicom.__version__}: check yunying/portal/dicomdir.py against its FileSet, then update PYDICOM_TESTED"
    monkeypatch.setattr(pydicom, "__version__", "9.0.0")
    with pytest.raises(RuntimeError, match="written against pydicom"):
        write_dicomdir(headers(2), tmp_path)
    assert not (tmp_path / "DICOMDIR").exists()
