"""Reports on the patient's page: only released (VERIFIED) Encapsulated PDF reports are shown; an
amended one replaces the earlier and says so; the PDF opens from the archive (Chromium, 390x844)."""
from __future__ import annotations

from typing import Any

import httpx
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from benchmarks.net import YunyingServer
from tests.dicomweb.helpers import multipart, part10
from tests.frontends.conftest import PHONE as PHONE_CONTEXT
from tests.portal.conftest import issue, store_study, verify_by_sms

PDF_CLASS = "1.2.840.10008.5.1.4.1.1.104.1"


def pdf_report(study: str, flag: str, text: str, time: str) -> pydicom.Dataset:
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = PDF_CLASS, generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, generate_uid()
    ds.PatientName, ds.PatientID, ds.Modality = "Zhang^San", "P1", "DOC"
    ds.ContentDate, ds.ContentTime, ds.VerificationFlag, ds.CompletionFlag = "20240102", time, flag, "COMPLETE"
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    body = f"%PDF-1.4\n% {text}\n%%EOF\n".encode()
    ds.EncapsulatedDocument = body + (b"\0" if len(body) % 2 else b"")
    return ds


def stow(srv: YunyingServer, ds: pydicom.Dataset) -> None:
    body, ctype = multipart(part10(ds))
    r = httpx.post(srv.dicomweb_url + "/studies", content=body, headers={"Content-Type": ctype, **srv.headers})
    assert r.status_code == 200, r.text


# The blob a page makes, kept to be read back: fetch(blob:) is a connection, which the pages' CSP
# refuses (connect-src 'self'); Blob.text() is not
KEEP_BLOBS = """{
  const make = URL.createObjectURL;
  window.keptBlobs = {};
  URL.createObjectURL = (blob) => { const url = make(blob); window.keptBlobs[url] = blob; return url; };
}"""


def test_only_released_reports_and_the_amended_one_wins(open_page: Any, srv: YunyingServer) -> None:
    phone = "13200000001"
    study = store_study(srv)
    stow(srv, pdf_report(study, "UNVERIFIED", "draft", "090000"))
    url = issue(srv, study=study, phone=phone).json()["url"]
    p = open_page(**PHONE_CONTEXT, locale="en")
    page = p.page
    page.add_init_script(KEEP_BLOBS)
    verify_by_sms(page, srv, url, phone)
    assert "Images ready" in page.inner_text(".exam") and page.query_selector(".exam .report") is None

    stow(srv, pdf_report(study, "VERIFIED", "final one", "100000"))
    stow(srv, pdf_report(study, "VERIFIED", "amended two", "110000"))
    page.reload()
    page.wait_for_selector("#home:not([hidden]) .exam .report")
    assert "Report ready" in page.inner_text(".exam .status")
    assert page.inner_text(".exam .report") == "Report (amended)"
    with page.expect_popup() as popup:
        page.tap(".exam .report")
    tab = popup.value
    tab.wait_for_function("location.href.startsWith('blob:')")
    text = page.evaluate("(url) => window.keptBlobs[url].text()", tab.url)
    assert "amended two" in text and "draft" not in text
    # these PDFs are a few bytes PDFium cannot draw (422), so the file itself opened: see test_report_pages.py
    assert not [e for e in p.errors if "status of 422" not in e], p.errors


def code(meaning: str) -> pydicom.Dataset:
    c = pydicom.Dataset()
    c.CodeValue, c.CodingSchemeDesignator, c.CodeMeaning = "121070", "DCM", meaning
    return c


def text_sr(study: str, impression: str) -> pydicom.Dataset:
    """A Basic Text SR (PS3.3 A.35.1): a titled container holding one TEXT item."""
    ds = pdf_report(study, "VERIFIED", "-", "120000")
    del ds.EncapsulatedDocument, ds.MIMETypeOfEncapsulatedDocument
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID, ds.Modality = "1.2.840.10008.5.1.4.1.1.88.11", "SR"
    ds.ValueType, ds.ContinuityOfContent = "CONTAINER", "SEPARATE"
    ds.ConceptNameCodeSequence = [code("影像诊断报告")]
    item = pydicom.Dataset()
    item.RelationshipType, item.ValueType, item.TextValue = "CONTAINS", "TEXT", impression
    item.ConceptNameCodeSequence = [code("印象")]
    ds.ContentSequence = [item]
    return ds


def test_a_structured_report_is_shown_as_text(open_page: Any, srv: YunyingServer) -> None:
    phone = "13200000002"
    study = store_study(srv)
    stow(srv, text_sr(study, "右肺上叶小结节，建议随访。<b>x</b>"))
    url = issue(srv, study=study, phone=phone).json()["url"]
    p = open_page(**PHONE_CONTEXT, locale="zh-CN")
    page = p.page
    verify_by_sms(page, srv, url, phone)
    page.wait_for_selector("#home:not([hidden]) .exam .report")
    assert "报告已出" in page.inner_text(".exam .status")
    page.tap(".exam .report")
    page.wait_for_selector(".exam .sr h3")
    text = page.inner_text(".exam .sr")
    assert "影像诊断报告" in text and "右肺上叶小结节，建议随访。<b>x</b>" in text  # shown as text, never markup
    assert page.query_selector(".exam .sr b") is None
    assert not p.errors, p.errors
