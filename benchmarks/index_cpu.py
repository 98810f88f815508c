"""`python -m benchmarks.index_cpu [--rounds N] [--batch B]`: the CPU the study index costs per
stored instance (Index.upsert: extract + DuckDB writes), in process, for the ingest benchmark's
small instances and its CT slices (issue 9). Records come from yunying.writing.write_instance
(made once, outside the timing); each round upserts them into a fresh index in batches of B
(the server batches what arrives together; 1 is the worst case) and prints the median CPU µs
per instance. --dump PATH writes every table's rows (for before/after equivalence checks).
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from benchmarks.data import build_corpus, build_ct
from benchmarks.net import REPO_ROOT
from index.db import Index
from index.model import InstanceRecord, Origin
from storage import Storage
from yunying.writing import write_instance


def records(files: list[Path], work: Path) -> list[InstanceRecord]:
    """The index records write_instance makes for files."""
    storage = Storage(work / "store", group_sync=True)
    return [write_instance(storage, f.read_bytes(), Origin("bench", "index_cpu", "Inst"), sync=False).record
            for f in files]


def run(recs: list[InstanceRecord], batch: int, work: Path, dump: Path | None = None) -> float:
    """CPU µs per instance of upserting recs into a fresh index."""
    index = Index(Path(tempfile.mkdtemp(dir=work)) / "index.duckdb")
    start = time.process_time()
    for i in range(0, len(recs), batch):
        index.upsert(recs[i:i + batch])
    cpu = time.process_time() - start
    if dump is not None:
        out: dict[str, Any] = {}
        cur = index._con.cursor()  # a test's view of every stored value
        for t in ("instances", "series", "studies", "patients"):
            out[t] = [[str(c) for c in r] for r in cur.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()]
        cur.close()
        dump.write_bytes(orjson.dumps(out))
    index.close()
    return cpu * 1e6 / len(recs)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.index_cpu", description=__doc__)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--studies", type=int, default=300, help="small studies")
    p.add_argument("--ct", type=int, default=100, help="CT slices")
    p.add_argument("--dump", type=Path)
    p.add_argument("--data", type=Path, default=REPO_ROOT / "benchmarks" / "out" / "data")
    args = p.parse_args(argv)
    corpus = build_corpus(args.data, args.studies)
    ct = build_ct(args.data, args.ct)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        kinds = {"small": records(list(corpus.files), work / "s"), "ct": records(list(ct.files), work / "c")}
        for name, recs in kinds.items():
            dump = args.dump.with_suffix(f".{name}.json") if args.dump else None
            cpu = [run(recs, args.batch, work, dump if r == 0 else None) for r in range(args.rounds)]
            print(f"{name}: {len(recs)} instances, batch {args.batch}: "
                  f"{statistics.median(cpu):.0f} µs CPU per instance (rounds {', '.join(f'{c:.0f}' for c in cpu)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
