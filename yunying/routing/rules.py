"""Routing rules: which received instances go where, in which transfer syntax.

A rule matches an instance when every criterion it sets holds (an empty list matches all):
the calling AE title (DIMSE) or client (STOW-RS), Modality, the owning hospital, Body Part
Examined, and the local time of receipt within `hours` ("22:00-06:00" wraps midnight).
`syntax` is "lossless" (as stored when the destination takes it, else uncompressed; never
lossy from exact pixels) or a named lossy transfer syntax UID for a destination that asks for
it: the copy sent is transcoded, what the archive keeps is never touched.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from index.model import InstanceRecord
from yunying.auth.errors import InvalidRequest
from yunying.pixels import syntaxes as ts_
from yunying.pixels.frameinfo import UnsupportedTransfer

HOURS = re.compile(r"([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)")
AET = re.compile(r"[ -\[\]-~]{1,16}")  # PS3.5 AE: printable ASCII without backslash


@dataclass(frozen=True)
class Match:
    source_aes: tuple[str, ...] = ()
    modalities: tuple[str, ...] = ()
    hospitals: tuple[str, ...] = ()
    body_parts: tuple[str, ...] = ()
    hours: str = ""  # HH:MM-HH:MM local time, "" all day

    def admits(self, facts: dict[str, str], now: datetime) -> bool:
        for wanted, have in ((self.source_aes, facts["source"]), (self.modalities, facts["modality"]),
                             (self.hospitals, facts["hospital"]), (self.body_parts, facts["body_part"])):
            if wanted and have.strip().upper() not in wanted:
                return False
        return not self.hours or in_hours(self.hours, now)


@dataclass(frozen=True)
class Rule:
    id: int
    name: str
    enabled: bool
    match: Match
    destination: dict[str, Any] = field(hash=False)
    syntax: str = "lossless"


def in_hours(hours: str, now: datetime) -> bool:
    m = HOURS.fullmatch(hours)
    assert m is not None
    start, end = int(m[1]) * 60 + int(m[2]), int(m[3]) * 60 + int(m[4])
    minute = now.hour * 60 + now.minute
    return start <= minute < end if start <= end else minute >= start or minute < end


def facts_of(record: InstanceRecord) -> dict[str, str]:
    """What rules look at, from a stored instance's record."""
    def text(tag: str) -> str:
        return str((record.json.get(tag, {}).get("Value") or [""])[0])
    return {"source": record.origin.source.strip().upper(), "modality": text("00080060"),
            "hospital": record.origin.hospital.upper(), "body_part": text("00180015"),
            "study": text("0020000D"), "series": text("0020000E"), "sop": text("00080018")}


def _strings(body: dict[str, Any], name: str, limit: int = 64) -> tuple[str, ...]:
    value = body.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and 0 < len(v) <= limit and v.isprintable()
                                              for v in value):
        raise InvalidRequest(f"match.{name}: a list of non-empty strings")
    return tuple(v.strip().upper() for v in value)


def parse_match(body: Any) -> Match:
    if not isinstance(body, dict):
        raise InvalidRequest("match: an object")
    unknown = set(body) - {"source_aes", "modalities", "hospitals", "body_parts", "hours"}
    if unknown:
        raise InvalidRequest(f"match: unknown field(s) {', '.join(sorted(unknown))}")
    hours = body.get("hours", "")
    if not isinstance(hours, str) or (hours and not HOURS.fullmatch(hours)):
        raise InvalidRequest("match.hours: HH:MM-HH:MM")
    return Match(_strings(body, "source_aes", 16), _strings(body, "modalities", 16), _strings(body, "hospitals"),
                 _strings(body, "body_parts"), hours)


def parse_destination(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or body.get("kind") not in ("dicom", "dicomweb"):
        raise InvalidRequest('destination: {"kind": "dicom", "aet", "host", "port"} or '
                             '{"kind": "dicomweb", "url", "token_env"?}')
    if body["kind"] == "dicom":
        aet, host, port = body.get("aet"), body.get("host"), body.get("port")
        if not isinstance(aet, str) or not AET.fullmatch(aet) or not aet.strip():
            raise InvalidRequest("destination.aet: an AE title of 1-16 characters")
        if not isinstance(host, str) or not 0 < len(host) <= 253 or not host.isprintable():
            raise InvalidRequest("destination.host: a host name or address")
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise InvalidRequest("destination.port: a TCP port")
        timeout = body.get("timeout", 30)
        if not isinstance(timeout, int) or isinstance(timeout, bool) or not 1 <= timeout <= 600:
            raise InvalidRequest("destination.timeout: seconds, 1-600")
        return {"kind": "dicom", "aet": aet.strip(), "host": host, "port": port, "timeout": timeout}
    url, token_env = body.get("url"), body.get("token_env", "")
    if not isinstance(url, str) or not re.fullmatch(r"https?://[!-~]{1,500}", url):
        raise InvalidRequest("destination.url: the DICOMweb root, http(s)://...")
    if not isinstance(token_env, str) or (token_env and not re.fullmatch(r"[A-Z_][A-Z0-9_]{0,63}", token_env)):
        raise InvalidRequest("destination.token_env: the environment variable holding its bearer token")
    return {"kind": "dicomweb", "url": url.rstrip("/"), "token_env": token_env}


def parse_syntax(value: Any) -> str:
    """"lossless", or a lossy transfer syntax we can encode."""
    if value in (None, "", "lossless"):
        return "lossless"
    if not isinstance(value, str):
        raise InvalidRequest("syntax: \"lossless\" or a lossy transfer syntax UID")
    try:
        ts_.syntax(value)
    except UnsupportedTransfer:
        raise InvalidRequest(f"syntax: {value[:64]} is not a transfer syntax we know") from None
    if not ts_.is_lossy(value):
        raise InvalidRequest("syntax: name a lossy syntax, or \"lossless\"")
    return value
