"""Which HTTP requests leave a record, under which action (the table in README "Audit trail")."""
from __future__ import annotations

import pytest

from yunying.audit.middleware import classify

S = "/dicomweb/studies/1.2/series/1.3/instances/1.4"


@pytest.mark.parametrize("method, path, action", [
    ("GET", "/dicomweb/studies", "query"), ("GET", "/dicomweb/studies/1.2/series", "query"),
    ("GET", "/dicomweb/instances", "query"), ("GET", "/dicomweb/studies/1.2/metadata", "metadata"),
    ("GET", S, "retrieve"), ("GET", "/dicomweb/wado", "retrieve"), ("GET", S + "/frames/1,2", "frames"),
    ("GET", S + "/frames/1/rendered", "rendered"), ("GET", S + "/thumbnail", "thumbnail"),
    ("GET", S + "/bulkdata/7FE00010", "bulkdata"), ("GET", "/dicomweb/studies/1.2/series/1.3/reformat", "reformat"),
    ("POST", "/dicomweb/studies", "store"), ("DELETE", "/dicomweb/studies/1.2", "delete"),
    ("POST", "/api/auth/login", "login"), ("POST", "/api/auth/logout", "logout"),
    ("POST", "/api/admin/users", "admin.change"), ("GET", "/api/audit/records", "audit.read"),
    ("GET", "/api/portal/downloads/x", "download"), ("POST", "/api/portal/shares", "share.create"),
])
def test_recorded_actions(method: str, path: str, action: str) -> None:
    found = classify(method, path)
    assert found is not None and found[0] == action


@pytest.mark.parametrize("method, path", [("GET", "/dicomweb"), ("GET", "/dicomweb/conformance"),
                                          ("OPTIONS", "/dicomweb/studies"), ("GET", "/viewer/main.js"),
                                          ("GET", "/api/admin/users"), ("GET", "/health"),
                                          ("GET", "/api/portal/downloads/d_x/progress")])
def test_no_record_for_what_carries_no_patient_data(method: str, path: str) -> None:
    assert classify(method, path) is None  # (a 401/403 on any of them is still recorded as refused)
