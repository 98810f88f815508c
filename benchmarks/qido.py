"""QIDO-RS latency: a reproducible query mix with the answers a correct server gives."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from benchmarks.client import BenchError, Http, Response, percentile
from benchmarks.data import Corpus


@dataclass(frozen=True)
class Query:
    kind: str
    path: str
    expected: int | None  # number of results a correct server returns, when known


def _in_range(d: str, lo: str, hi: str) -> bool:
    return lo <= d <= hi


def qido_queries(corpus: Corpus, n: int, seed: int = 11) -> list[Query]:
    """A reproducible mix of study, series and instance queries with their expected counts."""
    rng = random.Random(seed)
    studies = list(corpus.studies)
    by_pid: dict[str, int] = {}
    for s in studies:
        by_pid[s["PatientID"]] = by_pid.get(s["PatientID"], 0) + 1
    out: list[Query] = []
    inc = "includefield=00081061,00081030,00201206,00201208"
    kinds = ["study_patient_id", "study_name_wildcard", "study_date_range", "study_modality",
             "study_list", "study_accession", "series_in_study", "series_by_modality",
             "instances_in_series", "instance_by_uid"]
    for i in range(n):
        kind = kinds[i % len(kinds)]
        s = rng.choice(studies)
        if kind == "study_patient_id":
            out.append(Query(kind, f"/studies?PatientID={s['PatientID']}", by_pid[s["PatientID"]]))
        elif kind == "study_name_wildcard":
            while not s["PatientName"].split("^")[0].isascii():  # raw ASCII URLs, see README
                s = rng.choice(studies)
            prefix = s["PatientName"].split("^")[0]
            hits = sum(x["PatientName"].startswith(prefix) for x in studies)
            out.append(Query(kind, f"/studies?PatientName={prefix}*&limit=100&{inc}", min(100, hits)))
        elif kind == "study_date_range":
            lo = date(rng.randint(2000, 2024), rng.randint(1, 12), 1)
            hi = lo + timedelta(days=rng.choice([7, 31, 92]))
            a, b = lo.strftime("%Y%m%d"), hi.strftime("%Y%m%d")
            hits = sum(_in_range(x["StudyDate"], a, b) for x in studies)
            out.append(Query(kind, f"/studies?StudyDate={a}-{b}&limit=100&{inc}", min(100, hits)))
        elif kind == "study_modality":
            m = rng.choice(["MR", "US", "MG", "PT", "NM"])  # not CT: the CT studies would count
            hits = sum(m in x["ModalitiesInStudy"].split("\\") for x in studies)
            out.append(Query(kind, f"/studies?ModalitiesInStudy={m}&limit=100&{inc}", min(100, hits)))
        elif kind == "study_list":
            out.append(Query(kind, f"/studies?limit=100&offset={rng.randint(0, 20) * 100}&{inc}", None))
        elif kind == "study_accession":
            out.append(Query(kind, f"/studies?AccessionNumber={s['AccessionNumber']}", 1))
        elif kind == "series_in_study":
            out.append(Query(kind, f"/studies/{s['StudyInstanceUID']}/series", len(s["series"])))
        elif kind == "series_by_modality":
            m = rng.choice(["MR", "CR", "DX", "MG", "NM"])
            out.append(Query(kind, f"/series?Modality={m}&limit=100", None))
        elif kind == "instances_in_series":
            se = rng.choice(s["series"])
            out.append(Query(kind, f"/studies/{s['StudyInstanceUID']}/series/"
                                   f"{se['SeriesInstanceUID']}/instances", len(se["sops"])))
        else:
            se = rng.choice(s["series"])
            sop = rng.choice(se["sops"])
            out.append(Query(kind, f"/instances?SOPInstanceUID={sop}", 1))
    return out


def _count(r: Response) -> int:
    if r.status == 204 or not r.body.strip():
        return 0
    return len(json.loads(r.body))


def qido(base_url: str, queries: Sequence[Query], warmup: int = 20) -> dict[str, Any]:
    """Run `queries` one after the other from a single client; latency percentiles in ms."""
    h = Http(base_url)
    for q in queries[:warmup]:
        h.get(q.path)
    samples: dict[str, list[float]] = {}
    wrong: dict[str, int] = {}
    wrong_examples: list[dict[str, Any]] = []
    errors: list[str] = []
    for q in queries:
        t0 = time.perf_counter()
        r = h.get(q.path)
        ms = (time.perf_counter() - t0) * 1000
        if r.status not in (200, 204):
            errors.append(f"{q.kind}: HTTP {r.status}")
            continue
        samples.setdefault(q.kind, []).append(ms)
        if q.expected is not None and (got := _count(r)) != q.expected:
            wrong[q.kind] = wrong.get(q.kind, 0) + 1
            if len(wrong_examples) < 5 and q.kind != "study_name_wildcard":  # no names in logs
                wrong_examples.append({"path": q.path, "expected": q.expected, "got": got})
    h.close()
    if len(errors) > len(queries) // 2:
        raise BenchError(f"{len(errors)} of {len(queries)} queries failed, e.g. {errors[0]}")
    allv = [v for vs in samples.values() for v in vs]
    return {
        "queries": len(allv), "p50_ms": percentile(allv, 50), "p95_ms": percentile(allv, 95),
        "by_kind_p50_ms": {k: percentile(v, 50) for k, v in sorted(samples.items())},
        "wrong_counts": wrong, "wrong_examples": wrong_examples, "errors": len(errors),
        "first_error": errors[0] if errors else None,
    }
