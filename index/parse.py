"""Parsing of raw matching values into typed Matches, shared by QIDO-RS and C-FIND.

Matching rules (PS3.4 C.2.2.2, PS3.18 8.3.4 and 10.6.1):

- An empty value is universal matching; so is a value of only ``*``.
- UI (and CS) values may be lists: separated by ``,`` (QIDO, PS3.18 8.3.4.1) or ``\\``
  (DIMSE); either is accepted. A list matches when the attribute equals any member.
- ``*`` (any run) and ``?`` (one character) make a wildcard match (PS3.4 C.2.2.2.4); not for
  UI, DA, TM, DT or numbers, where they are refused.
- DA, TM and DT take ranges ``a-b``, ``-b`` and ``a-`` (PS3.4 C.2.2.2.5). Values are compared
  as normalized fixed-width strings: DA ``YYYYMMDD``, TM ``HHMMSS.ffffff``, DT
  ``YYYYMMDDHHMMSS.ffffff`` (a UTC offset is ignored). A bound of lower precision covers its
  whole unit: ``-1030`` includes 10:30:59.999999, ``2024-`` is the same as ``20240101000000-``.
  A single TM or DT value is the range of its unit (``1030`` matches 10:30:00 to 10:30:59).
- Other single values match exactly and case-sensitively, except PN.
- PN is case-insensitive. A value without ``=`` matches if it matches ANY of the Alphabetic,
  Ideographic and Phonetic groups, so a Chinese name matches on pinyin and on characters;
  ``Alphabetic=Ideographic=Phonetic`` constrains each non-empty group in turn. Trailing
  ``^`` and spaces are ignored.
- Fuzzy PN (QIDO ``fuzzymatching=true``): the query is split into tokens on ``^``, space and
  ``,``; a name matches when, in one group, every token is a prefix of some name component
  (components split on ``^`` and space; the components run together also count as one), in
  any order: ``wang xiao`` matches ``Wang^Xiaodong``, ``小东`` matches ``王^小东``, ``王小东``
  matches ``王小东`` and ``王^小东``.
- Malformed values (DA not YYYYMMDD, bad TM/DT, a UID that is not digits and dots of at most
  64 characters, a non-numeric IS/US) raise InvalidQueryValue naming the tag.
"""
from __future__ import annotations

import math
import re
from datetime import date

from pydicom.datadict import tag_for_keyword

from index.errors import InvalidQueryValue
from index.keys import KEYS, vr_of
from index.query import Level, Match

_HEX8 = re.compile(r"^[0-9A-Fa-f]{8}$")
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_DA = re.compile(r"^\d{8}$")
_TM = re.compile(r"^(\d{2})(?:(\d{2})(?:(\d{2})(?:\.(\d{1,6}))?)?)?$")
_DT = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,6}))?([+-]\d{4})?$")
_INT = re.compile(r"^[+-]?\d+$")
_NO_WILDCARD = {"UI", "DA", "TM", "DT", "IS", "DS", "US", "SS", "UL", "SL", "FL", "FD", "AS", "UV", "SV"}
_NUMERIC = {"IS", "US", "SS", "UL", "SL", "UV", "SV"}
_RANGES = {"IS": (-(2**31), 2**31 - 1), "SL": (-(2**31), 2**31 - 1), "SS": (-(2**15), 2**15 - 1),  # PS3.5 6.2
           "US": (0, 2**16 - 1), "UL": (0, 2**32 - 1), "SV": (-(2**63), 2**63 - 1), "UV": (0, 2**64 - 1)}
_LIST_VRS = {"UI", "CS"}


def tag_of(name: str) -> str | None:
    """Keyword or 8-hex tag (a '.'-separated path for sequences) -> upper-case hex; None if unknown."""
    parts = name.strip().split(".")
    out = []
    for part in parts:
        if _HEX8.match(part):
            out.append(part.upper())
            continue
        tag = tag_for_keyword(part)
        if tag is None:
            return None
        out.append(f"{tag:08X}")
    return ".".join(out)


def supported_match_tags(level: Level) -> frozenset[str]:
    """The tags (and sequence paths) that can be matched at a level."""
    return frozenset(KEYS[level])


def parse_match(tag: str, raw: str, *, list_sep: str = ",") -> Match:
    """Turn one raw matching value into a typed Match (PS3.4 C.2.2.2)."""
    resolved = tag_of(tag)
    if resolved is None:
        raise InvalidQueryValue(tag, "unknown attribute")
    tag = resolved
    vr = vr_of(tag)
    value = raw.strip() if vr != "PN" else raw.strip(" ")
    if value == "" or value == "*":
        return Match(tag, "universal")
    if vr in _LIST_VRS and (list_sep in value or "\\" in value or "," in value):
        seps = "|".join(re.escape(s) for s in {",", "\\", list_sep})
        items = [v.strip() for v in re.split(seps, value)]
        items = [v for v in items if v]
        if not items:
            return Match(tag, "universal")
        for item in items:
            _check_single(tag, vr, item)
        return Match(tag, "list", tuple(dict.fromkeys(items)))
    if "*" in value or "?" in value:
        if vr in _NO_WILDCARD:
            raise InvalidQueryValue(tag, f"wildcards are not allowed for {vr}")
        return Match(tag, "wildcard", (value,))
    if vr in ("DA", "TM", "DT") and "-" in value:
        lo, hi = _split_range(tag, vr, value)
        return Match(tag, "range", (lo, hi))
    _check_single(tag, vr, value)
    return Match(tag, "single", (value,))


def _split_range(tag: str, vr: str, value: str) -> tuple[str, str]:
    """Split 'a-b', '-b', 'a-' at the '-' that leaves two valid bounds (DT offsets contain '-')."""
    for i, ch in enumerate(value):
        if ch != "-":
            continue
        lo, hi = value[:i].strip(), value[i + 1:].strip()
        if not lo and not hi:
            break
        if (not lo or _valid(vr, lo)) and (not hi or _valid(vr, hi)):
            if lo and hi and low_bound(vr, lo) > high_bound(vr, hi):
                raise InvalidQueryValue(tag, "range start is after its end")
            return lo, hi
    raise InvalidQueryValue(tag, f"malformed {vr} range")


def _check_single(tag: str, vr: str, value: str) -> None:
    """Validate one value of a VR we understand; raise InvalidQueryValue when malformed."""
    if vr == "UI":
        if len(value) > 64 or not _UID.match(value):
            raise InvalidQueryValue(tag, "not a UID (digits and dots, at most 64 characters)")
    elif vr in ("DA", "TM", "DT"):
        if not _valid(vr, value):
            raise InvalidQueryValue(tag, f"malformed {vr} value")
    elif vr in _NUMERIC:
        if not _INT.match(value) or (vr.startswith("U") and value.startswith("-")):
            raise InvalidQueryValue(tag, f"not an integer ({vr})")
        lo, hi = _RANGES[vr]
        if not lo <= int(value) <= hi:
            raise InvalidQueryValue(tag, f"out of range for {vr} ({lo}..{hi})")
    elif vr in ("DS", "FL", "FD"):
        try:
            number = float(value)
        except ValueError:
            raise InvalidQueryValue(tag, f"not a number ({vr})") from None
        if not math.isfinite(number):
            raise InvalidQueryValue(tag, f"not a finite number ({vr})")


def _valid(vr: str, value: str) -> bool:
    """True when value is a well-formed DA, TM or DT."""
    if vr == "DA":
        return bool(_DA.match(value)) and _real_date(value[:4], value[4:6], value[6:8])
    if vr == "TM":
        t = _TM.match(value.replace(":", ""))
        return t is not None and int(t[1]) < 24 and int(t[2] or 0) < 60 and int(t[3] or 0) < 61
    m = _DT.match(value)
    if m is None or (m[7] and not m[6]):
        return False
    month, day = m[2] or "01", m[3] or "01"
    return (_real_date(m[1], month, day) and int(m[4] or 0) < 24 and int(m[5] or 0) < 60
            and int(m[6] or 0) < 61)


def _real_date(y: str, m: str, d: str) -> bool:
    """True for an existing calendar date."""
    try:
        date(int(y), int(m), int(d))
    except ValueError:
        return False
    return True


def norm_tm(value: str, high: bool = False) -> str:
    """A TM as fixed-width HHMMSS.ffffff; missing parts are zeros, or their maximum when high."""
    v = value.strip().replace(":", "")
    main, _, frac = v.partition(".")
    fill = "235959" if high else "000000"
    main = main + fill[len(main):6]
    frac = frac + ("9" if high else "0") * (6 - len(frac))
    return f"{main[:6]}.{frac[:6]}"


def norm_dt(value: str, high: bool = False) -> str:
    """A DT as fixed-width YYYYMMDDHHMMSS.ffffff (UTC offset dropped)."""
    v = re.sub(r"[+-]\d{4}$", "", value.strip())
    main, _, frac = v.partition(".")
    fill = "99991231235959" if high else "00000101000000"
    main = main + fill[len(main):14]
    frac = frac + ("9" if high else "0") * (6 - len(frac))
    return f"{main[:14]}.{frac[:6]}"


def norm_da(value: str) -> str:
    """A DA as YYYYMMDD (legacy YYYY.MM.DD accepted in stored data)."""
    return value.strip().replace(".", "").replace("-", "")


def low_bound(vr: str, value: str) -> str:
    """The normalized lowest instant a DA/TM/DT value covers."""
    return norm_da(value) if vr == "DA" else norm_tm(value) if vr == "TM" else norm_dt(value)


def high_bound(vr: str, value: str) -> str:
    """The normalized highest instant a DA/TM/DT value covers."""
    if vr == "DA":
        return norm_da(value)
    return norm_tm(value, True) if vr == "TM" else norm_dt(value, True)


def like_pattern(value: str) -> str:
    """A DICOM wildcard (* ?) as a LIKE pattern escaped with backslash."""
    out = []
    for ch in value:
        if ch in "\\%_":
            out.append("\\" + ch)
        elif ch == "*":
            out.append("%")
        elif ch == "?":
            out.append("_")
        else:
            out.append(ch)
    return "".join(out)


def pn_norm(group: str) -> str:
    """One PN group, lower-cased, without trailing empty components or padding."""
    return group.strip().rstrip("^ ").lower()


def pn_components(group: str) -> list[str]:
    """The lower-case name components of one PN group for fuzzy matching (plus their run-together)."""
    words = [w for w in re.split(r"[\^ ,=]+", group.lower()) if w]
    if len(words) > 1:
        words.append("".join(words))
    return words


def fuzzy_tokens(value: str) -> list[str]:
    """The tokens of a fuzzy PN query (split on ^, space, comma; also = between groups)."""
    return [t for t in re.split(r"[\^ ,=]+", value.lower()) if t]
