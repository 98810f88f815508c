"""The `yunying` command: serve, import, check (and the DIMSE and conformance tool groups)."""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import ssl
import sys
from pathlib import Path
from typing import Any

from yunying.settings import SettingError, Settings, load_peers, load_settings

log = logging.getLogger("yunying")


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {k: getattr(args, k, None) for k in ("data", "host", "http_port", "dimse_port", "aet",
                                                     "tls_cert", "tls_key")}
    if getattr(args, "peers", None):
        overrides["peers"] = load_peers(args.peers)
    if getattr(args, "cors_origins", None):
        overrides["cors_origins"] = args.cors_origins
    if getattr(args, "accept_all_aets", False):
        overrides["dimse_accept_all"] = True
    return load_settings(getattr(args, "config", None), overrides)


def quiet_pydicom() -> None:
    """pydicom's validation warnings quote element values, i.e. patient data: keep them out of logs.

    The archive keeps every value as received (design rule 1), so validating on read only
    produces noise; set once here, at the composition root, never per call.
    """
    import warnings

    import pydicom.config

    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    # nor on writing: a data set we write (a DIMSE command, a C-FIND identifier) carries
    # values as received or as our own code made them; checking each one on assignment cost
    # ~10 % of the CPU of a C-STORE in pynetdicom's command encoding
    pydicom.config.settings.writing_validation_mode = pydicom.config.IGNORE
    logging.getLogger("pydicom").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"pydicom(\..*)?")


def _note_shared_volume(archive: Any) -> None:
    """Say so when group durability syncs a file system the data folder shares with `/`."""
    if not archive.storage.group_sync:
        return
    try:
        shared = os.stat(archive.storage.root).st_dev == os.stat("/").st_dev
    except OSError:
        return
    if shared:
        logging.getLogger("yunying").info(
            "durability=group: every acknowledged store waits for a syncfs of the file system "
            "holding %s, which is also the root file system, so it also flushes other programs' "
            "pending writes there; a volume of its own keeps ingest steady", archive.storage.root)


def _warm_forkserver(settings: Settings) -> None:
    """Start the ingest workers' forkserver now: a fork of this process once it has imported the
    ingest modules (yunying.zygote: it shares their pages with the server). If this process
    already runs threads, multiprocessing's own forkserver, started in the background: it
    imports the ingest modules (~2 s on a busy machine) while this process imports the rest."""
    if settings.ingest_workers() <= 0:
        return
    from yunying import zygote

    if zygote.start() is not None:
        return
    import multiprocessing
    import threading
    from multiprocessing import forkserver

    multiprocessing.get_context("forkserver").set_forkserver_preload(["yunying.workers"])
    threading.Thread(target=forkserver.ensure_running, name="yunying-forkserver-start", daemon=True).start()


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the archive: DICOMweb over HTTP and DIMSE, one process."""
    from yunying import heap

    heap.limit_arenas()  # before the first thread (the forkserver's starter is one)
    settings = _settings(args)
    _warm_forkserver(settings)
    import uvicorn

    import yunying.auth
    from dicomweb.app import build_app
    from frontends.static import mount_frontends
    from yunying.archive import Archive

    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_pydicom()
    auth = yunying.auth.start(settings)  # secure from the first start: no anonymous access
    if auth.first_password is not None:  # printed once, to the terminal only (never logged)
        print(f"yunying: first start: super admin 'admin', one-time password {auth.first_password} "
              "(sign in at /admin/: it must be changed, and a second factor set up, at the first login)",
              file=sys.stderr, flush=True)
    from yunying.pii_cli import seal_at_start
    seal_at_start(settings, auth.store)  # older versions' clear personal data sealed (issue 12 part 6)
    archive = Archive(settings.data, durability=settings.durability,
                      ingest_processes=settings.ingest_workers(), inline_bytes=settings.ingest_inline_bytes,
                      dimse_inline_bytes=settings.dimse_inline(), issuer_hospitals=settings.issuer_hospitals)
    _note_shared_volume(archive)
    heap.on_idle(archive.index.release_memory)  # DuckDB's uncheckpointed rows leave memory when idle
    if settings.audit:  # before any face starts: every access is recorded (issue 12)
        import yunying.audit
        from yunying.audit.patients import study_patients
        yunying.audit.start(settings.data, auth.store.engine, study_patients(archive),
                            syslog=settings.audit_syslog, syslog_ca=settings.audit_syslog_ca)
    dimse = notifier = records = None
    app: Any = None
    try:
        from yunying.portal.notify import start_notifier
        notifier = start_notifier(settings, auth.store, archive)  # report notifications (issue 14 part 8)
        try:
            server_mod = importlib.import_module("dimse.server")
        except ImportError:
            server_mod = None
        if server_mod is not None and settings.dimse_port:
            dimse = server_mod.start_dimse(archive, settings)
        app = build_app(archive, settings, _statement(settings), auth)
        from yunying.collect.cli import (
            start as start_collect,  # Q/R collectors and lifecycle (issue 15)
        )
        app.state.collect, app.state.lifecycle = start_collect(settings, archive, auth.store.engine)
        mount_frontends(app)  # /viewer/, /common/, /i18n/ ...: static pages (open routes) served by the archive
        if settings.records_sources or settings.hl7_port:  # hospital records: collectors, HL7, matching
            from yunying.records.service import Records
            records = app.state.records = Records(settings, auth.store, archive)
            records.start()
        if dimse is not None and dimse.persons is not None:  # C-FIND by person (issue 15): the app's master index
            dimse.persons.index = app.state.mpi
        if server_mod is not None:  # routing's C-STORE sender (issue 15 part 7; dicomweb imports no DIMSE)
            app.state.routing.senders["dicom"] = importlib.import_module("dimse.forward").sender(settings.aet)
        from yunying.coalesce import CoalescingHttpTools
        config = uvicorn.Config(app, host=settings.host, port=settings.http_port, log_level=settings.log_level,
                                http=CoalescingHttpTools,  # an answer's head and body in one send(2)
                                server_header=False,  # no "server: uvicorn": names no software to a scanner
                                access_log=False, timeout_graceful_shutdown=30,
                                ssl_certfile=settings.tls_cert or None, ssl_keyfile=settings.tls_key or None)
        if settings.tls_cert:  # HTTPS: TLS 1.2 or newer only (issue 12 part 7)
            from yunying.tls import server_context
            server_context(settings.tls_cert, settings.tls_key)  # a bad file is a clear setting error
            config.load()
            assert config.ssl is not None
            config.ssl.minimum_version = ssl.TLSVersion.TLSv1_2
        where = f"DIMSE {settings.aet} on {settings.host}:{settings.dimse_port}" if dimse is not None \
            else "DIMSE disabled"
        if dimse is not None and settings.dimse_tls_port:
            where += f", DICOM TLS on port {settings.dimse_tls_port}"
        print(f"yunying: DICOMweb on {'https' if settings.tls_cert else 'http'}://{settings.host}:{settings.http_port}/dicomweb, {where}, "
              f"data in {settings.data}", file=sys.stderr, flush=True)
        # uvicorn re-raises SIGTERM/SIGINT once it has drained; a no-op handler lets `finally` run
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: None)
        heap.start_idle_trim()  # memory freed by a burst of work goes back to the system once idle
        uvicorn.Server(config).run()  # on a signal: stop accepting, finish in-flight requests
    finally:
        if notifier is not None:
            notifier.stop()
        if app is not None and app.state.collect is not None:
            app.state.collect.stop()  # before the archive closes: a run ends after its current study
        if app is not None and app.state.lifecycle is not None:
            app.state.lifecycle.stop()
        if records is not None:
            records.stop()
        if dimse is not None:
            dimse.stop()
        if app is not None:  # issue 15: routing and master index threads stop before the archive closes
            from dicomweb import mpi_api, routing_api
            routing_api.stop(app)
            mpi_api.stop(app)
        if settings.audit:
            yunying.audit.stop()  # writes the open frame windows and what is queued
        archive.close()  # drains the index writer: everything acknowledged is committed
        print("yunying: stopped cleanly", file=sys.stderr, flush=True)
    return 0


def _statement(settings: Settings) -> dict[str, str] | None:
    """The conformance statement of this configuration (PS3.2), served at /dicomweb/conformance."""
    try:
        from conformance.statement import render
    except ImportError:
        return None
    try:
        return render(settings)
    except Exception:  # a statement must never keep the archive from starting
        log.exception("could not generate the conformance statement")
        return None


def cmd_import(args: argparse.Namespace) -> int:
    """Bulk-load files and folders through the archive's one ingest path."""
    from yunying.importer import run_import

    quiet_pydicom()
    return run_import(args)


def cmd_check(args: argparse.Namespace) -> int:
    """Compare the index with the stored bytes; --repair removes orphans and dangling rows."""
    from yunying.archive import Archive
    from yunying.checking import check_read_only, existing_archive

    settings = _settings(args)
    if not args.repair:  # looks only: no marker, no recovery, nothing written
        report = check_read_only(settings.data)
        for note in report["notes"]:
            print(f"note: {note}")
    else:
        archive = Archive(existing_archive(settings.data, need_index=False),
                              issuer_hospitals=settings.issuer_hospitals)
        try:
            report = archive.check(repair=True)
        finally:
            archive.close()
    for sop in report["missing"]:
        print(f"missing bytes: instance {sop}")
    for key in report["orphans"]:
        print(f"not indexed: {key}")
    n = len(report["missing"]) + len(report["orphans"])
    print(f"check: {len(report['missing'])} indexed instance(s) without bytes, "
          f"{len(report['orphans'])} stored version(s) not indexed; {n} problem(s)")
    if args.repair:
        print(f"repair: {len(report['reindexed'])} version(s) indexed again from their records, "
              f"{len(report['removed'])} incomplete or superseded version(s) removed, "
              f"{len(report['missing'])} index row(s) without bytes dropped")
    return 0 if n == 0 or args.repair else 1


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="TOML config file (also YUNYING_CONFIG)")
    p.add_argument("--data", type=Path, help="data folder (default ./yunying-data)")


CORE_COMMANDS = ("serve", "import", "check")
TOOL_GROUPS = ("yunying.auth.cli", "dimse.cli", "conformance.cli", "yunying.auth.oidc.cli", "yunying.audit.cli",
               "yunying.pii_cli", "yunying.collect.cli", "yunying.records.cli", "yunying.mpi.cli", "yunying.routing.cli")


def build_parser(tool_groups: bool = True) -> argparse.ArgumentParser:
    """The command line; `tool_groups=False` leaves out the tool groups' commands (their
    modules import much of the archive: ~1 s of a server's start-up)."""
    parser = argparse.ArgumentParser(prog="yunying", description="Yunying imaging archive")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the archive (DICOMweb + DIMSE)")
    _common(serve)
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--http-port", type=int, help="DICOMweb port (default 8080)")
    serve.add_argument("--dimse-port", type=int, help="DIMSE port (default 11112; 0 disables)")
    serve.add_argument("--aet", help="our AE title (default YUNYING)")
    serve.add_argument("--peers", help='JSON file {"AET": ["host", port]} or {"AET": {"host": ..., "port": ..., '
                       '"hospital": ..., "see": [...]}} (README: DIMSE peers and hospitals)')
    serve.add_argument("--cors-origins", nargs="*", help="origins allowed by CORS")
    serve.add_argument("--tls-cert", help="PEM certificate: serve HTTPS (TLS 1.2+, HSTS) and DICOM TLS")
    serve.add_argument("--tls-key", help="PEM private key of --tls-cert")
    serve.add_argument("--accept-all-aets", action="store_true", help="any calling AE may store/query/retrieve")
    serve.set_defaults(func=cmd_serve)
    imp = sub.add_parser("import", help="bulk-load DICOM files and folders")
    _common(imp)
    imp.add_argument("paths", nargs="+", type=Path)
    imp.add_argument("--stow", metavar="URL", help="send to a running server's DICOMweb root instead")
    imp.add_argument("--hospital", help="the hospital that owns what is imported (default: \"default\"); "
                     "with --stow the API key's hospital does")
    imp.add_argument("--department", help="the department within --hospital, when known")
    imp.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 2))
    imp.set_defaults(func=cmd_import)
    check = sub.add_parser("check", help="verify the index against the stored bytes")
    _common(check)
    check.add_argument("--repair", action="store_true",
                       help="index complete versions again, remove incomplete ones and rows without bytes")
    check.set_defaults(func=cmd_check)
    for name in TOOL_GROUPS if tool_groups else ():
        try:
            importlib.import_module(name).add_parser(sub)
        except ImportError:
            pass
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(tool_groups=not argv or argv[0] not in CORE_COMMANDS).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SettingError as exc:
        print(f"yunying: bad setting: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from yunying.checking import InUse, NoArchive  # imported here: it imports the index

        if not isinstance(exc, (NoArchive, InUse)):
            raise
        print(f"yunying: {exc}", file=sys.stderr)  # one clear sentence, not a DuckDB traceback
        return 2


if __name__ == "__main__":
    sys.exit(main())
