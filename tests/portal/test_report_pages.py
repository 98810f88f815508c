"""PDF reports shown as images of their pages (issue 14 parts 3 and 9): the pages' CSP keeps the
browser's PDF viewer out and WeChat shows no PDF, so the server draws the pages (PDFium). Tested
with a real PDF, in Chromium with the pages' CSP enforced, and the refusals."""
from __future__ import annotations

import io
from typing import Any

import httpx
from PIL import Image, ImageDraw

from benchmarks.net import YunyingServer
from tests.frontends.conftest import PHONE as PHONE_CONTEXT
from tests.portal.conftest import api, issue, last_code, store_study, verify_by_sms
from tests.portal.test_reports import pdf_report, stow


def real_pdf(pages: int = 2) -> bytes:
    """A PDF whose first page has a black bar across its top third (Pillow writes it)."""
    sheets = []
    for n in range(pages):
        im = Image.new("RGB", (850, 1100), "white")
        ImageDraw.Draw(im).rectangle((100, 100 + 300 * n, 750, 300 + 300 * n), fill="black")
        sheets.append(im)
    out = io.BytesIO()
    sheets[0].save(out, "PDF", resolution=100, save_all=True, append_images=sheets[1:])
    return out.getvalue()


def with_pdf(study: str, flag: str, pdf: bytes, time: str) -> Any:
    ds = pdf_report(study, flag, "-", time)
    ds.EncapsulatedDocument = pdf + (b"\0" if len(pdf) % 2 else b"")
    return ds


def test_report_pages_as_png_for_the_console_and_the_patient(open_page: Any, srv: YunyingServer) -> None:
    phone = "13200000077"
    study = store_study(srv, accession="PAGES-1")
    draft, final, broken = (with_pdf(study, "UNVERIFIED", real_pdf(), "090000"),
                            with_pdf(study, "VERIFIED", real_pdf(), "100000"),
                            pdf_report(study, "VERIFIED", "not drawable", "080000"))
    for ds in (broken, draft, final):  # the console previews the newest (ContentDate, ContentTime)
        stow(srv, ds)

    def console(**params: str) -> httpx.Response:
        return httpx.get(srv.http_url + "/api/portal/console/report", params={"study": study, **params},
                         headers=srv.headers)
    first = console(page="1", width="425")
    assert first.status_code == 200 and first.headers["content-type"] == "image/png", first.text
    assert first.headers["x-page-count"] == "2"
    image = Image.open(io.BytesIO(first.content)).convert("L")
    assert image.width == 425
    bar, paper = image.getpixel((212, 100)), image.getpixel((212, 400))
    assert isinstance(bar, int) and isinstance(paper, int) and bar < 50 and paper > 200  # the bar, then paper
    assert console(page="3").status_code == 404
    for bad in ({"page": "0"}, {"page": "x"}, {"page": "1", "width": "50"}):
        r = console(**bad)
        assert r.status_code == 400 and r.json()["error"], bad
    assert console().headers["content-type"] == "application/pdf"  # without a page: the PDF itself

    token = issue(srv, study=study, phone=phone).json()["token"]
    api(srv, "verify/send", {"exam": token, "phone": phone})
    bearer = {"Authorization": "Bearer " + api(srv, "verify/sms", {"exam": token, "phone": phone,
                                                                   "code": last_code(srv, phone)}).json()["access_token"]}

    def page(sop: str, headers: dict[str, str], the_study: str = study) -> httpx.Response:
        return httpx.get(srv.http_url + "/api/portal/report/page", params={"study": the_study, "sop": sop, "page": "2"},
                         headers=headers)
    assert page(final.SOPInstanceUID, bearer).status_code == 200
    assert page(draft.SOPInstanceUID, bearer).status_code == 404  # not released: not for the patient
    assert page(draft.SOPInstanceUID, srv.headers).status_code == 200  # staff see drafts
    assert page(broken.SOPInstanceUID, bearer).status_code == 422
    other = store_study(srv, accession="PAGES-2")
    assert page(final.SOPInstanceUID, bearer, other).status_code == 404  # a study the token does not see
    assert page(final.SOPInstanceUID, {}).status_code == 401

    # the patient's phone (the pages' Content-Security-Policy enforced, as for every page test);
    # the newest released report is the drawable one
    p = open_page(**PHONE_CONTEXT, locale="en-US")
    web = p.page
    phone = "13200000078"  # the first phone's next code is a minute away: the exam's contact changes
    verify_by_sms(web, srv, issue(srv, study=study, phone=phone).json()["url"], phone)
    web.wait_for_selector("#home:not([hidden]) .exam .report")
    web.tap(".exam .report")
    web.locator(".report-pages img.pdf-page").nth(1).wait_for()
    web.wait_for_load_state("load")
    sizes = web.eval_on_selector_all(".report-pages img.pdf-page", "imgs => imgs.map(i => i.naturalWidth)")
    assert len(sizes) == 2 and all(w >= 400 for w in sizes), sizes
    assert web.evaluate("document.documentElement.scrollWidth") <= 390
    assert not p.errors, p.errors
