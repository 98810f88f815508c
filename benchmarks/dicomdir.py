"""The DICOMDIR of a portal download (yunying.portal.dicomdir): build time for header-only
studies of growing size, in process (no server). The build must grow linearly with the study;
pydicom's public FileSet.add_custom path (--public) grows quadratically (minutes at 2000).

    python -m benchmarks.dicomdir [--sizes 500,1000,2000,5000] [--series 4] [--public 500]

Quote the load average printed with the figures: the machine's 2 cores are shared.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.fileset import FileSet, RecordNode
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from yunying.portal import dicomdir


def headers(count: int, series: int = 4, study: str | None = None) -> Iterator[Dataset]:
    """`count` CT headers (no pixel data) of one study spread over `series` series, as the archive's
    read_header gives them."""
    study = study or generate_uid()
    series_uids = [generate_uid() for _ in range(series)]
    for i in range(count):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = CTImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.PatientID, ds.PatientName = "BENCH0001", "Zhang^San=张^三"
        ds.StudyInstanceUID, ds.StudyDate, ds.StudyTime, ds.StudyID = study, "20261207", "101500", "S1"
        ds.AccessionNumber, ds.StudyDescription = "A0001", "CT chest"
        ds.SeriesInstanceUID, ds.SeriesNumber, ds.Modality = series_uids[i % series], i % series + 1, "CT"
        ds.InstanceNumber = i // series + 1
        yield ds


def public_path(items: list[Dataset], root: Path) -> None:
    """The same records through pydicom's public API (add_custom + write): the old, quadratic way."""
    fs = FileSet()
    fs.ID = "YUNYING"
    for ds in items:
        nodes = [RecordNode(dicomdir._record(kind, ds, kws)) for kind, _, kws in dicomdir.LEVELS]
        nodes.append(RecordNode(dicomdir._leaf(ds)))
        for parent, child in pairwise(nodes):
            child.parent = parent
        fs.add_custom(ds, nodes[-1])
    fs.write(root)


def timed(build: str, count: int, series: int) -> float:
    items = list(headers(count, series))  # made before the clock starts: the archive reads them
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        if build == "public":
            public_path(items, Path(tmp))
        else:
            dicomdir.write_dicomdir(iter(items), Path(tmp))
        return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="500,1000,2000,5000")
    ap.add_argument("--series", type=int, default=4)
    ap.add_argument("--public", default="", help="sizes to time through pydicom's public path too (slow)")
    args = ap.parse_args(argv)
    print(f"DICOMDIR build, header-only CT, {args.series} series (load average {os.getloadavg()[0]:.1f})")
    for build, sizes in (("linear", args.sizes), ("public", args.public)):
        for count in [int(n) for n in sizes.split(",") if n]:
            seconds = timed(build, count, args.series)
            print(f"  {build:6s} {count:5d} instances: {seconds:6.2f} s ({seconds / count * 1e3:.2f} ms each)")
    print(f"  load average now {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
