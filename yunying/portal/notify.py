"""Report notifications (issue 14 part 8): when a report of an exam bound to a patient is
released (VerificationFlag VERIFIED: final, or an amended one), the patient's phone on record
gets a message through the gateway (SMS: the file outbox, Aliyun or Tencent Cloud).

A thread of `yunying serve` looks every `portal_notify_seconds` at the reports of the bound
exams. Each (exam, report) is one row of `portal_notifications`, inserted once (its primary key
makes the notice idempotent, across processes too), sent, and retried with a growing delay
when the gateway fails; the row records the outcome (sent, failed after MAX_ATTEMPTS, or
no_phone). Nothing here logs a phone number or a name.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Column, Integer, MetaData, String, Table, Text, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from index.query import Match, Query
from yunying import audit
from yunying.auth.store import Store, migration
from yunying.pii import PiiKeys
from yunying.portal import exams as exam_rows
from yunying.portal import patients, wechat_bind
from yunying.portal.console import REPORT_CLASSES
from yunying.portal.keyed import exam_token
from yunying.portal.patients import Persons
from yunying.portal.schema import bindings, exams
from yunying.portal.sms import SmsFailed, SmsGateway

log = logging.getLogger("yunying.portal")
MAX_ATTEMPTS = 8
LEASE = 300  # seconds a process has to send a claimed notification before another may
RECENT_DAYS = 180  # exams bound longer ago are not watched any more

meta = MetaData()
notifications = Table(
    "portal_notifications", meta,
    Column("exam_id", String(32), primary_key=True),
    Column("report_sop", String(64), primary_key=True),
    Column("channel", String(16), nullable=False),  # sms
    Column("status", String(16), nullable=False),  # pending | sent | failed | no_phone
    Column("amended", Integer, nullable=False, default=0),  # 1: an earlier report was notified before
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_try_at", Integer, nullable=False),
    Column("last_error", Text, nullable=False, default=""),
    Column("created_at", Integer, nullable=False),
    Column("sent_at", Integer),
)


@migration("portal", 5)
def create_notifications(conn: Connection) -> None:
    meta.create_all(conn)


def released_reports(archive: Any, studies: list[str]) -> dict[str, list[str]]:
    """SOP Instance UIDs of the studies' released reports (VerificationFlag VERIFIED), per study,
    in the index's order: one index search for every watched exam, not one per exam."""
    found: dict[str, list[str]] = {}
    for start in range(0, len(studies), 500):
        query = Query("IMAGE", [Match("0020000D", "list", tuple(studies[start:start + 500])),
                                Match("00080016", "list", REPORT_CLASSES)], includefields={"0040A493"})
        for js in archive.search(query):
            flag = (js.get("0040A493", {}).get("Value") or [""])[0]
            if str(flag).upper() == "VERIFIED":
                found.setdefault(js["0020000D"]["Value"][0], []).append(js["00080018"]["Value"][0])
    return found


def watch(store: Store, archive: Any, now: int | None = None, *, persons: Persons | None = None) -> int:
    """Queue a notification for every released report of a bound exam not queued yet (none for
    an exam whose patient's delivery is switched off); returns how many were queued."""
    now = int(time.time()) if now is None else now
    q = (select(exams.c.id, exams.c.study_uid).distinct().join(bindings, bindings.c.exam_id == exams.c.id)
         .where(exams.c.delivery_off.is_(False), bindings.c.bound_at > now - RECENT_DAYS * 86400))
    with store.engine.connect() as conn:
        watched = conn.execute(q).all()
        known = {(r.exam_id, r.report_sop) for r in conn.execute(select(notifications.c.exam_id,
                                                                        notifications.c.report_sop))}
    reports = released_reports(archive, sorted({study for _, study in watched}))
    withheld = patients.withheld(store, archive, persons, list(reports)) if reports else set()
    delivered = [(exam_id, study) for exam_id, study in watched if study not in withheld]
    queued = 0
    for exam_id, study in delivered:
        for sop in reports.get(study, []):
            if (exam_id, sop) in known:
                continue
            amended = any((exam_id, other) in known for other in reports[study] if other != sop)
            try:
                with store.engine.begin() as conn:
                    conn.execute(insert(notifications).values(
                        exam_id=exam_id, report_sop=sop, channel="sms", status="pending", amended=int(amended),
                        attempts=0, next_try_at=now, last_error="", created_at=now))
                queued += 1
            except IntegrityError:
                pass  # another process queued it first
            known.add((exam_id, sop))
    return queued


def _delay(attempts: int) -> int:
    return min(30 * 2 ** attempts, 3600)


def send_due(store: Store, keys: PiiKeys, secret: bytes, gateway: SmsGateway, portal_url: Callable[[], str],
             archive: Any, now: int | None = None, *, wechat: Any | None = None) -> dict[str, int]:
    """Send the queued notifications that are due: by WeChat to the patients who bound it
    (`wechat`: a WeChatTemplateGateway), else, or when WeChat fails, by SMS; returns counts per
    outcome."""
    now = int(time.time()) if now is None else now
    n, e = notifications.c, exams.c
    q = (select(n.exam_id, n.report_sop, n.attempts, n.amended, e.hospital_id, e.study_uid, e.generation,
                e.accession, e.phone_sealed).join(exams, e.id == n.exam_id)
         .where(notifications.c.status == "pending", notifications.c.next_try_at <= now))
    with store.engine.connect() as conn:
        due = conn.execute(q).all()
    counts = {"sent": 0, "retry": 0, "failed": 0, "no_phone": 0}
    for row in due:
        key = (notifications.c.exam_id == row.exam_id, notifications.c.report_sop == row.report_sop)
        with store.engine.begin() as conn:  # claim it: another process sees it leased, and skips it
            if conn.execute(update(notifications).where(*key, notifications.c.status == "pending",
                                                        notifications.c.next_try_at <= now)
                            .values(next_try_at=now + LEASE)).rowcount != 1:
                continue
        phone = exam_rows.phone_of(keys, row)
        openids = wechat_bind.openids_of_exam(store, keys, row.exam_id, wechat.app_id) if wechat is not None else []
        values: dict[str, Any]
        channel = "sms"
        if not (phone or openids):
            values, outcome = {"status": "no_phone"}, "no_phone"
        else:
            token = exam_token(secret, row.hospital_id, row.study_uid, row.generation)
            notice = {"hospital": row.hospital_id, "exam": row.accession, "date": _study_date(archive, row.study_uid),
                      "amended": "1" if row.amended else "0", "url": portal_url().rstrip("/") + "/portal/#exam=" + token}
            channel, error = _deliver(notice, openids, wechat, phone, gateway)
            if not error:
                values, outcome = {"status": "sent", "sent_at": now, "attempts": row.attempts + 1}, "sent"
            else:
                attempts = row.attempts + 1
                gave_up = attempts >= MAX_ATTEMPTS
                values = {"attempts": attempts, "last_error": error[:200],
                          "next_try_at": now + _delay(attempts), "status": "failed" if gave_up else "pending"}
                outcome = "failed" if gave_up else "retry"
        with store.engine.begin() as conn:
            conn.execute(update(notifications).where(*key).values(**values, channel=channel))
        counts[outcome] += 1
        audit.record("portal.notify", "success" if outcome == "sent" else "failure", None, principal_kind="system",
                     principal_id="yunying", face="http", studies=row.study_uid, status=outcome,
                     detail={"report": row.report_sop, "channel": channel, "amended": bool(row.amended)})
    if any(counts.values()):
        log.info("report notifications: %s", counts)
    return counts


def _deliver(notice: dict[str, str], openids: list[str], wechat: Any, phone: str, gateway: SmsGateway) -> tuple[str, str]:
    """(channel, error): WeChat first (any of the patient's openids taking it is enough), then SMS."""
    errors = []
    for openid in openids:
        try:
            wechat.send_notice(openid, notice)
            return "wechat", ""
        except SmsFailed as exc:  # not following the account any more, blocked, WeChat down: SMS then
            errors.append(str(exc) or "wechat")
    if not phone:
        return "wechat", "; ".join(errors)
    try:
        gateway.send_notice(phone, notice)
        return "sms", ""
    except (SmsFailed, OSError) as exc:
        return "sms", "; ".join([*errors, str(exc) or type(exc).__name__])


def _study_date(archive: Any, study: str) -> str:
    rows = archive.instances(study)
    return str(archive.read_header(rows[0]).get("StudyDate", "")) if rows else ""


class Notifier:
    """The background thread: watch, then send what is due, every `interval` seconds."""

    def __init__(self, interval: float, step: Callable[[], None]) -> None:
        self.interval, self.step = interval, step
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="portal-notify", daemon=True)

    def start(self) -> Notifier:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.step()
            except Exception as exc:  # noqa: BLE001 - any failure: the next round tries again, serving goes on
                log.warning("report notifications: %s", type(exc).__name__)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def start_notifier(settings: Any, store: Store, archive: Any) -> Notifier | None:
    """The notifier of `yunying serve` (None when `portal_notify_seconds` is 0)."""
    import os
    from pathlib import Path

    from yunying import pii
    from yunying.mpi.linker import PatientIndex
    from yunying.portal.keyed import portal_secret
    from yunying.portal.sms import gateway_from_env
    from yunying.portal.wechat import WeChatTemplateGateway

    if settings.portal_notify_seconds <= 0:
        return None
    data = Path(settings.data)
    secret = portal_secret(data, settings.pii_key_file)
    persons = PatientIndex(store.engine, pii.keys_for(data, settings.pii_key_file))  # read only: who is withheld
    gateways: list[SmsGateway] = []
    warned: list[str] = []
    wechat = WeChatTemplateGateway(os.environ) if os.environ.get("YUNYING_WECHAT_TEMPLATE_ID") and \
        wechat_bind.OAuth.from_env(os.environ) is not None else None  # an official account: WeChat first
    scheme = "https" if settings.tls_cert else "http"
    url = os.environ.get("YUNYING_PORTAL_URL") or f"{scheme}://{settings.host}:{settings.http_port}"

    def step() -> None:
        if not gateways:  # made here, not at start: a misconfigured gateway must not stop the server
            try:
                gateways.append(gateway_from_env(data))
            except (KeyError, ValueError) as exc:
                if str(exc) not in warned:  # said once, not every round
                    warned.append(str(exc))
                    log.warning("report notifications: the SMS gateway is misconfigured: missing or wrong %s", exc)
                return
        watch(store, archive, persons=persons)
        send_due(store, pii.keys_for(data, settings.pii_key_file), secret, gateways[0], lambda: url, archive,
                 wechat=wechat)
    return Notifier(settings.portal_notify_seconds, step).start()
