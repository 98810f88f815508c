"""`yunying routing ...`: rules, the queue and the pause switch from the command line (issue 15
part 7), on the app-state store the API uses. It works while the server runs (SQLite in WAL
mode, or PostgreSQL): the server's sender reads rules and the switch again on every pass, so a
change applies within a few seconds. Output names AE titles, URLs and UIDs, never patient data.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from sqlalchemy import Engine, select

from yunying.errors import ArchiveError
from yunying.settings import load_settings


class StoreRouting:
    """The routing tables without a running router (manage.Routing)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def reload(self) -> None:  # the server reloads by itself
        pass

    def wake(self) -> None:
        pass

    def counts(self) -> dict[int, dict[str, int]]:
        from yunying.routing.router import queue_counts

        return queue_counts(self.engine)


def add_parser(sub: Any) -> None:
    top = sub.add_parser("routing", help="routing rules, the forwarding queue, pause/resume")
    verbs = top.add_subparsers(dest="routing_command", required=True)
    ls = verbs.add_parser("rules", help="list the rules with their queue counts")
    add = verbs.add_parser("add", help="add a rule")
    add.add_argument("name")
    add.add_argument("--aet", help="C-STORE destination AE title (with --host and --port)")
    add.add_argument("--host")
    add.add_argument("--port", type=int)
    add.add_argument("--timeout", type=int, help="seconds per C-STORE exchange (default 30)")
    add.add_argument("--url", help="STOW-RS destination: the DICOMweb root")
    add.add_argument("--token-env", default="", help="environment variable holding its bearer token")
    for flag in ("source-ae", "modality", "hospital", "body-part"):
        add.add_argument(f"--{flag}", action="append", default=[], help="match criterion (repeatable)")
    add.add_argument("--hours", default="", help='receipt time window, e.g. "22:00-06:00"')
    add.add_argument("--syntax", default="lossless", help='"lossless" or a lossy transfer syntax UID')
    add.add_argument("--disabled", action="store_true", help="create it paused")
    switches = [verbs.add_parser(v, help=f"{v} a rule (id or name)") for v in ("enable", "disable", "delete")]
    for p in switches:
        p.add_argument("rule")
    q = verbs.add_parser("queue", help="show queue items, newest first")
    q.add_argument("--state", default="", help="pending, done, failed or dropped")
    q.add_argument("--rule", help="id or name")
    q.add_argument("--limit", type=int, default=50)
    items = [verbs.add_parser(v, help=f"{v} queue items by id") for v in ("retry", "drop")]
    for p in items:
        p.add_argument("items", nargs="+", type=int)
    pause = verbs.add_parser("pause", help="stop all sending (instances still queue)")
    resume = verbs.add_parser("resume", help="send again")
    for p in (ls, add, *switches, q, *items, pause, resume):
        p.add_argument("--config", help="TOML config file (also YUNYING_CONFIG)")
        p.add_argument("--data", help="data folder (default ./yunying-data)")
        p.add_argument("--json", action="store_true", help="print JSON")
        p.set_defaults(func=cmd_routing)


def _open(args: argparse.Namespace) -> StoreRouting:
    import yunying.routing.schema  # noqa: F401 - registers the "routing" migrations
    from yunying.auth.store import open_store

    settings = load_settings(args.config, {"data": args.data} if args.data else {})
    return StoreRouting(open_store(settings.data, settings.app_database, settings.pii_key_file).engine)


def _rule_id(routing: StoreRouting, ref: str) -> int:
    from yunying.auth.errors import NotFound
    from yunying.routing.schema import rules

    with routing.engine.connect() as conn:
        found = conn.execute(select(rules.c.id).where(rules.c.name == ref)).scalar()
    if found is not None:
        return int(found)
    if ref.isascii() and ref.isdigit() and len(ref) <= 9:
        return int(ref)
    raise NotFound(f"rule {ref[:64]!r}: unknown")


def _new_rule(args: argparse.Namespace) -> dict[str, Any]:
    if args.url:
        dest: dict[str, Any] = {"kind": "dicomweb", "url": args.url, "token_env": args.token_env}
    else:
        dest = {"kind": "dicom", "aet": args.aet, "host": args.host, "port": args.port}
        if args.timeout is not None:
            dest["timeout"] = args.timeout
    match = {"source_aes": args.source_ae, "modalities": args.modality, "hospitals": args.hospital,
             "body_parts": args.body_part, "hours": args.hours}
    return {"name": args.name, "enabled": not args.disabled, "match": match, "destination": dest,
            "syntax": args.syntax}


def _run(args: argparse.Namespace, routing: StoreRouting) -> Any:
    from yunying.routing import manage

    verb = args.routing_command
    if verb == "rules":
        return manage.list_rules(routing)
    if verb == "add":
        return manage.create_rule(routing, _new_rule(args))
    if verb in ("enable", "disable"):
        return manage.update_rule(routing, _rule_id(routing, args.rule), {"enabled": verb == "enable"})
    if verb == "delete":
        rid = _rule_id(routing, args.rule)
        manage.delete_rule(routing, rid)
        return {"deleted": rid}
    if verb == "queue":
        rule = _rule_id(routing, args.rule) if args.rule else None
        return manage.queue_items(routing, args.state, rule, max(1, min(args.limit, 1000)))
    if verb == "retry":
        return {"retried": manage.retry_items(routing, args.items)}
    if verb == "drop":
        return {"dropped": manage.drop_items(routing, args.items)}
    return manage.set_paused(routing, verb == "pause")


def _text(verb: str, out: Any) -> str:
    if verb == "rules":
        lines = [f"{'id':>4}  {'name':<20} {'on':<3} {'destination':<40} pending done failed dropped"]
        for r in out:
            d = r["destination"]
            dest = f"{d['aet']}@{d['host']}:{d['port']}" if d["kind"] == "dicom" else d["url"]
            c = r["counts"]
            lines.append(f"{r['id']:>4}  {r['name']:<20} {'yes' if r['enabled'] else 'no':<3} {dest[:40]:<40} "
                         f"{c.get('pending', 0):>7} {c.get('done', 0):>4} {c.get('failed', 0):>6} {c.get('dropped', 0):>7}")
        return "\n".join(lines)
    if verb == "queue":
        lines = [f"{'id':>6} {'rule':>4} {'state':<8} {'tries':>5}  sop / last error"]
        lines += [f"{r['id']:>6} {r['rule_id']:>4} {r['state']:<8} {r['attempts']:>5}  {r['sop']}"
                  + (f"  ({r['last_error']})" if r["last_error"] else "") for r in out]
        return "\n".join(lines)
    if verb in ("add", "enable", "disable"):
        return f"rule {out['id']} {out['name']}: {'enabled' if out['enabled'] else 'disabled'}"
    return ", ".join(f"{k} {str(v).lower() if isinstance(v, bool) else v}" for k, v in out.items())


def cmd_routing(args: argparse.Namespace) -> int:
    try:
        out = _run(args, _open(args))
    except ArchiveError as exc:  # the API's refusals, with its status as the exit code's reason
        print(f"yunying: {exc}", file=sys.stderr)
        return 2 if exc.http_status == 400 else 1
    print(json.dumps(out, ensure_ascii=False, indent=1) if args.json else _text(args.routing_command, out))
    return 0
