"""`yunying users ...`: manage users, roles, hospitals, departments and API keys on the command line.

Works on the data folder's app-state store directly (the server may be running: a change that
revokes access reaches it on its next request). Secrets are printed once, never logged.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from yunying.auth import directory, keys, launch
from yunying.auth.principal import DEFAULT_HOSPITAL
from yunying.auth.store import open_store
from yunying.errors import ArchiveError


def _store(args: argparse.Namespace) -> Any:
    from yunying.settings import load_settings

    overrides = {"data": args.data} if args.data else {}
    settings = load_settings(args.config, overrides)
    store = open_store(settings.data, settings.app_database, settings.pii_key_file)
    directory.ensure_defaults(store)
    return store


def _roles(values: list[str]) -> list[tuple[str, str | None]]:
    out = []
    for v in values or []:
        name, _, level = v.partition(":")
        out.append((name, level or None))
    return out


def _show(rows: list[dict[str, Any]], as_json: bool, columns: list[str]) -> None:
    if as_json:
        print(json.dumps(rows, ensure_ascii=False, indent=1, default=str))
        return
    for r in rows:
        print("  ".join(str(r.get(c, "")) if not isinstance(r.get(c), list) else
                        ",".join(x["role"] if isinstance(x, dict) else str(x) for x in r[c]) for c in columns))


def run(args: argparse.Namespace) -> int:
    store = _store(args)
    a, op = args, args.users_op
    try:
        if op == "add":
            pw = directory.add_user(store, a.username, a.hospital, None, display_name=a.display_name or "",
                                    roles=_roles(a.role))
            print(f"user {a.username} created in {a.hospital}"
                  + (f"; one-time password: {pw} (must be changed at first login)" if pw else ""))
        elif op == "list":
            _show(directory.list_users(store, a.hospital, a.q or ""), a.json,
                  ["username", "hospital_id", "disabled", "roles"])
        elif op in ("disable", "enable"):
            directory.update_user(store, a.username, disabled=op == "disable")
            print(f"user {a.username} {op}d")
        elif op == "delete":
            directory.delete_user(store, a.username)
            print(f"user {a.username} deleted")
        elif op == "reset-password":
            print(f"one-time password for {a.username}: {directory.reset_password(store, a.username)}")
        elif op == "roles":
            _show(directory.list_roles(store, a.q or ""), a.json, ["name", "permissions", "description"])
        elif op == "grant":
            directory.assign_role(store, a.username, a.hospital, a.role, a.level)
            print(f"{a.username}: role {a.role} in {a.hospital}")
        elif op == "ungrant":
            directory.remove_role(store, a.username, a.hospital, a.role)
            print(f"{a.username}: role {a.role} removed in {a.hospital}")
        elif op == "hospitals":
            if a.add:
                directory.add_hospital(store, a.add, a.name or a.add)
            _show(directory.list_hospitals(store), a.json, ["id", "name"])
        elif op == "departments":
            if a.add:
                directory.add_department(store, a.hospital, a.add)
            _show(directory.list_departments(store, a.hospital), a.json, ["id", "hospital_id", "name"])
        elif op == "api-keys":
            if a.add:
                key_id, secret = keys.create_key(store, a.add, a.scope or ["dicomweb.read"], a.hospital)
                print(f"API key {key_id} ({a.add}): {secret}  (shown once: store it now)")
            elif a.revoke:
                keys.revoke_key(store, a.revoke)
                print(f"API key {a.revoke} revoked")
            else:
                _show(keys.list_keys(store), a.json, ["id", "name", "hospital_id", "scopes", "source", "revoked_at"])
        elif op == "launch-secret":
            print(f"launch secret of {a.hospital}: {launch.rotate_secret(store, a.hospital)}  (shown once)")
    except ArchiveError as exc:
        print(f"yunying users {op}: {exc.reason}", file=sys.stderr)
        return 1
    from yunying.audit import (
        record_cli,  # every user, role and key change is in the trail (issue 12)
    )
    record_cli(a, f"users.{op}", {k: str(v) for k in ("username", "role", "hospital", "add", "revoke") if (v := getattr(a, k, None))})
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register `yunying users ...`."""
    users = sub.add_parser("users", help="users, roles, hospitals, departments, API keys")
    ops = users.add_subparsers(dest="users_op", required=True)

    def op(name: str, text: str) -> argparse.ArgumentParser:
        p = ops.add_parser(name, help=text)
        p.add_argument("--config", help="TOML config file (also YUNYING_CONFIG)")
        p.add_argument("--data", type=Path, help="data folder (default ./yunying-data)")
        p.add_argument("--json", action="store_true", help="JSON output")
        p.set_defaults(func=run)
        return p

    p = op("add", "create a user (a one-time password is printed)")
    p.add_argument("username")
    p.add_argument("--hospital", default=DEFAULT_HOSPITAL)
    p.add_argument("--display-name")
    p.add_argument("--role", action="append", metavar="ROLE[:LEVEL]", help="e.g. doctor, radiologist:reporting")
    p = op("list", "list users")
    p.add_argument("--hospital")
    p.add_argument("--q", help="part of the username or name")
    for name in ("disable", "enable", "delete", "reset-password"):
        op(name, f"{name} a user").add_argument("username")
    op("roles", "list roles (search by name)").add_argument("--q", help="part of the name or description")
    for name, text in (("grant", "give a user a role in a hospital"), ("ungrant", "take a role away")):
        p = op(name, text)
        p.add_argument("username")
        p.add_argument("role")
        p.add_argument("--hospital", default=DEFAULT_HOSPITAL)
        p.add_argument("--level", choices=["junior", "reporting", "reviewing"], help="radiologist reporting level")
    p = op("hospitals", "list hospitals, or --add one")
    p.add_argument("--add", metavar="ID")
    p.add_argument("--name")
    p = op("departments", "list a hospital's departments, or --add one")
    p.add_argument("--hospital", default=DEFAULT_HOSPITAL)
    p.add_argument("--add", metavar="NAME")
    p = op("api-keys", "list API keys, --add NAME --scope S..., or --revoke ID")
    p.add_argument("--add", metavar="NAME")
    p.add_argument("--scope", action="append", help="dicomweb.read, dicomweb.write, dicomweb.delete, admin")
    p.add_argument("--hospital", default=DEFAULT_HOSPITAL)
    p.add_argument("--revoke", metavar="ID")
    op("launch-secret", "set (rotate) a hospital's launch-link secret").add_argument("hospital")
