"""`yunying audit verify|search|export|purge`: the audit admin's command line (issue 12)."""
from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

from yunying.settings import load_settings


def add_parser(sub: Any) -> None:
    security = sub.add_parser("security", help="the MLPS (等保) level-3 control statement")
    sverbs = security.add_subparsers(dest="security_command", required=True)
    st = sverbs.add_parser("statement", help="each GB/T 22239-2019 control and how these settings meet it")
    st.add_argument("--config", help="TOML config file (also YUNYING_CONFIG)")
    st.add_argument("--lang", choices=("zh-CN", "en"), default="zh-CN")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_statement)
    audit = sub.add_parser("audit", help="verify, search, export and purge the audit trail")
    verbs = audit.add_subparsers(dest="audit_command", required=True)
    for name, fn, text in (("verify", cmd_verify, "check that no record was altered, removed or reordered"),
                           ("search", cmd_search, "list records, newest first"),
                           ("export", cmd_export, "write records as CSV, XLSX or DICOM audit messages (XML)"),
                           ("purge", cmd_purge, "delete records older than audit_retention_days (recorded)")):
        p = verbs.add_parser(name, help=text)
        p.add_argument("--config", help="TOML config file (also YUNYING_CONFIG)")
        p.add_argument("--data", help="data folder (default ./yunying-data)")
        if name in ("search", "export"):
            for flag in ("since", "until"):
                p.add_argument(f"--{flag}", help="ISO date or time, UTC (2026-12-01, 2026-12-01T08:00)")
            for flag in ("user", "patient", "study", "action", "outcome"):
                p.add_argument(f"--{flag}")
            p.add_argument("--limit", type=int, default=100)
        if name == "export":
            p.add_argument("--format", choices=("csv", "xlsx", "dicom"), default="csv")
            p.add_argument("--output", "-o", required=True)
        p.set_defaults(func=fn)


def _open(args: argparse.Namespace) -> tuple[Any, bytes, Any]:
    import yunying.audit.schema  # noqa: F401 - registers the "audit" migration
    from yunying.audit.chain import load_key
    from yunying.auth.store import open_store

    overrides = {"data": args.data} if args.data else {}
    settings = load_settings(args.config, overrides)
    store = open_store(settings.data, settings.app_database, settings.pii_key_file)
    return store.engine, load_key(settings.data), settings


def _ms(text: str | None) -> int | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def filters(args: argparse.Namespace) -> dict[str, Any]:
    return {"since_ms": _ms(args.since), "until_ms": _ms(args.until), "principal": args.user,
            "patient": args.patient, "study": args.study, "action": args.action, "outcome": args.outcome}


def _cli_record(engine: Any, key: bytes, action: str, detail: dict[str, Any]) -> None:
    """Reading the trail is itself recorded (issue 12 part 3), also from the command line."""
    from yunying.audit import write_now
    write_now(engine, key, action, detail)


def cmd_verify(args: argparse.Namespace) -> int:
    from yunying.audit.store import verify

    engine, key, _ = _open(args)
    n, problems = verify(engine, key)
    for p in problems:
        print(f"audit verify: {p}")
    print(f"audit verify: {n} record(s) checked, {len(problems)} problem(s)"
          + ("" if problems else ": the chain is intact"))
    _cli_record(engine, key, "audit.verify", {"checked": n, "problems": len(problems)})
    return 1 if problems else 0


def cmd_search(args: argparse.Namespace) -> int:
    from yunying.audit.store import search

    engine, key, _ = _open(args)
    rows = search(engine, limit=args.limit, **filters(args))
    for r in rows:
        when = datetime.fromtimestamp(r["at_ms"] / 1000, UTC).isoformat(timespec="milliseconds")
        print(f"{r['seq']:>8} {when} {r['principal_kind']}:{r['principal_id']} {r['client']} {r['action']} "
              f"{r['status']} {r['outcome']} patient={r['patient_id']} studies={r['studies']} count={r['count']}")
    _cli_record(engine, key, "audit.read", {"filters": {k: v for k, v in filters(args).items() if v},
                                           "returned": len(rows)})
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from yunying.audit import export
    from yunying.audit.store import iter_all

    engine, key, _ = _open(args)
    rows = list(iter_all(engine, **filters(args)))
    with open(args.output, "wb") as out:
        out.write(export.render(args.format, rows))
    print(f"audit export: {len(rows)} record(s) to {args.output}", file=sys.stderr)
    _cli_record(engine, key, "audit.export", {"format": args.format, "records": len(rows)})
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    from yunying.audit.store import purge
    from yunying.audit.trail import Trail

    engine, key, settings = _open(args)
    trail = Trail(engine, key)
    try:
        n = purge(trail, settings.audit_retention_days)
    finally:
        trail.close()
    print(f"audit purge: {n} record(s) older than {settings.audit_retention_days} days removed (anchored, recorded)")
    return 0


def cmd_statement(args: argparse.Namespace) -> int:
    import json

    from yunying.security_statement import as_json, as_markdown

    settings = load_settings(args.config, {})
    if args.json:
        print(json.dumps(as_json(settings), ensure_ascii=False, indent=1))
    else:
        print(as_markdown(settings, args.lang), end="")
    return 0
