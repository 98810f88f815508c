"""Personal data at rest on the command line and at start (issue 12 part 6).

`yunying serve` seals what older versions stored in clear and moves the portal's legacy key out
of the data folder (`seal_at_start`); `yunying pii rotate` appends a sealing key to the key file
and re-seals every registered sealed column under it. Counts only are printed and logged.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from yunying import pii
from yunying.settings import SettingError, Settings

log = logging.getLogger("yunying.pii")


def _register_sealed_columns() -> None:
    """Import every module that declares a sealed column (`pii.sealed_column`)."""
    import yunying.auth.directory
    import yunying.auth.registrations
    import yunying.portal.schema  # noqa: F401

    try:  # the patient index seals with contexts of its own ("mpi.id", "mpi.phone")
        from yunying.mpi.schema import identities
    except ImportError:
        return
    pii.sealed_column(identities, "id_sealed", "mpi.id")
    pii.sealed_column(identities, "phone_sealed", "mpi.phone")


def seal_at_start(settings: Settings, store: Any) -> dict[str, int]:
    """The data migration that SQL migrations cannot do (they have no key): clear values of older
    versions sealed, the portal key moved into the key file. Safe to run at every start."""
    from yunying.portal.keyed import portal_secret
    from yunying.portal.sms import startup_warning

    _register_sealed_columns()
    try:
        portal_secret(Path(settings.data), settings.pii_key_file)
        changed = pii.reseal_all(store.engine, pii.keys_for(settings.data, settings.pii_key_file))
    except pii.PiiKeyError as exc:  # a missing or wrong key file: one sentence, no traceback
        raise SettingError(f"pii_key_file: {exc}") from None
    if any(changed.values()):
        log.warning("personal data sealed at start (values left in clear by an older version): %s", changed)
    warning = startup_warning(Path(settings.data))
    if warning:
        log.warning(warning)
    return changed


def run(args: argparse.Namespace) -> int:
    from yunying.auth.store import open_store
    from yunying.settings import load_settings

    settings = load_settings(args.config, {"data": args.data} if args.data else {})
    key_file = pii.key_file_of(settings.data, settings.pii_key_file)
    if key_file is None:
        print("yunying: the keys come from YUNYING_PII_KEYS: append a 'seal k<n> <base64 of 16 random bytes>' "
              "line there, restart, then run `yunying pii reseal`", file=sys.stderr)
        return 2
    pii.keys_for(settings.data, settings.pii_key_file)  # made on first use, like the server does
    _register_sealed_columns()
    store = open_store(settings.data, settings.app_database, settings.pii_key_file)
    if args.pii_op == "rotate":
        kid = pii.rotate(key_file)
        print(f"yunying: sealing key {kid} added to {key_file}")
    changed = pii.reseal_all(store.engine, pii.keys_for(settings.data, settings.pii_key_file))
    print("yunying: re-sealed " + ", ".join(f"{n} {c}" for c, n in changed.items()))
    from yunying.audit import record_cli

    # a key change is a security officer's act: in the trail (issue 12)
    record_cli(args, "pii.rotate" if args.pii_op == "rotate" else "pii.reseal",
               {"resealed": sum(changed.values()), **({"key": kid} if args.pii_op == "rotate" else {})})
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("pii", help="personal data at rest: rotate the sealing key, re-seal")
    p.add_argument("pii_op", choices=["rotate", "reseal"],
                   help="rotate: append a new sealing key and re-seal everything under it; "
                        "reseal: re-seal what an older key sealed (after adding a key by hand)")
    p.add_argument("--config", help="TOML config file (also YUNYING_CONFIG)")
    p.add_argument("--data", type=Path, help="data folder (default ./yunying-data)")
    p.set_defaults(func=run)
