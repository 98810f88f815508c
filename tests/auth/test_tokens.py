"""Capability tokens, launch links and self-registration through a real server."""
from __future__ import annotations

import base64
import time
from collections.abc import Iterator

import httpx
import pytest
from pydicom.uid import generate_uid

from benchmarks.net import YunyingServer, start_yunying
from tests.auth import plain
from tests.auth.signin import login_page_post, sign_in
from tests.dicomweb.helpers import make_ct, multipart, part10
from yunying.auth.launch import sign


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[YunyingServer]:
    s = start_yunying(tmp_path_factory.mktemp("tokens") / "data")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def study(srv: YunyingServer) -> str:
    uid = generate_uid()
    body, ctype = multipart(part10(make_ct(uid)))
    r = plain.post(srv.dicomweb_url + "/studies", content=body, headers={"Content-Type": ctype, **srv.headers})
    assert r.status_code == 200
    return uid


def share(srv: YunyingServer, **body: object) -> dict:
    r = plain.post(srv.http_url + "/api/admin/capability-tokens", json=body, headers=srv.headers)
    assert r.status_code == 201, r.text
    return r.json()


def exchange(srv: YunyingServer, token: str, code: str | None = None) -> httpx.Response:
    return plain.post(srv.http_url + "/api/auth/exchange", json={"token": token, "code": code})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_share_token_is_bound_to_its_study_and_view_only(srv: YunyingServer, study: str) -> None:
    made = share(srv, studies=[study], permissions=["view"], expires_in=3600)
    assert len(made["token"]) >= 32  # 192 random bits, URL-safe
    assert plain.get(srv.dicomweb_url + "/studies", headers=bearer(made["token"])).status_code == 401  # not a bearer
    access = exchange(srv, made["token"]).json()
    assert access["token_type"] == "Bearer" and 0 < access["expires_in"] <= 900
    me = plain.get(srv.http_url + "/api/auth/me", headers=bearer(access["access_token"])).json()
    assert me["kind"] == "share" and me["visibility"] == {
        "everything": False, "hospitals": [], "studies": [study], "series": []}
    h = bearer(access["access_token"])
    assert plain.get(f"{srv.dicomweb_url}/studies/{study}/metadata", headers=h).status_code == 200
    assert plain.get(f"{srv.dicomweb_url}/studies/{study}", headers=h).status_code == 403  # no download
    assert plain.post(srv.dicomweb_url + "/studies", headers=h, content=b"").status_code == 403
    assert plain.get(srv.http_url + "/api/admin/users", headers=h).status_code == 403


def test_download_permission_allows_whole_objects(srv: YunyingServer, study: str) -> None:
    made = share(srv, studies=[study], permissions=["view", "download"])
    h = bearer(exchange(srv, made["token"]).json()["access_token"])
    resp = plain.get(f"{srv.dicomweb_url}/studies/{study}", headers={
        "Accept": 'multipart/related; type="application/dicom"', **h})
    assert resp.status_code == 200


def test_revoking_a_share_kills_its_access_tokens_at_once(srv: YunyingServer, study: str) -> None:
    made = share(srv, studies=[study])
    h = bearer(exchange(srv, made["token"]).json()["access_token"])
    assert plain.get(f"{srv.dicomweb_url}/studies/{study}/metadata", headers=h).status_code == 200
    listed = plain.get(srv.http_url + "/api/admin/capability-tokens", headers=srv.headers).json()
    assert made["id"] in {t["id"] for t in listed} and all("token_hash" not in t for t in listed)
    assert plain.delete(f"{srv.http_url}/api/admin/capability-tokens/{made['id']}", headers=srv.headers
                        ).status_code == 200
    assert plain.get(f"{srv.dicomweb_url}/studies/{study}/metadata", headers=h).status_code == 401
    assert exchange(srv, made["token"]).status_code == 401


def test_an_expired_access_token_is_401(srv: YunyingServer, study: str) -> None:
    made = share(srv, studies=[study], expires_in=2)
    access = exchange(srv, made["token"]).json()
    assert access["expires_in"] <= 2
    time.sleep(2.5)
    resp = plain.get(f"{srv.dicomweb_url}/studies/{study}/metadata", headers=bearer(access["access_token"]))
    assert resp.status_code == 401 and 'error="invalid_token"' in resp.headers["www-authenticate"]
    assert exchange(srv, made["token"]).status_code == 401  # the share itself expired too


def test_not_before_is_respected(srv: YunyingServer, study: str) -> None:
    made = share(srv, studies=[study], not_before=int(time.time()) + 3600)
    assert exchange(srv, made["token"]).status_code == 403


def test_access_code_locks_out_after_repeated_failures(srv: YunyingServer, study: str) -> None:
    made = share(srv, studies=[study], code="4821")
    assert exchange(srv, made["token"]).status_code == 401
    for _ in range(4):
        assert exchange(srv, made["token"], "0000").status_code == 401
    locked = exchange(srv, made["token"], "4821")  # right code, but the fifth failure locked it
    assert locked.status_code == 403 and "too many" in locked.json()["error"]


def test_right_access_code_is_accepted(srv: YunyingServer, study: str) -> None:
    made = share(srv, studies=[study], code="4821")
    assert exchange(srv, made["token"], "1111").status_code == 401
    assert exchange(srv, made["token"], "4821").status_code == 200


@pytest.mark.parametrize("body", [{}, {"studies": "1.2.3"}, {"studies": []}, {"studies": ["1.2"], "expires_in": -1},
                                  {"studies": ["1.2"], "permissions": ["delete"]}, {"studies": ["1.2"], "kind": "x"}])
def test_bad_share_requests_are_400(srv: YunyingServer, body: dict) -> None:
    r = plain.post(srv.http_url + "/api/admin/capability-tokens", json=body, headers=srv.headers)
    assert r.status_code == 400, r.text


def test_a_sharer_shares_only_studies_it_sees(srv: YunyingServer, study: str) -> None:
    admin = httpx.Client(base_url=srv.http_url, headers=srv.headers, timeout=plain.TIMEOUT)
    assert admin.post("/api/admin/hospitals", json={"id": "h5", "name": "Fifth"}).status_code == 201
    key = admin.post("/api/admin/api-keys", json={"name": "h5-sharer", "hospital": "h5",
                                                  "scopes": ["dicomweb.read", "shares.manage"]}).json()["key"]
    foreign = plain.post(srv.http_url + "/api/admin/capability-tokens", json={"studies": [study]}, headers=bearer(key))
    assert foreign.status_code == 404  # another hospital's study does not exist for h5
    by_series = plain.post(srv.http_url + "/api/admin/capability-tokens", json={"series": ["1.2.3.4"]},
                           headers=bearer(key))
    assert by_series.status_code == 403
    assert admin.post("/api/admin/capability-tokens", json={"studies": ["1.2.840.99.404"]}).status_code == 404


def _doctor_with_launch_secret(srv: YunyingServer) -> str:
    c = httpx.Client(base_url=srv.http_url, headers=srv.headers, timeout=plain.TIMEOUT)
    if c.get("/api/admin/users/dr.launch").status_code == 404:
        assert c.post("/api/admin/users", json={"username": "dr.launch", "password": "launch-pw-12345",
                                                "roles": [{"role": "doctor"}]}).status_code == 201
        sign_in(srv.http_url, "dr.launch", "launch-pw-12345", new_password="Launch-pw-67890")
    return c.put("/api/admin/hospitals/default/launch-secret").json()["secret"]


def test_a_launch_link_opens_the_study_once(srv: YunyingServer, study: str) -> None:
    secret = _doctor_with_launch_secret(srv)
    params = sign(secret, "default", "dr.launch", study=study)
    first = plain.get(srv.http_url + "/launch", params=params)
    assert first.status_code == 303 and first.headers["location"] == f"/viewer/?study={study}"
    cookie = first.cookies["yy_session"]
    assert "httponly" in first.headers["set-cookie"].lower()
    jar = {"Cookie": f"yy_session={cookie}"}
    me = plain.get(srv.http_url + "/api/auth/me", headers=jar).json()
    assert me["kind"] == "launch" and me["id"] == "dr.launch"
    assert plain.get(f"{srv.dicomweb_url}/studies/{study}/metadata", headers=jar).status_code == 200
    assert plain.post(srv.dicomweb_url + "/studies", headers=jar, content=b"").status_code == 401  # GET only
    again = plain.get(srv.http_url + "/launch", params=params)
    assert again.status_code == 401 and "used" in again.json()["error"]


def test_launch_links_refused_when_forged_old_or_for_a_stranger(srv: YunyingServer, study: str) -> None:
    secret = _doctor_with_launch_secret(srv)
    bad_sig = sign("not-the-secret", "default", "dr.launch", study=study)
    assert plain.get(srv.http_url + "/launch", params=bad_sig).status_code == 401
    old = sign(secret, "default", "dr.launch", study=study, ts=int(time.time()) - 301)
    assert plain.get(srv.http_url + "/launch", params=old).status_code == 401
    future = sign(secret, "default", "dr.launch", study=study, ts=int(time.time()) + 600)
    assert plain.get(srv.http_url + "/launch", params=future).status_code == 401
    tampered = sign(secret, "default", "dr.launch", study=study) | {"study": "1.2.3.4"}
    assert plain.get(srv.http_url + "/launch", params=tampered).status_code == 401
    stranger = sign(secret, "default", "nobody", study=study)
    assert plain.get(srv.http_url + "/launch", params=stranger).status_code == 401
    by_accession = sign(secret, "default", "dr.launch", accession="A1")
    ok = plain.get(srv.http_url + "/launch", params=by_accession)
    assert ok.status_code == 303 and ok.headers["location"] == "/viewer/?accession=A1"
    assert plain.get(srv.http_url + "/launch", params={"user": "x"}).status_code == 400


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64


def test_self_registration_is_reviewed_and_photos_are_for_the_reviewer(srv: YunyingServer) -> None:
    photos = [{"kind": "id_card", "content_type": "image/png", "data": base64.b64encode(PNG).decode()},
              {"kind": "qualification", "content_type": "image/jpeg", "data": base64.b64encode(JPEG).decode()}]
    form = {"username": "dr.sun", "password": "sun-password-1", "display_name": "孙医生", "phone": "13800000000",
            "hospital": "default", "department": "Radiology", "title": "Attending", "photos": photos}
    made = plain.post(srv.http_url + "/api/auth/register", json=form)
    assert made.status_code == 201, made.text
    reg = made.json()["id"]
    assert plain.post(srv.http_url + "/api/auth/register", json=form).status_code == 409
    assert login_page_post(srv.http_url, "dr.sun", "sun-password-1").status_code == 401  # not before approval
    admin = httpx.Client(base_url=srv.http_url, headers=srv.headers, timeout=plain.TIMEOUT)
    [pending] = [r for r in admin.get("/api/admin/registrations").json() if r["id"] == reg]
    assert "password_hash" not in pending and len(pending["photos"]) == 2
    pid = pending["photos"][0]["id"]
    photo = admin.get(f"/api/admin/registrations/{reg}/photos/{pid}")
    assert photo.status_code == 200 and photo.content in (PNG, JPEG)
    assert plain.get(f"{srv.http_url}/api/admin/registrations/{reg}/photos/{pid}").status_code == 401
    assert admin.post(f"/api/admin/registrations/{reg}/approve", json={"roles": []}).status_code == 400
    ok = admin.post(f"/api/admin/registrations/{reg}/approve", json={"roles": [{"role": "radiologist",
                                                                                 "level": "reporting"}]})
    assert ok.status_code == 200, ok.text
    assert sign_in(srv.http_url, "dr.sun", "sun-password-1").access_token
    user = admin.get("/api/admin/users/dr.sun").json()
    assert user["roles"] == [{"hospital_id": "default", "role": "radiologist", "level": "reporting"}]


def test_rejection_needs_a_reason_and_bad_photos_are_refused(srv: YunyingServer) -> None:
    photos = [{"kind": "id_card", "content_type": "image/png", "data": base64.b64encode(PNG).decode()},
              {"kind": "qualification", "content_type": "image/png", "data": base64.b64encode(PNG).decode()}]
    form = {"username": "dr.zhou", "password": "zhou-password-1", "display_name": "Zhou", "phone": "139",
            "hospital": "default", "photos": photos}
    reg = plain.post(srv.http_url + "/api/auth/register", json=form).json()["id"]
    admin = httpx.Client(base_url=srv.http_url, headers=srv.headers, timeout=plain.TIMEOUT)
    assert admin.post(f"/api/admin/registrations/{reg}/reject", json={"reason": " "}).status_code == 400
    assert admin.post(f"/api/admin/registrations/{reg}/reject", json={"reason": "qualification unreadable"}
                      ).status_code == 200
    assert admin.post(f"/api/admin/registrations/{reg}/approve", json={"roles": [{"role": "doctor"}]}
                      ).status_code == 409
    fake = dict(form, username="dr.x", photos=[dict(photos[0], data=base64.b64encode(b"GIF89a...").decode()),
                                               photos[1]])
    assert plain.post(srv.http_url + "/api/auth/register", json=fake).status_code == 400
    assert plain.post(srv.http_url + "/api/auth/register", json=dict(form, username="dr.y", photos=photos[:1])
                      ).status_code == 400
