"""Choose media type and transfer syntax for a /frames request (PS3.18 8.7.3.3.2, 8.7.5, Table 8.7.3-5)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Self

from yunying.pixels import syntaxes as ts_
from yunying.pixels.codecs import can_decode, encode_refusal
from yunying.pixels.frameinfo import FrameInfo


class FrameChoice(tuple[str, str]):
    """(media_type, transfer_syntax), unpacks as a pair; .multipart tells how the client asked."""

    multipart: bool

    def __new__(cls, media_type: str, transfer_syntax: str, multipart: bool) -> Self:
        obj = super().__new__(cls, (media_type, transfer_syntax))
        obj.multipart = multipart
        return obj


@dataclass(frozen=True)
class MediaRange:
    """One parsed element of an Accept header."""

    media_type: str          # the part's media type ("image/jls", "*/*", ...)
    transfer_syntax: str | None
    q: float
    multipart: bool


def _split(value: str, sep: str) -> list[str]:
    """Split on sep outside double quotes."""
    parts: list[str] = []
    buf: list[str] = []
    quoted = False
    for ch in value:
        if ch == '"':
            quoted = not quoted
        if ch == sep and not quoted:
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    parts.append("".join(buf))
    return [p.strip() for p in parts if p.strip()]


def parse_accept(accept: str) -> list[MediaRange]:
    """Parse an Accept header into media ranges, best q first (stable for equal q; RFC 9110 12.5.1)."""
    ranges: list[MediaRange] = []
    for item in _split(accept or "*/*", ","):
        fields = _split(item, ";")
        if not fields or "/" not in fields[0]:
            continue  # not a media range: ignored, never widened into "anything"
        media = fields[0].lower()
        params: dict[str, str] = {}
        for field in fields[1:]:
            name, _, val = field.partition("=")
            params[name.strip().lower()] = val.strip().strip('"').strip()
        try:
            q = float(params.get("q", "1"))
        except ValueError:
            q = 0.0  # a malformed q excludes its range rather than widening the answer
        multipart = media == "multipart/related"
        if multipart:
            # PS3.18 8.7.3.3.2: multipart without type= means application/octet-stream
            media = params.get("type", ts_.OCTET).lower() or ts_.OCTET
        ranges.append(MediaRange(media, params.get("transfer-syntax") or None, q, multipart))
    return sorted((r for r in ranges if r.q > 0), key=lambda r: -r.q)


def _decoded_info(info: FrameInfo, stored_ts: str) -> FrameInfo:
    """What a decoded frame looks like: lossy JPEG colour comes back RGB, native 4:2:2 as YBR_FULL."""
    if info.samples_per_pixel == 3 and stored_ts in (ts_.JPEG_BASELINE, ts_.JPEG_EXTENDED):
        return info.with_(photometric="RGB", planar_configuration=0)
    if info.photometric in ("YBR_ICT", "YBR_RCT"):
        return info.with_(photometric="RGB", planar_configuration=0)
    if info.photometric == "YBR_FULL_422" and stored_ts in ts_.NATIVE:
        return info.with_(photometric="YBR_FULL", planar_configuration=0)
    return info.with_(planar_configuration=0)


def _candidates(r: MediaRange, stored_ts: str) -> list[tuple[str, str, bool]]:
    """(media type, transfer syntax, explicitly asked) pairs a media range stands for, in order."""
    stored_media = ts_.SYNTAXES[stored_ts].media_type if stored_ts in ts_.SYNTAXES else ts_.OCTET
    as_stored = ts_.EXPLICIT_LE if stored_ts in ts_.NATIVE else stored_ts
    if r.media_type in ("*/*", "image/*"):
        out = []
        if r.media_type == "*/*" or stored_media.startswith("image/"):
            out.append((stored_media, as_stored, False))
        out.append((ts_.OCTET, ts_.EXPLICIT_LE, False) if r.media_type == "*/*"
                   else ("image/jls", ts_.JPEG_LS_LOSSLESS, False))
        return out
    allowed = ts_.media_syntaxes(r.media_type)
    if not allowed:
        return []
    if r.transfer_syntax == "*":
        # "*" = as stored (PS3.18 8.7.3.5.2); OHIF asks octet-stream;transfer-syntax=* for anything
        if as_stored in allowed or r.media_type == ts_.OCTET:
            return [(r.media_type, as_stored, True)]
        return [(r.media_type, allowed[0], False)]
    if r.transfer_syntax:
        return [(r.media_type, r.transfer_syntax, True)] if r.transfer_syntax in allowed else []
    # PS3.18 8.7.3: no parameter -> the default, unless what we hold is lossy and fits the type
    if ts_.is_lossy(stored_ts) and stored_ts in allowed:
        return [(r.media_type, stored_ts, False)]
    return [(r.media_type, allowed[0], False)]


def _feasible(ts: str, explicit: bool, stored_ts: str, decoded: FrameInfo) -> bool:
    """Can we produce ts from what is stored, without a lossy step the client did not ask for?"""
    if ts == stored_ts or (ts in ts_.NATIVE and stored_ts in ts_.NATIVE):
        return True
    if stored_ts not in ts_.NATIVE and not can_decode(stored_ts):
        return False
    if ts_.is_lossy(ts) and not explicit:
        return False  # never silently lossy (issue 4, part 1)
    return encode_refusal(ts, decoded) is None


def negotiate_frame_media(accept: str, stored_ts: str, info: FrameInfo) -> list[FrameChoice] | None:
    """(media_type, transfer_syntax) pairs acceptable to the client that we can produce, best first; None -> 406."""
    stored_ts = str(stored_ts).strip()
    decoded = _decoded_info(info, stored_ts)
    choices: list[FrameChoice] = []
    seen: set[tuple[str, str]] = set()
    for r in parse_accept(accept):
        for media, ts, explicit in _candidates(r, stored_ts):
            if (media, ts) in seen or not _feasible(ts, explicit, stored_ts, decoded):
                continue
            seen.add((media, ts))
            choices.append(FrameChoice(media, ts, r.multipart))
    return choices or None
