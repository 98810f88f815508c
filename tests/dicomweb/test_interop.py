"""Issue 10 part 10: what Orthanc's integration tests and dicomweb-client's JavaScript suite found."""
from __future__ import annotations

import httpx
import pydicom

from benchmarks.net import YunyingServer
from tests.dicomweb.helpers import make_ct, multipart, part10


def stow(server: YunyingServer, ds: pydicom.Dataset) -> None:
    body, ctype = multipart(part10(ds))
    resp = httpx.post(server.dicomweb_url + "/studies", content=body, timeout=60,
                      headers={**server.headers, "Content-Type": ctype})
    assert resp.status_code == 200, resp.text


def test_an_invalid_media_range_beside_a_valid_one_is_ignored(server: YunyingServer) -> None:
    ds = make_ct()
    stow(server, ds)
    url = f"{server.dicomweb_url}/studies/{ds.StudyInstanceUID}/metadata"
    resp = httpx.get(url, headers={**server.headers, "Accept": "toto, application/dicom+json"})
    assert resp.status_code == 200, resp.text
    assert resp.json()[0]["00080018"]["Value"] == [ds.SOPInstanceUID]
    # a range whose weight is malformed or out of 0..1 (RFC 9110 12.4.2) is as invalid as "toto"
    for accept in ("application/dicom+json; q=x, */*", "application/dicom+json;q=7, application/dicom+json;q=0.5"):
        resp = httpx.get(url, headers={**server.headers, "Accept": accept})
        assert resp.status_code == 200, (accept, resp.text)
        assert resp.json()[0]["00080018"]["Value"] == [ds.SOPInstanceUID]
    only_bad = httpx.get(url, headers={**server.headers, "Accept": "toto"})
    assert only_bad.status_code in (400, 406) and "Accept" in only_bad.text


def test_an_empty_value_among_several_is_null_in_dicom_json(server: YunyingServer) -> None:
    """PS3.18 F.2.5: an empty value of a multi-valued attribute is null, not \"\"."""
    ds = make_ct(charset=["", "ISO 2022 IR 149"])
    ds.ImageType = ["ORIGINAL", "", "AXIAL"]
    stow(server, ds)
    url = (f"{server.dicomweb_url}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
           f"/instances/{ds.SOPInstanceUID}/metadata")
    [doc] = httpx.get(url, headers=server.headers).json()
    assert doc["00080005"]["Value"] == [None, "ISO 2022 IR 149"]
    assert doc["00080008"]["Value"] == ["ORIGINAL", None, "AXIAL"]


def test_a_doubled_slash_in_the_path_is_served(server: YunyingServer) -> None:
    """Clients build `{base}/studies` from a base URL ending in `/` (Orthanc serves it)."""
    ds = make_ct()
    stow(server, ds)
    resp = httpx.get(f"{server.http_url}/dicomweb//studies", params={"StudyInstanceUID": ds.StudyInstanceUID},
                     headers=server.headers)
    assert resp.status_code == 200, resp.text
    assert [s["0020000D"]["Value"] for s in resp.json()] == [[ds.StudyInstanceUID]]
    deep = httpx.get(f"{server.http_url}/dicomweb//studies//{ds.StudyInstanceUID}//metadata", headers=server.headers)
    assert deep.status_code == 200, deep.text


# PS3.18 Table 10.6.3-5 (6.7.1-2 / -2a): what an all-instances search answers beside the instance's own
STUDY_KEYS = {"00080020": ["20240101"], "00080030": ["101500"], "00080050": ["A1"], "00080061": ["CT"],
              "00080090": [{"Alphabetic": "Ref^Doc"}], "00100010": [{"Alphabetic": "Doe^John"}],
              "00100020": ["ALLINST-1"], "00100030": ["19800101"], "00100040": ["F"], "00200010": ["S7"],
              "00201206": [1], "00201208": [1]}
SERIES_KEYS = {"00080060": ["CT"], "0008103E": ["AX"], "00200011": [1], "00201209": [1]}
INSTANCE_KEYS = {"00080016": ["1.2.840.10008.5.1.4.1.1.2"], "00080056": ["ONLINE"], "00200013": [1],
                 "00280008": [2], "00280010": [8], "00280011": [8], "00280100": [16]}


def test_all_instances_search_by_series_carries_study_and_series_attributes(server: YunyingServer) -> None:
    """PS3.18 Table 10.6.3-5: /instances (no study in the path) answers with the study's and the
    series' attributes and a RetrieveURL, whatever the query matches on."""
    ds = make_ct(patient_id="ALLINST-1", frames=2)
    ds.StudyID, ds.ReferringPhysicianName, ds.SeriesDescription = "S7", "Ref^Doc", "AX"
    ds.PatientBirthDate, ds.PatientSex = "19800101", "F"
    stow(server, ds)
    resp = httpx.get(f"{server.dicomweb_url}/instances", params={"0020000E": ds.SeriesInstanceUID},
                     headers=server.headers)
    assert resp.status_code == 200, resp.text
    [item] = resp.json()
    assert item["0020000D"]["Value"] == [ds.StudyInstanceUID] and item["0020000E"]["Value"] == [ds.SeriesInstanceUID]
    assert item["00080018"]["Value"] == [ds.SOPInstanceUID]
    for tag, value in {**STUDY_KEYS, **SERIES_KEYS, **INSTANCE_KEYS}.items():
        assert item.get(tag, {}).get("Value") == value, (tag, item.get(tag))
    assert item["00081190"]["Value"][0].endswith(
        f"/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}")
