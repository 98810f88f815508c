"""A DICOMDIR (PS3.10 media, PS3.3 F.5) for the originals of a study, written next to them.

pydicom's FileSet builds it; its default record makers refuse instances lacking type-1 record
attributes (StudyID, SeriesNumber...) that real archives are full of, so the records are made
here from what the instance has, with empty values where it has none. The files stay byte-equal
to what the archive returns: the ZIP holds the archive's own bytes at the File IDs.
"""
from __future__ import annotations

from collections.abc import Iterable
from itertools import pairwise
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.fileset import FileSet, RecordNode

LEVELS = (
    ("PATIENT", ("PatientID", "PatientName")),
    ("STUDY", ("StudyDate", "StudyTime", "StudyDescription", "StudyInstanceUID", "StudyID", "AccessionNumber")),
    ("SERIES", ("Modality", "SeriesInstanceUID", "SeriesNumber")),
)
SR_PREFIX = "1.2.840.10008.5.1.4.1.1.88."
PDF = "1.2.840.10008.5.1.4.1.1.104.1"


def _record(kind: str, ds: Dataset, keywords: tuple[str, ...]) -> Dataset:
    rec = Dataset()
    rec.DirectoryRecordType = kind
    if "SpecificCharacterSet" in ds:
        rec.SpecificCharacterSet = ds.SpecificCharacterSet
    for kw in keywords:
        setattr(rec, kw, ds.get(kw, ""))
    return rec


def _leaf(ds: Dataset) -> Dataset:
    rec = _leaf_kind(ds)
    rec.ReferencedSOPClassUIDInFile = ds.SOPClassUID  # the key of a leaf record (FileSet fills the rest)
    rec.ReferencedSOPInstanceUIDInFile = ds.SOPInstanceUID
    rec.ReferencedTransferSyntaxUIDInFile = ds.file_meta.TransferSyntaxUID
    return rec


def _leaf_kind(ds: Dataset) -> Dataset:
    sop_class = str(ds.SOPClassUID)
    if sop_class == PDF:
        rec = _record("ENCAP DOC", ds, ("InstanceNumber", "ContentDate", "ContentTime"))
        rec.MIMETypeOfEncapsulatedDocument = ds.get("MIMETypeOfEncapsulatedDocument", "application/pdf")
        return rec
    if sop_class.startswith(SR_PREFIX):
        return _record("SR DOCUMENT", ds, ("InstanceNumber", "CompletionFlag", "VerificationFlag",
                                           "ContentDate", "ContentTime"))
    return _record("IMAGE", ds, ("InstanceNumber",))


def write_dicomdir(headers: Iterable[Dataset], root: Path) -> dict[str, str]:
    """Write a DICOMDIR for the instances of `headers` under `root`; answers each instance's
    File ID (SOP Instance UID -> "PT000000/ST000000/SE000000/IM000000", pydicom's names).

    The headers need no pixel data: a DICOMDIR names files, it holds none of their bytes, so the
    caller puts each instance's stored bytes at its File ID (yunying.portal.downloads), one at a
    time. pydicom stages each added dataset to a file at once, so only the records stay in memory.
    """
    fs = FileSet()
    fs.ID = "YUNYING"
    for ds in headers:
        nodes = [RecordNode(_record(kind, ds, kws)) for kind, kws in LEVELS] + [RecordNode(_leaf(ds))]
        for parent, child in pairwise(nodes):
            child.parent = parent
        fs.add_custom(ds, nodes[-1])
    fs.write(root)
    return {str(instance.SOPInstanceUID): Path(instance.FileID).as_posix() for instance in fs}
