"""No portal route answers 5xx to malformed input, whoever asks."""
from __future__ import annotations

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.net import YunyingServer
from tests.portal.test_shares_api import signed_in

BODIES: list[object] = [
    b"", b"{", b"[]", b"null", b'"x"', {}, {"exam": 5}, {"exam": None}, {"exam": ["a"]}, {"phone": 138},
    {"exam": "ycap_x", "phone": "x" * 5000}, {"study": 1}, {"study": "1.2", "hours": "24"}, {"hours": True},
    {"token": {}}, {"code": 123456, "phone": "13800138000"}, {"format": 3}, {"renew": "yes", "study": "1.2"},
    {"id_number": 1, "name": 2, "exam": "ycap_x"}, {"date": 20240101, "hospital": [], "accession": {}},
    {"study": "\u0000\ud7ff", "on": "false"},
]
ROUTES = ["exams", "delivery", "console/access", "verify/exam", "verify/send", "verify/sms", "verify/id", "verify/share", "shares",
          "downloads", "me/exams"]


def test_no_portal_route_answers_5xx(srv: YunyingServer) -> None:
    _, patient = signed_in(srv, "13800000999")
    with httpx.Client(base_url=srv.http_url, timeout=30) as client:
        for headers in ({}, srv.headers, patient):  # anonymous, the system key, a patient
            for route in ROUTES:
                for body in BODIES:
                    kwargs = {"content": body} if isinstance(body, bytes) else {"json": body}
                    r = client.post(f"/api/portal/{route}", headers=headers, **kwargs)
                    assert r.status_code < 500, (route, body, r.status_code, r.text)
            for path in ("film", "film?study=", "film?study=1.2&format=x", "film?study=1.2&layout=axb",
                         "downloads/d_nope", "me", "shares", "console/report", "console/report?study=%00",
                         "console/exams?limit=x", "console/stats?format=x"):
                r = client.get(f"/api/portal/{path}", headers=headers)
                assert r.status_code < 500, (path, r.status_code, r.text)
            assert client.delete("/api/portal/shares/c_nope", headers=headers).status_code < 500


FIELDS = ("accession", "name", "sex", "age", "visit", "modality", "body_part", "date", "limit", "format")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(FIELDS), st.text(max_size=70), max_size=4))
def test_no_console_search_answers_5xx(srv: YunyingServer, params: dict[str, str]) -> None:
    r = httpx.get(srv.http_url + "/api/portal/console/exams", params=params, headers=srv.headers, timeout=30)
    assert r.status_code in (200, 400), (params, r.status_code, r.text)
