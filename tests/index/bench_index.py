"""Quick index benchmark (not a test): python tests/index/bench_index.py [studies] [per_study]."""
from __future__ import annotations

import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pydicom

from index import Index, InstanceRecord, Origin, Query, parse_match
from tests.conftest import pydicom_path

SURNAMES = ["Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Wu", "Zhou"]


def template() -> dict:
    """CT_small's DICOM JSON with its pixel data as a bulk data URI."""
    ds = pydicom.dcmread(pydicom_path("CT_small.dcm"))
    return ds.to_json_dict(1024, lambda el: "yy-bulk:x")


def corpus(n_studies: int, per_study: int) -> list[list[InstanceRecord]]:
    """Synthetic studies of 4 series each, as batches of 100 records."""
    base, rnd, recs = template(), random.Random(1), []
    for s in range(n_studies):
        study = f"1.2.826.0.1.{s}"
        pid = f"P{rnd.randrange(n_studies // 2):06d}"
        date = f"20{rnd.randrange(10, 25)}{rnd.randrange(1, 13):02d}{rnd.randrange(1, 29):02d}"
        name = f"{rnd.choice(SURNAMES)}^Xiao{rnd.randrange(1000)}"
        for i in range(per_study):
            js = dict(base)  # shallow: only the elements set below differ per record
            js["0020000D"] = {"vr": "UI", "Value": [study]}
            js["0020000E"] = {"vr": "UI", "Value": [f"{study}.{i % 4}"]}
            js["00080018"] = {"vr": "UI", "Value": [f"{study}.{i % 4}.{i}"]}
            js["00200013"] = {"vr": "IS", "Value": [i]}
            js["00200011"] = {"vr": "IS", "Value": [i % 4]}
            js["00100020"] = {"vr": "LO", "Value": [pid]}
            js["00100010"] = {"vr": "PN", "Value": [{"Alphabetic": name}]}
            js["00080020"] = {"vr": "DA", "Value": [date]}
            js["00080060"] = {"vr": "CS", "Value": [rnd.choice(["CT", "MR"])]}
            recs.append(InstanceRecord(js, "1.2.840.10008.1.2.1", "native", 1, 1000, "d",
                                       f"k/{s}/{i}", Origin("stow", "AE", "H1")))
    return [recs[i:i + 100] for i in range(0, len(recs), 100)]


def timed(ix: Index, q: Query, n: int = 50) -> str:
    """Median wall ms and mean CPU ms of a search, fully consumed."""
    times = []
    cpu = time.process_time()
    for _ in range(n):
        t = time.perf_counter()
        list(ix.search(q))
        times.append((time.perf_counter() - t) * 1000)
    return f"p50 {statistics.median(times):.2f} ms (cpu {(time.process_time() - cpu) / n * 1000:.2f} ms)"


def main() -> None:
    n_studies = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    per_study = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    batches = corpus(n_studies, per_study)
    with tempfile.TemporaryDirectory() as d:
        ix = Index(Path(d) / "bench.duckdb")
        t, cpu = time.perf_counter(), time.process_time()
        for b in batches:
            ix.upsert(b)
        el, cpu = time.perf_counter() - t, time.process_time() - cpu
        n = sum(map(len, batches))
        print(f"upsert: {n} rows in {el:.1f}s = {n / el:.0f} rows/s wall, {n / cpu:.0f} rows/s of "
              f"CPU (batches of 100)", ix.counts())
        t, cpu = time.perf_counter(), time.process_time()
        for b in batches[:20]:
            ix.upsert(b)
        el, cpu = time.perf_counter() - t, time.process_time() - cpu
        print(f"replace: {20 * 100 / el:.0f} rows/s wall, {20 * 100 / cpu:.0f} rows/s of CPU")
        qs = {
            "PatientID single": [parse_match("PatientID", "P000123")],
            "PatientName wildcard": [parse_match("PatientName", "wang*")],
            "StudyDate range": [parse_match("StudyDate", "20200101-20201231")],
            "ModalitiesInStudy": [parse_match("ModalitiesInStudy", "MR")],
            "fuzzy name": [parse_match("PatientName", "zhang xiao1")],
        }
        for label, ms in qs.items():
            q = Query("STUDY", ms, limit=100, fuzzy=label.startswith("fuzzy"))
            print(f"study {label}: {timed(ix, q)}, {len(list(ix.search(q)))} hits")
        print(f"study all limit 100: {timed(ix, Query('STUDY', limit=100))}")
        study = "1.2.826.0.1.42"
        q = Query("SERIES", [parse_match("StudyInstanceUID", study)])
        print(f"series of one study: {timed(ix, q)}")
        q = Query("IMAGE", [parse_match("StudyInstanceUID", study)])
        print(f"instances of one study: {timed(ix, q)}")
        t = time.perf_counter()
        for _ in range(20):
            sum(len(b) for b in ix.iter_metadata(study))
        print(f"metadata of one study: {(time.perf_counter() - t) / 20 * 1000:.2f} ms")
        t = time.perf_counter()
        for i in range(200):
            ix.lookup(f"1.2.826.0.1.{i}.1.1")
        print(f"lookup: {(time.perf_counter() - t) / 200 * 1000:.3f} ms")
        ix.close()


if __name__ == "__main__":
    main()
