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


@dataclass(frozen=True)
class StudyScope:
    """The studies a search may see (issue 11): filtered inside the query, so limit/offset,
    counts and computed attributes answer for what is visible only.

    A study is in scope when its origin hospital is in `hospitals` (and, when `departments`
    is not None, its department is one of them), or its UID is in `studies`; a series is in
    scope when its study is, or its UID is in `series` (a series-bound grant also makes its
    study appear in study searches). `everything` admits all.
    """

    everything: bool = False
    hospitals: frozenset[str] = frozenset()
    departments: frozenset[str] | None = None
    studies: frozenset[str] = frozenset()
    series: frozenset[str] = frozenset()

    def owns(self, hospital: str | None, department: str | None) -> bool:
        """Whether a study of this hospital and department is in scope by the hospital clause."""
        return hospital in self.hospitals and (self.departments is None or department in self.departments)

    def admits(self, study: str, hospital: str | None, department: str | None,
               series: str | None = None) -> bool:
        """Whether a study (of that owner) is in scope, or the series of it when series is given."""
        return (self.everything or study in self.studies or self.owns(hospital, department)
                or (series is not None and series in self.series))


ALL = StudyScope(everything=True)


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
    scope: StudyScope = ALL  # what the asking principal may see (index.query.StudyScope)
    # UID tags a QIDO-RS resource path fixes (PS3.18 Tables 10.6.3-3 to -5 decide the attributes
    # returned by the path, not by what the query matches on); None: derived from the matches
    path_scoped: frozenset[str] | None = None
