"""Raw-HTTP helpers for the checks: multipart bodies, media-type parameters, DICOM JSON."""

from __future__ import annotations

import io
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import Message
from typing import Any

import pydicom
from pydicom.dataset import Dataset

DICOM_JSON = "application/dicom+json"
MULTIPART_DICOM = 'multipart/related; type="application/dicom"'
MULTIPART_OCTET = 'multipart/related; type="application/octet-stream"'

# PS3.18 Annex F.2.3: these VRs are JSON Numbers.
NUMBER_VRS = {"IS", "DS", "US", "UL", "SS", "SL", "FL", "FD", "SV", "UV"}


@dataclass
class Part:
    headers: dict[str, str]
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


def media_params(content_type: str) -> tuple[str, dict[str, str]]:
    """'a/b; k="v"' -> ('a/b', {'k': 'v'}), keys lower-cased."""
    msg = Message()
    msg["content-type"] = content_type
    params = {k.lower(): v for k, v in (msg.get_params() or [])[1:]}
    return msg.get_content_type(), params


def multipart_body(parts: Iterable[bytes], media_type: str = "application/dicom") -> tuple[bytes, str]:
    """Encode a multipart/related body; returns (body, Content-Type header)."""
    boundary = "yunying-" + secrets.token_hex(12)
    out = io.BytesIO()
    for part in parts:
        out.write(f"--{boundary}\r\nContent-Type: {media_type}\r\n\r\n".encode())
        out.write(part)
        out.write(b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f'multipart/related; type="{media_type}"; boundary={boundary}'


def parse_multipart(content_type: str, body: bytes) -> list[Part]:
    """Split a multipart/related body (RFC 2046) into parts; raises ValueError if malformed."""
    mtype, params = media_params(content_type)
    if mtype != "multipart/related":
        raise ValueError(f"Content-Type is {content_type!r}, not multipart/related")
    boundary = params.get("boundary")
    if not boundary:
        raise ValueError("multipart response without boundary parameter")
    delim = b"--" + boundary.encode()
    chunks = body.split(delim)
    if len(chunks) < 3:
        raise ValueError("no parts found in multipart body")
    parts = []
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break
        chunk = chunk[2:] if chunk.startswith(b"\r\n") else chunk
        head, sep, payload = chunk.partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("multipart part without header/body separator")
        if payload.endswith(b"\r\n"):
            payload = payload[:-2]
        headers = {}
        for line in head.decode("latin-1").split("\r\n"):
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        parts.append(Part(headers, payload))
    return parts


def read_part10(data: bytes) -> Dataset:
    """Parse a Part 10 payload strictly enough to notice a missing preamble or meta."""
    return pydicom.dcmread(io.BytesIO(data), force=False)


def tag_key(keyword_or_tag: str) -> str:
    """'PatientName' or '00100010' -> '00100010'."""
    if len(keyword_or_tag) == 8 and all(c in "0123456789abcdefABCDEF" for c in keyword_or_tag):
        return keyword_or_tag.upper()
    from pydicom.datadict import tag_for_keyword

    tag = tag_for_keyword(keyword_or_tag)
    if tag is None:
        raise KeyError(keyword_or_tag)
    return f"{tag:08X}"


def value(obj: dict[str, Any], keyword: str) -> Any:
    """The first Value of an attribute in a DICOM JSON object, or None."""
    attr = obj.get(tag_key(keyword))
    if not attr or not attr.get("Value"):
        return None
    return attr["Value"][0]


def values(obj: dict[str, Any], keyword: str) -> list[Any]:
    attr = obj.get(tag_key(keyword)) or {}
    return list(attr.get("Value") or [])


def annex_f_problems(objs: list[dict[str, Any]], path: str = "") -> list[str]:
    """Every departure from PS3.18 Annex F found in a list of DICOM JSON objects."""
    problems: list[str] = []
    for i, obj in enumerate(objs):
        if not isinstance(obj, dict):
            problems.append(f"{path}[{i}] is not an object")
            continue
        for tag, attr in obj.items():
            where = f"{path}[{i}].{tag}"
            if len(tag) != 8 or any(c not in "0123456789ABCDEF" for c in tag):
                problems.append(f"{where}: key is not 8 upper-case hex digits")
            if not isinstance(attr, dict) or "vr" not in attr:
                problems.append(f"{where}: no vr")
                continue
            vr = attr["vr"]
            for v in attr.get("Value") or []:
                if v is None:
                    continue
                if vr in NUMBER_VRS and not isinstance(v, (int, float)):
                    problems.append(f"{where}: {vr} value {v!r} is not a JSON number")
                elif vr == "PN" and not isinstance(v, dict):
                    problems.append(f"{where}: PN value {v!r} is not an object")
                elif vr == "PN" and not set(v) <= {"Alphabetic", "Ideographic", "Phonetic"}:
                    problems.append(f"{where}: PN keys {sorted(v)}")
                elif vr == "SQ":
                    problems.extend(annex_f_problems([v], where))
                elif vr in {"DA", "TM", "DT", "UI", "LO", "SH", "CS", "AE", "LT", "ST", "UT",
                            "UC", "UR", "AS"} and not isinstance(v, str):
                    problems.append(f"{where}: {vr} value {v!r} is not a string")
            if "Value" in attr and "InlineBinary" in attr:
                problems.append(f"{where}: both Value and InlineBinary")
    return problems
