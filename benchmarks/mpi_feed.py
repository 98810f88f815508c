"""What the master index costs per stored instance, in process: `python -m benchmarks.mpi_feed`.

Stores of the small-instance load (`benchmarks.data.build_corpus`'s shape: a patient per 5/3
studies, 1-4 instances a study, no ID number or phone) go through `yunying.mpi.feed.Feeder` as
the archive's observer would call it, then the queued facts are linked in the feeder's batches
on a real SQLite app-state store. Prints the thread CPU per stored instance of the observer call
(what the store path pays) and of linking (the feeder's thread, off the store path but under
the same GIL), per instance and per linked patient.
"""
from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.data import GIVEN, LATIN_FAMILY, LATIN_GIVEN, SURNAMES
from index.model import InstanceRecord, Origin
from yunying.auth.store import open_store
from yunying.mpi.feed import BATCH, Feeder
from yunying.mpi.linker import PatientIndex
from yunying.pii import keys_for


class Held:
    """Stands in for PatientIndex in the feeder: keeps what it was asked to link."""

    def __init__(self) -> None:
        self.facts: list[Any] = []

    def observe_many(self, facts: list[Any]) -> list[Any]:
        self.facts.extend(facts)
        return []


def records(studies: int, seed: int = 20240601) -> list[InstanceRecord]:
    rng = random.Random(seed)
    patients = []
    for p in range(max(1, studies * 3 // 5)):
        if rng.random() < 0.6:
            (fa, fi), (ga, gi) = rng.choice(SURNAMES), rng.choice(GIVEN)
            name = {"Alphabetic": f"{fa}^{ga}", "Ideographic": f"{fi}^{gi}"}
        else:
            name = {"Alphabetic": f"{rng.choice(LATIN_FAMILY)}^{rng.choice(LATIN_GIVEN)}"}
        patients.append({"00100020": {"vr": "LO", "Value": [f"PID{p:06d}"]}, "00100010": {"vr": "PN", "Value": [name]},
                         "00100030": {"vr": "DA", "Value": [f"{rng.randint(1930, 2020)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"]},
                         "00100040": {"vr": "CS", "Value": [rng.choice("MF")]}})
    out = []
    for s in range(studies):
        patient = rng.choice(patients)
        institution = rng.choice(["First People's Hospital", "West China Hospital", "Ruijin Hospital"])
        for i in range(rng.randint(1, 4)):
            js = {**patient, "00080018": {"vr": "UI", "Value": [f"1.2.3.{s}.{i}"]},
                  "0020000D": {"vr": "UI", "Value": [f"1.2.3.{s}"]}, "00080060": {"vr": "CS", "Value": ["CT"]}}
            out.append(InstanceRecord(json=js, transfer_syntax="1.2.840.10008.1.2.1", pixel_form="native", frames=1,
                                      size=300, digest="0", storage_key=f"k{s}.{i}",
                                      origin=Origin("dimse", "MODALITY", institution)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--studies", type=int, default=4000)
    args = ap.parse_args()
    recs = records(args.studies)
    held = Held()
    feeder = Feeder(held)  # type: ignore[arg-type]
    try:
        t = time.thread_time()
        for rec in recs:
            feeder(rec, None)
        observe = time.thread_time() - t
        t = time.thread_time()
        for rec in recs:  # every patient known with the same facts: the common case
            feeder(rec, None)
        repeat = time.thread_time() - t
        feeder.drain()
    finally:
        feeder.close()
    with tempfile.TemporaryDirectory() as tmp:
        index = PatientIndex(open_store(Path(tmp)).engine, keys_for(Path(tmp)))
        t = time.thread_time()
        for i in range(0, len(held.facts), BATCH):
            index.observe_many(held.facts[i:i + BATCH])
        link = time.thread_time() - t
    n, k = len(recs), max(1, len(held.facts))
    print(f"{n} instances of {args.studies} studies, {k} patients queued")
    print(f"observer call: {observe / n * 1e6:.1f} us/instance (first pass), {repeat / n * 1e6:.1f} us/instance (all known)")
    print(f"linking: {link / n * 1e6:.1f} us/instance, {link / k * 1e3:.2f} ms/patient")


if __name__ == "__main__":
    main()
