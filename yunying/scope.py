"""What a principal may see, for the index (issue 11, design.md "Identity, access and audit").

The one place a `Visibility` (yunying.auth.principal) becomes the index's `StudyScope`, and the
one test every face applies to a study it names: outside the scope a study does not exist, so
the caller answers exactly what it answers for an unknown UID.
"""
from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from index.query import ALL, Query, StudyScope
from yunying.auth.principal import Visibility

if TYPE_CHECKING:
    from yunying.archive import Archive


@functools.lru_cache(maxsize=4096)
def study_scope(visibility: Visibility) -> StudyScope:
    """The index filter of a Visibility (cached: one per principal kind on the hot path)."""
    if visibility.everything:
        return ALL
    return StudyScope(hospitals=visibility.hospitals, departments=visibility.departments,
                      studies=visibility.studies, series=visibility.series)


def scoped(query: Query, visibility: Visibility) -> Query:
    """The query limited to what the visibility sees (set in place, returned)."""
    query.scope = study_scope(visibility)
    return query


def visible(archive: Archive, visibility: Visibility, study: str, series: str | None = None) -> bool:
    """Whether a stored study (or one series of it) exists for this visibility; an unknown
    study is never visible. May read the index: not on an event loop."""
    if visibility.everything:
        return True
    owner = archive.owner(study)
    return owner is not None and study_scope(visibility).admits(study, *owner, series)


def visible_now(archive: Archive, visibility: Visibility, study: str,
                series: str | None = None) -> bool | None:
    """visible() when the answer is in memory (safe on an event loop), else None."""
    if visibility.everything:
        return True
    known = archive.cached_owner(study)
    if known is None:
        return None
    owner = known[0]
    return owner is not None and study_scope(visibility).admits(study, *owner, series)
