"""The patient master index through a real server: fed by STOW-RS, linked by ID number and by
score, reviewed, undone; QIDO-RS by person within each caller's visibility."""
from __future__ import annotations

import io
import time
from collections.abc import Iterator

import httpx
import pytest
from pydicom.dataset import Dataset

from benchmarks.net import YunyingServer
from tests.conftest import start_with_env
from tests.dicomweb.helpers import make_ct, multipart, part10
from yunying.records import idcard

ID17 = "11010519800101123"
ID_NUMBER = ID17 + idcard.check_character(ID17)
WRONG_CHECK = ID17 + ("0" if ID_NUMBER[-1] != "0" else "1")


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[YunyingServer]:
    s = start_with_env(tmp_path_factory.mktemp("mpi") / "data")
    yield s
    s.stop()


def admin(srv: YunyingServer) -> httpx.Client:
    return httpx.Client(base_url=srv.http_url, headers=srv.headers, timeout=30)


def key(srv: YunyingServer, name: str, scopes: list[str], hospital: str) -> dict[str, str]:
    with admin(srv) as c:
        r = c.post("/api/admin/api-keys", json={"name": name, "scopes": scopes, "hospital": hospital})
        assert r.status_code == 201, r.text
        return {"Authorization": f"Bearer {r.json()['key']}"}


def patient_ct(issuer: str, pid: str, name: str, birth: str, phone: str = "", id_number: str = "") -> bytes:
    ds = make_ct(patient_id=pid, name=name, charset="ISO_IR 192")
    ds.IssuerOfPatientID = issuer
    ds.PatientBirthDate, ds.PatientSex = birth, "M"
    if phone:
        ds.PatientTelephoneNumbers = phone
    if id_number:
        item = Dataset()
        item.PatientID, item.TypeOfPatientID = id_number, "TEXT"
        ds.OtherPatientIDsSequence = [item]
    return part10(ds)


def stow(srv: YunyingServer, headers: dict[str, str], raw: bytes) -> None:
    body, ctype = multipart(raw)
    r = httpx.post(srv.dicomweb_url + "/studies", content=body, headers={**headers, "Content-Type": ctype})
    assert r.status_code == 200, r.text


def identities(c: httpx.Client, want: int) -> list[dict]:
    deadline = time.monotonic() + 20
    while True:
        found = c.get("/api/mpi/identities").json()
        if len(found) >= want or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


@pytest.fixture(scope="module")
def world(srv: YunyingServer) -> dict:
    """Two hospitals: one person under two patient IDs (same ID number), a look-alike for review."""
    with admin(srv) as c:
        assert c.post("/api/admin/hospitals", json={"id": "h2", "name": "Second"}).status_code == 201
    h1w = key(srv, "h1-writer", ["dicomweb.read", "dicomweb.write"], "default")
    h2w = key(srv, "h2-writer", ["dicomweb.read", "dicomweb.write"], "h2")
    stow(srv, h1w, patient_ct("HOSP1", "P1", "张伟", "19800101", "13800138000", ID_NUMBER))
    stow(srv, h2w, patient_ct("HOSP2", "X77", "张伟", "19800101", "", ID_NUMBER))
    stow(srv, h1w, patient_ct("HOSP1-OLD", "OLD7", "张伟", "", "", ID_NUMBER))  # the old HIS's ID
    stow(srv, h2w, patient_ct("HOSP2", "Q5", "章伟", "19800101"))
    stow(srv, h2w, patient_ct("HOSP2", "Z9", "李四", "19700505"))
    with admin(srv) as c:
        found = {i["patient_id"]: i for i in identities(c, 5)}
    return {"h1": h1w, "h2": h2w, "ids": found}


def test_the_same_resident_id_number_links_two_hospitals_patients(srv: YunyingServer, world: dict) -> None:
    ids = world["ids"]
    assert ids["P1"]["person"] == ids["X77"]["person"]
    assert ids["X77"]["link"] == "id"
    assert ids["Z9"]["person"] != ids["P1"]["person"]


def test_id_numbers_and_phones_are_shown_masked_only(srv: YunyingServer, world: dict) -> None:
    with admin(srv) as c:
        text = c.get("/api/mpi/identities").text + c.get("/api/mpi/reviews").text
    assert ID_NUMBER not in text and "13800138000" not in text
    assert "*" * 14 + ID_NUMBER[-4:] in text
    log = srv.log_path.read_text(errors="replace")
    assert ID_NUMBER not in log and "13800138000" not in log and "张伟" not in log


def test_a_homophone_name_waits_for_review_then_links_and_is_undone(srv: YunyingServer, world: dict) -> None:
    with admin(srv) as c:
        items = c.get("/api/mpi/reviews").json()["items"]
        item = next(i for i in items if i["identity"]["patient_id"] == "Q5")
        assert item["levels"] == "birth_date=exact,name=pinyin,sex=exact"
        assert item["candidate"]["person"] == world["ids"]["P1"]["person"]
        assert c.post(f"/api/mpi/reviews/{item['id']}/link").status_code == 200
        assert c.post(f"/api/mpi/reviews/{item['id']}/link").status_code == 409  # decided already
        q5 = c.get("/api/mpi/identities", params={"q": "Q5"}).json()[0]
        assert q5["person"] == world["ids"]["P1"]["person"] and q5["link"] == "manual"
        got = c.get("/api/mpi/events", params={"identity": q5["id"]})
        assert got.status_code == 200, got.text
        event = got.json()[0]
        assert event["action"] == "link" and event["to_person"] == q5["person"]
        assert c.post(f"/api/mpi/events/{event['id']}/revert").status_code == 200
        back = c.get("/api/mpi/identities", params={"q": "Q5"}).json()[0]
        assert back["person"] == world["ids"]["Q5"]["person"]
        assert c.post(f"/api/mpi/events/{event['id']}/revert").status_code == 409


def test_unlink_and_link_by_hand(srv: YunyingServer, world: dict) -> None:
    with admin(srv) as c:
        x77 = world["ids"]["X77"]
        r = c.post(f"/api/mpi/identities/{x77['id']}/unlink")
        assert r.status_code == 200 and r.json()["person"] != x77["person"]
        assert c.post(f"/api/mpi/identities/{x77['id']}/link", json={"person": x77["person"]}).status_code == 200
        assert c.post(f"/api/mpi/identities/{x77['id']}/link", json={"person": "nobody"}).status_code == 404
        z9 = world["ids"]["Z9"]
        assert c.post(f"/api/mpi/identities/{z9['id']}/unlink").status_code == 409  # alone already
        assert c.post("/api/mpi/identities/abc/unlink").status_code == 404


def test_qido_by_person_spans_ids_but_never_widens_a_scope(srv: YunyingServer, world: dict) -> None:
    person = world["ids"]["P1"]["person"]
    url = srv.dicomweb_url + "/studies"
    h1r = key(srv, "h1-reader", ["dicomweb.read"], "default")
    h2r = key(srv, "h2-reader", ["dicomweb.read"], "h2")
    assert world["ids"]["OLD7"]["person"] == person
    mine = httpx.get(url, params={"person": person}, headers=h1r).json()
    assert sorted(s["00100020"]["Value"][0] for s in mine) == ["OLD7", "P1"]  # two IDs, not h2's X77
    mine = httpx.get(url, params={"person": person}, headers=h2r).json()
    assert [s["00100020"]["Value"][0] for s in mine] == ["X77"]  # h2 sees its own study only
    series = httpx.get(srv.dicomweb_url + "/series", params={"person": person}, headers=h1r).json()
    assert len(series) == 2
    with_id = httpx.get(url, params={"person": person, "PatientID": "P1"}, headers=h1r).json()
    assert len(with_id) == 1  # other keys still match
    # the viewer finds the person of a patient it sees; of one it does not see: 404
    r = httpx.get(srv.http_url + "/api/mpi/lookup", params={"PatientID": "X77", "IssuerOfPatientID": "HOSP2"},
                  headers=h2r)
    assert r.status_code == 200 and r.json()["person"] == person
    assert httpx.get(srv.http_url + "/api/mpi/lookup", params={"PatientID": "X77", "IssuerOfPatientID": "HOSP2"},
                     headers=h1r).status_code == 404


@pytest.mark.parametrize("value", ["bad!", "x" * 40, ""])
def test_a_malformed_person_is_a_400_naming_it(srv: YunyingServer, world: dict, value: str) -> None:
    r = httpx.get(srv.dicomweb_url + "/studies", params={"person": value}, headers=srv.headers)
    assert r.status_code == 400 and "person" in r.text


def test_an_unknown_person_matches_nothing(srv: YunyingServer, world: dict) -> None:
    r = httpx.get(srv.dicomweb_url + "/studies", params={"person": "0123456789abcdef"}, headers=srv.headers)
    assert r.status_code == 200 and r.json() == []


def test_a_wrong_check_digit_links_nothing_and_is_flagged(srv: YunyingServer, world: dict) -> None:
    with admin(srv) as c:
        r = c.post("/api/mpi/observe", json={"source": "his", "issuer": "HIS3", "patient_id": "H1",
                                             "name": "王五", "id_number": WRONG_CHECK})
        assert r.status_code == 200 and r.json()["link"] == "new"
        shown = c.get("/api/mpi/identities", params={"q": "H1"}).json()[0]
        assert shown["id_invalid"] is True and shown["id_number"] == ""
        assert c.post("/api/mpi/observe", json={"source": "his"}).status_code == 400
        assert c.post("/api/mpi/observe", json={"source": "his", "issuer": "X", "patient_id": "A\x00"}).status_code == 400
        assert c.post("/api/mpi/observe", content=b"not json").status_code == 400


def test_exam_codes_from_csv_and_excel_and_a_bad_table_changes_nothing(srv: YunyingServer, world: dict) -> None:
    from openpyxl import Workbook

    csv = "hospital,local_code,local_name,standard_code,standard_name\nh1,CT01,胸部CT平扫,CT-CHEST,胸部CT\n"
    wb = Workbook()
    wb.active.append(["hospital", "local_code", "local_name", "standard_code", "standard_name"])
    wb.active.append(["h2", "X-9", "胸部平扫", "CT-CHEST", "胸部CT"])
    xlsx = io.BytesIO()
    wb.save(xlsx)
    with admin(srv) as c:
        assert c.post("/api/mpi/codes", content=csv.encode("gb18030")).json() == {"imported": 1}
        assert c.post("/api/mpi/codes", content=xlsx.getvalue()).json() == {"imported": 1}
        bad = c.post("/api/mpi/codes", content=b"hospital,local_code,standard_code\nh1,CT02,X\nh1,,Y\n")
        assert bad.status_code == 400 and "row 3" in bad.text
        assert c.post("/api/mpi/codes", content=b"PK\x03\x04garbage").status_code == 400
        rows = c.get("/api/mpi/codes").json()
    assert [(r["hospital"], r["local_code"], r["standard_code"]) for r in rows] == [
        ("h1", "CT01", "CT-CHEST"), ("h2", "X-9", "CT-CHEST")]
    assert rows[0]["local_name"] == "胸部CT平扫"


def test_refusals(srv: YunyingServer, world: dict) -> None:
    base = srv.http_url + "/api/mpi"
    assert httpx.get(base + "/reviews").status_code == 401
    assert httpx.post(base + "/rebuild").status_code == 401
    assert httpx.get(base + "/lookup", params={"PatientID": "P1", "IssuerOfPatientID": "HOSP1"}).status_code == 401
    reader = key(srv, "plain-reader", ["dicomweb.read"], "default")
    assert httpx.get(base + "/reviews", headers=reader).status_code == 403
    assert httpx.post(base + "/identities/1/unlink", headers=reader).status_code == 403
    assert httpx.post(base + "/codes", headers=reader, content=b"x").status_code == 403


def test_rebuild_finds_every_stored_patient_again(srv: YunyingServer, world: dict) -> None:
    with admin(srv) as c:
        r = c.post("/api/mpi/rebuild")
    assert r.status_code == 200
    assert r.json()["counts"] == {"unchanged": 5}  # P1, OLD7, X77, Q5, Z9: known already


def test_reads_and_links_are_in_the_audit_trail(srv: YunyingServer, world: dict) -> None:
    auditor = key(srv, "mpi-auditor", ["audit.read"], "default")
    with admin(srv) as c:
        c.get("/api/mpi/reviews")
        z9 = world["ids"]["Z9"]
        c.post(f"/api/mpi/identities/{z9['id']}/link", json={"person": world["ids"]["P1"]["person"]})
        c.post(f"/api/mpi/identities/{z9['id']}/unlink")
    deadline = time.monotonic() + 20
    while True:
        found = httpx.get(srv.http_url + "/api/audit/records", params={"action": "mpi.change"}, headers=auditor).json()
        reads = httpx.get(srv.http_url + "/api/audit/records", params={"action": "mpi.read"}, headers=auditor).json()
        if (len(found) >= 2 and reads) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert len(found) >= 2 and reads
    assert "李四" not in str(found) + str(reads)


def test_a_data_steward_manages_the_index_and_sees_no_images(srv: YunyingServer, world: dict) -> None:
    from tests.auth.test_access import make_user

    steward = {"Authorization": f"Bearer {make_user(srv, 'steward1', [{'role': 'data_steward'}])}"}
    base = srv.http_url + "/api/mpi"
    assert httpx.get(base + "/reviews", headers=steward).status_code == 200
    z9 = world["ids"]["Z9"]
    assert httpx.get(base + "/identities", params={"q": "Z9"}, headers=steward).json()[0]["id"] == z9["id"]
    r = httpx.post(f"{base}/identities/{z9['id']}/link", json={"person": world["ids"]["P1"]["person"]}, headers=steward)
    assert r.status_code == 200, r.text
    assert httpx.post(f"{base}/identities/{z9['id']}/unlink", headers=steward).status_code == 200
    # the master index, not the images, not the users, and not a reader's look-up
    assert httpx.get(srv.dicomweb_url + "/studies", headers=steward).status_code == 403
    assert httpx.get(srv.http_url + "/api/admin/users", headers=steward).status_code == 403
    assert httpx.get(base + "/lookup", params={"PatientID": "P1", "IssuerOfPatientID": "HOSP1"},
                     headers=steward).status_code == 403
    # a system feeding the index holds the permission as an API key scope
    feed = key(srv, "his-feed", ["mpi.manage"], "default")
    r = httpx.post(base + "/observe", headers=feed, json={"source": "his", "issuer": "HIS-A", "patient_id": "F1",
                                                          "name": "赵六", "birth_date": "19900101"})
    assert r.status_code == 200, r.text
    assert httpx.get(srv.dicomweb_url + "/studies", headers=feed).status_code == 403


def test_a_doctor_looks_up_only_patients_they_can_see(srv: YunyingServer, world: dict) -> None:
    from tests.auth.test_access import make_user

    doctor = {"Authorization": f"Bearer {make_user(srv, 'dr.h2', [{'role': 'doctor'}], hospital='h2')}"}
    base = srv.http_url + "/api/mpi"
    person = world["ids"]["X77"]["person"]
    r = httpx.get(base + "/lookup", params={"PatientID": "X77", "IssuerOfPatientID": "HOSP2"}, headers=doctor)
    assert r.status_code == 200 and r.json()["person"] == person
    # the same person's other hospital's ID: not visible to this doctor, so it does not exist
    r = httpx.get(base + "/lookup", params={"PatientID": "P1", "IssuerOfPatientID": "HOSP1"}, headers=doctor)
    assert r.status_code == 404 and person not in r.text
    studies = httpx.get(srv.dicomweb_url + "/studies", params={"person": person}, headers=doctor).json()
    assert [s["00100020"]["Value"][0] for s in studies] == ["X77"]
    for path in ("/identities", "/reviews", "/events"):
        assert httpx.get(base + path, headers=doctor).status_code == 403
    assert httpx.post(base + "/rebuild", headers=doctor).status_code == 403
