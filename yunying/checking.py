"""`yunying check` without --repair: look at a data folder and change nothing (issue 10 part 8).

Opening an Archive writes its RUNNING marker and, after an unclean stop, recovers (re-indexes,
removes incomplete versions): a check that was meant to look changed the archive, and on a
mistyped --data it created an empty archive and reported no problems. Here the folder must
exist and hold an archive, the index is opened read-only and nothing is written.
"""
from __future__ import annotations

from pathlib import Path

from index import Index
from storage import Storage


class NoArchive(Exception):
    """The data folder does not exist or holds no archive."""


class InUse(Exception):
    """A running server holds the data folder (DuckDB allows one writer)."""


def open_index(path: Path, read_only: bool = False) -> Index:
    """The index, or InUse with one clear sentence instead of DuckDB's lock error."""
    try:
        return Index(path, read_only=read_only)
    except Exception as exc:  # duckdb.IOException "Could not set lock on file"
        if "lock" in str(exc).lower():
            raise InUse(f"the data folder {path.parent} is in use by a running server: stop it first "
                        "(or reach the archive through the server)") from None
        raise


def existing_archive(data: Path, need_index: bool = True) -> Path:
    """The data folder, refused unless it holds an archive (store/, and index.duckdb unless
    the index is to be rebuilt from the stored records)."""
    if not data.is_dir():
        raise NoArchive(f"the data folder {data} does not exist")
    if not (data / "store" / "objects").is_dir() or (need_index and not (data / "index.duckdb").is_file()):
        raise NoArchive(f"{data} holds no archive (no index.duckdb and store/)")
    return data


def check_read_only(data: Path) -> dict[str, list[str]]:
    """Indexed instances without bytes ("missing") and stored versions not indexed ("orphans")."""
    index = open_index(existing_archive(data) / "index.duckdb", read_only=True)
    try:
        indexed = dict(index.storage_keys())
    finally:
        index.close()
    storage = Storage(data / "store", group_sync=False)  # its folders exist: nothing is created
    keys = set(indexed.values())
    missing = [sop for sop, key in indexed.items() if not storage.exists(key)]
    orphans = [key for key in storage.versions() if key not in keys]
    unclean = [("the last run did not stop cleanly (RUNNING marker): the next start or "
               "`check --repair` re-indexes what it acknowledged")] if (data / "RUNNING").exists() else []
    return {"missing": missing, "orphans": orphans, "notes": unclean}
