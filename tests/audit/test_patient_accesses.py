"""A patient sees who opened their exams (issue 12 part 3, the list the portal shows): through
the portal's sign-in (SMS code), against a real server with the trail on."""
from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from benchmarks.net import YunyingServer, start_yunying
from tests.portal.conftest import api, issue, last_code, store_study

PHONE = "13500001234"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[YunyingServer]:
    s = start_yunying(tmp_path_factory.mktemp("mine") / "data")
    yield s
    s.stop()


def test_a_patient_sees_who_opened_their_exams_and_nothing_else(srv: YunyingServer) -> None:
    mine, not_given = store_study(srv), store_study(srv)  # one patient (P1); only `mine` is delivered
    token = issue(srv, study=mine, phone=PHONE).json()["token"]
    assert api(srv, "verify/send", {"exam": token, "phone": PHONE}).status_code == 200
    session = api(srv, "verify/sms", {"exam": token, "phone": PHONE, "code": last_code(srv, PHONE)}).json()
    patient = {"Authorization": f"Bearer {session['access_token']}"}
    # the hospital's system opens both studies; the patient opens their own
    for study in (mine, not_given):
        assert httpx.get(f"{srv.dicomweb_url}/studies/{study}/metadata", headers=srv.headers).status_code == 200
    assert httpx.get(f"{srv.dicomweb_url}/studies/{mine}/metadata", headers=patient).status_code == 200

    r = httpx.get(srv.http_url + "/api/audit/mine", headers=patient)
    assert r.status_code == 200, r.text
    seen = r.json()
    assert {e["studies"] for e in seen} == {mine}  # never the exam the patient was not given
    metadata = [e for e in seen if e["action"] == "metadata"]
    assert len(metadata) == 2 and metadata[0]["you"] and metadata[0]["who"] == ""  # newest first: the patient
    system = metadata[1]
    assert system["kind"] == "system" and system["who"] == "env:YUNYING_API_KEY" and not system["you"]
    assert any(e["action"] == "store" for e in seen)  # when it was stored, and by whom
    assert all(PHONE not in str(e) for e in seen)


def test_the_list_is_the_patients_alone(srv: YunyingServer) -> None:
    url = srv.http_url + "/api/audit/mine"
    assert httpx.get(url).status_code == 401
    other = httpx.get(url, headers=srv.headers)  # a system key is no patient
    assert other.status_code == 403 and set(other.json()) == {"status", "error"}
    assert httpx.get(url, headers={"Authorization": "Bearer not-a-token"}).status_code == 401
