"""A DICOMDIR (PS3.10 media, PS3.3 F.5) for the originals of a study, written next to them.

pydicom's FileSet writes it (the record offsets are its work), but its way in is quadratic: each
`FileSet.add_custom` scans every instance already added for a duplicate and each
`RecordNode.add` scans the series' children by key; `FileInstance.FileID`, `RecordNode.next` and
`.index` look a node up in its parent's children list. A 2000-image CT took minutes. So the
record tree is built here with dictionaries (each record made once, each node knowing its
position) and handed to pydicom's writer, `FileSet._write_dicomdir`, without staging a copy of
every header to disk. That reaches into pydicom's internals: written against PYDICOM_TESTED,
checked before every build (`_check_pydicom`), and tests/portal/test_download_dicomdir.py fails
loudly when they change.

pydicom's default record makers refuse instances lacking type-1 record attributes (StudyID,
SeriesNumber...) that real archives are full of, so the records are made here from what the
instance has, with empty values where it has none. The files stay byte-equal to what the
archive returns: the ZIP holds the archive's own bytes at the File IDs.
"""
from __future__ import annotations

import inspect
from collections.abc import Iterable
from pathlib import Path

import pydicom
from pydicom import config
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomFileLike
from pydicom.fileset import FileSet, RecordNode

PYDICOM_TESTED = ("3.0",)  # the minor versions whose FileSet internals this module was checked against
LEVELS = (  # record type, the attribute that tells its records apart (pydicom's RecordNode.key), attributes
    ("PATIENT", "PatientID", ("PatientID", "PatientName")),
    ("STUDY", "StudyInstanceUID",
     ("StudyDate", "StudyTime", "StudyDescription", "StudyInstanceUID", "StudyID", "AccessionNumber")),
    ("SERIES", "SeriesInstanceUID", ("Modality", "SeriesInstanceUID", "SeriesNumber")),
)
SR_PREFIX = "1.2.840.10008.5.1.4.1.1.88."
PDF = "1.2.840.10008.5.1.4.1.1.104.1"
MAX_PER_FOLDER = 10**6  # pydicom's numeric components name at most this many entries of one folder


# Type 1 in the record but type 2 (may be empty) in the instance: the next best value, as
# DCMTK's dcmdir uses the Study Instance UID for an instance without a Patient ID
FALLBACK = {"PatientID": ("PatientID", "StudyInstanceUID"),
            "StudyDate": ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"),
            "StudyTime": ("StudyTime", "SeriesTime", "AcquisitionTime", "ContentTime")}


def _source(ds: Dataset, kw: str) -> str | None:
    """The keyword of the instance's element that gives the record's `kw`, None if none has a value."""
    return next((s for s in FALLBACK.get(kw, (kw,)) if ds.get(s)), None)


def _record(kind: str, ds: Dataset, keywords: tuple[str, ...]) -> Dataset:
    rec = Dataset()
    rec.DirectoryRecordType = kind
    if "SpecificCharacterSet" in ds:
        rec.add(ds["SpecificCharacterSet"])
    for kw in keywords:
        source = _source(ds, kw)
        if source == kw:
            rec.add(ds[kw])  # the instance's own element: no second conversion and validation
        else:
            setattr(rec, kw, ds[source].value if source else "")
    return rec


def _leaf(ds: Dataset) -> Dataset:
    rec = _leaf_kind(ds)
    rec.ReferencedFileID = None  # filled in once the tree is complete (the components are positions)
    for tag, value in ((0x00041510, ds.SOPClassUID), (0x00041511, ds.SOPInstanceUID),
                       (0x00041512, ds.file_meta.TransferSyntaxUID)):  # Referenced ... UID in File
        rec.add(DataElement(tag, "UI", value, validation_mode=config.IGNORE))  # checked when the instance was read
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


class _Node(RecordNode):
    """A record that knows its position among its siblings: pydicom's `index` (and so `next`,
    `component`, `FileInstance.FileID`) searches the parent's children list for it."""

    def __init__(self, record: Dataset, parent: RecordNode) -> None:
        super().__init__(record)
        self._position = len(parent.children)
        self._parent = parent  # not the `parent` setter: it scans the siblings for this node first
        parent.children.append(self)

    @property
    def index(self) -> int:
        return self._position


def _check_pydicom() -> None:
    """Fail before writing anything if pydicom's internals this module uses are not as written."""
    version = ".".join(pydicom.__version__.split(".")[:2])
    needed = {"FileSet._write_dicomdir": callable(getattr(FileSet, "_write_dicomdir", None)),
              "FileSet()._tree": "_tree" in inspect.getsource(FileSet.__init__),
              "RecordNode.index": isinstance(inspect.getattr_static(RecordNode, "index", None), property),
              "RecordNode._parent": "self._parent" in inspect.getsource(RecordNode.__init__)}
    missing = [name for name, ok in needed.items() if not ok]
    if version not in PYDICOM_TESTED or missing:
        raise RuntimeError(f"yunying.portal.dicomdir was written against pydicom {PYDICOM_TESTED}, found "
                           f"{pydicom.__version__} (changed: {missing or 'version'}): check its FileSet "
                           "internals and update PYDICOM_TESTED")


def write_dicomdir(headers: Iterable[Dataset], root: Path) -> dict[str, str]:
    """Write `root`/DICOMDIR for the instances of `headers`; answers each instance's File ID
    (SOP Instance UID -> "PT000000/ST000000/SE000000/IM000000", pydicom's names), in time linear
    in the number of instances.

    The headers need no pixel data: a DICOMDIR names files, it holds none of their bytes, so the
    caller puts each instance's stored bytes at its File ID (yunying.portal.downloads), one at a
    time. Only the records stay in memory, never a header. An instance seen twice is listed once.
    """
    _check_pydicom()
    fs = FileSet()
    fs.ID = "YUNYING"
    branches: dict[tuple[str, ...], RecordNode] = {}  # (patient id[, study uid[, series uid]]) -> record
    leaves: dict[str, RecordNode] = {}
    for ds in headers:
        uid = str(ds.SOPInstanceUID)
        if uid in leaves:
            continue
        parent: RecordNode = fs._tree
        key: tuple[str, ...] = ()
        for kind, distinct, keywords in LEVELS:
            source = _source(ds, distinct)
            key += (str(ds[source].value) if source else "",)
            node = branches.get(key)
            if node is None:
                record = _record(kind, ds, keywords)
                if kind == "STUDY" and not record.StudyID:  # type 1 here: its place in the file-set
                    record.StudyID = str(len(parent.children) + 1)
                node = branches[key] = _Node(record, parent)
            parent = node
        leaves[uid] = _Node(_leaf(ds), parent)
    if any(len(node.children) > MAX_PER_FOLDER for node in [fs._tree, *branches.values()]):
        raise ValueError(f"more than {MAX_PER_FOLDER} records in one folder of the DICOMDIR")
    file_ids = {}
    for uid, leaf in leaves.items():
        components = [node.component for node in leaf.reverse()][::-1]
        leaf._record.ReferencedFileID = components
        file_ids[uid] = "/".join(components)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "DICOMDIR", "wb") as out:
        fs._write_dicomdir(DicomFileLike(out))
    return file_ids
