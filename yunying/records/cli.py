"""`yunying records ...`: sources and their status, a collection run, matching, merges, body parts."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from yunying.settings import load_settings


def add_parser(sub: Any) -> None:
    records = sub.add_parser("records", help="hospital records: database / web-service sources, HL7, matching")
    verbs = records.add_subparsers(dest="records_command", required=True)

    def verb(name: str, fn: Any, text: str) -> argparse.ArgumentParser:
        p = verbs.add_parser(name, help=text)
        p.add_argument("--config", help="TOML config file (also YUNYING_CONFIG)")
        p.add_argument("--data", help="data folder (default ./yunying-data)")
        p.set_defaults(func=fn)
        return p

    verb("status", cmd_status, "each source's last run, rows, rejects and errors; the unmatched queue")
    verb("run", cmd_run, "collect now from one source (rows after its saved watermark)").add_argument("source")
    verb("match", cmd_match, "match studies to exams now (the server must be stopped: it opens the archive)")
    verb("unmatched", cmd_unmatched, "list studies no exam was found for")
    resolve = verb("resolve", cmd_resolve, "say which exam a queued study belongs to (or --none)")
    resolve.add_argument("study")
    resolve.add_argument("exam", nargs="?")
    resolve.add_argument("--none", action="store_true", help="dismiss: the study has no exam")
    verb("merges", cmd_merges, "list patient merges (HL7 A40) and identifier changes (A47)")
    verb("undo-merge", cmd_undo, "reverse a merge (the server must be stopped)").add_argument("merge", type=int)
    bp = verb("body-part", cmd_body_part, "map an exam item to a body part (\"\" removes the row)")
    bp.add_argument("exam_item")
    bp.add_argument("body_part")
    bp.add_argument("--hospital", default="*", help="the hospital whose item this is (default: all)")


def _records(args: argparse.Namespace, with_archive: bool = False) -> Any:
    from yunying.auth.store import open_store
    from yunying.records.service import Records

    settings = load_settings(args.config, {"data": args.data} if args.data else {})
    archive = None
    if with_archive:
        from yunying.archive import Archive
        from yunying.checking import existing_archive
        archive = Archive(existing_archive(settings.data), issuer_hospitals=settings.issuer_hospitals)
    return Records(settings, open_store(settings.data, settings.app_database, settings.pii_key_file), archive)


def _print(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=1, default=str))


def cmd_status(args: argparse.Namespace) -> int:
    from yunying.records.jobs import status
    _print(status(_records(args)))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    rt = _records(args)
    try:
        result = rt.run_source(args.source)
    except KeyError:
        print(f"yunying: no source {args.source!r} in records_sources", file=sys.stderr)
        return 2
    print(f"{args.source}: {result.rows} row(s) applied, {result.rejected} rejected"
          + (f"; stopped: {result.error}" if result.error else ""))
    return 1 if result.error else 0


def cmd_match(args: argparse.Namespace) -> int:
    rt = _records(args, with_archive=True)
    try:
        _print(rt.match())
    finally:
        rt.archive.close()
    return 0


def cmd_unmatched(args: argparse.Namespace) -> int:
    from yunying.records.matching import queue
    _print(queue(_records(args).store, None))
    return 0


def cmd_resolve(args: argparse.Namespace) -> int:
    from yunying.records.matching import NotQueued, resolve
    if bool(args.exam) == bool(args.none):
        print("yunying: give an exam id, or --none", file=sys.stderr)
        return 2
    try:
        _print(resolve(_records(args).store, args.study, None if args.none else args.exam, "cli", None))
    except (NotQueued, ValueError) as exc:
        print(f"yunying: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_merges(args: argparse.Namespace) -> int:
    from yunying.records.merges import list_merges
    _print(list_merges(_records(args).store))
    return 0


def cmd_undo(args: argparse.Namespace) -> int:
    from yunying.audit import record_cli
    from yunying.records.merges import MergeRefused, undo
    rt = _records(args, with_archive=True)
    try:
        _print(undo(rt.store, rt.mover, args.merge, "cli"))
    except (LookupError, MergeRefused) as exc:
        print(f"yunying: {exc}", file=sys.stderr)
        return 1
    finally:
        rt.archive.close()
    record_cli(args, "records.unmerge", {"merge": args.merge})
    return 0


def cmd_body_part(args: argparse.Namespace) -> int:
    from yunying.records.matching import set_body_part
    set_body_part(_records(args).store, args.hospital, args.exam_item, args.body_part.upper())
    return 0
