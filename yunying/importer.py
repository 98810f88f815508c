"""`yunying import`: bulk-load files and folders through the same ingest path as STOW and C-STORE."""
from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from index.model import DEFAULT_HOSPITAL, Origin
from yunying.checking import InUse
from yunying.errors import ArchiveError


def walk(paths: list[Path]) -> Iterator[Path]:
    """Every regular file under the given files and folders, in a stable order."""
    for path in paths:
        if path.is_dir():
            for sub in sorted(path.rglob("*")):
                if sub.is_file():
                    yield sub
        elif path.is_file():
            yield path
        else:
            print(f"yunying import: {path} does not exist", file=sys.stderr)


def looks_like_dicom(path: Path) -> bool:
    """A Part 10 preamble, or a plausible raw data set starting with group 0002/0008 (PS3.10 7.1)."""
    with open(path, "rb") as fh:
        head = fh.read(132)
    if head[128:132] == b"DICM":
        return True
    return len(head) >= 8 and head[0] in (0x02, 0x08) and head[1] == 0x00 and head[3] == 0x00


class Progress:
    """A one-line progress bar on stderr (only when it is a terminal, or with --progress)."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.start = total, 0, time.monotonic()
        self.tty = sys.stderr.isatty()

    def step(self) -> None:
        self.done += 1
        if self.tty and (self.done % 10 == 0 or self.done == self.total):
            width = 30
            filled = int(width * self.done / max(self.total, 1))
            rate = self.done / max(time.monotonic() - self.start, 1e-9)
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} {rate:.0f}/s")
            sys.stderr.flush()

    def close(self) -> None:
        if self.tty:
            sys.stderr.write("\n")


def run_import(args: argparse.Namespace) -> int:
    """Import every DICOM file found; print a summary; exit 1 if any DICOM file failed."""
    files = list(walk(args.paths))
    counts: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    progress = Progress(len(files))
    start = time.monotonic()
    nbytes = 0
    if args.stow and (getattr(args, "hospital", None) or getattr(args, "department", None)):
        print("yunying import: --hospital/--department apply to a local import; through --stow the "
              "API key's hospital owns what is stored", file=sys.stderr)
        return 2
    if args.stow:
        from yunying.stow_client import StowSender

        sender = StowSender(args.stow)
        store = sender.store
    else:
        from yunying.archive import Archive
        from yunying.cli import _settings

        try:
            settings = _settings(args)
            archive = Archive(settings.data, durability=settings.durability,
                              ingest_processes=settings.ingest_workers(), inline_bytes=settings.ingest_inline_bytes,
                              issuer_hospitals=settings.issuer_hospitals)
        except InUse:  # DuckDB refuses a second writer: the server holds the data folder
            print("yunying import: the data folder is in use by a running server; "
                  "import through it with --stow http://HOST:PORT/dicomweb", file=sys.stderr)
            return 2
        origin = Origin("import", "yunying-import", "", getattr(args, "hospital", None) or DEFAULT_HOSPITAL,
                        getattr(args, "department", None))

        def store(path: Path) -> str:
            return archive.store(path, origin, wait=False).outcome

    def one(path: Path) -> tuple[str, str | None, int]:
        try:
            if not looks_like_dicom(path):
                return "skipped (not DICOM)", None, 0
            return store(path), None, path.stat().st_size
        except ArchiveError as exc:
            return "failed", exc.reason, 0
        except OSError as exc:  # unreadable, vanished, or a full disk: count it and go on
            return "failed", f"unreadable: {exc.strerror or type(exc).__name__}", 0

    try:
        with ThreadPoolExecutor(max_workers=max(1, args.workers)) as pool:
            for outcome, reason, size in pool.map(one, files):
                counts[outcome] += 1
                nbytes += size
                if reason:
                    reasons[reason.split(":")[0][:80]] += 1
                progress.step()
    finally:
        progress.close()
        if not args.stow:
            archive.close()
    secs = time.monotonic() - start
    stored = counts["stored"] + counts["replaced"]
    print(f"import: {len(files)} file(s) in {secs:.1f} s: {counts['stored']} stored, "
          f"{counts['replaced']} replaced, {counts['duplicate']} already stored, "
          f"{counts['skipped (not DICOM)']} skipped (not DICOM), {counts['failed']} failed; "
          f"{stored / max(secs, 1e-9):.0f} instances/s, {nbytes / max(secs, 1e-9) / 1e6:.1f} MB/s")
    for reason, n in reasons.most_common():
        print(f"  failed x{n}: {reason}")
    return 1 if counts["failed"] else 0
