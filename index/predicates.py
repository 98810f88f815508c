"""sql.match_clause mirrored as Python tests of an in-memory row (see catalog.py).

Each function follows the SQL term it mirrors: the same normalized column values, LIKE
patterns (like_pattern) run as regular expressions, NULL (None) never matching. Anything not
mirrored gives None, and the query goes to SQL.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from index.extract import SEP
from index.keys import Key
from index.parse import fuzzy_tokens, high_bound, like_pattern, low_bound, pn_norm
from index.query import Match
from index.sql import fuzzy_literal

Row = tuple[Any, ...]
Pred = Callable[[Row], bool]


def like_regex(pattern: str) -> re.Pattern[str]:
    """A LIKE pattern escaped with backslash (sql.ESC) as a regular expression for fullmatch."""
    out = []
    chars = iter(pattern)
    for ch in chars:
        if ch == "\\":
            out.append(re.escape(next(chars, "\\")))
        else:
            out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
    return re.compile("".join(out), re.DOTALL)


def predicate(key: Key, m: Match, pos: Mapping[str, int], fuzzy: bool = False) -> Pred | None:
    """sql.match_clause as a Python test of a row whose columns are at pos; None when not mirrored."""
    if key.column not in pos or m.kind not in ("single", "list", "wildcard", "range") or not m.values:
        return None
    i = pos[key.column]
    if key.kind == "pn":
        return _pn(i, pos.get(key.column + "_fz"), m, fuzzy)
    if key.kind == "list":
        return _any(i, m)
    if key.kind in ("da", "tm", "dt"):
        return _range(i, key.kind.upper(), m)
    if key.kind == "int":
        number = int(m.values[0])
        return lambda r: r[i] == number
    if key.kind not in ("str", "uid"):
        return None
    if m.kind == "list":
        values = frozenset(m.values)
        return lambda r: r[i] in values
    if m.kind == "wildcard":
        rx = like_regex(like_pattern(m.values[0]))
        return lambda r: r[i] is not None and rx.fullmatch(r[i]) is not None
    value = m.values[0]
    return lambda r: r[i] == value


def _range(i: int, vr: str, m: Match) -> Pred | None:
    """sql._range: normalized fixed-width strings; NULL never matches."""
    if m.kind == "range":
        lo, hi = m.values
    elif vr == "DA":
        value = low_bound(vr, m.values[0])
        return lambda r: r[i] == value
    else:
        lo = hi = m.values[0]
    if not lo and not hi:
        return None
    low = low_bound(vr, lo) if lo else None
    high = high_bound(vr, hi) if hi else None
    return lambda r: (r[i] is not None and (low is None or r[i] >= low)
                      and (high is None or r[i] <= high))


def _any(i: int, m: Match) -> Pred:
    """sql._any: true when any value of the list column matches."""
    if m.kind == "list":
        values = frozenset(m.values)
        return lambda r: r[i] is not None and not values.isdisjoint(r[i])
    if m.kind == "wildcard":
        rx = like_regex(like_pattern(m.values[0]))
        return lambda r: r[i] is not None and any(x is not None and rx.fullmatch(x) for x in r[i])
    value = m.values[0]
    return lambda r: r[i] is not None and value in r[i]


def _pn(i: int, fz: int | None, m: Match, fuzzy: bool) -> Pred | None:
    """sql._pn: any group, or the groups '=' names; fuzzy by component prefixes."""
    value = m.values[0]
    if fuzzy and m.kind == "single":
        if fz is None:
            return None
        needles = [SEP + fuzzy_literal(t) for t in fuzzy_tokens(value)]
        if not needles:
            return lambda r: True
        return lambda r: r[fz] is not None and any(
            g is not None and all(n in g for n in needles) for g in r[fz])
    conv = _pn_like if m.kind == "wildcard" else _pn_equal
    if "=" not in value:
        test = conv(value)
        return lambda r: r[i] is not None and any(test(g) for g in r[i])
    terms = [(n, conv(part)) for n, part in enumerate(value.split("=")[:3])
             if part.strip(" ^") and part.strip() != "*"]
    return lambda r: all(t(r[i][n] if r[i] is not None and n < len(r[i]) else None) for n, t in terms)


def _pn_like(part: str) -> Callable[[str | None], bool]:
    """One group against `g LIKE like_pattern(part.lower())`."""
    rx = like_regex(like_pattern(part.lower()))
    return lambda g: g is not None and rx.fullmatch(g) is not None


def _pn_equal(part: str) -> Callable[[str | None], bool]:
    """One group against `g = pn_norm(part)`."""
    norm = pn_norm(part)
    return lambda g: g == norm
