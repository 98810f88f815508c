"""The records runtime of `yunying serve`: record store, collectors on their intervals, the MLLP
listener, the matcher; built from the settings by the composition root (yunying/cli.py)."""
from __future__ import annotations

import logging
import threading
import time
from typing import Any

from index.query import Match, Query, StudyScope
from yunying.auth.store import Store
from yunying.pii import keys_for
from yunying.records.collector import Collector, RunResult
from yunying.records.mapping import Source, load_sources
from yunying.records.store import RecordStore, Where

log = logging.getLogger("yunying.records")


class ArchiveMover:
    """Merges' index side over the archive: studies of a patient ID in a hospital, and moves."""

    def __init__(self, archive: Any) -> None:
        self.archive = archive

    def studies_of(self, patient_id: str, hospital: str) -> list[str]:
        query = Query("STUDY", [Match("00100020", "single", (patient_id,))],
                      scope=StudyScope(hospitals=frozenset({hospital})))
        return [a["0020000D"]["Value"][0] for a in self.archive.search(query)]

    def move(self, studies: list[str], attrs: dict[str, Any], keep: bool) -> dict[str, Any]:
        return dict(self.archive.move_patient(studies, attrs, keep))


class Records:
    """Everything of the records package one server runs."""

    def __init__(self, settings: Any, store: Store, archive: Any = None) -> None:
        self.settings, self.archive = settings, archive
        self.store = RecordStore(store, keys_for(settings.data, settings.pii_key_file))
        self.mover = ArchiveMover(archive) if archive is not None else None
        self.sources: list[Source] = load_sources(settings.records_sources)
        self.collectors: dict[str, Collector] = {}
        self.listener: Any = None
        self.handler: Any = None
        self.matched_at: int | None = None
        self.match_counts: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def collector(self, name: str) -> Collector:
        if name not in self.collectors:
            source = next((s for s in self.sources if s.name == name), None)
            if source is None:
                raise KeyError(name)
            from yunying.records.webservice import reader_for
            self.collectors[name] = Collector(source, self.store, reader_for(source))
        return self.collectors[name]

    def run_source(self, name: str) -> RunResult:
        return self.collector(name).run()

    def match(self) -> dict[str, int]:
        from yunying.records.matching import match_new_studies
        if self.archive is None:
            return {}
        self.match_counts = match_new_studies(self.store, self.archive)
        self.matched_at = int(time.time())
        return self.match_counts

    def start(self) -> None:
        """The MLLP listener (when hl7_port is set) and the polling thread."""
        s = self.settings
        if s.hl7_port:
            from yunying.records.hl7in import Hl7Handler
            from yunying.records.mllp import MllpListener
            self.handler = Hl7Handler(self.store, Where(s.hl7_hospital, s.hl7_issuer or s.hl7_hospital, "hl7"),
                                      self.mover, s.hl7_charset, s.aet)
            self.listener = MllpListener(self.handler, s.host, s.hl7_port, s.hl7_allow)
            self.listener.start()
        self._thread = threading.Thread(target=self._poll, name="records", daemon=True)
        self._thread.start()
        from yunying.records.jobs import register
        register(self)

    def _poll(self) -> None:
        due: dict[str, float] = {}
        next_match = time.monotonic() + 5
        while not self._stop.wait(1.0):
            now = time.monotonic()
            for source in self.sources:
                if source.interval_seconds and now >= due.get(source.name, 0):
                    due[source.name] = now + source.interval_seconds
                    try:
                        self.run_source(source.name)
                    except Exception as exc:  # noqa: BLE001 - a bad source must not stop the others
                        log.error("records source %s failed: %s", source.name, type(exc).__name__)
            if self.settings.records_match_seconds and now >= next_match:
                next_match = now + self.settings.records_match_seconds
                try:
                    self.match()
                except Exception as exc:  # noqa: BLE001 - the next sweep tries again
                    log.error("matching failed: %s", type(exc).__name__)

    def stop(self) -> None:
        self._stop.set()
        if self.listener is not None:
            self.listener.stop()
        if self._thread is not None:
            self._thread.join(timeout=30)
        for c in self.collectors.values():
            c.reader.close()
