"""The SOP hash filter never calls a stored instance new: conflicts and resends are caught across restarts."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from index.model import Origin
from tests.dicomweb.helpers import make_ct, part10
from yunying.archive import Archive
from yunying.errors import InstanceConflict
from yunying.known import MERGE_AT, KnownSops


def test_filter_semantics() -> None:
    known = KnownSops()
    assert known.maybe("1.2.3")  # not loaded yet: always ask the index
    known.add("1.2.4")
    known.load(["1.2.3", "1.2.5"])
    assert known.maybe("1.2.3") and known.maybe("1.2.4") and known.maybe("1.2.5")
    assert not known.maybe("1.2.6")
    for i in range(MERGE_AT + 5):  # past the merge point the recent set folds into the array
        known.add(f"9.{i}")
    assert known.maybe("9.0") and known.maybe(f"9.{MERGE_AT + 4}") and not known.maybe("9.x")


def test_conflict_and_resend_are_caught_after_a_restart(tmp_path: Path) -> None:
    ds = make_ct()
    archive = Archive(tmp_path / "data")
    assert archive.store(part10(ds), Origin("import", "t")).outcome == "stored"
    archive.close()
    archive = Archive(tmp_path / "data")
    try:
        deadline = time.monotonic() + 30
        while not archive._known.ready and time.monotonic() < deadline:
            time.sleep(0.01)
        assert archive._known.ready
        assert archive.store(part10(ds), Origin("import", "t")).outcome == "duplicate"
        with pytest.raises(InstanceConflict):
            archive.store(part10(make_ct(sop=ds.SOPInstanceUID)), Origin("import", "t"))
        ds.PatientName = "Other^Name"
        assert archive.store(part10(ds), Origin("import", "t")).outcome == "replaced"
    finally:
        archive.close()
