"""The DICOMDIR of a portal download (yunying.portal.dicomdir): build time for header-only
studies of growing size, in process (no server). The build must grow linearly with the study;
pydicom's public FileSet.add_custom path (--public) grows quadratically (minutes at 2000).

    python -m benchmarks.dicomdir [--sizes 500,1000,2000,5000] [--series 4] [--public 500]
                                  [--download 300] [--out benchmarks/out]

--download N also times a whole download end to end on a real server: a stored CT of N 512x512
slices, POST /api/portal/downloads in the background until its progress says "ready", for the
DICOM originals and for both DICOM and JPEGs.

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

import httpx
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.fileset import FileSet, RecordNode
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from benchmarks.net import YunyingServer
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


def patient_token(server: YunyingServer, study: str, phone: str) -> str:
    """A verified patient's bearer token for `study` (QR token, SMS code from the file gateway)."""
    from benchmarks.portal import last_code

    with httpx.Client(base_url=server.http_url, timeout=60) as c:
        exam = c.post("/api/portal/exams", json={"study": study, "phone": phone}, headers=server.headers).json()
        c.post("/api/portal/verify/send", json={"exam": exam["token"], "phone": phone}).raise_for_status()
        session = c.post("/api/portal/verify/sms", json={"exam": exam["token"], "phone": phone,
                                                         "code": last_code(server, phone)})
        return str(session.raise_for_status().json()["access_token"])


def download(slices: int, out: Path) -> None:
    from benchmarks.data import build_ct
    from benchmarks.net import start_yunying
    from benchmarks.viewer import stow_files

    ct = build_ct(out / "data", slices, "D")
    size = sum(f.stat().st_size for f in ct.files)
    with tempfile.TemporaryDirectory() as tmp, start_yunying(Path(tmp) / "data") as server:
        stow_files(server, list(ct.files))
        headers = {"Authorization": "Bearer " + patient_token(server, ct.study_uid, "13900000000")}
        for contents in ("dicom", "both"):
            t0 = time.perf_counter()
            job = httpx.post(server.http_url + "/api/portal/downloads", headers=headers, timeout=600,
                             json={"study": ct.study_uid, "contents": contents, "background": True}).json()
            state = job
            while state["state"] in ("queued", "running"):
                time.sleep(0.2)
                state = httpx.get(f"{server.http_url}/api/portal/downloads/{job['id']}/progress",
                                  headers=headers).json()
            seconds = time.perf_counter() - t0
            print(f"  download {slices} CT slices ({size / 2**20:.0f} MiB), {contents:5s}: {state['state']} in "
                  f"{seconds:6.2f} s, ZIP {state.get('size', 0) / 2**20:.0f} MiB (load average {os.getloadavg()[0]:.1f})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="500,1000,2000,5000")
    ap.add_argument("--series", type=int, default=4)
    ap.add_argument("--public", default="", help="sizes to time through pydicom's public path too (slow)")
    ap.add_argument("--download", type=int, default=0, help="CT slices of an end-to-end download (0: none)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = ap.parse_args(argv)
    print(f"DICOMDIR build, header-only CT, {args.series} series (load average {os.getloadavg()[0]:.1f})")
    for build, sizes in (("linear", args.sizes), ("public", args.public)):
        for count in [int(n) for n in sizes.split(",") if n]:
            seconds = timed(build, count, args.series)
            print(f"  {build:6s} {count:5d} instances: {seconds:6.2f} s ({seconds / count * 1e3:.2f} ms each)")
    print(f"  load average now {os.getloadavg()[0]:.1f}")
    if args.download:
        download(args.download, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
