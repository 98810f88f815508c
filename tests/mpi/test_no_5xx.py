"""No request to the master index or routing APIs ever gets a 5xx (Hypothesis against a real server)."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.net import YunyingServer
from tests.conftest import start_with_env


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[YunyingServer]:
    s = start_with_env(tmp_path_factory.mktemp("fuzz") / "data")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def client(srv: YunyingServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=srv.http_url, headers=srv.headers, timeout=30) as c:
        # something to act on: rule 1, identities 1 and 2, review 1
        assert c.post("/api/routing/rules", json={"name": "r", "destination": {
            "kind": "dicomweb", "url": "http://127.0.0.1:9"}}).status_code == 201
        for issuer, name in (("A", "张伟"), ("B", "章伟")):
            c.post("/api/mpi/observe", json={"source": "his", "issuer": issuer, "patient_id": "1", "name": name,
                                             "sex": "M", "birth_date": "19800101"})
        assert c.get("/api/mpi/reviews").json()["total"] == 1
        yield c


scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False, allow_infinity=False),
                    st.text(max_size=80))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=12), inner, max_size=4)),
                      max_leaves=12)
KEYS = ["name", "enabled", "match", "destination", "syntax", "kind", "aet", "host", "port", "url", "timeout",
        "modalities", "hours", "source", "issuer", "patient_id", "hospital", "sex", "birth_date", "id_number",
        "phone", "person", "study", "reason"]
bodies = st.dictionaries(st.sampled_from(KEYS), values, max_size=6)
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(body=bodies, target=st.sampled_from([
    ("POST", "/api/routing/rules"), ("PUT", "/api/routing/rules/1"), ("POST", "/api/routing/rules/1/send"),
    ("POST", "/api/mpi/observe"), ("POST", "/api/mpi/identities/1/link"), ("POST", "/api/mpi/reviews/1/link")]))
def test_json_bodies(client: httpx.Client, body: dict[str, Any], target: tuple[str, str]) -> None:
    r = client.request(target[0], target[1], json=body)
    assert r.status_code < 500, (target, body, r.text)


@FUZZ
@given(value=st.text(max_size=40), path=st.sampled_from([
    "/api/mpi/identities?q=", "/api/mpi/identities?person=", "/api/mpi/events?identity=", "/api/mpi/reviews?status=",
    "/api/mpi/lookup?IssuerOfPatientID=x&PatientID=", "/api/routing/queue?state=", "/api/routing/queue?rule=",
    "/dicomweb/studies?person=", "/api/mpi/codes?limit="]))
def test_query_values(client: httpx.Client, value: str, path: str) -> None:
    r = client.get(path + quote(value, safe=""))
    assert r.status_code < 500, (path, value, r.text)


@FUZZ
@given(data=st.binary(max_size=300))
def test_code_tables(client: httpx.Client, data: bytes) -> None:
    r = client.post("/api/mpi/codes", content=data)
    assert r.status_code < 500, (data, r.text)
