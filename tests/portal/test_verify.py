"""Part 2: verification by SMS code (file gateway) or ID card + name, binding, the patient token."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx

from benchmarks.net import YunyingServer
from tests.portal.conftest import PHONE, api, issue, last_code, store_study


def test_sms_code_binds_the_exam_and_the_token_sees_only_the_patients_exams(srv: YunyingServer) -> None:
    mine, other = store_study(srv), store_study(srv)
    token = issue(srv, study=mine, phone=PHONE).json()["token"]
    issue(srv, study=other, phone="13911112222")
    assert api(srv, "verify/exam", {"exam": token}).json()["phone"] == "*******8000"
    sent = api(srv, "verify/send", {"exam": token, "phone": PHONE})
    assert sent.status_code == 200 and sent.json()["resend_after"] == 60
    code = last_code(srv)
    assert len(code) == 6 and code.isdigit()
    again = api(srv, "verify/send", {"exam": token, "phone": PHONE})
    assert again.status_code == 429 and "again in" in again.json()["error"]  # resend after 60 s
    ok = api(srv, "verify/sms", {"exam": token, "phone": "+86 138-0013-8000", "code": code})
    assert ok.status_code == 200, ok.text
    session = ok.json()
    assert session["hint"] == "8000" and [e["study"] for e in session["exams"]] == [mine]
    bearer = {"Authorization": f"Bearer {session['access_token']}"}
    found = httpx.get(srv.dicomweb_url + "/studies", headers=bearer).json()
    assert [s["0020000D"]["Value"][0] for s in found] == [mine]
    assert httpx.get(f"{srv.dicomweb_url}/studies/{other}/metadata", headers=bearer).status_code == 404
    assert httpx.get(srv.http_url + "/api/portal/me", headers=bearer).json()["exams"][0]["study"] == mine
    reused = api(srv, "verify/sms", {"exam": token, "phone": PHONE, "code": code})
    assert reused.status_code == 401  # a code is good once


def test_wrong_phone_and_five_wrong_codes_lock(srv: YunyingServer) -> None:
    phone = "13600000005"
    token = issue(srv, study=store_study(srv), phone=phone).json()["token"]
    wrong_phone = api(srv, "verify/send", {"exam": token, "phone": "13600000006"})
    assert wrong_phone.status_code == 401 and "not the phone number" in wrong_phone.json()["error"]
    assert api(srv, "verify/send", {"exam": token, "phone": phone}).status_code == 200
    code = last_code(srv, phone)
    bad = f"{(int(code) + 1) % 10 ** 6:06d}"
    answers = [api(srv, "verify/sms", {"exam": token, "phone": phone, "code": bad}).status_code for _ in range(5)]
    assert answers == [401, 401, 401, 401, 403]
    locked = api(srv, "verify/sms", {"exam": token, "phone": phone, "code": code})
    assert locked.status_code == 403 and "too many" in locked.json()["error"]  # even the right code now


def test_expired_code_is_refused(srv: YunyingServer) -> None:
    phone = "13600000007"
    token = issue(srv, study=store_study(srv), phone=phone).json()["token"]
    api(srv, "verify/send", {"exam": token, "phone": phone})
    with sqlite3.connect(Path(srv.data_dir) / "app.sqlite") as db:  # five minutes pass
        db.execute("UPDATE portal_codes SET expires_at = expires_at - 301")
    r = api(srv, "verify/sms", {"exam": token, "phone": phone, "code": last_code(srv, phone)})
    assert r.status_code == 401 and "expired" in r.json()["error"]


def test_id_card_and_name(srv: YunyingServer) -> None:
    study = store_study(srv)
    token = issue(srv, study=study, id_number="11010519491231002x", name="张三").json()["token"]
    assert api(srv, "verify/exam", {"exam": token}).json()["ways"] == ["id"]
    bad = api(srv, "verify/id", {"exam": token, "id_number": "11010519491231002X", "name": "李四"})
    assert bad.status_code == 401
    ok = api(srv, "verify/id", {"exam": token, "id_number": "11010519491231002X", "name": "张 三"})
    assert ok.status_code == 200 and ok.json()["exams"][0]["study"] == study
    assert api(srv, "verify/id", {"exam": token}).status_code == 400


def test_nothing_sensitive_in_the_server_log(srv: YunyingServer) -> None:
    text = Path(srv.log_path).read_text(errors="replace")
    for secret in (PHONE, "13600000005", "11010519491231002", "张三"):
        assert secret not in text


def test_other_exams_with_the_same_phone_appear_after_one_verification(srv: YunyingServer) -> None:
    phone = "13600000009"
    first, second, stranger = store_study(srv), store_study(srv), store_study(srv)
    token = issue(srv, study=first, phone=phone).json()["token"]
    issue(srv, study=second, phone=phone)  # another exam, another day: its QR was never scanned
    issue(srv, study=stranger, phone="13600000010")
    api(srv, "verify/send", {"exam": token, "phone": phone})
    ok = api(srv, "verify/sms", {"exam": token, "phone": phone, "code": last_code(srv, phone)})
    assert sorted(e["study"] for e in ok.json()["exams"]) == sorted([first, second])


def test_adding_an_exam_by_hand_needs_name_number_and_date(srv: YunyingServer) -> None:
    phone = "13600000011"
    mine = store_study(srv)
    token = issue(srv, study=mine, phone=phone).json()["token"]
    api(srv, "verify/send", {"exam": token, "phone": phone})
    session = api(srv, "verify/sms", {"exam": token, "phone": phone, "code": last_code(srv, phone)}).json()
    family = store_study(srv, accession="HAND-1")  # recorded with another phone (a relative's)
    issue(srv, study=family, accession="HAND-1", phone="13600000012", name="张三")
    bearer = session["access_token"]

    def add(**body: str) -> httpx.Response:
        base = {"hospital": "default", "accession": "HAND-1", "date": "2024-01-01", "name": "张三"}
        return httpx.post(srv.http_url + "/api/portal/me/exams", json=base | body,
                          headers={"Authorization": f"Bearer {bearer}"})
    assert add(name="李四").status_code == 401
    assert add(date="2024-01-02").status_code == 401
    assert add(accession="NOPE").status_code == 404
    assert add(hospital="").status_code == 400
    ok = add()
    assert ok.status_code == 201 and {e["study"] for e in ok.json()["exams"]} == {mine, family}
    fresh = {"Authorization": f"Bearer {ok.json()['access_token']}"}
    assert httpx.get(f"{srv.dicomweb_url}/studies/{family}/metadata", headers=fresh).status_code == 200
    bearer = ok.json()["access_token"]
    assert add(name="王五").status_code == 401  # the fourth wrong try
    assert add(name="王五").status_code == 403  # the fifth locks, the right answer too
    assert add().status_code == 403
