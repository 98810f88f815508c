"""`yunying dimse echo|find|move|get|store`: the SCU operations from the command line."""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from pydicom import Dataset
from pydicom.datadict import dictionary_VR, tag_for_keyword

from dimse import scu


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `dimse` command group to the `yunying` parser."""
    group = subparsers.add_parser("dimse", help="DIMSE SCU: echo, find, move, get, store")
    sub = group.add_subparsers(dest="dimse_command", required=True)
    echo = _peer(sub.add_parser("echo", help="C-ECHO a peer"))
    echo.set_defaults(func=cmd_echo)
    find = _query(_peer(sub.add_parser("find", help="C-FIND; prints one DICOM JSON object per match")))
    find.set_defaults(func=cmd_find)
    move = _query(_peer(sub.add_parser("move", help="C-MOVE matches to an AE")))
    move.add_argument("--dest", required=True, help="move destination AE title (known to the peer)")
    move.set_defaults(func=cmd_move)
    get = _query(_peer(sub.add_parser("get", help="C-GET matches into a folder")))
    get.add_argument("--out", type=Path, required=True, help="folder for the received files")
    get.add_argument("--compressed", action="store_true",
                     help="also offer compressed transfer syntaxes (receive as the peer stores)")
    get.set_defaults(func=cmd_get)
    store = _peer(sub.add_parser("store", help="C-STORE a study from the archive to a peer"))
    store.add_argument("--study", required=True, help="StudyInstanceUID to send")
    store.add_argument("--series", help="only this SeriesInstanceUID")
    store.add_argument("--data", type=Path, default=Path("./yunying-data"), help="archive data folder")
    store.set_defaults(func=cmd_store)


def _peer(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--aet", default="YUNYING", help="our calling AE title (default YUNYING)")
    p.add_argument("--called", default="ANY-SCP", help="the peer's AE title (default ANY-SCP)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the peer")
    return p


def _query(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("-k", "--key", action="append", default=[], metavar="KEY[=VALUE]",
                   help="identifier key by keyword or gggg,eeee; no value = return key; repeatable")
    p.add_argument("-L", "--level", default="STUDY", choices=["PATIENT", "STUDY", "SERIES", "IMAGE"])
    p.add_argument("-P", "--patient-root", action="store_true", help="Patient Root model (default Study Root)")
    return p


def build_identifier(level: str, keys: list[str]) -> Dataset:
    """An identifier from `KEY=VALUE` strings (PS3.4 C.4.1.2.1)."""
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for item in keys:
        name, _, value = item.partition("=")
        name = name.strip()
        if "," in name:
            group, elem = name.split(",", 1)
            tag = (int(group, 16) << 16) | int(elem, 16)
        else:
            found = tag_for_keyword(name)
            if found is None:
                raise SystemExit(f"yunying dimse: unknown key {name!r}")
            tag = found
        vr = dictionary_VR(tag)
        ds.add_new(tag, vr, [] if vr == "SQ" else (value or None))
    return ds


def _peer_of(args: argparse.Namespace) -> scu.Peer:
    return scu.Peer(args.host, args.port, called=args.called, aet=args.aet, timeout=args.timeout)


def _root(args: argparse.Namespace) -> str:
    return "patient" if args.patient_root else "study"


def _report(what: str, result: scu.RetrieveResult) -> int:
    print(f"{what}: status 0x{result.status:04X} completed={result.completed} failed={result.failed} "
          f"warning={result.warning}" + (f" ({result.comment})" if result.comment else ""), file=sys.stderr)
    return 0 if result.ok else 1


def _run(fn: Callable[[], int]) -> int:
    try:
        return fn()
    except scu.DimseFailure as exc:
        print(f"yunying dimse: {exc}", file=sys.stderr)
        return 1


def cmd_echo(args: argparse.Namespace) -> int:
    def go() -> int:
        status = scu.echo(_peer_of(args))
        print(f"C-ECHO {args.called}@{args.host}:{args.port}: status 0x{status:04X}", file=sys.stderr)
        return 0 if status == 0 else 1
    return _run(go)


def cmd_find(args: argparse.Namespace) -> int:
    def go() -> int:
        n = 0
        for match in scu.find(_peer_of(args), build_identifier(args.level, args.key), _root(args)):
            print(json.dumps(match.to_json_dict(), ensure_ascii=False))
            n += 1
        print(f"C-FIND: {n} match(es)", file=sys.stderr)
        return 0
    return _run(go)


def cmd_move(args: argparse.Namespace) -> int:
    return _run(lambda: _report("C-MOVE", scu.move(_peer_of(args), build_identifier(args.level, args.key),
                                                    args.dest, _root(args))))


def cmd_get(args: argparse.Namespace) -> int:
    args.out.mkdir(parents=True, exist_ok=True)

    def save(raw: bytes) -> int:
        from io import BytesIO

        import pydicom

        sop = pydicom.dcmread(BytesIO(raw), stop_before_pixels=True).SOPInstanceUID
        if not all(c.isdigit() or c == "." for c in str(sop)):
            return 0xC000  # not a UID: never let it name a path
        (args.out / f"{sop}.dcm").write_bytes(raw)  # already Part 10: preamble, DICM, file meta
        return 0x0000

    return _run(lambda: _report("C-GET", scu.get(_peer_of(args), build_identifier(args.level, args.key),
                                                  save, _root(args), compressed=args.compressed)))


def cmd_store(args: argparse.Namespace) -> int:
    from yunying.archive import Archive
    from yunying.checking import existing_archive

    archive = Archive(existing_archive(Path(args.data)))  # never an empty archive from a typo
    try:
        return _run(lambda: _report("C-STORE", scu.store(_peer_of(args), archive, args.study, args.series)))
    finally:
        archive.close()
