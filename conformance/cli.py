"""The `conformance` command group: `check` (the runner) and `statement` (the document)."""

from __future__ import annotations

import argparse
import os
import sys

from conformance.runner import DEFAULT_CALLING_AET


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `conformance check` and `conformance statement` under a parent CLI."""
    parser = subparsers.add_parser("conformance", help="check an archive / write the statement")
    sub = parser.add_subparsers(dest="conformance_command", required=True)

    chk = sub.add_parser("check", help="run the conformance checks against any archive")
    chk.add_argument("--dicomweb", metavar="URL", help="DICOMweb root, e.g. http://h:8080/dicomweb")
    chk.add_argument("--dimse", metavar="HOST:PORT:AET", help="DIMSE service of the archive")
    chk.add_argument("--calling-aet", default=DEFAULT_CALLING_AET,
                     help=f"our AE title (default {DEFAULT_CALLING_AET})")
    chk.add_argument("--move-port", type=int, metavar="PORT",
                     help="port of our C-MOVE destination; the archive must know "
                          "CALLING-AET at 127.0.0.1:PORT (C-MOVE checks skip without it)")
    chk.add_argument("--only", metavar="ID[,ID]", help="run only checks whose id contains one")
    chk.add_argument("--timeout", type=float, default=30.0, help="per-request timeout, seconds")
    chk.add_argument("--api-key", default=os.environ.get("YUNYING_API_KEY"),
                     help="bearer token sent with every request (default: $YUNYING_API_KEY)")
    chk.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    chk.set_defaults(func=run_check)

    ohif = sub.add_parser("ohif", help="serve the OHIF Viewer (npm @ohif/app) over an archive")
    ohif.add_argument("--dicomweb", required=True, metavar="URL", help="DICOMweb root to view")
    ohif.add_argument("--port", type=int, default=0, help="local port (default: a free one)")
    ohif.add_argument("--api-key", default=os.environ.get("YUNYING_API_KEY"),
                      help="bearer token the proxy adds to requests without one (default: $YUNYING_API_KEY)")
    ohif.set_defaults(func=run_ohif)

    stm = sub.add_parser("statement", help="write the conformance statement (Markdown + HTML)")
    stm.add_argument("--out", required=True, metavar="DIR")
    stm.add_argument("--config", metavar="FILE", help="describe the server as this config file sets it up")
    stm.set_defaults(func=run_statement)
    return parser


def run_check(args: argparse.Namespace) -> int:
    from conformance.runner import check_archive, parse_dimse

    if not args.dicomweb and not args.dimse:
        print("conformance check: give --dicomweb URL and/or --dimse HOST:PORT:AET",
              file=sys.stderr)
        return 2
    dimse = parse_dimse(args.dimse, args.calling_aet, args.move_port) if args.dimse else None
    results = check_archive(args.dicomweb, dimse, sys.stdout, args.only, args.timeout, args.api_key)
    if args.json:
        from conformance.runner import results_json

        with open(args.json, "w", encoding="utf-8") as f:
            f.write(results_json(results))
    return 1 if any(r.status == "FAIL" for r in results) else 0


def run_ohif(args: argparse.Namespace) -> int:
    import threading

    from conformance.ohif import fetch_ohif, serve_ohif

    server = serve_ohif(fetch_ohif(), args.dicomweb, port=args.port, api_key=args.api_key)
    print(f"OHIF Viewer at {server.url}/ (DICOMweb proxied from {args.dicomweb}); Ctrl-C stops")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def run_statement(args: argparse.Namespace) -> int:
    from conformance.statement import write_statement

    for path in write_statement(args.out, args.config):
        print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["conformance", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))
