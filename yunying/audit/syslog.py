"""Forward the trail to a hospital's log collector: RFC 5424 messages over TLS (RFC 5425,
octet-counted frames), each carrying the record as a DICOM audit message (PS3.15 A.5, as IHE
ATNA does).

The queue is the trail itself: a cursor row (`audit_forward`) holds the last record the
collector acknowledged at the TCP/TLS level; a collector outage only delays forwarding, a
restart resumes at the cursor, so nothing is lost and serving never waits for the collector.
"""
from __future__ import annotations

import logging
import socket
import ssl
import threading
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import BigInteger, Column, Integer, MetaData, Table, insert, select, update
from sqlalchemy.engine import Connection, Engine

from yunying.audit.export import audit_message
from yunying.audit.schema import records
from yunying.auth.store import migration

log = logging.getLogger("yunying.audit")
meta = MetaData()
forward = Table("audit_forward", meta,
                Column("id", Integer, primary_key=True),
                Column("seq", BigInteger, nullable=False))
FACILITY = 13  # log audit (RFC 5424 table 1)


@migration("audit", 2)
def create_forward_cursor(conn: Connection) -> None:
    meta.create_all(conn)


def _sd(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def message(r: dict[str, Any], hostname: str, app: str = "yunying") -> bytes:
    """One RFC 5424 message: header, structured data naming the record, the A.5 XML as MSG."""
    severity = 5 if r["outcome"] == "success" else 4  # notice, warning
    when = datetime.fromtimestamp(r["at_ms"] / 1000, UTC).isoformat(timespec="milliseconds")
    sd = (f'[yunying@32473 seq="{r["seq"]}" action="{_sd(r["action"])}" outcome="{_sd(r["outcome"])}" '
          f'principal="{_sd(r["principal_kind"] + ":" + r["principal_id"])}" hash="{r["hash"]}"]')
    head = f"<{FACILITY * 8 + severity}>1 {when} {hostname} {app} - {_sd(r['action'])[:32]} {sd} "
    return head.encode() + b"\xef\xbb\xbf" + audit_message(r).encode()


class Forwarder:
    """A thread sending records past the cursor, in order, reconnecting with back-off."""

    def __init__(self, engine: Engine, url: str, ca: str = "", poll: float = 1.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("tls", "tcp") or not parts.hostname or not parts.port:
            raise ValueError(f"audit_syslog: {url!r} is not tls://host:port (or tcp://host:port)")
        self.engine, self.host, self.port, self.poll = engine, parts.hostname, parts.port, poll
        self.context: ssl.SSLContext | None = None
        if parts.scheme == "tls":
            self.context = ssl.create_default_context(cafile=ca or None)
            self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.hostname = socket.gethostname() or "-"
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._thread = threading.Thread(target=self._run, name="yunying-audit-syslog", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._drop()

    def _cursor(self) -> int:
        with self.engine.begin() as conn:
            row = conn.execute(select(forward.c.seq).where(forward.c.id == 1)).first()
            if row is None:
                conn.execute(insert(forward).values(id=1, seq=0))
                return 0
            return int(row[0])

    def _run(self) -> None:
        delay = 1.0
        while not self._stop.is_set():
            try:
                sent = self._send_pending()
                delay = 1.0
                if not sent:
                    self._stop.wait(self.poll)
            except (OSError, ssl.SSLError) as exc:  # the collector is away: records wait in the trail
                log.warning("audit collector %s:%d unreachable (%s); retrying in %.0f s",
                            self.host, self.port, type(exc).__name__, delay)
                self._drop()
                self._stop.wait(delay)
                delay = min(delay * 2, 60.0)
            except Exception as exc:  # noqa: BLE001 - the forwarder must not die
                log.error("audit forwarding failed (%s)", type(exc).__name__)
                self._stop.wait(5.0)

    def _send_pending(self) -> int:
        after = self._cursor()
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(
                select(records).where(records.c.seq > after).order_by(records.c.seq).limit(500))]
        if not rows:
            return 0
        sock = self._connect()
        for r in rows:
            msg = message(r, self.hostname)
            sock.sendall(str(len(msg)).encode() + b" " + msg)  # RFC 5425 4.3: octet counting
        with self.engine.begin() as conn:
            conn.execute(update(forward).where(forward.c.id == 1).values(seq=rows[-1]["seq"]))
        return len(rows)

    def _connect(self) -> socket.socket:
        if self._sock is None:
            raw = socket.create_connection((self.host, self.port), timeout=10)
            self._sock = self.context.wrap_socket(raw, server_hostname=self.host) if self.context else raw
        return self._sock

    def _drop(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None
