"""Property test: search agrees with a plain-Python reference matcher on random corpora."""
from __future__ import annotations

import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from index import Index, Query, parse_match

from .conftest import el, make

PIDS = ["A", "B", "ab", "A_1", "A%", "Ab"]
NAMES: list[dict[str, str]] = [
    {"Alphabetic": "Wang^Xiaodong"}, {"Alphabetic": "wang^xiaodong"},
    {"Alphabetic": "Wang^Xiaodong", "Ideographic": "王^小东"}, {"Alphabetic": "Li^Na"},
    {"Ideographic": "王小东"}, {"Alphabetic": "Li^Na^^"},
]
DATES = [None, "20230101", "20240105", "20240229", "20241231"]
TIMES = [None, "10", "1030", "103015", "103015.25", "235959", "000000"]
MODS = ["CT", "MR", "US"]
ACCS = ["X1", "X_1", "x1", "X%1", None]


@hs.composite
def corpora(draw: Any) -> list[dict[str, Any]]:
    """Small random studies: study-level values plus series modalities."""
    out = []
    for n in range(draw(hs.integers(1, 7))):
        out.append({"uid": f"1.{n}", "pid": draw(hs.sampled_from(PIDS)),
                    "name": draw(hs.sampled_from(NAMES)), "date": draw(hs.sampled_from(DATES)),
                    "time": draw(hs.sampled_from(TIMES)), "acc": draw(hs.sampled_from(ACCS)),
                    "mods": draw(hs.lists(hs.sampled_from(MODS), min_size=1, max_size=3))})
    return out


WILD = hs.text(alphabet="ABab_%1*?X", min_size=1, max_size=4)
QUERIES = hs.lists(hs.one_of(
    hs.tuples(hs.just("PatientID"), hs.one_of(hs.sampled_from(PIDS), WILD)),
    hs.tuples(hs.just("PatientName"), hs.sampled_from(
        ["Wang^Xiaodong", "WANG*", "王*", "*小东", "li^na", "王小东", "?ang^*", "Li^Na^",
         "xiao wang", "小东", "wangx", "na,l", "王^小"])),
    hs.tuples(hs.just("StudyDate"), hs.sampled_from(
        ["20240105", "20240101-20241231", "-20240105", "20240229-", "20230101-20230101"])),
    hs.tuples(hs.just("StudyTime"), hs.sampled_from(
        ["-1030", "1030-", "10-10", "103015", "1030-103015", "-000000", "2359-"])),
    hs.tuples(hs.just("ModalitiesInStudy"), hs.sampled_from(["CT", "MR,US", "?T", "*R"])),
    hs.tuples(hs.just("StudyInstanceUID"), hs.sampled_from(["1.0", "1.1,1.3", "1.2\\1.9"])),
    hs.tuples(hs.just("AccessionNumber"), hs.one_of(hs.sampled_from(ACCS[:-1]), WILD)),
), max_size=3)


def wildcard_re(pattern: str, flags: int = 0) -> re.Pattern[str]:
    """A DICOM wildcard as a regex."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c)
                              for c in pattern), flags | re.DOTALL)


def tm_us(value: str) -> int:
    """A TM as microseconds since midnight (start of its unit)."""
    main, _, frac = value.partition(".")
    h, m, s = int(main[:2]), int(main[2:4] or 0), int(main[4:6] or 0)
    return ((h * 60 + m) * 60 + s) * 1_000_000 + int((frac + "000000")[:6])


def tm_end(value: str) -> int:
    """The last microsecond a TM value covers."""
    main, _, frac = value.partition(".")
    unit = {2: 3600_000_000, 4: 60_000_000, 6: 1_000_000}[len(main)]
    if frac:
        unit = 10 ** (6 - len(frac))
    return tm_us(value) + unit - 1


def ref_fuzzy(name: dict[str, str], raw: str) -> bool:
    """Fuzzy PN: in one group, every query token prefixes some name component."""
    tokens = [t for t in re.split(r"[\^ ,=]+", raw.lower()) if t]
    for group in name.values():
        words = [w for w in re.split(r"[\^ ,=]+", group.lower()) if w]
        words += ["".join(words)] if len(words) > 1 else []
        if words and all(any(w.startswith(t) for w in words) for t in tokens):
            return True
    return not tokens


def ref_match(study: dict[str, Any], key: str, raw: str, fuzzy: bool = False) -> bool:
    """The reference matcher for one key (PS3.4 C.2.2.2 as described in index/parse.py)."""
    if raw.strip() == "*":  # universal matching: also an absent or empty value
        return True
    if key == "PatientID":
        return (wildcard_re(raw).fullmatch(study["pid"]) is not None if set(raw) & set("*?")
                else study["pid"] == raw)
    if key == "AccessionNumber":
        acc = study["acc"]
        if acc is None:
            return False
        return wildcard_re(raw).fullmatch(acc) is not None if set(raw) & set("*?") else acc == raw
    if key == "PatientName":
        groups = [g.rstrip("^ ").lower() for g in study["name"].values()]
        if fuzzy and not set(raw) & set("*?"):
            return ref_fuzzy(study["name"], raw)
        if set(raw) & set("*?"):
            return any(wildcard_re(raw.lower()).fullmatch(g) for g in groups)
        return raw.rstrip("^ ").lower() in groups
    if key == "StudyInstanceUID":
        return study["uid"] in re.split(r"[,\\]", raw)
    if key == "ModalitiesInStudy":
        if set(raw) & set("*?"):
            return any(wildcard_re(raw).fullmatch(m) for m in study["mods"])
        return bool(set(raw.split(",")) & set(study["mods"]))
    if key == "StudyDate":
        d = study["date"]
        lo, sep, hi = raw.partition("-")
        if d is None:
            return False
        return (lo or "0") <= d <= (hi or "9") if sep else d == raw
    t = study["time"]
    if t is None:
        return False
    lo, sep, hi = raw.partition("-")
    if not sep:
        lo = hi = raw
    return (not lo or tm_us(t) >= tm_us(lo)) and (not hi or tm_us(t) <= tm_end(hi))


def ref_order(study: dict[str, Any]) -> tuple[Any, ...]:
    """Date desc, time desc (absent last), then UID."""
    date, time = study["date"], study["time"]
    return (date is None, -(int(date) if date else 0), time is None,
            -(tm_us(time) if time else 0), study["uid"])


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corpus=corpora(), matches=QUERIES, limit=hs.one_of(hs.none(), hs.integers(0, 4)),
       offset=hs.integers(0, 3), fuzzy=hs.booleans())
def test_search_agrees_with_reference(corpus: list[dict[str, Any]], matches: list[tuple[str, str]],
                                      limit: int | None, offset: int, fuzzy: bool) -> None:
    ix = Index(":memory:")
    try:
        ix.upsert([make(study=s["uid"], series=f"{s['uid']}.{i}", sop=f"{s['uid']}.{i}.1",
                        pid=s["pid"], name=s["name"], study_date=s["date"], study_time=s["time"],
                        modality=m, series_number=i,
                        json={"00080050": el("SH", s["acc"])} if s["acc"] else {})
                   for s in corpus for i, m in enumerate(s["mods"])])
        query = Query("STUDY", [parse_match(k, v) for k, v in matches], limit=limit, offset=offset,
                      fuzzy=fuzzy)
        got = [r["0020000D"]["Value"][0] for r in ix.search(query)]
        expected = [s["uid"] for s in sorted(corpus, key=ref_order)
                    if all(ref_match(s, k, v, fuzzy) for k, v in matches)]
        expected = expected[offset:][:limit] if limit is not None else expected[offset:]
        assert got == expected
    finally:
        ix.close()
