"""Reports from a RIS as FHIR R4 `DiagnosticReport` (JSON with a PDF in presentedForm), stored
through the archive's one ingest path as an Encapsulated PDF instance in the exam's study (PS3.3
A.45.1), so every face (DICOMweb, DIMSE, the portal) sees the same report.

The exam is named by `imagingStudy` (a logical reference: identifier system "urn:dicom:uid",
value "urn:oid:<StudyInstanceUID>") or by an `identifier` of type ACSN (HL7 v2 table 0203, the
accession number). Status final / amended / corrected / appended -> VerificationFlag VERIFIED
(released to the patient); registered / partial / preliminary -> UNVERIFIED.
"""
from __future__ import annotations

import base64
import binascii
import io
from datetime import datetime
from typing import Any

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from yunying.auth.errors import InvalidRequest

PDF_CLASS = "1.2.840.10008.5.1.4.1.1.104.1"
RELEASED = {"final", "amended", "corrected", "appended"}
DRAFT = {"registered", "partial", "preliminary"}
COPIED = ("SpecificCharacterSet", "PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex",
          "StudyInstanceUID", "StudyDate", "StudyTime", "AccessionNumber", "ReferringPhysicianName", "StudyID",
          "InstitutionName", "PatientAge", "AdmissionID", "StudyDescription")  # the study row takes the newest


def exam_reference(report: dict[str, Any]) -> tuple[str, str]:
    """(study UID, accession) named by the report; one of them may be ""."""
    if report.get("resourceType") != "DiagnosticReport":
        raise InvalidRequest("resourceType: DiagnosticReport expected")
    for ref in report.get("imagingStudy") or []:
        ident = ref.get("identifier") if isinstance(ref, dict) else None
        if isinstance(ident, dict) and ident.get("system") == "urn:dicom:uid" and isinstance(ident.get("value"), str):
            return ident["value"].removeprefix("urn:oid:"), ""
    for ident in report.get("identifier") or []:
        codes = ((ident.get("type") or {}).get("coding") or []) if isinstance(ident, dict) else []
        if any(isinstance(c, dict) and c.get("code") == "ACSN" for c in codes) and isinstance(ident.get("value"), str):
            return "", ident["value"]
    raise InvalidRequest("imagingStudy (urn:dicom:uid) or an ACSN identifier naming the exam is required")


def pdf_of(report: dict[str, Any]) -> tuple[bytes, str]:
    """The PDF attachment and its title."""
    for form in report.get("presentedForm") or []:
        if isinstance(form, dict) and form.get("contentType") == "application/pdf" and isinstance(form.get("data"), str):
            try:
                data = base64.b64decode(form["data"], validate=True)
            except binascii.Error:
                raise InvalidRequest("presentedForm.data: not base64") from None
            if not data.startswith(b"%PDF"):
                raise InvalidRequest("presentedForm.data: not a PDF")
            return data, str(form.get("title") or "Report")[:64]
    raise InvalidRequest("presentedForm: an application/pdf attachment is required")


def encapsulated_pdf(report: dict[str, Any], study_header: Dataset) -> bytes:
    """A Part 10 Encapsulated PDF instance of the report in the study of `study_header`."""
    status = report.get("status")
    if status not in RELEASED | DRAFT:
        raise InvalidRequest(f"status: one of {', '.join(sorted(RELEASED | DRAFT))}")
    pdf, title = pdf_of(report)
    issued = str(report.get("issued") or report.get("effectiveDateTime") or "")
    try:
        when = datetime.fromisoformat(issued) if issued else datetime.now()
    except ValueError:
        raise InvalidRequest("issued: an ISO 8601 date-time") from None
    ds = Dataset()
    for kw in COPIED:
        if kw in study_header:
            setattr(ds, kw, study_header[kw].value)
    study = str(ds.StudyInstanceUID)
    ds.SOPClassUID, ds.SOPInstanceUID = PDF_CLASS, generate_uid()
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[study, "yunying-fhir-reports"])  # one report series per study
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "DOC", 999, int(when.timestamp()) % 2**31
    ds.ContentDate, ds.ContentTime = when.strftime("%Y%m%d"), when.strftime("%H%M%S")
    ds.AcquisitionDateTime = when.strftime("%Y%m%d%H%M%S")
    ds.VerificationFlag = "VERIFIED" if status in RELEASED else "UNVERIFIED"
    ds.CompletionFlag = "COMPLETE" if status in RELEASED else "PARTIAL"
    ds.DocumentTitle, ds.BurnedInAnnotation = title, "YES"
    ds.ConceptNameCodeSequence = Sequence()
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = pdf + (b"\0" if len(pdf) % 2 else b"")
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = pydicom.uid.UID(PDF_CLASS)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    out = io.BytesIO()
    pydicom.dcmwrite(out, ds, enforce_file_format=True)
    return out.getvalue()
