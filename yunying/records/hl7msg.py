"""HL7 v2 messages in: character set (MSH-18), parsing (python-hl7), fields to our Record, ACKs.

Field use (HL7 v2.5, with the common Chinese HIS conventions):
  PID-3  patient identifiers: the one typed MR/PI (else the first) is patient_id, its CX.4 the
         issuer; one typed NN*/ID (national number) is the resident ID card number
  PID-5 name, PID-7 birth date, PID-8 sex, PID-11 address, PID-13 phone, PID-19 social security no.
  PV1-2 class (I inpatient, O outpatient, E emergency) with PV1-19 visit number; PV1-3 ward^room^bed
  MRG-1  the prior (merged / old) patient identifier
  ORC-1 order control (CA/DC: cancelled), ORC-5 status; IPC-1 / OBR-18 / ORC-3 / OBR-3 accession;
  OBR-4 exam item, IPC-5 / OBR-24 exam type (modality), OBR-13 / OBR-31 request, OBR-15 body part,
  OBR-36 / OBR-7 scheduled time
  ORU:   OBX-5 text (OBX-3 naming IMP/CONCL/诊断/结论/印象: conclusion, else findings), OBX-5 ED
         base64 PDF, OBR-32 reporting doctor, OBR-33 reviewing doctor, OBR-7 reported, OBR-22
         reviewed, OBR-25 result status
"""
from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import hl7

from yunying.records.model import Record, RecordError, make_record

# HL7 Table 0211 (alternate character sets) -> Python codec; "" = the listener's default
CHARSETS = {"ASCII": "ascii", "UNICODE UTF-8": "utf-8", "UTF-8": "utf-8", "GB 18030-2000": "gb18030",
            "GB18030": "gb18030", "CNS 11643-1992": "big5", "8859/1": "latin-1", "UNICODE": "utf-16"}
EVENTS = {("ADT", "A01"), ("ADT", "A04"), ("ADT", "A05"), ("ADT", "A08"), ("ADT", "A28"), ("ADT", "A31"),
          ("ADT", "A40"), ("ADT", "A47"), ("ORM", "O01"), ("OMI", "O23"), ("OMG", "O19"), ("ORU", "R01")}
CONCLUSION = re.compile(r"IMP|CONCL|DIAG|诊断|结论|印象", re.IGNORECASE)


class Refused(Exception):
    """A message answered with AE (application error) or AR (rejected); `reason` names no value."""

    def __init__(self, code: str, reason: str, hl7_error: str = "207") -> None:
        super().__init__(reason)
        self.code, self.reason, self.hl7_error = code, reason, hl7_error  # HL7 Table 0357 error code


@dataclass
class Header:
    control_id: str = ""
    message_type: str = ""
    event: str = ""
    version: str = "2.5"
    charset: str = ""  # MSH-18 as sent
    codec: str = "utf-8"
    sending: tuple[str, str] = ("", "")  # MSH-3, MSH-4
    receiving: tuple[str, str] = ("", "")


def read_header(raw: bytes, default_codec: str) -> Header:
    """MSH read from the bytes (ASCII by rule) before decoding: MSH-18 says how to decode the rest."""
    if not raw.startswith(b"MSH") or len(raw) < 8:
        raise Refused("AR", "not an HL7 v2 message: it must begin with an MSH segment", "100")
    sep = raw[3:4]
    first = raw.split(b"\r", 1)[0].split(b"\n", 1)[0]
    fields = [f.decode("ascii", "replace") for f in first.split(sep)]
    fields += [""] * (20 - len(fields))
    comp = fields[1][:1] or "^"
    kind = fields[8].split(comp)
    head = Header(control_id=fields[9][:64], message_type=kind[0][:3], event=(kind + [""])[1][:3],
                  version=fields[11].split(comp)[0] or "2.5", charset=fields[17].split(fields[1][1:2] or "~")[0],
                  sending=(fields[2], fields[3]), receiving=(fields[4], fields[5]))
    label = head.charset.strip().upper()
    if label and label not in CHARSETS:
        raise Refused("AR", f"MSH-18: character set {head.charset!r} is not supported "
                      f"(UNICODE UTF-8, GB 18030-2000, ASCII, 8859/1)", "203")
    head.codec = CHARSETS[label] if label else default_codec
    if not head.control_id:
        raise Refused("AR", "MSH-10: message control ID required", "101")
    if not head.version.startswith("2."):
        raise Refused("AR", f"MSH-12: version {head.version!r} not supported (2.x)", "203")
    return head


def parse_message(raw: bytes, head: Header) -> hl7.Message:
    try:
        text = raw.decode(head.codec)
    except UnicodeDecodeError:
        raise Refused("AR", f"the message is not valid {head.codec} text (MSH-18 {head.charset or 'default'})",
                      "203") from None
    text = text.replace("\r\n", "\r").replace("\n", "\r").strip("\r")
    try:
        return hl7.parse(text)
    except Exception:  # noqa: BLE001 - python-hl7 raises plain errors on malformed segments
        raise Refused("AR", "the message cannot be parsed as HL7 v2", "100") from None


def _f(msg: hl7.Message, seg: str, field: int, rep: int = 0, comp: int = 0, sub: int = 0) -> str:
    """One value (0-based rep/comp/sub; field numbered as in the standard); "" when absent."""
    try:
        segment = msg.segment(seg)
    except KeyError:
        return ""
    try:
        value: Any = segment[field]
    except IndexError:
        return ""
    for i in (rep, comp, sub):
        if isinstance(value, str):
            return value if i == 0 else ""
        try:
            value = value[i]
        except IndexError:
            return ""
    return str(value).strip() if not isinstance(value, list) else str(value[0]).strip() if value else ""


def _reps(msg: hl7.Message, seg: str, field: int) -> list[list[str]]:
    """The repetitions of a field as component lists."""
    try:
        value = msg.segment(seg)[field]
    except (KeyError, IndexError):
        return []
    if isinstance(value, str):
        return [[value]]
    out = []
    for rep in value:
        out.append([str(c) for c in rep] if not isinstance(rep, str) else [rep])
    return out


def has(msg: hl7.Message, seg: str) -> bool:
    try:
        msg.segment(seg)
    except KeyError:
        return False
    return True


def _name(parts: list[str]) -> str:
    family, given = (parts + ["", ""])[:2]
    if re.search(r"[\u4e00-\u9fff]", family + given):
        return family + given
    return "^".join(p for p in (family, given) if p)


def _doctor(msg: hl7.Message, seg: str, field: int) -> str:
    """An NDL/XCN doctor: its name (component 1, sub-components id&family&given) or the text."""
    reps = _reps(msg, seg, field)
    if not reps:
        return ""
    first = reps[0][0] if reps[0] else ""
    subs = first.split("&") if "&" in first else None
    if subs is None:
        try:
            sub = msg.segment(seg)[field][0][0]
            subs = [str(x) for x in sub] if isinstance(sub, list) else None
        except (IndexError, KeyError, TypeError):
            subs = None
    if subs and len(subs) > 1:
        return _name(subs[1:3]) or subs[0]
    return _name(reps[0][1:3]) if len(reps[0]) > 1 and reps[0][1] else first


def patient_fields(msg: hl7.Message, seg: str = "PID", field: int = 3) -> dict[str, Any]:
    ids = _reps(msg, seg, field)
    if not ids or not ids[0][0]:
        raise Refused("AE", f"{seg}-{field}: patient identifier required", "101")
    chosen = next((r for r in ids if len(r) > 4 and r[4].upper() in ("MR", "PI")), ids[0])
    out: dict[str, Any] = {"patient_id": chosen[0], "issuer": chosen[3] if len(chosen) > 3 else ""}
    card = next((r for r in ids if len(r) > 4 and (r[4].upper().startswith("NN") or r[4].upper() == "ID")), None)
    if card:
        out["id_card"] = card[0]
    return out


def to_record(msg: hl7.Message, head: Header) -> Record:
    """The message's patient, visit, order and result fields as one checked Record."""
    if not has(msg, "PID"):
        raise Refused("AE", f"{head.message_type}^{head.event}: PID segment required", "100")
    raw = patient_fields(msg)
    raw.update(name=_name(_reps(msg, "PID", 5)[0]) if _reps(msg, "PID", 5) else "",
               birth_date=_f(msg, "PID", 7)[:8], sex=_f(msg, "PID", 8),
               phone=_f(msg, "PID", 13, 0, 11) or _f(msg, "PID", 13), social_security_no=_f(msg, "PID", 19))
    addr = _reps(msg, "PID", 11)
    if addr:
        raw["address"] = " ".join(p for p in addr[0][:5] if p)
    if has(msg, "PV1"):
        kind = {"I": "inpatient_no", "O": "outpatient_no", "E": "emergency_no"}.get(_f(msg, "PV1", 2).upper())
        if kind and _f(msg, "PV1", 19):
            raw[kind] = _f(msg, "PV1", 19)
        raw["bed"], raw["department"] = _f(msg, "PV1", 3, 0, 2), _f(msg, "PV1", 3, 0, 0)
    if head.message_type in ("ORM", "OMI", "OMG", "ORU"):
        raw.update(order_fields(msg, head))
    if head.message_type == "ORU":
        raw.update(result_fields(msg))
    try:
        return make_record(raw)
    except RecordError as exc:
        raise Refused("AE", str(exc), "102") from None


def order_fields(msg: hl7.Message, head: Header) -> dict[str, Any]:
    if not has(msg, "OBR"):
        raise Refused("AE", f"{head.message_type}^{head.event}: OBR segment required", "100")
    accession = (_f(msg, "IPC", 1) or _f(msg, "OBR", 18) or _f(msg, "ORC", 3) or _f(msg, "OBR", 3)
                 or _f(msg, "ORC", 2) or _f(msg, "OBR", 2))
    if not accession:
        raise Refused("AE", "accession number required (IPC-1, OBR-18, ORC-3 or OBR-3)", "101")
    control = _f(msg, "ORC", 1).upper()
    status = "cancelled" if control in ("CA", "DC", "OC") else _f(msg, "ORC", 5) or control
    return {"accession": accession, "exam_item": _f(msg, "OBR", 4, 0, 1) or _f(msg, "OBR", 4),
            "exam_type": _f(msg, "IPC", 5) or _f(msg, "OBR", 24),
            "request": _f(msg, "OBR", 13) or _f(msg, "OBR", 31, 0, 1) or _f(msg, "OBR", 31),
            "body_part": _f(msg, "OBR", 15), "status": status,
            "scheduled": (_f(msg, "OBR", 36) or _f(msg, "OBR", 7))[:14] if head.message_type != "ORU" else ""}


def result_fields(msg: hl7.Message) -> dict[str, Any]:
    findings: list[str] = []
    conclusion: list[str] = []
    pdf = None
    for obx in msg.segments("OBX") if has(msg, "OBX") else []:
        kind = str(obx[2]) if len(obx) > 2 else ""
        ident = str(obx[3]) if len(obx) > 3 else ""
        value = obx[5] if len(obx) > 5 else ""
        if kind == "ED":
            parts = [str(c) for c in value[0]] if isinstance(value, list) and value and isinstance(value[0], list) \
                else str(value).split("^")
            if len(parts) >= 5 and parts[2].upper() == "PDF" and parts[3].upper() == "BASE64":
                try:
                    pdf = base64.b64decode(parts[4], validate=True)
                except (binascii.Error, ValueError):
                    raise Refused("AE", "OBX-5: the PDF is not valid base64", "102") from None
            continue
        text = "\n".join(str(v) for v in value) if isinstance(value, list) and kind != "CE" else str(value)
        text = text.replace("\\.br\\", "\n")
        (conclusion if CONCLUSION.search(ident) else findings).append(text)
    out: dict[str, Any] = {"findings": "\n".join(findings), "conclusion": "\n".join(conclusion),
                           "reporting_doctor": _doctor(msg, "OBR", 32), "reviewing_doctor": _doctor(msg, "OBR", 33),
                           "reported_at": _f(msg, "OBR", 7)[:14], "reviewed_at": _f(msg, "OBR", 22)[:14],
                           "report_status": _f(msg, "OBR", 25)}
    if pdf is not None:
        out["pdf_blob"] = pdf
    return out


def escape(text: str) -> str:
    """HL7 escape sequences for the delimiters (Chapter 2.7)."""
    return (text.replace("\\", "\\E\\").replace("|", "\\F\\").replace("^", "\\S\\")
            .replace("~", "\\R\\").replace("&", "\\T\\").replace("\r", " ").replace("\n", " "))


def ack(head: Header, code: str, reason: str = "", error: str = "207", app: str = "YUNYING") -> bytes:
    """ACK^<event>^ACK: MSA-1 AA/AE/AR, MSA-2 the message's control ID, MSA-3 and ERR the reason
    (ERR-3 error code of HL7 Table 0357, ERR-4 severity, ERR-8 text), in the message's charset."""
    now = datetime.now().strftime("%Y%m%d%H%M%S")
    charset = head.charset if head.charset.strip().upper() in CHARSETS else ""
    lines = [f"MSH|^~\\&|{app}|{escape(head.receiving[1])}|{escape(head.sending[0])}|{escape(head.sending[1])}|"
             f"{now}||ACK^{escape(head.event)}^ACK|ACK{escape(head.control_id)[:60]}|P|{escape(head.version)}"
             f"||||||{escape(charset)}".rstrip("|"),
             f"MSA|{code}|{escape(head.control_id)}" + (f"|{escape(reason)[:200]}" if reason else "")]
    if code != "AA":
        lines.append(f"ERR|||{error}^{escape(reason)[:80]}^HL70357|E||||{escape(reason)[:250]}")
    return ("\r".join(lines) + "\r").encode(head.codec if charset else "utf-8", "replace")
