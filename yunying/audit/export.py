"""Exports of audit records: CSV (UTF-8 with BOM, so Excel shows Chinese), XLSX, and DICOM
audit messages (PS3.15 Annex A.5, the RFC 3881 schema as DICOM profiles it)."""
from __future__ import annotations

import base64
import csv
import io
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import orjson

from yunying.audit.actions import Code, event_of

COLUMNS = ("seq", "time", "principal_kind", "principal_id", "roles", "hospital", "client", "face", "action",
           "status", "outcome", "patient_id", "issuer", "studies", "series", "accession", "request_id",
           "count", "detail", "hash")


def iso(at_ms: int) -> str:
    return datetime.fromtimestamp(at_ms / 1000, UTC).isoformat(timespec="milliseconds")


def _row(r: dict[str, Any]) -> list[Any]:
    return [iso(r["at_ms"]) if c == "time" else r.get(c, "") for c in COLUMNS]


def to_csv(rows: Iterable[dict[str, Any]]) -> bytes:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(COLUMNS)
    for r in rows:
        w.writerow([_safe_cell(v) for v in _row(r)])
    return b"\xef\xbb\xbf" + out.getvalue().encode("utf-8")


def _safe_cell(v: Any) -> Any:
    """A cell starting with = + - @ is text, not a formula, in a spreadsheet (CSV injection)."""
    return "'" + v if isinstance(v, str) and v[:1] in ("=", "+", "-", "@") else v


def to_xlsx(rows: Iterable[dict[str, Any]]) -> bytes:
    from openpyxl import Workbook  # type: ignore[import-untyped]

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("audit")
    ws.append(list(COLUMNS))
    for r in rows:
        ws.append([_safe_cell(v) for v in _row(r)])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _outcome_code(r: dict[str, Any]) -> str:
    return {"success": "0", "refused": "4"}.get(r["outcome"], "8")  # PS3.15 A.5.1 EventOutcomeIndicator


_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def q(value: str) -> str:
    """An attribute value; characters XML 1.0 cannot carry (a user name typed with control
    characters) become U+FFFD, so one odd record never makes the whole export unreadable."""
    return quoteattr(_NOT_XML.sub("\ufffd", value))


def _code(element: str, c: Code) -> str:
    return f"<{element} csd-code={q(c.code)} codeSystemName={q(c.system)} originalText={q(c.meaning)}/>"


_PATIENT_NUMBER = Code("2", "Patient Number", "RFC-3881")  # ParticipantObjectIDTypeCode
_URI = Code("12", "URI", "RFC-3881")
_STUDY_UID = Code("110180", "Study Instance UID")
_SOP_CLASS_UID = Code("110181", "SOP Class UID")
FIND_SOP_CLASS = "1.2.840.10008.5.1.4.1.2.2.1"  # Study Root Query/Retrieve Information Model - FIND


def _requestor(r: dict[str, Any]) -> str:
    """The principal: an IP address, or for DIMSE "AE@address" (the AE title as AlternativeUserID)."""
    user = f"UserID={q(r['principal_kind'] + ':' + r['principal_id'])} UserIsRequestor=\"true\""
    aet, at, address = r["client"].rpartition("@")
    if at and aet:
        user += f" AlternativeUserID={q('AETITLES=' + aet)}"
    if address:
        user += f" NetworkAccessPointID={q(address)} NetworkAccessPointTypeCode=\"2\""
    return f"<ActiveParticipant {user}/>"


def audit_message(r: dict[str, Any], source: str = "YUNYING") -> str:
    """One <AuditMessage> (PS3.15 A.5.1) for one record, its event from yunying.audit.actions."""
    event = event_of(r["action"])
    parts = [(f"<AuditMessage><EventIdentification EventActionCode={q(event.verb)} "
             f"EventDateTime={q(iso(r['at_ms']))} EventOutcomeIndicator={q(_outcome_code(r))}>"),
             _code("EventID", event.event)]
    if event.kind is not None:
        parts.append(_code("EventTypeCode", event.kind))
    if r["outcome"] != "success":
        parts.append(f"<EventOutcomeDescription>{escape(_NOT_XML.sub('', r['action'] + ' ' + r['outcome'] + ' ' + str(r['status'])))}"
                     "</EventOutcomeDescription>")
    parts.append("</EventIdentification>")
    parts.append(_requestor(r))
    parts.append(f"<ActiveParticipant UserID={q(source)} UserIsRequestor=\"false\"/>")
    parts.append(f"<AuditSourceIdentification AuditSourceID={q(source)}/>")
    if r["patient_id"]:
        pid = r["patient_id"] + (f"^^^{r['issuer']}" if r["issuer"] else "")
        parts.append(f"<ParticipantObjectIdentification ParticipantObjectID={q(pid)} ParticipantObjectTypeCode=\"1\" "
                     f"ParticipantObjectTypeCodeRole=\"1\">{_code('ParticipantObjectIDTypeCode', _PATIENT_NUMBER)}"
                     "</ParticipantObjectIdentification>")
    for study in filter(None, r["studies"].split(" ")):
        parts.append(f"<ParticipantObjectIdentification ParticipantObjectID={q(study)} ParticipantObjectTypeCode=\"2\" "
                     f"ParticipantObjectTypeCodeRole=\"3\">{_code('ParticipantObjectIDTypeCode', _STUDY_UID)}"
                     + (f"<ParticipantObjectDescription><Accession Number={q(r['accession'])}/>"
                        "</ParticipantObjectDescription>" if r["accession"] else "")
                     + "</ParticipantObjectIdentification>")
    if r["action"] == "query":
        parts.append(_query(r))
    parts.append("</AuditMessage>")
    return "".join(parts)


def _query(r: dict[str, Any]) -> str:
    """The query itself (A.5.3.10): the C-FIND SOP class, or the QIDO-RS path, with its keys in base64."""
    try:
        detail = orjson.loads(r["detail"]) if r["detail"] else {}
    except orjson.JSONDecodeError:
        detail = {}
    if r["face"] == "dimse":
        what, kind, text = FIND_SOP_CLASS, _SOP_CLASS_UID, r["detail"]
    else:
        what, kind, text = str(detail.get("path") or "/"), _URI, str(detail.get("query", ""))
    return (f"<ParticipantObjectIdentification ParticipantObjectID={q(what)} ParticipantObjectTypeCode=\"2\" "
            f"ParticipantObjectTypeCodeRole=\"24\">{_code('ParticipantObjectIDTypeCode', kind)}"
            f"<ParticipantObjectQuery>{base64.b64encode(text.encode()).decode()}</ParticipantObjectQuery>"
            "</ParticipantObjectIdentification>")


def to_dicom_xml(rows: Iterable[dict[str, Any]]) -> bytes:
    body = "\n".join(audit_message(r) for r in rows)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<AuditMessages>\n' + body + "\n</AuditMessages>\n").encode()


def render(fmt: str, rows: Iterable[dict[str, Any]]) -> bytes:
    return {"csv": to_csv, "xlsx": to_xlsx, "dicom": to_dicom_xml}[fmt](rows)
