"""Identity through a real server: keys, users, first login, separation of duties, break-glass."""
from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks.net import REPO_ROOT, YunyingServer
from tests.auth import plain
from tests.auth.signin import login_page_post, sign_in
from tests.conftest import start_with_env
from tests.dicomweb.helpers import make_ct, multipart, part10

ADMIN_PASSWORD = "first-admin-pw-123"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[YunyingServer]:
    s = start_with_env(tmp_path_factory.mktemp("access") / "data", YUNYING_ADMIN_PASSWORD=ADMIN_PASSWORD)
    yield s
    s.stop()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def admin(srv: YunyingServer) -> httpx.Client:
    """The harness's full-scope key (dicomweb.* + admin)."""
    return httpx.Client(base_url=srv.http_url, headers=srv.headers, timeout=plain.TIMEOUT)


def make_user(srv: YunyingServer, username: str, roles: list[dict], hospital: str = "default",
              password: str = "a-good-password-1", **fields: Any) -> str:
    """A user made by the admin (`fields`: department_id, title...), signed in through the login
    page (new password, and a second factor when the role administers); their access token."""
    with admin(srv) as c:
        r = c.post("/api/admin/users", json={"username": username, "hospital": hospital, "password": password,
                                             "roles": roles, **fields})
        assert r.status_code == 201, r.text
    return sign_in(srv.http_url, username, password, new_password="Changed-" + password).access_token


def test_a_revoked_key_fails_on_the_very_next_request(srv: YunyingServer) -> None:
    with admin(srv) as c:
        made = c.post("/api/admin/api-keys", json={"name": "ris", "scopes": ["dicomweb.read"]}).json()
        url = srv.dicomweb_url + "/studies"
        assert plain.get(url, headers=bearer(made["key"])).status_code == 200
        assert plain.get(url, headers=bearer(made["key"])).status_code == 200  # cached now
        listed = c.get("/api/admin/api-keys").json()
        assert all("key_hash" not in k and "key" not in k for k in listed)
        assert c.delete(f"/api/admin/api-keys/{made['id']}").status_code == 200
    resp = plain.get(url, headers=bearer(made["key"]))
    assert resp.status_code == 401 and 'error="invalid_token"' in resp.headers["www-authenticate"]


def test_a_read_key_cannot_write_or_delete_403_insufficient_scope(srv: YunyingServer) -> None:
    with admin(srv) as c:
        key = c.post("/api/admin/api-keys", json={"name": "viewer-ro", "scopes": ["dicomweb.read"]}).json()["key"]
    post = plain.post(srv.dicomweb_url + "/studies", headers=bearer(key), content=b"x")
    assert post.status_code == 403 and 'error="insufficient_scope"' in post.headers["www-authenticate"]
    assert plain.delete(srv.dicomweb_url + "/studies/1.2.3", headers=bearer(key)).status_code == 403
    assert plain.get(srv.http_url + "/api/admin/users", headers=bearer(key)).status_code == 403


def test_first_admin_must_change_the_password_and_sees_no_patient_data(srv: YunyingServer) -> None:
    first = login_page_post(srv.http_url, "admin", ADMIN_PASSWORD)
    assert first.status_code == 303 and first.headers["location"].startswith("/login/password?")
    done = sign_in(srv.http_url, "admin", ADMIN_PASSWORD, new_password="Chief-pw-456")
    assert done.steps == ["/login/password", "/login/totp/setup"]  # a super admin must set up TOTP
    assert login_page_post(srv.http_url, "admin", ADMIN_PASSWORD).status_code == 401
    fresh = done.access_token
    assert plain.get(srv.http_url + "/api/admin/users", headers=bearer(fresh)).status_code == 200
    assert plain.get(srv.dicomweb_url + "/studies", headers=bearer(fresh)).status_code == 403
    glass = plain.post(srv.http_url + "/api/auth/break-glass", headers=bearer(fresh),
                       json={"reason": "emergency: patient in ER, PACS down", "minutes": 5})
    assert glass.status_code == 201
    # the login session is still on: the page gets a token at once, now with the opened scope
    again = sign_in(srv.http_url, "admin", "", http=done.http)
    assert again.steps == [] and plain.get(srv.dicomweb_url + "/studies", headers=again.headers).status_code == 200
    me = plain.get(srv.http_url + "/api/auth/me", headers=again.headers).json()
    assert me["visibility"]["everything"] is True


def test_a_disabled_user_fails_on_the_very_next_request(srv: YunyingServer) -> None:
    token = make_user(srv, "dr.li", [{"role": "doctor"}])
    assert plain.get(srv.dicomweb_url + "/studies", headers=bearer(token)).status_code == 200
    with admin(srv) as c:
        assert c.patch("/api/admin/users/dr.li", json={"disabled": True}).status_code == 200
    assert plain.get(srv.dicomweb_url + "/studies", headers=bearer(token)).status_code == 401
    assert login_page_post(srv.http_url, "dr.li", "Changed-a-good-password-1").status_code == 401


def test_disabling_through_the_cli_reaches_the_running_server(srv: YunyingServer) -> None:
    token = make_user(srv, "dr.wang", [{"role": "radiologist", "level": "reviewing"}])
    assert plain.get(srv.dicomweb_url + "/studies", headers=bearer(token)).status_code == 200
    done = subprocess.run([sys.executable, "-m", "yunying.cli", "users", "disable", "dr.wang",
                           "--data", str(srv.data_dir)], check=False, cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=60, env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert plain.get(srv.dicomweb_url + "/studies", headers=bearer(token)).status_code == 401


def test_separation_of_duties_on_roles_and_assignments(srv: YunyingServer) -> None:
    with admin(srv) as c:
        both = c.post("/api/admin/roles", json={"name": "overseer", "permissions": ["users.manage", "audit.read"]})
        assert both.status_code == 403 and "audit" in both.json()["error"]
        assert c.post("/api/admin/users", json={"username": "hadmin", "roles": [{"role": "hospital_admin"}]}
                      ).status_code == 201
        clash = c.put("/api/admin/users/hadmin/roles/default/audit_admin")
        assert clash.status_code == 403, clash.text
        assert c.post("/api/admin/roles", json={"name": "viewer2", "permissions": ["dicomweb.read"]}).status_code == 201
        widen = c.put("/api/admin/roles/hospital_admin", json={"permissions": ["users.manage", "audit.read"]})
        assert widen.status_code == 403
        assert [r["name"] for r in c.get("/api/admin/roles", params={"q": "RADIO"}).json()] == ["radiologist"]
        assert c.post("/api/admin/roles", json={"name": "x", "permissions": ["fly"]}).status_code == 400


def test_a_hospital_admin_stays_in_their_hospital(srv: YunyingServer) -> None:
    with admin(srv) as c:
        assert c.post("/api/admin/hospitals", json={"id": "h2", "name": "Second"}).status_code == 201
    token = make_user(srv, "h2admin", [{"role": "hospital_admin"}], hospital="h2")
    h = bearer(token)
    base = srv.http_url + "/api/admin"
    assert plain.get(base + "/users", headers=h).status_code == 200
    assert all(u["hospital_id"] == "h2" for u in plain.get(base + "/users", headers=h).json())
    assert plain.get(base + "/users", params={"hospital": "default"}, headers=h).status_code == 403
    assert plain.get(base + "/users/admin", headers=h).status_code == 403
    assert plain.post(base + "/users", headers=h, json={"username": "boss", "roles": [{"role": "super_admin"}]}
                      ).status_code == 403
    made = plain.post(base + "/users", headers=h, json={"username": "dr.zhao", "roles": [{"role": "doctor"}]})
    assert made.status_code == 201 and len(made.json()["one_time_password"]) >= 12
    assert plain.get(srv.dicomweb_url + "/studies", headers=h).status_code == 403  # no image permission


@pytest.mark.parametrize("body", [b"not json", b"[1]", b'{"token": 5}', b"{}"])
def test_bad_exchange_bodies_are_400(srv: YunyingServer, body: bytes) -> None:
    assert plain.post(srv.http_url + "/api/auth/exchange", content=body).status_code == 400


@pytest.mark.parametrize("path", ["/api/auth/login", "/api/auth/password"])
def test_no_password_endpoint_beside_the_login_page(srv: YunyingServer, path: str) -> None:
    """Passwords are checked only by /login (policy, lockout, second factor): these are gone."""
    resp = plain.post(srv.http_url + path, json={"username": "admin", "password": ADMIN_PASSWORD})
    assert resp.status_code in (401, 404)


def test_data_folder_keeps_no_secret(srv: YunyingServer) -> None:
    raw = b"".join(p.read_bytes() for p in Path(srv.data_dir).glob("app.sqlite*"))
    assert srv.api_key.encode() not in raw and ADMIN_PASSWORD.encode() not in raw


def test_a_grant_shares_a_study_with_a_user_until_revoked(srv: YunyingServer) -> None:
    study = "1.2.840.99.1"
    body, ctype = multipart(part10(make_ct(study)))
    assert plain.post(srv.dicomweb_url + "/studies", content=body,
                      headers={"Content-Type": ctype, **srv.headers}).status_code == 200
    token = make_user(srv, "dr.guest", [{"role": "qc_expert"}])
    h = bearer(token)
    me = plain.get(srv.http_url + "/api/auth/me", headers=h).json()
    assert me["visibility"]["studies"] == []
    with admin(srv) as c:
        made = c.post("/api/admin/grants", json={"study": "1.2.840.99.1", "username": "dr.guest", "expires_in": 600})
        assert made.status_code == 201, made.text
        assert plain.get(srv.http_url + "/api/auth/me", headers=h).json()["visibility"]["studies"] == ["1.2.840.99.1"]
        assert c.post("/api/admin/grants", json={"study": "1.2.3", "username": "nobody"}).status_code == 404
        unknown = c.post("/api/admin/grants", json={"study": "1.2.840.99.404", "username": "dr.guest"})
        assert unknown.status_code == 404  # not stored, or outside the sharer's scope: the same answer
        assert c.post("/api/admin/grants", json={"study": "1.2.3"}).status_code == 400
        assert c.delete(f"/api/admin/grants/{made.json()['id']}").status_code == 200
    assert plain.get(srv.http_url + "/api/auth/me", headers=h).json()["visibility"]["studies"] == []


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/api/admin/roles", {"name": "r1", "permissions": [1, {"a": 2}]}),
    ("POST", "/api/admin/roles", {"name": "bad name!", "permissions": []}),
    ("POST", "/api/admin/users", {"username": "u1", "department_id": 99999}),
    ("POST", "/api/admin/users", {"username": "u2", "roles": [{"role": "radiologist", "level": ["x"]}]}),
    ("POST", "/api/admin/users", {"username": "u3", "roles": "doctor"}),
    ("PATCH", "/api/admin/users/admin", {"department_id": 99999}),
    ("PATCH", "/api/admin/users/admin", {"disabled": "yes"}),
    ("PATCH", "/api/admin/users/admin", {"password_hash": "x"}),
    ("POST", "/api/admin/capability-tokens", {"studies": ["1.2"], "permissions": 5}),
    ("POST", "/api/admin/capability-tokens", {"studies": ["1.2"], "kind": ["share"]}),
    ("POST", "/api/admin/capability-tokens", {"studies": ["1.2"], "expires_in": "soon"}),
    ("POST", "/api/admin/api-keys", {"name": "k", "scopes": "dicomweb.read"}),
    ("POST", "/api/admin/api-keys", {"name": "k", "scopes": ["root"]}),
    ("POST", "/api/admin/hospitals", {"id": 5}),
    ("POST", "/api/admin/hospitals/nowhere/departments", {"name": "Radiology"}),
    ("PUT", "/api/admin/users/nobody/roles/default/doctor", {}),
    ("PUT", "/api/admin/users/admin/roles/default/no_such_role", {}),
    ("DELETE", "/api/admin/grants/abc", None),
    ("GET", "/api/admin/registrations/r_x/photos/abc", None),
    ("POST", "/api/auth/register", {"username": "x", "photos": "no"}),
    ("POST", "/api/auth/exchange", {"token": ["x"]}),
])
def test_bad_admin_requests_are_4xx_never_5xx(srv: YunyingServer, method: str, path: str, body: object) -> None:
    resp = plain.request(method, srv.http_url + path, json=body, headers=srv.headers)
    assert 400 <= resp.status_code < 500, (resp.status_code, resp.text)
    assert set(resp.json()) == {"status", "error"}


def test_password_guessing_locks_the_username(srv: YunyingServer) -> None:
    make_user(srv, "dr.guess", [{"role": "doctor"}])
    for _ in range(4):
        assert login_page_post(srv.http_url, "dr.guess", "not-the-password").status_code == 401
    assert login_page_post(srv.http_url, "dr.guess", "not-the-password").status_code == 423  # the fifth locks
    locked = login_page_post(srv.http_url, "dr.guess", "Changed-a-good-password-1")
    assert locked.status_code == 423 and int(locked.headers["retry-after"]) > 14 * 60
    with admin(srv) as c:
        reset = c.post("/api/admin/users/dr.guess/password").json()["one_time_password"]
    unlocked = login_page_post(srv.http_url, "dr.guess", reset)  # an admin's reset unlocks it
    assert unlocked.status_code == 303 and unlocked.headers["location"].startswith("/login/password?")


def test_a_department_admin_acts_on_their_own_department_only(srv: YunyingServer) -> None:
    with admin(srv) as c:
        radiology = c.post("/api/admin/hospitals/default/departments", json={"name": "放射科"}).json()["id"]
        cardiology = c.post("/api/admin/hospitals/default/departments", json={"name": "心内科"}).json()["id"]
        for name, dep in (("dr.r", radiology), ("dr.c", cardiology)):
            assert c.post("/api/admin/users", json={"username": name, "department_id": dep,
                                                    "roles": [{"role": "doctor"}]}).status_code == 201
        assert c.post("/api/admin/users", json={"username": "dep.admin", "department_id": radiology,
                                                "password": "a-good-password-1",
                                                "roles": [{"role": "department_admin"}]}).status_code == 201
    h = sign_in(srv.http_url, "dep.admin", "a-good-password-1", new_password="Dept-Admin-pw-9").headers
    base = srv.http_url + "/api/admin"
    listed = {u["username"] for u in plain.get(base + "/users", headers=h).json()}
    assert "dr.r" in listed and "dr.c" not in listed and "admin" not in listed
    assert plain.get(base + "/users/dr.r", headers=h).status_code == 200
    assert plain.get(base + "/users/dr.c", headers=h).status_code == 403
    assert plain.request("PATCH", base + "/users/dr.c", headers=h, json={"disabled": True}).status_code == 403
    assert plain.post(base + "/users/dr.c/password", headers=h).status_code == 403
    assert plain.request("PATCH", base + "/users/dr.r", headers=h, json={"department_id": cardiology}).status_code == 403
    assert plain.post(base + "/users", headers=h, json={"username": "dr.c2", "department_id": cardiology,
                                                        "roles": [{"role": "doctor"}]}).status_code == 403
    made = plain.post(base + "/users", headers=h, json={"username": "dr.r2", "roles": [{"role": "doctor"}]})
    assert made.status_code == 201  # into the admin's own department
    assert plain.get(base + "/users/dr.r2", headers=h).json()["department_id"] == radiology
    assert plain.request("PUT", base + "/users/dr.r2/roles/default/hospital_admin", headers=h).status_code == 403
    assert plain.post(base + "/hospitals/default/departments", headers=h, json={"name": "X"}).status_code == 403
    assert plain.post(base + "/users/dr.r/password", headers=h).status_code == 200
