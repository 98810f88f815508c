"""Identity through a real server: keys, users, first login, separation of duties, break-glass."""
from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from benchmarks.net import REPO_ROOT, YunyingServer
from tests.conftest import start_with_env

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
    return httpx.Client(base_url=srv.http_url, headers=srv.headers, timeout=30)


def login(srv: YunyingServer, username: str, password: str) -> httpx.Response:
    return httpx.post(srv.http_url + "/api/auth/login", json={"username": username, "password": password})


def make_user(srv: YunyingServer, username: str, roles: list[dict], hospital: str = "default",
              password: str = "a-good-password-1") -> str:
    with admin(srv) as c:
        r = c.post("/api/admin/users", json={"username": username, "hospital": hospital, "password": password,
                                             "roles": roles})
        assert r.status_code == 201, r.text
    changed = "changed-" + password
    assert httpx.post(srv.http_url + "/api/auth/password", json={
        "username": username, "password": password, "new_password": changed}).status_code == 200
    return login(srv, username, changed).json()["access_token"]


def test_a_revoked_key_fails_on_the_very_next_request(srv: YunyingServer) -> None:
    with admin(srv) as c:
        made = c.post("/api/admin/api-keys", json={"name": "ris", "scopes": ["dicomweb.read"]}).json()
        url = srv.dicomweb_url + "/studies"
        assert httpx.get(url, headers=bearer(made["key"])).status_code == 200
        assert httpx.get(url, headers=bearer(made["key"])).status_code == 200  # cached now
        listed = c.get("/api/admin/api-keys").json()
        assert all("key_hash" not in k and "key" not in k for k in listed)
        assert c.delete(f"/api/admin/api-keys/{made['id']}").status_code == 200
    resp = httpx.get(url, headers=bearer(made["key"]))
    assert resp.status_code == 401 and 'error="invalid_token"' in resp.headers["www-authenticate"]


def test_a_read_key_cannot_write_or_delete_403_insufficient_scope(srv: YunyingServer) -> None:
    with admin(srv) as c:
        key = c.post("/api/admin/api-keys", json={"name": "viewer-ro", "scopes": ["dicomweb.read"]}).json()["key"]
    post = httpx.post(srv.dicomweb_url + "/studies", headers=bearer(key), content=b"x")
    assert post.status_code == 403 and 'error="insufficient_scope"' in post.headers["www-authenticate"]
    assert httpx.delete(srv.dicomweb_url + "/studies/1.2.3", headers=bearer(key)).status_code == 403
    assert httpx.get(srv.http_url + "/api/admin/users", headers=bearer(key)).status_code == 403


def test_first_admin_must_change_the_password_and_sees_no_patient_data(srv: YunyingServer) -> None:
    token = login(srv, "admin", ADMIN_PASSWORD).json()
    assert token["must_change_password"] is True
    refused = httpx.get(srv.http_url + "/api/admin/users", headers=bearer(token["access_token"]))
    assert refused.status_code == 403 and "password" in refused.json()["error"]
    assert httpx.post(srv.http_url + "/api/auth/password", json={
        "username": "admin", "password": ADMIN_PASSWORD, "new_password": "new-admin-pw-456"}).status_code == 200
    assert login(srv, "admin", ADMIN_PASSWORD).status_code == 401
    fresh = login(srv, "admin", "new-admin-pw-456").json()["access_token"]
    assert httpx.get(srv.http_url + "/api/admin/users", headers=bearer(fresh)).status_code == 200
    assert httpx.get(srv.dicomweb_url + "/studies", headers=bearer(fresh)).status_code == 403
    glass = httpx.post(srv.http_url + "/api/auth/break-glass", headers=bearer(fresh),
                       json={"reason": "emergency: patient in ER, PACS down", "minutes": 5})
    assert glass.status_code == 201
    assert httpx.get(srv.dicomweb_url + "/studies", headers=bearer(fresh)).status_code == 200
    me = httpx.get(srv.http_url + "/api/auth/me", headers=bearer(fresh)).json()
    assert me["visibility"]["everything"] is True


def test_a_disabled_user_fails_on_the_very_next_request(srv: YunyingServer) -> None:
    token = make_user(srv, "dr.li", [{"role": "doctor"}])
    assert httpx.get(srv.dicomweb_url + "/studies", headers=bearer(token)).status_code == 200
    with admin(srv) as c:
        assert c.patch("/api/admin/users/dr.li", json={"disabled": True}).status_code == 200
    assert httpx.get(srv.dicomweb_url + "/studies", headers=bearer(token)).status_code == 401
    assert login(srv, "dr.li", "changed-a-good-password-1").status_code == 401


def test_disabling_through_the_cli_reaches_the_running_server(srv: YunyingServer) -> None:
    token = make_user(srv, "dr.wang", [{"role": "radiologist", "level": "reviewing"}])
    assert httpx.get(srv.dicomweb_url + "/studies", headers=bearer(token)).status_code == 200
    done = subprocess.run([sys.executable, "-m", "yunying.cli", "users", "disable", "dr.wang",
                           "--data", str(srv.data_dir)], check=False, cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=60, env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert httpx.get(srv.dicomweb_url + "/studies", headers=bearer(token)).status_code == 401


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
    assert httpx.get(base + "/users", headers=h).status_code == 200
    assert all(u["hospital_id"] == "h2" for u in httpx.get(base + "/users", headers=h).json())
    assert httpx.get(base + "/users", params={"hospital": "default"}, headers=h).status_code == 403
    assert httpx.get(base + "/users/admin", headers=h).status_code == 403
    assert httpx.post(base + "/users", headers=h, json={"username": "boss", "roles": [{"role": "super_admin"}]}
                      ).status_code == 403
    made = httpx.post(base + "/users", headers=h, json={"username": "dr.zhao", "roles": [{"role": "doctor"}]})
    assert made.status_code == 201 and len(made.json()["one_time_password"]) >= 12
    assert httpx.get(srv.dicomweb_url + "/studies", headers=h).status_code == 403  # no image permission


@pytest.mark.parametrize("body", [b"not json", b"[1]", b'{"username": 5, "password": "x"}', b"{}"])
def test_bad_login_bodies_are_400(srv: YunyingServer, body: bytes) -> None:
    assert httpx.post(srv.http_url + "/api/auth/login", content=body).status_code == 400


def test_data_folder_keeps_no_secret(srv: YunyingServer) -> None:
    raw = b"".join(p.read_bytes() for p in Path(srv.data_dir).glob("app.sqlite*"))
    assert srv.api_key.encode() not in raw and ADMIN_PASSWORD.encode() not in raw
