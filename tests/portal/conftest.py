"""A real archive with studies stored through STOW-RS, and helpers for the portal API."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydicom.uid import generate_uid

from benchmarks import portal as portal_bench
from benchmarks.net import YunyingServer, start_yunying
from tests.dicomweb.helpers import make_ct, multipart, part10
from tests.frontends.conftest import open_page  # noqa: F401 - the Chromium page fixture (browser: tests/conftest.py)

PHONE = "13800138000"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[YunyingServer]:
    s = start_yunying(tmp_path_factory.mktemp("portal") / "data")
    yield s
    s.stop()


def store_study(srv: YunyingServer, *, accession: str = "A1", phone: str = "", rows: int = 64) -> str:
    uid = generate_uid()
    ds = make_ct(uid, accession=accession, rows=rows, cols=rows, name="Zhang^San", ideographic="张三", charset="ISO_IR 192")
    if phone:
        ds.PatientTelephoneNumbers = phone
    body, ctype = multipart(part10(ds))
    r = httpx.post(srv.dicomweb_url + "/studies", content=body, headers={"Content-Type": ctype, **srv.headers})
    assert r.status_code == 200, r.text
    return uid


def issue(srv: YunyingServer, **body: object) -> httpx.Response:
    return httpx.post(srv.http_url + "/api/portal/exams", json=body, headers=srv.headers)


def api(srv: YunyingServer, path: str, body: dict, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(srv.http_url + "/api/portal/" + path, json=body, headers=headers)


def last_code(srv: YunyingServer, phone: str = PHONE) -> str:
    """The newest code the file gateway 'sent' to `phone`."""
    return portal_bench.last_code(srv, phone)


def verify_by_sms(page: Any, srv: YunyingServer, url: str, phone: str = PHONE) -> None:
    """On the portal page at `url` (an exam's QR address): the SMS code to `phone`, typed in; the
    exam list shows."""
    page.goto(url)
    page.wait_for_selector("#verify:not([hidden]) #sms-form:not([hidden])")
    assert "#exam" not in page.url
    assert phone[-4:] in page.inner_text("#phone-hint")  # masked: only the last four digits
    assert phone[:7] not in page.content()  # the token left the address bar
    page.fill("#phone", phone)
    page.tap("#send")
    page.wait_for_function("document.querySelector('#send').disabled")
    page.fill("#code", last_code(srv, phone))
    page.tap("#sms-submit")
    page.wait_for_selector("#home:not([hidden]) .exam")
