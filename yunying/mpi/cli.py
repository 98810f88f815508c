"""`yunying mpi rebuild|codes`: the master index from the command line (issue 15 part 5).

`rebuild` opens the data folder itself, so the server must be stopped (a running server
answers POST /api/mpi/rebuild instead); `codes import` loads an exam code table (CSV/XLSX).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from yunying.settings import load_settings


def add_parser(sub: Any) -> None:
    mpi = sub.add_parser("mpi", help="the patient master index: rebuild, exam code table")
    verbs = mpi.add_subparsers(dest="mpi_command", required=True)
    rb = verbs.add_parser("rebuild", help="link every stored study's patient (server stopped)")
    codes = verbs.add_parser("codes", help="import an exam code table (CSV or .xlsx)")
    codes.add_argument("file", type=Path)
    for p in (rb, codes):
        p.add_argument("--config", help="TOML config file (also YUNYING_CONFIG)")
        p.add_argument("--data", help="data folder (default ./yunying-data)")
    rb.set_defaults(func=cmd_rebuild)
    codes.set_defaults(func=cmd_codes)


def _index(args: argparse.Namespace) -> Any:
    from yunying.auth.store import open_store
    from yunying.mpi.linker import PatientIndex
    from yunying.pii import keys_for

    settings = load_settings(args.config, {"data": args.data} if args.data else {})
    store = open_store(settings.data, settings.app_database, settings.pii_key_file)
    return settings, PatientIndex(store.engine, keys_for(Path(settings.data), settings.pii_key_file),
                                  upper=settings.mpi_link_upper, lower=settings.mpi_link_lower)


def cmd_rebuild(args: argparse.Namespace) -> int:
    from yunying.archive import Archive
    from yunying.checking import existing_archive
    from yunying.mpi.feed import rebuild

    settings, index = _index(args)
    archive = Archive(existing_archive(settings.data), issuer_hospitals=settings.issuer_hospitals)
    try:
        counts = rebuild(archive, index)
    finally:
        archive.close()
    print("mpi rebuild: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "no patients"))
    return 0


def cmd_codes(args: argparse.Namespace) -> int:
    from yunying.mpi.codes import BadCodeTable, import_table

    _, index = _index(args)
    try:
        n = import_table(index.engine, args.file.read_bytes())
    except (OSError, BadCodeTable) as exc:
        print(f"yunying: {getattr(exc, 'reason', exc)}", file=sys.stderr)
        return 2
    print(f"mpi codes: {n} row(s) imported")
    return 0
