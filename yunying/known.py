"""Which SOP Instance UIDs the index may hold, in 8 bytes each: most stores skip the index lookup.

A new instance (the common case) is told apart from a resend or a conflict without a database
round trip, which on a busy archive waits behind the index writer's commits. A "maybe" always
goes to the index; deletions leave their hash behind (a false "maybe", never a false "new").
"""
from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable

import numpy as np

MERGE_AT = 65_536


def sop_hash(sop: str) -> int:
    """A 64-bit hash of a UID."""
    return int.from_bytes(hashlib.blake2b(sop.encode(), digest_size=8).digest(), "little", signed=True)


class KnownSops:
    """A sorted array of hashes plus a small set of recent ones; ready once loaded."""

    def __init__(self) -> None:
        self._sorted = np.empty(0, dtype=np.int64)
        self._recent: set[int] = set()
        self._lock = threading.Lock()
        self.ready = False

    def load(self, sops: Iterable[str]) -> None:
        """Fill from the index (run in the background at start; until then every store asks the index)."""
        hashes = np.fromiter((sop_hash(s) for s in sops), dtype=np.int64)
        with self._lock:
            recent = np.fromiter(self._recent, dtype=np.int64, count=len(self._recent))
            self._sorted = np.unique(np.concatenate([hashes, recent]))
            self._recent.clear()
            self.ready = True

    def add(self, sop: str) -> None:
        """Remember a SOP about to be indexed."""
        with self._lock:
            self._recent.add(sop_hash(sop))
            if len(self._recent) >= MERGE_AT and self.ready:
                recent = np.fromiter(self._recent, dtype=np.int64, count=len(self._recent))
                self._sorted = np.union1d(self._sorted, recent)
                self._recent.clear()

    def maybe(self, sop: str) -> bool:
        """False only when the index certainly does not hold this SOP."""
        if not self.ready:
            return True
        h = sop_hash(sop)
        with self._lock:
            if h in self._recent:
                return True
            i = int(np.searchsorted(self._sorted, h))
            return i < len(self._sorted) and int(self._sorted[i]) == h
