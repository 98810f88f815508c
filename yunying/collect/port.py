"""What a collector needs from a source PACS, independent of the protocol library.

The DIMSE implementation (dimse/collect_scu.py) is wired in by the composition root: the
yunying package never imports a face (tests/test_boundaries.py). Answers are checked here,
because a source may send garbage: a match without a valid UID, a count that is not a number,
the same study twice.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from yunying.collect.config import Source

UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")  # PS3.5 9.1: digits and dots, at most 64 characters
Store = Callable[[bytes], int]  # C-GET: one received instance -> its C-STORE status


class SourceError(Exception):
    """The source timed out, refused the association, or answered with a failure status."""


@dataclass(frozen=True)
class Match:
    """A study or series the source holds, with its instance count when it gave one."""

    uid: str
    instances: int | None
    date: str = ""  # StudyDate (YYYYMMDD) of a study match
    sop_classes: tuple[str, ...] = ()  # SOPClassesInStudy, when the source returns it (optional key)


@dataclass(frozen=True)
class Retrieved:
    """The final C-MOVE / C-GET counts (PS3.4 C.4.2.1.6)."""

    status: int
    completed: int = 0
    failed: int = 0
    warning: int = 0


class QueryRetrieve(Protocol):
    """C-FIND and C-MOVE / C-GET against one source (raises SourceError)."""

    def find(self, source: Source, level: str, keys: dict[str, str]) -> list[dict[str, str]]:
        """C-FIND (Study Root) at `level`; every returned key as text ("" when absent)."""

    def retrieve(self, source: Source, studies: list[str], series: str | None, store: Store | None,
                 sop_classes: tuple[str, ...] = ()) -> Retrieved:
        """C-GET into `store` when given (offering `sop_classes` only, when known), else C-MOVE to our
        AE: one series of `studies[0]`, or every instance of `studies` (a UID list)."""


@dataclass
class Checked:
    """The valid, de-duplicated matches of an answer and how many were garbage or repeated."""

    matches: list[Match]
    garbage: int = 0
    duplicates: int = 0


def check_matches(answers: list[dict[str, str]], uid_key: str, count_key: str) -> Checked:
    """Keep the matches with a valid UID, once each; a bad count is "unknown", not a reason to skip."""
    out = Checked([])
    seen: set[str] = set()
    for answer in answers:
        uid = answer.get(uid_key, "").strip().rstrip("\0")
        if not (0 < len(uid) <= 64 and UID.match(uid)):
            out.garbage += 1
            continue
        if uid in seen:
            out.duplicates += 1
            continue
        seen.add(uid)
        text = answer.get(count_key, "").strip()
        count = int(text) if text.isdigit() and len(text) <= 9 else None
        if text and count is None:
            out.garbage += 1
        classes = tuple(c for c in answer.get("SOPClassesInStudy", "").split("\\") if UID.match(c.strip()))
        out.matches.append(Match(uid, count, answer.get("StudyDate", "").strip(), classes))
    return out
