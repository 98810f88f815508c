"""A study shared with a colleague (or their department) counts on the colleague's very next
request, with the token they already hold, and stops on the very next request once revoked or
expired: QIDO-RS and WADO-RS (metadata, frames). DIMSE peers are AE titles mapped to hospitals,
never to users, so C-FIND has no grants to follow (issue 11 part 4).
"""
from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from benchmarks.net import YunyingServer
from tests.auth import plain
from tests.auth.test_access import admin, bearer, make_user
from tests.conftest import start_with_env
from tests.frontends.phantom import store_ct


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[YunyingServer]:
    s = start_with_env(tmp_path_factory.mktemp("grants") / "data", YUNYING_ADMIN_PASSWORD="first-admin-pw-123")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def study(srv: YunyingServer) -> tuple[str, str, str]:
    """A default-hospital CT: (study, series, first instance)."""
    study, series = store_ct(srv, 2, 32)
    sops = plain.get(f"{srv.dicomweb_url}/studies/{study}/series/{series}/instances", headers=srv.headers).json()
    return study, series, sops[0]["00080018"]["Value"][0]


def reads(srv: YunyingServer, token: str, uids: tuple[str, str, str]) -> list[int]:
    """The statuses of a QIDO search (404: answered without the study), the study's, series' and
    instance's metadata, the rendered instance and one frame, with `token`."""
    study, series, sop = uids
    h = bearer(token)
    found = plain.get(f"{srv.dicomweb_url}/studies", params={"StudyInstanceUID": study}, headers=h)
    # a search that does not find the study counts as its 404
    listed = found.status_code if found.status_code not in (200, 204) else 200 if study in found.text else 404
    instance = f"{srv.dicomweb_url}/studies/{study}/series/{series}/instances/{sop}"
    at_every_level = [plain.get(url, headers=h).status_code for url in (
        f"{srv.dicomweb_url}/studies/{study}/metadata", f"{srv.dicomweb_url}/studies/{study}/series/{series}/metadata",
        f"{instance}/metadata", f"{instance}/rendered")]
    frame = plain.get(f"{instance}/frames/1",
                      headers={**h, "Accept": "multipart/related; type=application/octet-stream"}).status_code
    return [listed, *at_every_level, frame]


def department(srv: YunyingServer, hospital: str, name: str) -> int:
    with admin(srv) as c:
        made = c.post(f"/api/admin/hospitals/{hospital}/departments", json={"name": name})
        assert made.status_code == 201, made.text
        return int(made.json()["id"])


def test_a_share_made_after_sign_in_counts_at_once_and_its_revocation_too(
        srv: YunyingServer, study: tuple[str, str, str]) -> None:
    dept = department(srv, "default", "Cardiology")
    sharer = make_user(srv, "dr.sharer", [{"role": "doctor"}], department_id=dept)
    trainee = make_user(srv, "dr.trainee", [], department_id=dept)  # signed in before the share, no reading role
    assert reads(srv, trainee, study) == [403] * 6
    made = plain.post(srv.http_url + "/api/admin/grants", headers=bearer(sharer),
                      json={"study": study[0], "department_id": dept, "expires_in": 3600})
    assert made.status_code == 201, made.text
    # the same token, no second sign-in (the old code kept the scope the trainee held at sign-in: 403)
    assert reads(srv, trainee, study) == [200] * 6
    other = plain.get(f"{srv.dicomweb_url}/studies", headers=bearer(trainee)).json()
    assert [s["0020000D"]["Value"][0] for s in other] == [study[0]]  # only what was shared
    gone = plain.delete(f"{srv.http_url}/api/admin/grants/{made.json()['id']}", headers=bearer(sharer))
    assert gone.status_code == 200
    assert reads(srv, trainee, study) == [403] * 6


def test_a_grant_to_another_hospitals_doctor_and_department_starts_and_stops_on_the_next_request(
        srv: YunyingServer, study: tuple[str, str, str]) -> None:
    with admin(srv) as c:
        assert c.post("/api/admin/hospitals", json={"id": "h2", "name": "Second"}).status_code == 201
    dept = department(srv, "h2", "Radiology")
    doctor = make_user(srv, "dr.h2", [{"role": "doctor", "hospital": "h2"}], hospital="h2", department_id=dept)
    assert reads(srv, doctor, study) == [404] * 6
    with admin(srv) as c:
        for target in ({"username": "dr.h2"}, {"department_id": dept}):
            made = c.post("/api/admin/grants", json={"study": study[0], **target})
            assert made.status_code == 201, made.text
            assert reads(srv, doctor, study) == [200] * 6
            assert reads(srv, doctor, study) == [200] * 6  # cached by the authorization point now
            assert c.delete(f"/api/admin/grants/{made.json()['id']}").status_code == 200
            assert reads(srv, doctor, study) == [404] * 6  # as if it did not exist

        made = c.post("/api/admin/grants", json={"study": study[0], "department_id": dept, "expires_in": 3})
        assert made.status_code == 201, made.text
    until = time.time() + 3
    assert reads(srv, doctor, study) == [200] * 6  # cached now, for up to 10 s
    time.sleep(max(0.0, until - time.time()) + 1.1)  # expires_at is whole seconds
    # the old code kept serving it from the identity cache for up to 10 s more
    assert reads(srv, doctor, study) == [404] * 6


def test_an_unknown_or_foreign_grant_is_refused_with_a_reason(srv: YunyingServer) -> None:
    made = httpx.post(srv.http_url + "/api/admin/grants", headers=srv.headers,
                      json={"study": "1.2.3", "username": "dr.nobody", "expires_in": 0})
    assert made.status_code == 400 and "expires_in" in made.json()["error"]
