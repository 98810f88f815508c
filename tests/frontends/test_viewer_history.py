"""The viewer's compare mode shows a person's whole history (issue 15 part 5): two patient IDs
of two systems that the patient master index links by the resident ID number; the prior under
the OTHER patient ID is offered, a look-alike patient's study is not."""
from __future__ import annotations

import io
import time
from typing import Any

import httpx
import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from benchmarks.net import YunyingServer
from tests.frontends.conftest import DESKTOP, press
from tests.frontends.phantom import ct_slice, stow
from tests.frontends.test_viewer import opened, url
from yunying.records import idcard


def study_of(server: YunyingServer, issuer: str, pid: str, id_number: str, study_date: str) -> str:
    study, series = generate_uid(), generate_uid()
    parts = []
    for i in range(2):
        ds = pydicom.dcmread(io.BytesIO(ct_slice(i, study, series, 64, patient_id=pid, study_date=study_date)))
        ds.IssuerOfPatientID = issuer
        item = Dataset()
        item.PatientID, item.TypeOfPatientID = id_number, "TEXT"
        ds.OtherPatientIDsSequence = [item]
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        parts.append(out.getvalue())
    stow(server, parts)
    return study


def person(server: YunyingServer, pid: str, issuer: str) -> str | None:
    r = httpx.get(server.http_url + "/api/mpi/lookup", params={"PatientID": pid, "IssuerOfPatientID": issuer},
                  headers=server.headers)
    assert r.status_code == 200, r.text
    return r.json()["person"]


def test_compare_offers_the_priors_of_every_id_of_the_person(open_page: Any, archive: YunyingServer) -> None:
    number = "11010519491231002" + idcard.check_character("11010519491231002")
    other_number = "11010519800101001" + idcard.check_character("11010519800101001")
    studies = {}
    for issuer, pid, id_number, day in (("HIS-A", "HA-1", number, "20240301"), ("PACS-B", "PB-9", number, "20220510"),
                                        ("PACS-B", "PB-7", other_number, "20210101")):
        studies[pid] = study_of(archive, issuer, pid, id_number, day)
    deadline = time.monotonic() + 30
    while not (person(archive, "HA-1", "HIS-A") and person(archive, "HA-1", "HIS-A") == person(archive, "PB-9", "PACS-B")):
        assert time.monotonic() < deadline, "the master index did not link the two IDs"
        time.sleep(0.3)
    assert person(archive, "PB-7", "PACS-B") != person(archive, "HA-1", "HIS-A")
    p = open_page(**DESKTOP, locale="en-US")
    page = opened(p.page, url(archive, studies["HA-1"]))
    press(page, "#compare")
    page.wait_for_selector("#priors .prior")
    offered = page.eval_on_selector_all("#priors .prior", "bs => bs.map(b => b.dataset.study)")
    assert offered == [studies["PB-9"]]  # under the other system's patient ID; not the other person's
    assert not p.errors, p.errors
