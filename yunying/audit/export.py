"""Exports of audit records: CSV (UTF-8 with BOM, so Excel shows Chinese), XLSX, and DICOM
audit messages (PS3.15 Annex A.5, the RFC 3881 schema as DICOM profiles it)."""
from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import quoteattr

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


# PS3.16 CID 400 (Audit Event ID) and the action code of each of our actions (PS3.15 A.5.3)
_EVENTS: dict[str, tuple[str, str, str]] = {
    "query": ("110112", "Query", "E"),
    "store": ("110104", "DICOM Instances Transferred", "C"),
    "retrieve": ("110104", "DICOM Instances Transferred", "R"),
    "delete": ("110103", "DICOM Instances Accessed", "D"),
    "login": ("110114", "User Authentication", "E"),
    "logout": ("110114", "User Authentication", "E"),
    "audit.read": ("110101", "Audit Log Used", "R"),
    "audit.export": ("110101", "Audit Log Used", "R"),
    "audit.verify": ("110101", "Audit Log Used", "R"),
    "audit.purge": ("110101", "Audit Log Used", "D"),
}
_ACCESSED = ("110103", "DICOM Instances Accessed", "R")
_ALERT = ("110113", "Security Alert", "E")


def _event(r: dict[str, Any]) -> tuple[str, str, str]:
    action = r["action"]
    if action in _EVENTS:
        return _EVENTS[action]
    if action in ("metadata", "frames", "rendered", "thumbnail", "bulkdata", "reformat"):
        return _ACCESSED
    return _ALERT  # refusals, token events, administrative changes, break-glass


def _outcome_code(r: dict[str, Any]) -> str:
    return {"success": "0", "refused": "4"}.get(r["outcome"], "8")  # PS3.15 A.5.3 EventOutcomeIndicator


def audit_message(r: dict[str, Any], source: str = "YUNYING") -> str:
    """One <AuditMessage> (PS3.15 A.5.1) for one record."""
    code, name, verb = _event(r)
    q = quoteattr
    parts = [(f"<AuditMessage><EventIdentification EventActionCode={q(verb)} EventDateTime={q(iso(r['at_ms']))} "
             f"EventOutcomeIndicator={q(_outcome_code(r))}>"
             f"<EventID csd-code={q(code)} codeSystemName=\"DCM\" originalText={q(name)}/>")]
    if r["action"] in ("login", "logout"):
        login = ("110122", "Login") if r["action"] == "login" else ("110123", "Logout")
        parts.append(f"<EventTypeCode csd-code={q(login[0])} codeSystemName=\"DCM\" originalText={q(login[1])}/>")
    parts.append("</EventIdentification>")
    parts.append(f"<ActiveParticipant UserID={q(r['principal_kind'] + ':' + r['principal_id'])} "
                 f"UserIsRequestor=\"true\" NetworkAccessPointID={q(r['client'])} NetworkAccessPointTypeCode=\"2\"/>")
    parts.append(f"<ActiveParticipant UserID={q(source)} UserIsRequestor=\"false\"/>")
    parts.append(f"<AuditSourceIdentification AuditSourceID={q(source)}/>")
    if r["patient_id"]:
        pid = r["patient_id"] + (f"^^^{r['issuer']}" if r["issuer"] else "")
        parts.append(f"<ParticipantObjectIdentification ParticipantObjectID={q(pid)} ParticipantObjectTypeCode=\"1\" "
                     "ParticipantObjectTypeCodeRole=\"1\"><ParticipantObjectIDTypeCode csd-code=\"2\" "
                     "codeSystemName=\"RFC-3881\" originalText=\"Patient Number\"/></ParticipantObjectIdentification>")
    for study in filter(None, r["studies"].split(" ")):
        parts.append(f"<ParticipantObjectIdentification ParticipantObjectID={q(study)} ParticipantObjectTypeCode=\"2\" "
                     "ParticipantObjectTypeCodeRole=\"3\"><ParticipantObjectIDTypeCode csd-code=\"110180\" "
                     "codeSystemName=\"DCM\" originalText=\"Study Instance UID\"/>"
                     + (f"<ParticipantObjectDetail type=\"Accession\" value={q(r['accession'])}/>" if r["accession"] else "")
                     + "</ParticipantObjectIdentification>")
    parts.append("</AuditMessage>")
    return "".join(parts)


def to_dicom_xml(rows: Iterable[dict[str, Any]]) -> bytes:
    body = "\n".join(audit_message(r) for r in rows)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<AuditMessages>\n' + body + "\n</AuditMessages>\n").encode()


def render(fmt: str, rows: Iterable[dict[str, Any]]) -> bytes:
    return {"csv": to_csv, "xlsx": to_xlsx, "dicom": to_dicom_xml}[fmt](rows)
