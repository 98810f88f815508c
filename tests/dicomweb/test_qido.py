"""QIDO-RS (PS3.18 10.6) through HTTP: matching, includefield, paging, errors, Annex F JSON."""
from __future__ import annotations

from collections.abc import Iterator

import httpx
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from pydicom.uid import generate_uid

from benchmarks.net import YunyingServer, start_yunying
from tests import web
from tests.dicomweb.helpers import make_ct, multipart, part10, refusal

TAG = {"PatientName": "00100010", "PatientID": "00100020", "StudyInstanceUID": "0020000D",
       "ModalitiesInStudy": "00080061", "NumberOfStudyRelatedInstances": "00201208",
       "NumberOfStudyRelatedSeries": "00201206", "NumberOfSeriesRelatedInstances": "00201209",
       "StudyDescription": "00081030", "InstitutionName": "00080080", "RetrieveURL": "00081190"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[YunyingServer, dict[str, str]]]:
    srv = start_yunying(tmp_path_factory.mktemp("qido") / "data")
    studies = {k: str(generate_uid()) for k in ("wang", "li", "smith", "smith2")}
    items = []
    s1 = generate_uid()
    items += [make_ct(studies["wang"], s1, name="Wang^Xiaodong", ideographic="王^小东", charset="ISO_IR 192",
                      patient_id="CN001", date="20240105", number=i) for i in range(1, 4)]
    items.append(make_ct(studies["wang"], name="Wang^Xiaodong", ideographic="王^小东", charset="ISO_IR 192",
                         patient_id="CN001", date="20240105", modality="MR"))
    items.append(make_ct(studies["li"], name="Li^Na", ideographic="李^娜", charset="ISO_IR 192",
                         patient_id="CN002", date="20230610", modality="DX"))
    items.append(make_ct(studies["smith"], name="Smith^Anna", patient_id="US001", date="20221231",
                         accession="ACC-77"))
    items.append(make_ct(studies["smith2"], name="Smithson^Bob", patient_id="US002", date="20240301"))
    for d in items:
        if d.StudyInstanceUID == studies["smith"]:
            d.StudyDescription = "CHEST CT"
            d.InstitutionName = "Renji Hospital"
    resp = web.post(srv.dicomweb_url + "/studies", content=(mp := multipart(*(part10(d) for d in items)))[0],
                      headers={"Content-Type": mp[1]}, timeout=60)
    assert resp.status_code == 200, resp.text
    yield srv, studies
    srv.stop()


def q(srv: YunyingServer, path: str, **params: str) -> httpx.Response:
    return web.get(srv.dicomweb_url + path, params=params, timeout=30)


def uids(resp: httpx.Response) -> set[str]:
    assert resp.status_code == 200, resp.text
    return {r[TAG["StudyInstanceUID"]]["Value"][0] for r in resp.json()}


def test_computed_return_keys(corpus: tuple[YunyingServer, dict[str, str]]) -> None:
    srv, st = corpus
    [study] = q(srv, "/studies", StudyInstanceUID=st["wang"]).json()
    assert study[TAG["ModalitiesInStudy"]] == {"vr": "CS", "Value": ["CT", "MR"]}
    assert study[TAG["NumberOfStudyRelatedSeries"]] == {"vr": "IS", "Value": [2]}
    assert study[TAG["NumberOfStudyRelatedInstances"]] == {"vr": "IS", "Value": [4]}
    assert study[TAG["RetrieveURL"]]["Value"][0].endswith(f"/dicomweb/studies/{st['wang']}")
    series = q(srv, f"/studies/{st['wang']}/series").json()
    assert sorted(s[TAG["NumberOfSeriesRelatedInstances"]]["Value"][0] for s in series) == [1, 3]


def test_person_names_are_pn_objects_and_match_both_groups(corpus: tuple[YunyingServer, dict[str, str]]) -> None:
    srv, st = corpus
    [study] = q(srv, "/studies", PatientName="王^小东").json()
    assert study[TAG["PatientName"]] == {"vr": "PN", "Value": [{"Alphabetic": "Wang^Xiaodong", "Ideographic": "王^小东"}]}
    assert uids(q(srv, "/studies", PatientName="Wang*")) == {st["wang"]}
    assert uids(q(srv, "/studies", PatientName="王*")) == {st["wang"]}
    assert uids(q(srv, "/studies", PatientName="李^娜")) == {st["li"]}


def test_fuzzy_matching_is_case_insensitive_prefix_per_component(corpus: tuple[YunyingServer, dict[str, str]]) -> None:
    srv, st = corpus
    assert uids(q(srv, "/studies", PatientName="wang", fuzzymatching="true")) == {st["wang"]}
    assert uids(q(srv, "/studies", PatientName="xiao", fuzzymatching="true")) == {st["wang"]}
    assert uids(q(srv, "/studies", PatientName="wang", fuzzymatching="false")) == set()
    assert uids(q(srv, "/studies", PatientName="smith", fuzzymatching="true")) == {st["smith"], st["smith2"]}


def test_wildcards_lists_ranges(corpus: tuple[YunyingServer, dict[str, str]]) -> None:
    srv, st = corpus
    assert uids(q(srv, "/studies", PatientID="*001")) == {st["wang"], st["smith"]}
    assert uids(q(srv, "/studies", PatientID="CN00?")) == {st["wang"], st["li"]}
    assert uids(q(srv, "/studies", StudyInstanceUID=f"{st['li']},{st['smith']}")) == {st["li"], st["smith"]}
    assert uids(q(srv, "/studies", StudyDate="20240101-20241231")) == {st["wang"], st["smith2"]}
    assert uids(q(srv, "/studies", StudyDate="-20230610")) == {st["li"], st["smith"]}
    assert uids(q(srv, "/studies", StudyDate="20240301-")) == {st["smith2"]}
    assert uids(q(srv, "/studies", ModalitiesInStudy="MR")) == {st["wang"]}
    assert uids(q(srv, "/studies", ModalitiesInStudy="DX,MR")) == {st["wang"], st["li"]}
    assert uids(q(srv, "/studies", AccessionNumber="ACC-77")) == {st["smith"]}
    assert uids(q(srv, "/studies", **{"00100020": "US002"})) == {st["smith2"]}


def test_includefield_comma_separated_keyword_tag_and_all(corpus: tuple[YunyingServer, dict[str, str]]) -> None:
    srv, st = corpus
    [study] = q(srv, "/studies", StudyInstanceUID=st["smith"], includefield="StudyDescription,00080080").json()
    assert study[TAG["StudyDescription"]]["Value"] == ["CHEST CT"]
    assert study[TAG["InstitutionName"]]["Value"] == ["Renji Hospital"]
    [study] = q(srv, "/studies", StudyInstanceUID=st["smith"], includefield="all").json()
    assert study[TAG["StudyDescription"]]["Value"] == ["CHEST CT"]


def test_every_attribute_has_a_vr_and_numbers_are_numbers(corpus: tuple[YunyingServer, dict[str, str]]) -> None:
    srv, _ = corpus
    for path in ("/studies", "/series", "/instances"):
        for item in q(srv, path, includefield="all").json():
            for tag, attr in item.items():
                assert len(tag) == 8 and "vr" in attr, (path, tag)
                if attr["vr"] in ("IS", "DS", "US", "UL", "SS", "SL", "FL", "FD") and "Value" in attr:
                    assert all(isinstance(v, (int, float)) for v in attr["Value"]), (tag, attr)


def test_limit_offset_stable_order_and_warning(corpus: tuple[YunyingServer, dict[str, str]]) -> None:
    srv, _ = corpus
    everything = [r[TAG["StudyInstanceUID"]]["Value"][0] for r in q(srv, "/studies").json()]
    assert len(everything) == 4
    page1 = q(srv, "/studies", limit="2")
    page2 = q(srv, "/studies", limit="2", offset="2")
    assert "additional results" in page1.headers["Warning"]
    got = [r[TAG["StudyInstanceUID"]]["Value"][0] for r in page1.json() + page2.json()]
    assert got == everything
    assert "Warning" not in q(srv, "/studies", limit="10").headers


@pytest.mark.parametrize("params, name", [
    ({"limit": "-1"}, "limit"), ({"limit": "ten"}, "limit"), ({"offset": "x"}, "offset"),
    ({"StudyDate": "2024-01-01"}, "StudyDate"), ({"StudyDate": "20241345"}, "StudyDate"),
    ({"StudyInstanceUID": "1.2.abc"}, "StudyInstanceUID"), ({"fuzzymatching": "maybe"}, "fuzzymatching"),
])
def test_bad_parameter_is_400_naming_it(corpus: tuple[YunyingServer, dict[str, str]], params: dict[str, str],
                                        name: str) -> None:
    srv, _ = corpus
    assert name in refusal(q(srv, "/studies", **params), 400)


def test_unknown_attribute_is_ignored_with_warning(corpus: tuple[YunyingServer, dict[str, str]]) -> None:
    srv, _ = corpus
    resp = q(srv, "/studies", NoSuchKeyword="x")
    assert resp.status_code == 200 and len(resp.json()) == 4
    assert resp.headers["Warning"].startswith("299 ")


def test_xml_only_accept_is_406(corpus: tuple[YunyingServer, dict[str, str]]) -> None:
    srv, _ = corpus
    resp = web.get(srv.dicomweb_url + "/studies", headers={"Accept": "application/dicom+xml"})
    assert "application/dicom+json" in refusal(resp, 406)


def test_series_and_instances_levels_with_dicomweb_client(corpus: tuple[YunyingServer, dict[str, str]]) -> None:
    srv, st = corpus
    client = DICOMwebClient(srv.dicomweb_url, headers=srv.headers)
    series = client.search_for_series(search_filters={"Modality": "CT"})
    assert len(series) >= 3
    assert all(TAG["PatientID"] in s for s in series)  # /series with no study also returns study attributes
    inst = client.search_for_instances(st["wang"])
    assert len(inst) == 4
    assert {i["00200013"]["Value"][0] for i in inst} == {1, 2, 3}


def test_answers_follow_stores_replacements_and_deletes(fresh_server: YunyingServer) -> None:
    # Study searches are answered from memory (index/catalog.py): every write must reach them.
    srv = fresh_server

    def stow(*items: pydicom.Dataset) -> None:
        body, ctype = multipart(*(part10(d) for d in items))
        assert web.post(srv.dicomweb_url + "/studies", content=body, headers={"Content-Type": ctype},
                          timeout=60).status_code == 200

    def studies(**params: str) -> list[dict]:
        resp = q(srv, "/studies", **params)
        assert resp.status_code == 200, resp.text
        return resp.json() if resp.content.strip() else []

    study, series, sop = generate_uid(), generate_uid(), generate_uid()
    assert studies(PatientID="CACHE1") == []
    stow(make_ct(study, series, patient_id="CACHE1", date="20240101", sop=sop))
    [found] = studies(PatientID="CACHE1")
    assert found[TAG["ModalitiesInStudy"]]["Value"] == ["CT"]
    stow(make_ct(study, modality="MR", patient_id="CACHE1", date="20240101"))
    [found] = studies(PatientID="CACHE1", ModalitiesInStudy="MR")
    assert found[TAG["NumberOfStudyRelatedSeries"]]["Value"] == [2]
    # the same SOP Instance UID, different content: the newest copy wins
    stow(make_ct(study, series, patient_id="CACHE2", date="20250101", sop=sop, number=7))
    assert {s[TAG["StudyInstanceUID"]]["Value"][0] for s in studies(StudyDate="20250101")} == {study}
    assert web.delete(f"{srv.dicomweb_url}/studies/{study}", timeout=30).status_code == 204
    assert studies(StudyDate="20250101") == [] and studies(PatientID="CACHE2") == []
    assert studies() == []
