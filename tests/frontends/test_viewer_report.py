"""The study's report inside the viewer: a RIS's PDF (stored through the FHIR route as
Encapsulated PDF) opens as the PDF, a structured report's text shows in the panel; the viewer's
own measurement SR is not listed; no report, no button; patient mode has none."""
from __future__ import annotations

import base64
import io
from typing import Any

import httpx
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from benchmarks.net import YunyingServer
from tests.frontends.conftest import DESKTOP, PHONE, press
from tests.frontends.phantom import store_ct, stow
from tests.frontends.test_viewer import drag_image, opened, url
from tests.portal.test_report_pages import real_pdf


def text_sr(study: str, text: str) -> bytes:
    """A Basic Text SR (draft) with one finding."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.88.11")
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, generate_uid()
    ds.PatientID, ds.PatientName, ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "P-REPORT", "Report^Test", "SR", 50, 1
    ds.ContentDate, ds.ContentTime = "20240302", "101500"
    ds.ValueType, ds.ContinuityOfContent = "CONTAINER", "SEPARATE"
    ds.CompletionFlag, ds.VerificationFlag = "COMPLETE", "UNVERIFIED"
    title = Dataset()
    title.CodeValue, title.CodingSchemeDesignator, title.CodeMeaning = "18748-4", "LN", "Diagnostic imaging report"
    ds.ConceptNameCodeSequence = [title]
    finding = Dataset()
    finding.RelationshipType, finding.ValueType, finding.TextValue = "CONTAINS", "TEXT", text
    name = Dataset()
    name.CodeValue, name.CodingSchemeDesignator, name.CodeMeaning = "121071", "DCM", "Finding"
    finding.ConceptNameCodeSequence = [name]
    ds.ContentSequence = [finding]
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def test_pdf_and_text_reports_open_in_the_viewer(open_page: Any, archive: YunyingServer) -> None:
    study = store_ct(archive, 1, 64, patient_id="P-REPORT")[0]
    fhir = {"resourceType": "DiagnosticReport", "status": "final", "issued": "2024-03-01T09:00:00",
            "imagingStudy": [{"identifier": {"system": "urn:dicom:uid", "value": f"urn:oid:{study}"}}],
            "presentedForm": [{"contentType": "application/pdf", "data": base64.b64encode(real_pdf(2)).decode(), "title": "CT chest"}]}
    assert httpx.post(f"{archive.http_url}/api/portal/fhir/DiagnosticReport", json=fhir, headers=archive.headers).status_code == 201
    stow(archive, [text_sr(study, "右肺上叶小结节，建议随访。")])
    p = open_page(**DESKTOP)
    page = opened(p.page, url(archive, study, "&lang=en"))
    press(page, "#tool-length")  # a measurement report of our own: not a report
    drag_image(page, (10, 20), (50, 20))
    press(page, "#save")
    page.wait_for_function("document.querySelector('#status').innerText.includes('saved')", timeout=30000)
    page.reload()
    page.wait_for_selector("#report-open:not([hidden])", state="attached", timeout=30000)  # in the Study menu
    press(page, "#report-open")
    page.wait_for_function("document.querySelectorAll('#report .report-entry').length === 2")  # filled after a module load
    entries = page.locator("#report .report-entry").all_inner_texts()
    assert entries == ["2024-03-02 · Diagnostic imaging report · draft", "2024-03-01 · CT chest"]
    page.click("#report .report-entry >> nth=0")
    page.wait_for_selector("#report .sr")
    assert "右肺上叶小结节，建议随访。" in page.inner_text("#report .sr")
    page.click("#report .report-entry >> nth=1")  # the PDF's pages, drawn by the server, in place
    page.wait_for_function("[...document.querySelectorAll('#report img.pdf-page')].filter(i => i.complete && i.naturalWidth > 0).length === 2",
                           timeout=30000)
    assert page.locator("#report img.pdf-page").first.get_attribute("alt") == "1 / 2"
    page.click("#report .close")
    assert not page.is_visible("#report")
    assert not p.errors, p.errors


def test_no_report_no_button_and_patient_mode_has_none(open_page: Any, archive: YunyingServer) -> None:
    study = store_ct(archive, 1, 64)[0]
    p = open_page(**PHONE)
    page = opened(p.page, url(archive, study))
    page.wait_for_timeout(500)  # the reports' QIDO has answered
    assert page.locator("#report-open").count() == 1 and page.get_attribute("#report-open", "hidden") is not None
    patient = open_page(**PHONE)
    page = opened(patient.page, url(archive, study, "&mode=patient"))
    assert page.locator("#report-open").count() == 0
    assert not p.errors and not patient.errors
