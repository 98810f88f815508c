"""Typed queries shared by QIDO-RS and C-FIND; parsing of raw values lives here, SQL elsewhere."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Level = Literal["PATIENT", "STUDY", "SERIES", "IMAGE"]
MatchKind = Literal["universal", "single", "list", "wildcard", "range"]


@dataclass(frozen=True)
class Match:
    """One matching key (PS3.4 C.2.2.2): tag as 8 upper-case hex digits."""

    tag: str
    kind: MatchKind
    values: tuple[str, ...] = ()  # single: (v,); list: (v1, v2 ...); wildcard: (pattern,); range: (lo, hi) with "" open


@dataclass
class Query:
    """A search at one level, scoped by the UIDs a URL or a C-FIND identifier fixes."""

    level: Level
    matches: list[Match] = field(default_factory=list)
    includefields: set[str] = field(default_factory=set)  # tags (8 hex) to return beyond the defaults
    include_all: bool = False
    fuzzy: bool = False
    limit: int | None = None
    offset: int = 0
    patient_root: bool = False  # C-FIND Patient Root: PATIENT level exists, STUDY is under a patient
