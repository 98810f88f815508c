"""IssuerOfPatientID -> hospital (issue 11): what the default hospital's origins store under a
mapped issuer belongs to that hospital, also when the index is rebuilt from the stored records."""
from __future__ import annotations

from pathlib import Path

import pytest

from index.model import Origin
from tests.dicomweb.helpers import make_ct, part10
from yunying.archive import Archive
from yunying.settings import SettingError, load_settings


def with_issuer(issuer: str) -> bytes:
    ds = make_ct()
    ds.IssuerOfPatientID = issuer
    return part10(ds)


def test_a_mapped_issuer_names_the_hospital(tmp_path: Path) -> None:
    mapping = {"HOSP-A": "h1"}
    archive = Archive(tmp_path / "d", issuer_hospitals=mapping)
    try:
        mapped = archive.store(with_issuer("HOSP-A"), Origin("import", "yunying-import", ""))
        other = archive.store(with_issuer("ELSEWHERE"), Origin("import", "yunying-import", ""))
        named = archive.store(with_issuer("HOSP-A"), Origin("stow", "10.0.0.1", "", "h2"))
        assert archive.owner(mapped.study) == ("h1", None)
        assert archive.owner(other.study) == ("default", None)
        assert archive.owner(named.study) == ("h2", None)  # a storer's own hospital wins
    finally:
        archive.close()
    (tmp_path / "d" / "index.duckdb").unlink()  # rebuilt from the records kept beside the bytes
    archive = Archive(tmp_path / "d", issuer_hospitals=mapping)
    try:
        archive.check(repair=True)
        assert archive.owner(mapped.study) == ("h1", None)
        assert archive.owner(named.study) == ("h2", None)
    finally:
        archive.close()


def test_the_setting_from_the_environment() -> None:
    settings = load_settings(environ={"YUNYING_ISSUER_HOSPITALS": '{"HOSP-A": "h1"}'})
    assert settings.issuer_hospitals == {"HOSP-A": "h1"}
    with pytest.raises(SettingError, match="YUNYING_ISSUER_HOSPITALS"):
        load_settings(environ={"YUNYING_ISSUER_HOSPITALS": '{"HOSP-A": ""}'})
