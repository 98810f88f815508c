"""Fixed cost of one index write transaction (not a test).

python -m tests.index.bench_commit [studies] [--statements] [--profile]

Builds (once, cached in /tmp) an index of `studies` studies of 20 CT_small instances in 4
series (bench_index.corpus), copies it, loads the catalog with one search (as a running
archive has), then times Index.upsert of new instances arriving `batch` per commit into a new
study of one series (the series grows commit by commit), and replacements of `batch`
existing instances. --statements times each SQL statement; --profile prints cProfile's top.
"""
from __future__ import annotations

import cProfile
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from index import Index, InstanceRecord, Origin, Query
from tests.index.bench_index import corpus, template

STATS: dict[str, list[float]] = defaultdict(list)


class Timed:
    """A cursor that times each statement (execute plus the fetch that follows it)."""

    def __init__(self, cur: Any) -> None:
        self._cur, self._sql = cur, ""

    def execute(self, sql: str, params: Any = None) -> Timed:
        self._sql = " ".join(sql.split())[:70]
        t = time.perf_counter()
        self._cur.execute(sql, params) if params is not None else self._cur.execute(sql)
        STATS[self._sql].append(time.perf_counter() - t)
        return self

    def _fetch(self, name: str) -> Any:
        t = time.perf_counter()
        out = getattr(self._cur, name)()
        STATS[self._sql][-1] += time.perf_counter() - t
        return out

    def fetchall(self) -> Any:
        return self._fetch("fetchall")

    def fetchone(self) -> Any:
        return self._fetch("fetchone")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cur, name)


class Con:
    """A connection whose writer cursors are Timed."""

    def __init__(self, con: Any) -> None:
        self._con = con

    def cursor(self) -> Any:
        return Timed(self._con.cursor())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


def base(n_studies: int) -> Path:
    path = Path(tempfile.gettempdir()) / f"yy_bench_commit_{n_studies}.duckdb"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        ix = Index(tmp)
        for b in corpus(n_studies, 20):
            ix.upsert(b)
        ix.close()
        tmp.rename(path)
    return path


def records(study: str, n: int, js0: dict[str, Any]) -> list[InstanceRecord]:
    out = []
    for i in range(n):
        js = dict(js0)
        js["0020000D"] = {"vr": "UI", "Value": [study]}
        js["0020000E"] = {"vr": "UI", "Value": [f"{study}.1"]}
        js["00080018"] = {"vr": "UI", "Value": [f"{study}.1.{i}"]}
        js["00200013"] = {"vr": "IS", "Value": [i]}
        js["00100020"] = {"vr": "LO", "Value": [f"N{study}"]}
        out.append(InstanceRecord(js, "1.2.840.10008.1.2.1", "native", 1, 1000, "d",
                                  f"k/{study}/{i}", Origin("stow", "AE", "H1")))
    return out


def run(ix: Index, batches: list[list[InstanceRecord]]) -> tuple[list[float], float]:
    walls = []
    cpu = time.process_time()
    for b in batches:
        t = time.perf_counter()
        ix.upsert(b)
        walls.append((time.perf_counter() - t) * 1000)
    return walls, (time.process_time() - cpu) * 1000 / len(batches)


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n_studies = int(args[0]) if args else 5000
    src = base(n_studies)
    js0 = template()
    with tempfile.TemporaryDirectory() as d:
        shutil.copy(src, Path(d) / "x.duckdb")
        ix = Index(Path(d) / "x.duckdb")
        list(ix.search(Query("STUDY", limit=10)))  # the catalog is loaded, as in a server
        if "--statements" in sys.argv:
            ix._con = Con(ix._con)  # type: ignore[assignment]  # a wrapper timing the connection's calls
        prof = cProfile.Profile() if "--profile" in sys.argv else None
        print(f"index of {ix.counts()}")
        for k, (batch, commits) in enumerate(((1, 100), (10, 30), (50, 10))):
            recs = records(f"9.9.{k}", batch * commits, js0)
            batches = [recs[i:i + batch] for i in range(0, len(recs), batch)]
            if prof is not None and batch == 1:
                prof.enable()
            walls, cpu = run(ix, batches)
            if prof is not None and batch == 1:
                prof.disable()
            print(f"new, batch {batch:2d}: wall p50 {statistics.median(walls):6.2f} ms, mean "
                  f"{statistics.mean(walls):6.2f} ms, first {walls[0]:6.2f} last {walls[-1]:6.2f}; "
                  f"cpu {cpu:6.2f} ms/commit = {cpu / batch:5.2f} ms/instance")
            walls, cpu = run(ix, batches[:10])
            print(f"replace, batch {batch:2d}: wall p50 {statistics.median(walls):6.2f} ms; "
                  f"cpu {cpu:6.2f} ms/commit")
        if STATS:
            for sql, ts in sorted(STATS.items(), key=lambda kv: -sum(kv[1])):
                print(f"{sum(ts) * 1000:8.1f} ms {len(ts):5d}x {statistics.mean(ts) * 1000:6.3f} ms  {sql}")
        if prof is not None:
            pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
        ix.close()


if __name__ == "__main__":
    main()
