"""Issue 12 part 6: no phone number, ID card number or uploaded photo in clear in ANY file of the
data folder (database, WAL, journals, audit trail, pixel store, index) nor in the log, after a
doctor's self-registration and a patient's portal visit through a real server; older clear rows
are sealed at start and `yunying pii rotate` re-seals everything under a new key."""
from __future__ import annotations

import base64
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx

from benchmarks.net import REPO_ROOT, YunyingServer, start_yunying
from tests.portal.conftest import api, issue, last_code, store_study
from yunying import pii
from yunying.portal.sms import default_outbox

DOCTOR_PHONE = "13712345678"
PATIENT_PHONE = "+86 139-8765-4321"  # as a RIS may send it; stored normalised
PATIENT_ID = "44030619870523611X"
PHOTO_MARK = b"qualification-photo-7f3a9c"  # inside the uploaded PNG's bytes
PNG = b"\x89PNG\r\n\x1a\n" + PHOTO_MARK + b"\x00" * 32
JPEG = b"\xff\xd8\xff\xe0" + PHOTO_MARK + b"\x00" * 32


def needles() -> dict[str, bytes]:
    """Each value in its plain bytes and in its digits-only form."""
    out = {"photo": PHOTO_MARK}
    for name, value in (("doctor phone", DOCTOR_PHONE), ("patient phone", PATIENT_PHONE), ("id", PATIENT_ID)):
        out[name] = value.encode()
        out[name + " digits"] = re.sub(r"\D", "", value).encode()
    out["patient phone national"] = b"13987654321"
    return out


def found_in(folder: Path) -> dict[str, list[str]]:
    hits: dict[str, list[str]] = {}
    for root, _, files in os.walk(folder):
        for name in files:
            blob = (Path(root) / name).read_bytes()
            for what, needle in needles().items():
                if needle in blob:
                    hits.setdefault(what, []).append(str(Path(root, name).relative_to(folder)))
    return hits


def register(srv: YunyingServer, username: str) -> str:
    photos = [{"kind": "id_card", "content_type": "image/png", "data": base64.b64encode(PNG).decode()},
              {"kind": "qualification", "content_type": "image/jpeg", "data": base64.b64encode(JPEG).decode()}]
    made = httpx.post(srv.http_url + "/api/auth/register", json={
        "username": username, "password": "Reg-password-1", "display_name": "Dr Wu", "phone": DOCTOR_PHONE,
        "hospital": "default", "photos": photos})
    assert made.status_code == 201, made.text
    return made.json()["id"]


def pending(srv: YunyingServer, reg: str) -> dict:
    [found] = [r for r in httpx.get(srv.http_url + "/api/admin/registrations", headers=srv.headers).json()
               if r["id"] == reg]
    return found


def test_no_personal_value_in_clear_in_any_file_of_the_data_folder(tmp_path: Path) -> None:
    data = tmp_path / "data"
    srv = start_yunying(data)
    try:
        reg = register(srv, "dr.wu")
        study, other = store_study(srv, accession="PII-1"), store_study(srv, accession="PII-2")
        token = issue(srv, study=study, phone=PATIENT_PHONE).json()["token"]
        by_id = issue(srv, study=other, id_number=PATIENT_ID, name="张三").json()["token"]
        assert api(srv, "verify/send", {"exam": token, "phone": PATIENT_PHONE}).status_code == 200
        ok = api(srv, "verify/sms", {"exam": token, "phone": PATIENT_PHONE, "code": last_code(srv, "13987654321")})
        assert ok.status_code == 200, ok.text
        assert api(srv, "verify/id", {"exam": by_id, "id_number": PATIENT_ID, "name": "张三"}).status_code == 200
        bearer = {"Authorization": f"Bearer {ok.json()['access_token']}"}
        assert httpx.get(f"{srv.dicomweb_url}/studies/{study}/metadata", headers=bearer).status_code == 200
        # the reviewer still reads them (unsealed for the answer)
        shown = pending(srv, reg)
        assert shown["phone"] == DOCTOR_PHONE
        photo = httpx.get(f"{srv.http_url}/api/admin/registrations/{reg}/photos/{shown['photos'][0]['id']}",
                          headers=srv.headers)
        assert photo.content in (PNG, JPEG)
        # approved, the doctor becomes a user whose phone is sealed too, and shown in clear to the admin
        approved = httpx.post(f"{srv.http_url}/api/admin/registrations/{reg}/approve", headers=srv.headers,
                              json={"roles": [{"role": "radiologist", "level": "reporting"}]})
        assert approved.status_code == 200, approved.text
        user = httpx.get(f"{srv.http_url}/api/admin/users/dr.wu", headers=srv.headers)
        assert user.status_code == 200 and user.json()["phone"] == DOCTOR_PHONE, user.text
        changed = httpx.patch(f"{srv.http_url}/api/admin/users/dr.wu", headers=srv.headers, json={"phone": "x" * 41})
        assert changed.status_code == 400 and "phone" in changed.json()["error"]
        assert found_in(data) == {}, "while running (WAL, journals)"
    finally:
        srv.stop()
    assert found_in(data) == {}, "after a clean stop"
    app_files = [f for f in data.glob("app.sqlite*") if f.is_file()]  # the database and its WAL, if not yet checkpointed
    assert any(study.encode() in f.read_bytes() for f in app_files)  # the scan sees
    outbox = default_outbox(data)
    assert data not in outbox.parents and b"13987654321" in outbox.read_bytes()  # beside, not in, the data folder
    log = srv.log_path.read_bytes()
    assert not [w for w, n in needles().items() if n in log], "the log"
    assert b"DEVELOPMENT gateway" in log  # the file gateway says what it is at start
    assert not (data / "portal.key").exists()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    return subprocess.run([sys.executable, "-m", "yunying.cli", *args], check=False, cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True, timeout=120)


def test_clear_rows_of_an_older_version_are_sealed_at_start_and_rotation_reseals(tmp_path: Path) -> None:
    data = tmp_path / "data"
    srv = start_yunying(data)
    try:
        reg = register(srv, "dr.old")
        study = store_study(srv, accession="ROT-1")
        token = issue(srv, study=study, phone=PATIENT_PHONE).json()["token"]
    finally:
        srv.stop()
    with sqlite3.connect(data / "app.sqlite") as db:  # what a version before sealing left behind
        db.execute("UPDATE registrations SET phone = ? WHERE id = ?", (DOCTOR_PHONE, reg))
        db.execute("UPDATE registration_photos SET data = ? WHERE registration_id = ?", (PNG, reg))
    assert "doctor phone" in found_in(data)

    srv = start_yunying(data)
    try:
        assert found_in(data) == {}
        shown = pending(srv, reg)
        assert shown["phone"] == DOCTOR_PHONE
        photo = httpx.get(f"{srv.http_url}/api/admin/registrations/{reg}/photos/{shown['photos'][0]['id']}",
                          headers=srv.headers)
        assert photo.content == PNG
    finally:
        srv.stop()

    done = run_cli("pii", "rotate", "--data", str(data))
    assert done.returncode == 0, done.stderr
    assert "k2" in done.stdout and "13712345678" not in done.stdout + done.stderr
    with sqlite3.connect(data / "app.sqlite") as db:
        sealed = [r[0] for r in db.execute("SELECT phone FROM registrations")]
        sealed += [r[0].decode() for r in db.execute("SELECT data FROM registration_photos")]
        sealed += [r[0] for r in db.execute("SELECT phone_sealed FROM portal_exams")]
    assert len(sealed) == 4 and all(s.startswith("s1.k2.") for s in sealed)
    keys = pii.keys_for(data)
    assert [k for k, _ in keys.seal_keys] == ["k1", "k2"]

    srv = start_yunying(data)
    try:
        assert pending(srv, reg)["phone"] == DOCTOR_PHONE
        assert api(srv, "verify/exam", {"exam": token}).json()["phone"] == "*******4321"  # printed QR still valid
    finally:
        srv.stop()


def test_a_legacy_portal_key_moves_out_of_the_data_folder(tmp_path: Path, monkeypatch) -> None:
    from yunying.portal.keyed import portal_secret

    data = tmp_path / "data"
    data.mkdir()
    legacy = os.urandom(32)
    (data / "portal.key").write_bytes(legacy)
    assert portal_secret(data) == legacy  # the hashes and exam tokens made with it stay valid
    assert not (data / "portal.key").exists()
    assert pii.keys_for(data).secret("portal") == legacy
    assert "secret portal" in pii.default_key_file(data).read_text()
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    assert portal_secret(fresh) == pii.keys_for(fresh).secret("portal") != legacy  # derived, nothing written
    (fresh / "portal.key").write_bytes(legacy)
    monkeypatch.setenv(pii.ENV, pii.default_key_file(fresh).read_text())
    try:
        portal_secret(fresh)
    except pii.PiiKeyError as exc:  # keys from the environment: the operator is told what to add
        assert "secret portal" in str(exc)
    else:
        raise AssertionError("a legacy key with environment keys must be refused")


def test_rotation_reseals_the_patient_index_too(tmp_path: Path) -> None:
    from yunying.auth.store import open_store
    from yunying.mpi.schema import identities

    data = tmp_path / "data"
    data.mkdir()
    store = open_store(data)
    keys = pii.keys_for(data)
    with store.engine.begin() as conn:
        conn.execute(identities.insert().values(issuer="H", patient_id="P1", person_id="x", link="new",
                                                updated_at=0, id_sealed=keys.seal(PATIENT_ID, "mpi.id")))
    store.engine.dispose()
    done = run_cli("pii", "rotate", "--data", str(data))
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(data / "app.sqlite") as db:
        [sealed] = [r[0] for r in db.execute("SELECT id_sealed FROM mpi_identities")]
    assert sealed.startswith("s1.k2.") and pii.keys_for(data).unseal(sealed, "mpi.id") == PATIENT_ID
