"""An idle server's index gives back the memory DuckDB keeps for rows not yet checkpointed
(issue 9 part 5): Index.release_memory checkpoints them, and what was written is still there."""
from __future__ import annotations

from index import Index, Query, parse_match

from .conftest import make


def in_memory(ix: Index) -> dict[str, int]:
    """DuckDB's own accounting, bytes by tag (duckdb_memory())."""
    return dict(ix._con.cursor().execute(  # DuckDB's own accounting
        "SELECT tag, memory_usage_bytes FROM duckdb_memory()").fetchall())


def test_release_memory_checkpoints_the_rows_held_in_memory(ix: Index) -> None:
    for batch in range(10):
        ix.upsert([make(study=f"1.2.{batch}.{i}", series=f"1.2.{batch}.{i}.1", sop=f"1.2.{batch}.{i}.1.1",
                        pid=f"P{batch}-{i}") for i in range(200)])
    before = in_memory(ix)
    assert before["IN_MEMORY_TABLE"] > 0  # the rows since the last checkpoint live in memory
    assert ix.release_memory() is True
    after = in_memory(ix)
    assert after["IN_MEMORY_TABLE"] == 0
    assert after["ART_INDEX"] < before["ART_INDEX"]
    rows = list(ix.search(Query("STUDY", [parse_match("StudyInstanceUID", "1.2.9.199")])))
    assert len(rows) == 1 and ix.counts()["instances"] == 2000


def test_release_memory_after_close_does_nothing(ix: Index) -> None:
    ix.upsert([make()])
    ix.close()
    assert ix.release_memory() is False


def test_duckdbs_allocator_gives_freed_pages_back_in_the_background(ix: Index) -> None:
    """Without its background thread, DuckDB's jemalloc keeps what a burst of writes freed."""
    setting = ix._con.execute(  # DuckDB's own settings table
        "SELECT value FROM duckdb_settings() WHERE name = 'allocator_background_threads'").fetchone()
    assert setting == ("true",)


def test_a_long_ingest_checkpoints_every_checkpoint_rows_and_answers_stay_right(ix: Index) -> None:
    """DuckDB checkpoints by itself only when its WAL reaches 256 MB (~50,000 instances); the
    index checkpoints every checkpoint_rows upserted instances instead, so a long ingest's
    memory does not grow with it (issue 9 part 5)."""
    ix.checkpoint_rows = 500
    held = []
    for batch in range(10):
        ix.upsert([make(study=f"1.2.{batch % 3}", series=f"1.2.{batch % 3}.{i % 4}", sop=f"1.2.{batch}.{i}",
                        pid=f"P{batch % 3}", instance_number=i) for i in range(200)])
        held.append(in_memory(ix)["IN_MEMORY_TABLE"])
    assert ix.checkpoints == 3  # after the 600th, 1,200th and 1,800th instance
    assert [held[i] == 0 for i in range(10)] == [i in (2, 5, 8) for i in range(10)]
    assert ix.counts()["instances"] == 2000
    studies = list(ix.search(Query("STUDY", [parse_match("StudyInstanceUID", "1.2.1")])))
    assert len(studies) == 1
    instances = list(ix.search(Query("IMAGE", [parse_match("StudyInstanceUID", "1.2.1"),
                                               parse_match("SeriesInstanceUID", "1.2.1.3")])))
    assert len(instances) == 3 * 50  # batches 1, 4, 7; i = 3, 7, ..., 199


def test_checkpoint_rows_zero_leaves_checkpoints_to_duckdb(ix: Index) -> None:
    ix.checkpoint_rows = 0
    for batch in range(5):
        ix.upsert([make(study=f"1.3.{batch}", series=f"1.3.{batch}.1", sop=f"1.3.{batch}.{i}") for i in range(200)])
    assert ix.checkpoints == 0 and in_memory(ix)["IN_MEMORY_TABLE"] > 0


def test_release_memory_drops_parsed_answers(ix: Index) -> None:
    """The catalog's parsed answers go when idle; the memory limit is untouched (readers take no
    lock: a lowered limit would fail a read arriving meanwhile) and every answer stays the same."""
    for batch in range(10):
        ix.upsert([make(study=f"1.4.{batch}.{i}", series=f"1.4.{batch}.{i}.1", sop=f"1.4.{batch}.{i}.1.1",
                        pid=f"P{batch}-{i}") for i in range(200)])
    ix.release_memory()  # checkpointed: the rows are table blocks now
    query = Query("STUDY", [parse_match("PatientID", "P3*")])
    first = list(ix.search(query))  # loads the catalog (reads the tables) and parses answers
    assert len(first) == 200
    catalog = ix._catalog
    assert catalog is not None and len(catalog._owns) == 200
    limit = ix._con.execute("SELECT current_setting('memory_limit')").fetchone()
    ix.release_memory()
    assert len(catalog._owns) == 0
    assert ix._con.execute("SELECT current_setting('memory_limit')").fetchone() == limit
    assert list(ix.search(query)) == first
    assert len(list(ix.search(Query("IMAGE", [parse_match("StudyInstanceUID", "1.4.3.7")])))) == 1
