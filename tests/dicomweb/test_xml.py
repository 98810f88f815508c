"""Native DICOM Model XML (PS3.19 A.1) for metadata and QIDO-RS, and the other Table 10.4.4-1
representation added with it: instance resources as octet-stream bulk data.

The XML is read back with xml.etree into DICOM JSON by a plain reference reader below and must
equal the JSON answer of the same request.
"""
from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from benchmarks.net import YunyingServer
from dicomweb.xml import NAMESPACE, PN_COMPONENTS, PN_GROUPS, dataset_xml
from tests import web
from tests.conftest import pydicom_path
from tests.dicomweb.helpers import make_ct, multipart, part10

XML = 'multipart/related; type="application/dicom+xml"'
OCTETS = 'multipart/related; type="application/octet-stream"'
NS = "{" + NAMESPACE + "}"
INTS = {"IS", "SL", "SS", "UL", "US", "SV", "UV"}
FLOATS = {"DS", "FL", "FD"}


# ---- a reference reader: NativeDicomModel -> DICOM JSON ------------------------------------------

def from_xml(doc: bytes) -> dict[str, Any]:
    root = ET.fromstring(doc)
    assert root.tag == NS + "NativeDicomModel"
    return _dataset(root)


def _dataset(node: ET.Element) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for a in node.findall(NS + "DicomAttribute"):
        vr = a.get("vr", "")
        elem: dict[str, Any] = {"vr": vr}
        if (bulk := a.find(NS + "BulkData")) is not None:
            elem["BulkDataURI"] = bulk.get("uri")
        elif (inline := a.find(NS + "InlineBinary")) is not None:
            elem["InlineBinary"] = inline.text
        elif vr == "SQ":
            items = a.findall(NS + "Item")
            assert [int(i.get("number", 0)) for i in items] == list(range(1, len(items) + 1))
            if items:
                elem["Value"] = [_dataset(i) for i in items]
        elif vr == "PN":
            names = a.findall(NS + "PersonName")
            if names:
                elem["Value"] = [_name(n) for n in names]
        else:
            values = a.findall(NS + "Value")
            assert [int(v.get("number", 0)) for v in values] == list(range(1, len(values) + 1))
            if values:
                elem["Value"] = [_number(vr, v.text) for v in values]
        out[a.get("tag", "")] = elem
    return out


def _name(node: ET.Element) -> dict[str, str] | None:
    out = {}
    for group in PN_GROUPS:
        g = node.find(NS + group)
        if g is not None:
            parts = [(g.findtext(NS + c) or "") for c in PN_COMPONENTS]
            out[group] = "^".join(parts).rstrip("^")
    return out or None


def _number(vr: str, text: str | None) -> Any:
    if text is None:
        return None
    return int(text) if vr in INTS else float(text) if vr in FLOATS else text


def normalized(obj: Any) -> Any:
    """DICOM JSON with the spellings Annex F allows for "nothing" made one."""
    if isinstance(obj, dict):
        if set(obj) <= set(PN_GROUPS):  # a PN value
            return {k: v for k, v in obj.items() if v} or None
        out = {}
        for k, v in obj.items():
            if k == "Value" and not v:
                continue
            out[k] = normalized(v)
        return out
    if isinstance(obj, list):
        return [normalized(v) if v != "" else None for v in obj]
    return obj


# ---- conversion, without a server ------------------------------------------------------------

SAMPLE: dict[str, Any] = {
    "00080005": {"vr": "CS", "Value": ["ISO_IR 192"]},
    "00080008": {"vr": "CS", "Value": ["ORIGINAL", None, "AXIAL"]},
    "00081030": {"vr": "LO", "Value": ['Head & <neck> "CT" ]]>']},
    "00091010": {"vr": "LO", "Value": ["private value"]},
    "00090010": {"vr": "LO", "Value": ["YUNYING TEST"]},
    "00100010": {"vr": "PN", "Value": [
        {"Alphabetic": "Wang^Xiaodong", "Ideographic": "王^小东", "Phonetic": "おう^しょうとう"},
        None, {"Alphabetic": "^Given^^Dr.^PhD"}]},
    "00180050": {"vr": "DS", "Value": [1.25]},
    "00201041": {"vr": "DS", "Value": [-0.1, 3, 1e-7]},
    "00280010": {"vr": "US", "Value": [512]},
    "00209161": {"vr": "AT", "Value": ["00100010"]},
    "00204000": {"vr": "LT", "Value": ["line one\r\nline two\tend"]},
    "00081140": {"vr": "SQ", "Value": [
        {"00081150": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.2"]},
         "00081155": {"vr": "UI", "Value": ["1.2.3.4"]}},
        {"00400260": {"vr": "SQ", "Value": [{"00080100": {"vr": "SH", "Value": ["T-A0100"]}}]}}]},
    "00081032": {"vr": "SQ"},
    "00282000": {"vr": "OB", "InlineBinary": base64.b64encode(b"\x00\x01\xff").decode()},
    "7FE00010": {"vr": "OW", "BulkDataURI": "http://h/dicomweb/studies/1/series/2/instances/3/bulkdata/7FE00010?a=1&b=2"},
}


def test_sample_reads_back_equal() -> None:
    doc = dataset_xml(SAMPLE)
    assert normalized(from_xml(doc)) == normalized(SAMPLE)


def test_attributes_carry_keyword_or_private_creator() -> None:
    root = ET.fromstring(dataset_xml(SAMPLE))
    attrs = {a.get("tag"): a for a in root.iter(NS + "DicomAttribute")}
    assert attrs["00100010"].get("keyword") == "PatientName"
    assert attrs["00091010"].get("privateCreator") == "YUNYING TEST"
    assert attrs["00091010"].get("keyword") is None
    assert [a.get("tag") for a in root.findall(NS + "DicomAttribute")] == sorted(SAMPLE)  # tag order
    pn = attrs["00100010"].find(NS + "PersonName/" + NS + "Ideographic")
    assert pn is not None and [c.tag.removeprefix(NS) for c in pn] == ["FamilyName", "GivenName"]


def test_characters_xml_cannot_carry_become_replacement_characters() -> None:
    doc = dataset_xml({"00081030": {"vr": "LO", "Value": ["a\x00b\x1bc\ufffed"]}})
    assert from_xml(doc)["00081030"]["Value"] == ["a\ufffdb\ufffdc\ufffdd"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text()), min_size=1, max_size=4), st.text(max_size=20))
def test_any_text_round_trips(values: list[str | None], name: str) -> None:
    alphabetic = name.replace("^", "_").replace("=", "_")
    doc = {"00204000": {"vr": "UT", "Value": values}, "00100010": {"vr": "PN", "Value": [{"Alphabetic": alphabetic}]}}

    def legal(s: str | None) -> str | None:
        if s is None:
            return None
        return "".join("\ufffd" if (ord(c) < 32 and c not in "\t\n\r") or c in "\ufffe\uffff" else c for c in s)

    back = from_xml(dataset_xml(doc))
    assert [v if v is not None else None for v in back["00204000"]["Value"]] == \
        [legal(v) or None if v is not None else None for v in values]
    expect = legal(alphabetic)
    assert normalized(back["00100010"]["Value"]) == normalized([{"Alphabetic": expect}])


# ---- over HTTP ---------------------------------------------------------------------------------

def split(resp: httpx.Response) -> list[tuple[dict[str, str], bytes]]:
    """The parts of a multipart/related answer (RFC 2046 5.1.1)."""
    assert resp.status_code == 200, resp.text
    boundary = resp.headers["content-type"].split("boundary=")[1].split(";")[0].strip('"').encode()
    out = []
    for chunk in resp.content.split(b"--" + boundary)[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, body = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in head.decode().split("\r\n"))}
        out.append((headers, body.removesuffix(b"\r\n")))
    return out


def stow(server: YunyingServer, *datasets: pydicom.Dataset) -> None:
    body, ctype = multipart(*(part10(d) for d in datasets))
    resp = web.post(server.dicomweb_url + "/studies", content=body, headers={"Content-Type": ctype}, timeout=60)
    assert resp.status_code == 200, resp.text


def rich_study() -> list[pydicom.Dataset]:
    """A Chinese name with all three groups, a nested sequence, numbers, awkward text, private data."""
    study, series = generate_uid(), generate_uid()
    first = make_ct(study, series, charset="ISO_IR 192", number=1)
    first.PatientName = "Wang^Xiaodong=王^小东=おう^しょうとう"
    first.StudyDescription = 'Head & <neck> "CT"'
    first.ImageComments = "line one\r\nline two"
    first.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    first.SliceThickness = "1.25"
    first.PixelSpacing = ["0.5", "0.488281"]
    first.ImagePositionPatient = ["-125", "-125.5", "10"]
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "T-A0100", "SRT", "Brain"
    ref = Dataset()
    ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = "1.2.840.10008.5.1.4.1.1.2", generate_uid()
    ref.PurposeOfReferenceCodeSequence = [code]
    first.ReferencedImageSequence = [ref]
    first.add_new(0x00090010, "LO", "YUNYING TEST")
    first.add_new(0x00091010, "OB", bytes(range(256)) * 8)  # over the inline threshold: bulk data
    second = make_ct(study, series, charset="ISO_IR 192", number=2, name="Li^Lei", ideographic="李^雷")
    return [first, second]


@pytest.fixture(scope="module")
def rich(server: YunyingServer) -> list[pydicom.Dataset]:
    datasets = rich_study()
    stow(server, *datasets)
    return datasets


def by_sop(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["00080018"]["Value"][0]: d for d in docs}


def test_study_metadata_xml_equals_json(server: YunyingServer, rich: list[pydicom.Dataset]) -> None:
    url = f"{server.dicomweb_url}/studies/{rich[0].StudyInstanceUID}/metadata"
    as_json = web.get(url, headers={"Accept": "application/dicom+json"}).json()
    resp = web.get(url, headers={"Accept": XML})
    assert resp.headers["content-type"].startswith(XML + "; boundary=")
    parts = split(resp)
    assert [h["content-type"] for h, _ in parts] == ["application/dicom+xml"] * 2
    as_xml = [from_xml(body) for _, body in parts]
    assert normalized(by_sop(as_xml)) == normalized(by_sop(as_json))
    doc = by_sop(as_xml)[rich[0].SOPInstanceUID]
    assert doc["00100010"]["Value"] == [{"Alphabetic": "Wang^Xiaodong", "Ideographic": "王^小东",
                                         "Phonetic": "おう^しょうとう"}]
    seq = doc["00081140"]["Value"][0]["0040A170"]["Value"][0]
    assert seq["00080104"]["Value"] == ["Brain"]
    assert doc["00280030"]["Value"] == [0.5, 0.488281] and doc["00280010"]["Value"] == [8]
    assert doc["00081030"]["Value"] == ['Head & <neck> "CT"']
    assert doc["00204000"]["Value"] == ["line one\r\nline two"]
    pixel_uri = doc["7FE00010"]["BulkDataURI"]
    private_uri = doc["00091010"]["BulkDataURI"]
    assert pixel_uri.startswith(server.dicomweb_url + "/studies/")
    got = web.get(private_uri, headers={"Accept": "application/octet-stream"})
    assert got.content == bytes(range(256)) * 8


def test_instance_metadata_xml_single_and_multipart(server: YunyingServer, rich: list[pydicom.Dataset]) -> None:
    ds = rich[1]
    url = (f"{server.dicomweb_url}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
           f"/instances/{ds.SOPInstanceUID}/metadata")
    [(_, body)] = split(web.get(url, headers={"Accept": XML}))
    single = web.get(url, headers={"Accept": "application/dicom+xml"})
    assert single.status_code == 200 and single.headers["content-type"].startswith("application/dicom+xml")
    assert single.content == body
    assert from_xml(body)["00100010"]["Value"] == [{"Alphabetic": "Li^Lei", "Ideographic": "李^雷"}]
    series = url.rsplit("/instances/", 1)[0] + "/metadata"
    assert web.get(series, headers={"Accept": "application/dicom+xml"}).status_code == 406  # one part, many items


def test_json_stays_the_default(server: YunyingServer, rich: list[pydicom.Dataset]) -> None:
    url = f"{server.dicomweb_url}/studies/{rich[0].StudyInstanceUID}/metadata"
    for accept in (None, "*/*", f"application/dicom+json, {XML};q=0.5"):
        resp = web.get(url, headers={"Accept": accept} if accept else {})
        assert resp.headers["content-type"].startswith("application/dicom+json"), accept
    resp = web.get(url, headers={"Accept": f"application/dicom+json;q=0.4, {XML}"})
    assert resp.headers["content-type"].startswith(XML)
    assert web.get(url, headers={"Accept": "text/xml"}).status_code == 406
    json_tag = web.get(url).headers["etag"]
    assert web.get(url, headers={"Accept": XML}).headers["etag"] != json_tag


@pytest.mark.parametrize("level", ["studies", "series", "instances"])
def test_qido_xml_equals_json(server: YunyingServer, rich: list[pydicom.Dataset], level: str) -> None:
    params = {"StudyInstanceUID": rich[0].StudyInstanceUID, "includefield": "all"}
    url = f"{server.dicomweb_url}/{level}"
    as_json = web.get(url, params=params, headers={"Accept": "application/dicom+json"}).json()
    parts = split(web.get(url, params=params, headers={"Accept": XML}))
    assert len(parts) == len(as_json) == {"studies": 1, "series": 1, "instances": 2}[level]
    key = {"studies": "0020000D", "series": "0020000E", "instances": "00080018"}[level]
    as_xml = {d[key]["Value"][0]: d for d in (from_xml(body) for _, body in parts)}
    assert normalized(as_xml) == normalized({d[key]["Value"][0]: d for d in as_json})
    for doc in as_xml.values():
        assert doc["00081190"]["Value"][0].startswith(server.dicomweb_url)  # RetrieveURL


def test_qido_xml_no_match_and_warning(server: YunyingServer, rich: list[pydicom.Dataset]) -> None:
    resp = web.get(server.dicomweb_url + "/studies", params={"StudyInstanceUID": "1.2.3.404"},
                     headers={"Accept": XML})
    assert resp.status_code == 200 and split(resp) == []
    resp = web.get(server.dicomweb_url + "/studies", params={"PatientID": "P1", "limit": "1", "NoSuchKey": "x"},
                     headers={"Accept": XML})
    assert len(split(resp)) == 1 and "NoSuchKey" in resp.headers["warning"]
    assert web.get(server.dicomweb_url + "/studies", headers={"Accept": "application/dicom+xml"}).status_code == 406


def test_metadata_xml_with_a_real_client_session(server: YunyingServer, rich: list[pydicom.Dataset]) -> None:
    """dicomweb-client reads JSON only; its session (a requests.Session) fetches the XML."""
    from dicomweb_client.api import DICOMwebClient

    client = DICOMwebClient(server.dicomweb_url, headers=server.headers)
    ds = rich[0]
    resp = client._session.get(f"{server.dicomweb_url}/studies/{ds.StudyInstanceUID}/metadata",
                               headers={"Accept": XML})
    assert resp.status_code == 200
    assert resp.content.count(b"<NativeDicomModel") == 2
    assert client.retrieve_study_metadata(ds.StudyInstanceUID)  # JSON unchanged for the client


# ---- instance resources as bulk data (Table 10.4.4-1, PS3.18 10.4.3.3.5) ------------------------

def test_instance_as_octet_stream_is_its_bulk_data(server: YunyingServer, rich: list[pydicom.Dataset]) -> None:
    ds = rich[0]
    path = f"/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    meta = web.get(server.dicomweb_url + path + "/metadata").json()[0]
    parts = split(web.get(server.dicomweb_url + path, headers={"Accept": OCTETS}))
    got = {h["content-location"]: (h["content-type"], body) for h, body in parts}
    assert set(got) == {meta["7FE00010"]["BulkDataURI"], meta["00091010"]["BulkDataURI"]}
    ctype, pixels = got[meta["7FE00010"]["BulkDataURI"]]
    assert ctype == "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1"
    assert pixels == ds.PixelData
    assert got[meta["00091010"]["BulkDataURI"]][1] == bytes(range(256)) * 8


def test_series_and_study_as_octet_stream(server: YunyingServer, rich: list[pydicom.Dataset]) -> None:
    ds = rich[0]
    for path in (f"/studies/{ds.StudyInstanceUID}", f"/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"):
        parts = split(web.get(server.dicomweb_url + path, headers={"Accept": OCTETS}))
        pixel_parts = [body for h, body in parts if h["content-location"].endswith("/bulkdata/7FE00010")]
        assert sorted(pixel_parts) == sorted(d.PixelData for d in rich)
        assert len(parts) == 3


def test_compressed_instance_as_octet_stream(server: YunyingServer) -> None:
    path = pydicom_path("JPEG2000.dcm")
    ds = pydicom.dcmread(path)
    body, ctype = multipart(Path(path).read_bytes())
    assert web.post(server.dicomweb_url + "/studies", content=body, headers={"Content-Type": ctype}).status_code == 200
    url = f"{server.dicomweb_url}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    [(head, native)] = [p for p in split(web.get(url, headers={"Accept": OCTETS}))
                        if p[0]["content-location"].endswith("7FE00010")]
    assert head["content-type"].endswith("transfer-syntax=1.2.840.10008.1.2.1")
    assert np.array_equal(np.frombuffer(native, ds.pixel_array.dtype.newbyteorder("<")).reshape(ds.pixel_array.shape),
                          ds.pixel_array)
    [(head, stored)] = [p for p in split(web.get(url, headers={"Accept": OCTETS + "; transfer-syntax=*"}))
                        if p[0]["content-location"].endswith("7FE00010")]
    assert head["content-type"] == f"application/octet-stream; transfer-syntax={ds.file_meta.TransferSyntaxUID}"
    assert stored == web.get(head["content-location"], headers={"Accept": "application/octet-stream"}).content
    jpeg = OCTETS + "; transfer-syntax=1.2.840.10008.1.2.4.50"
    assert web.get(url, headers={"Accept": jpeg}).status_code == 406
    dicom = web.get(url, headers={"Accept": f'{jpeg}, multipart/related; type="application/dicom"; q=0.5'})
    assert split(dicom)[0][0]["content-type"].startswith("application/dicom")
