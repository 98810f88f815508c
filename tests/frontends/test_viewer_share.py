"""A doctor shares the open study with their department from the viewer (issue 14 part 6): 24 h,
a colleague of the department who could not see it then finds it (QIDO), the doctor withdraws
it and the colleague is refused again; patient mode has no share action."""
from __future__ import annotations

from typing import Any

import httpx

from benchmarks.net import YunyingServer
from tests.auth.test_access import make_user
from tests.frontends.conftest import DESKTOP, PHONE, press
from tests.frontends.phantom import store_ct
from tests.frontends.test_viewer import opened, url


def viewer_url(server: YunyingServer, study: str, token: str, query: str = "") -> str:
    return f"{server.http_url}/viewer/?study={study}{query}#access_token={token}"


def sees(server: YunyingServer, token: str, study: str) -> int:
    """The colleague's QIDO for the study's series: 200 when shared with them, else refused."""
    return httpx.get(f"{server.dicomweb_url}/studies/{study}/series",
                     headers={"Authorization": f"Bearer {token}"}, timeout=30).status_code


def test_a_doctor_shares_with_the_department_for_24h_and_withdraws(open_page: Any, archive: YunyingServer) -> None:
    study = store_ct(archive, 2, 64, patient_id="P-SHARE")[0]
    made = httpx.post(f"{archive.http_url}/api/admin/hospitals/default/departments", json={"name": "Cardiology"},
                      headers=archive.headers, timeout=30)
    assert made.status_code == 201, made.text
    dept = made.json()["id"]
    doctor = make_user(archive, "dr.a", [{"role": "doctor"}], department_id=dept)
    # reading doctors of a hospital see all its studies; a colleague of the department without a
    # reading role of their own (a trainee) is refused (403) until the study is shared with them
    colleague = make_user(archive, "dr.b", [], department_id=dept)
    me = httpx.get(f"{archive.http_url}/api/auth/me", headers={"Authorization": f"Bearer {doctor}"}, timeout=30).json()
    assert me["department_id"] == dept and "shares.manage" in me["permissions"]
    assert sees(archive, colleague, study) == 403

    p = open_page(**PHONE)
    page = opened(p.page, viewer_url(archive, study, doctor, "&lang=en"))
    press(page, "#share-open")
    page.wait_for_selector(".share-none")
    page.click("#share-24h")
    row = page.wait_for_selector(".share-row")
    assert "My department" in row.inner_text() and "until" in row.inner_text()
    box = page.locator("#share").bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390  # fits the phone
    # the colleague's token from before the share sees it now, without a second sign-in
    assert sees(archive, colleague, study) == 200
    grants = httpx.get(f"{archive.http_url}/api/admin/grants", headers={"Authorization": f"Bearer {doctor}"}, timeout=30).json()
    mine = [g for g in grants if g["study_uid"] == study]
    assert len(mine) == 1 and mine[0]["department_id"] == dept
    assert 24 * 3600 - 120 <= mine[0]["expires_at"] - mine[0]["created_at"] <= 24 * 3600

    page.click(".share-withdraw")
    page.wait_for_selector(".share-none")
    assert sees(archive, colleague, study) == 403
    assert not p.errors, p.errors

    # a named colleague, 72 h, on a desktop in Chinese
    d = open_page(**DESKTOP)
    page = opened(d.page, viewer_url(archive, study, doctor, "&lang=zh-CN"))
    press(page, "#share-open")
    page.fill("#share-user", "dr.b")
    page.click("#share-72h")
    row = page.wait_for_selector(".share-row")
    assert "dr.b" in row.inner_text() and "有效至" in row.inner_text()
    assert sees(archive, colleague, study) == 200
    page.fill("#share-user", "nobody")
    page.click("#share-24h")
    page.wait_for_selector(".share-message.error")  # an unknown colleague: the archive's reason, nothing shared
    assert page.locator(".share-row").count() == 1
    page.click(".share-withdraw")
    page.wait_for_selector(".share-none")
    assert sees(archive, colleague, study) == 403


def test_patient_mode_has_no_share_action(open_page: Any, archive: YunyingServer) -> None:
    study = store_ct(archive, 1, 64, patient_id="P-SHARE2")[0]
    p = open_page(**PHONE)
    page = opened(p.page, url(archive, study, "&mode=patient"))
    assert page.locator("#share-open").count() == 0
    doctor = opened(open_page(**PHONE).page, url(archive, study))
    assert doctor.locator("#share-open").count() == 1  # the same study, a doctor's key: the action is there
