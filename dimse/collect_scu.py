"""The collectors' view of a source PACS over DIMSE (yunying.collect.port.QueryRetrieve).

Built on dimse/scu.py: one association per operation, TCP_NODELAY, the reader-race fix and
the source's timeout on every wait.
"""
from __future__ import annotations

import logging

from pydicom import Dataset

from dimse import scu
from yunying.collect.config import Source
from yunying.collect.port import Retrieved, SourceError, Store
from yunying.errors import ArchiveError

log = logging.getLogger("yunying.collect")


class DimseQueryRetrieve:
    """C-FIND, C-MOVE (to `our_aet`) and C-GET against configured sources."""

    def __init__(self, our_aet: str) -> None:
        self.our_aet = our_aet

    def _peer(self, source: Source) -> scu.Peer:
        return scu.Peer(source.host, source.port, called=source.aet,
                        aet=source.calling_aet or self.our_aet, timeout=source.timeout)

    def find(self, source: Source, level: str, keys: dict[str, str]) -> list[dict[str, str]]:
        identifier = Dataset()
        identifier.QueryRetrieveLevel = level
        for keyword, value in keys.items():
            setattr(identifier, keyword, value)
        out = []
        try:
            for answer in scu.find(self._peer(source), identifier):
                out.append({k: _text(answer, k) for k in keys})
        except (scu.DimseFailure, OSError, RuntimeError) as exc:
            raise SourceError(f"C-FIND {level} at {source.name}: {exc}") from None
        return out

    def retrieve(self, source: Source, studies: list[str], series: str | None, store: Store | None,
                 sop_classes: tuple[str, ...] = ()) -> Retrieved:
        identifier = Dataset()
        identifier.QueryRetrieveLevel = "SERIES" if series else "STUDY"
        identifier.StudyInstanceUID = studies[0] if len(studies) == 1 else list(studies)  # PS3.4 C.4.2.2.1
        if series:
            identifier.SeriesInstanceUID = series
        try:
            if store is None:
                result = scu.move(self._peer(source), identifier, source.calling_aet or self.our_aet)
            else:
                # the classes the source said the study holds: 127 contexts cost ~60 ms per association
                result = scu.get(self._peer(source), identifier, _statuses(store), sop_classes=list(sop_classes) or None)
        except (scu.DimseFailure, OSError, RuntimeError) as exc:
            raise SourceError(f"C-{'GET' if store else 'MOVE'} at {source.name}: {exc}") from None
        return Retrieved(result.status, result.completed, result.failed, result.warning)


def _statuses(store: Store) -> scu.StoreCallback:
    def on_instance(raw: bytes) -> int:
        try:
            return store(raw)
        except ArchiveError as exc:  # refused by the archive: the sub-operation fails with its status
            return exc.dimse_status
    return on_instance


def _text(answer: Dataset, keyword: str) -> str:
    """A returned value as text; a value pydicom cannot convert is garbage, i.e. ""."""
    try:
        value = answer.get(keyword)
        if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
            return "\\".join(str(v) for v in value)  # multi-valued (SOPClassesInStudy)
        return "" if value is None else str(value)
    except Exception:  # noqa: BLE001 - garbage from the source must not end the C-FIND
        return ""
