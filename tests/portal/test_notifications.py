"""Issue 14 part 8: a released (final, then amended) report of an exam bound to a patient sends
one notice each to the phone on record through the gateway (the file outbox); preliminary
reports and unbound exams send none; a failing gateway is retried, then given up, recorded."""
from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from benchmarks.net import YunyingServer
from benchmarks.portal import outbox
from tests.conftest import start_with_env
from tests.portal.conftest import api, issue, last_code, store_study
from tests.portal.test_fhir_reports import post, report
from yunying import pii
from yunying.auth import directory
from yunying.auth.store import open_store
from yunying.portal import exams, notify
from yunying.portal.keyed import portal_secret
from yunying.portal.schema import bindings
from yunying.portal.sms import SmsFailed

PHONE = "13655550001"


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> Any:
    srv = start_with_env(tmp_path_factory.mktemp("notify") / "data", YUNYING_PORTAL_NOTIFY_SECONDS="1")
    yield srv
    srv.stop()


def notices(srv: YunyingServer, phone: str) -> list[dict]:
    try:
        return [x["notice"] for x in outbox(srv) if x["phone"] == phone and "notice" in x]
    except FileNotFoundError:
        return []


def wait_for(srv: YunyingServer, phone: str, count: int, timeout: float = 20) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = notices(srv, phone)
        if len(found) >= count:
            return found
        time.sleep(0.3)
    return notices(srv, phone)


def acsn(value: str) -> list[dict]:
    return [{"type": {"coding": [{"code": "ACSN"}]}, "value": value}]


def test_final_and_amended_reports_notify_the_bound_patient_once_each(quick: YunyingServer) -> None:
    srv = quick
    study = store_study(srv, accession="NOTE-1")
    token = issue(srv, study=study, accession="NOTE-1", phone=PHONE).json()["token"]
    unbound = store_study(srv, accession="NOTE-2")
    issue(srv, study=unbound, accession="NOTE-2", phone="13655550002")  # QR printed, never scanned
    api(srv, "verify/send", {"exam": token, "phone": PHONE})
    assert api(srv, "verify/sms", {"exam": token, "phone": PHONE, "code": last_code(srv, PHONE)}).status_code == 200

    assert post(srv, report("preliminary", identifier=acsn("NOTE-1"))).status_code == 201
    assert post(srv, report("final", identifier=acsn("NOTE-2"))).status_code == 201
    time.sleep(3)  # three rounds of the notifier
    assert notices(srv, PHONE) == [] and notices(srv, "13655550002") == []

    assert post(srv, report("final", identifier=acsn("NOTE-1"))).status_code == 201
    [first] = wait_for(srv, PHONE, 1)
    assert first["exam"] == "NOTE-1" and first["amended"] == "0" and first["url"].endswith("/portal/#exam=" + token)
    assert first["hospital"] == "default" and first["date"]
    time.sleep(3)
    assert len(notices(srv, PHONE)) == 1  # idempotent: the same report is not notified again

    assert post(srv, report("amended", identifier=acsn("NOTE-1"))).status_code == 201
    found = wait_for(srv, PHONE, 2)
    assert len(found) == 2 and found[1]["amended"] == "1"
    assert PHONE not in Path(srv.log_path).read_text(errors="replace")


class Failing:
    def __init__(self, failures: int) -> None:
        self.failures, self.sent = failures, list[tuple[str, Mapping[str, str]]]()

    def send_code(self, phone: str, code: str) -> None:
        raise AssertionError("not used")

    def send_notice(self, phone: str, notice: Mapping[str, str]) -> None:
        if self.failures:
            self.failures -= 1
            raise SmsFailed("aliyun: HTTP 503 ServiceUnavailable")
        self.sent.append((phone, notice))


def released(sop: str) -> dict:
    return {"0020000D": {"vr": "UI", "Value": ["1.2.3"]}, "00080018": {"vr": "UI", "Value": [sop]},
            "0040A493": {"vr": "CS", "Value": ["VERIFIED"]}}


class Archive:  # the calls notify makes of the archive, for one study with one released report
    def __init__(self, *sops: str) -> None:
        self.sops = sops

    def search(self, query: Any) -> list[dict]:
        return [released(s) for s in self.sops]

    def instances(self, study: str) -> list[Any]:
        return [SimpleNamespace()]

    def read_header(self, row: Any) -> Any:
        return {"StudyDate": "20240102"}


def test_a_failing_gateway_is_retried_with_a_growing_delay_then_given_up(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    store = open_store(data)
    store.migrate()
    directory.ensure_defaults(store)  # the default hospital
    keys, secret = pii.keys_for(data), portal_secret(data)
    done = exams.issue_exam(store, secret, keys, hospital="default", study="1.2.3", accession="R1",
                            contact=exams.Contact(phone=PHONE), created_by="test")
    with store.engine.begin() as conn:
        conn.execute(bindings.insert().values(account_id="p_x", exam_id=done["exam"], bound_at=int(time.time())))
    archive, now = Archive("1.2.3.9"), int(time.time())
    assert notify.watch(store, archive, now) == 1 and notify.watch(store, archive, now) == 0

    def send(gw: Failing, at: int) -> dict[str, int]:
        return notify.send_due(store, keys, secret, gw, lambda: "https://h", archive, at)
    gw = Failing(failures=2)
    assert send(gw, now)["retry"] == 1
    assert send(gw, now + 30)["retry"] == 0  # not due yet: 60 s after the first failure
    assert send(gw, now + 60)["retry"] == 1  # then 120 s after the second
    assert send(gw, now + 60 + 120)["sent"] == 1 and gw.sent[0][0] == PHONE
    assert send(gw, now + 100_000) == {"sent": 0, "retry": 0, "failed": 0, "no_phone": 0}

    assert notify.watch(store, Archive("1.2.3.9", "1.2.3.10"), now) == 1  # an amended report
    always = Failing(failures=100)
    at = now
    for _ in range(notify.MAX_ATTEMPTS):
        at += 3600
        send(always, at)
    with store.engine.connect() as conn:
        rows = {r.report_sop: r for r in conn.execute(notify.notifications.select())}
    assert rows["1.2.3.10"].status == "failed" and rows["1.2.3.10"].attempts == notify.MAX_ATTEMPTS
    assert rows["1.2.3.10"].amended == 1 and "503" in rows["1.2.3.10"].last_error
    assert rows["1.2.3.9"].status == "sent"
