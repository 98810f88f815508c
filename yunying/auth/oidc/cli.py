"""`yunying oauth ...`: register OAuth clients (browser apps, systems) and rotate signing keys."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from yunying.auth.principal import DEFAULT_HOSPITAL


def add_parser(sub: Any) -> None:
    oauth = sub.add_parser("oauth", help="OAuth 2.0 / OpenID Connect clients and signing keys")
    cmds = oauth.add_subparsers(dest="oauth_command", required=True)

    clients = cmds.add_parser("clients", help="register, list and remove OAuth clients").add_subparsers(
        dest="clients_command", required=True)
    add = clients.add_parser("add", help="register a client; a confidential one's secret is printed once")
    _common(add)
    add.add_argument("name")
    add.add_argument("--redirect-uri", action="append", default=[], help="exact redirect URI (repeatable)")
    kind = add.add_mutually_exclusive_group(required=True)
    kind.add_argument("--public", action="store_true", help="a browser app (no secret; PKCE S256 required)")
    kind.add_argument("--confidential", action="store_true", help="a server-side app or system (has a secret)")
    add.add_argument("--scope", default="openid profile dicomweb.read",
                     help='the most it may ask for (default "openid profile dicomweb.read")')
    add.add_argument("--grant-types", default="",
                     help="comma separated; default authorization_code,refresh_token "
                          "(client_credentials for a confidential client without redirect URIs)")
    add.add_argument("--hospital", default=DEFAULT_HOSPITAL, help="the hospital a system client acts for")
    add.add_argument("--client-id", help="choose the client_id (default: generated)")
    add.set_defaults(func=cmd_clients_add)
    ls = clients.add_parser("list", help="registered clients (never their secrets)")
    _common(ls)
    ls.set_defaults(func=cmd_clients_list)
    rm = clients.add_parser("remove", help="remove a client and revoke everything it was given")
    _common(rm)
    rm.add_argument("client_id")
    rm.set_defaults(func=cmd_clients_remove)

    keys = cmds.add_parser("keys", help="token signing keys").add_subparsers(dest="keys_command", required=True)
    rot = keys.add_parser("rotate", help="add a signing key (signs after the next start; old ones stay published)")
    _common(rot)
    rot.set_defaults(func=cmd_keys_rotate)
    prune = keys.add_parser("prune", help="remove all but the newest signing keys")
    _common(prune)
    prune.add_argument("--keep", type=int, default=1)
    prune.set_defaults(func=cmd_keys_prune)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="TOML config file (also YUNYING_CONFIG)")
    p.add_argument("--data", help="data folder (default ./yunying-data)")


def _store(args: argparse.Namespace) -> Any:
    from yunying.auth.oidc.store import OAuthStore
    from yunying.auth.store import open_store

    settings = _settings(args)
    return OAuthStore(open_store(settings.data, settings.app_database, settings.pii_key_file))


def _settings(args: argparse.Namespace) -> Any:
    from yunying.settings import load_settings

    return load_settings(args.config, {"data": args.data} if args.data else {})


def cmd_clients_add(args: argparse.Namespace) -> int:
    from yunying.auth.oidc.store import ClientError

    grants = [g.strip() for g in args.grant_types.split(",") if g.strip()] or (
        ["client_credentials"] if args.confidential and not args.redirect_uri
        else ["authorization_code", "refresh_token"])
    try:
        client_id, secret = _store(args).add_client(args.name, args.redirect_uri, args.scope, grants,
                                                    public=args.public, hospital=args.hospital,
                                                    client_id=args.client_id)
    except ClientError as exc:
        print(f"yunying: {exc}", file=sys.stderr)
        return 2
    print(f"client_id: {client_id}")
    if secret:
        print(f"client_secret: {secret}  (shown once; stored hashed)")
    _record(args, "oauth.client.add", {"client_id": client_id, "public": args.public, "scope": args.scope})
    return 0


def _record(args: argparse.Namespace, action: str, detail: dict[str, Any]) -> None:
    """Every change of clients and signing keys is in the audit trail (issue 12 part 1)."""
    from yunying.audit import record_cli

    record_cli(args, action, detail)


def cmd_clients_list(args: argparse.Namespace) -> int:
    for c in _store(args).list_clients():
        print(json.dumps({"client_id": c.client_id, "name": c.name, "public": c.public, "hospital": c.hospital,
                          "scope": c.scope, "grant_types": list(c.grant_types),
                          "redirect_uris": list(c.redirect_uris)}, ensure_ascii=False))
    return 0


def cmd_clients_remove(args: argparse.Namespace) -> int:
    if not _store(args).remove_client(args.client_id):
        print(f"yunying: no client {args.client_id}", file=sys.stderr)
        return 1
    _record(args, "oauth.client.remove", {"client_id": args.client_id})
    return 0


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    from yunying.auth.oidc.config import oidc_config
    from yunying.auth.oidc.keys import add_key

    key = add_key(oidc_config(_settings(args)).key_dir)
    print(f"new signing key: {key} (restart the server to sign with it)")
    _record(args, "oauth.keys.rotate", {"key": key.name})
    return 0


def cmd_keys_prune(args: argparse.Namespace) -> int:
    from yunying.auth.oidc.config import oidc_config
    from yunying.auth.oidc.keys import prune_keys

    removed = prune_keys(oidc_config(_settings(args)).key_dir, args.keep)
    for path in removed:
        print(f"removed {path}")
    _record(args, "oauth.keys.prune", {"removed": len(removed)})
    return 0
