"""The capabilities description (PS3.18 8.9, Annex H) and Allow on every resource."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from benchmarks.net import YunyingServer
from dicomweb.app import ROUTES
from dicomweb.capabilities import WADL, WADL_NS, _template, operation
from dicomweb.qido import RESERVED
from index.parse import supported_match_tags
from index.query import Level
from tests import web

W = "{" + WADL_NS + "}"
EXAMPLE = {"{StudyInstanceUID}": "1.2.3", "{SeriesInstanceUID}": "1.2.3.4", "{SOPInstanceUID}": "1.2.3.4.5",
           "{FrameList}": "1", "{AttributePath}": "7FE00010"}


def test_every_route_is_described() -> None:
    missing = [f"{path} {methods}" for path, methods, endpoint in ROUTES if operation(endpoint) is None]
    assert not missing, "add these handlers to dicomweb.capabilities.OPERATIONS"


def wadl(server: YunyingServer, **headers: str) -> ET.Element:
    resp = web.options(server.dicomweb_url, headers=headers)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith(WADL)
    assert resp.headers["allow"] == "GET, HEAD, OPTIONS"
    return ET.fromstring(resp.content)


def test_wadl_lists_every_route_and_method(server: YunyingServer) -> None:
    root = wadl(server)
    assert root.tag == W + "application"
    resources = root.find(W + "resources")
    assert resources is not None and resources.get("base") == server.dicomweb_url + "/"
    found = {(r.get("path"), m.get("name")) for r in resources.findall(W + "resource")
             for m in r.findall(W + "method")}
    expected = {(_template(path).strip("/"), method) for path, methods, _ in ROUTES for method in methods}
    assert found == expected
    paths = [r.get("path") for r in resources.findall(W + "resource")]
    assert len(paths) == len(set(paths))  # the root with and without its slash is one resource
    for r in resources.findall(W + "resource"):
        templates = set(re.findall(r"\{(\w+)\}", r.get("path", "")))
        assert {p.get("name") for p in r.findall(W + "param") if p.get("style") == "template"} == templates


def _method(root: ET.Element, path: str, name: str) -> ET.Element:
    for r in root.iter(W + "resource"):
        if r.get("path") == path:
            for m in r.findall(W + "method"):
                if m.get("name") == name:
                    return m
    raise AssertionError(f"{name} {path} not described")


@pytest.mark.parametrize(("path", "level"), [("studies", "STUDY"), ("series", "SERIES"), ("instances", "IMAGE"),
                                             ("studies/{StudyInstanceUID}/series", "SERIES")])
def test_qido_parameters_come_from_the_parser(server: YunyingServer, path: str, level: Level) -> None:
    m = _method(wadl(server), path, "GET")
    params = {p.get("name") for p in m.iter(W + "param") if p.get("style") == "query"}
    assert set(RESERVED) <= params
    assert len(params) == len(RESERVED) + len(supported_match_tags(level))
    assert {"PatientName", "StudyInstanceUID"} <= params
    media = {r.get("mediaType") for r in m.iter(W + "representation")}
    assert media == {"application/dicom+json", 'multipart/related; type="application/dicom+xml"'}


def test_wadl_names_the_table_10_4_4_1_media_types(server: YunyingServer) -> None:
    root = wadl(server)
    retrieve = {r.get("mediaType") for r in _method(root, "studies/{StudyInstanceUID}", "GET").iter(W + "representation")}
    assert 'multipart/related; type="application/octet-stream"' in retrieve
    assert 'multipart/related; type="application/dicom"' in retrieve
    meta = {r.get("mediaType") for r in _method(root, "studies/{StudyInstanceUID}/metadata", "GET")
            .iter(W + "representation")}
    assert 'multipart/related; type="application/dicom+xml"' in meta
    store = _method(root, "studies", "POST").find(W + "request")
    assert store is not None and 'multipart/related; type="application/dicom"' in \
        {r.get("mediaType") for r in store.findall(W + "representation")}


def test_json_rendering_and_406(server: YunyingServer) -> None:
    resp = web.options(server.dicomweb_url, headers={"Accept": "application/json"})
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"
    doc = resp.json()
    assert doc["base"] == server.dicomweb_url
    assert {(r["path"], m["method"]) for r in doc["resources"] for m in r["methods"]} == \
        {(_template(p).rstrip("/"), m) for p, ms, _ in ROUTES for m in ms}
    get = web.get(server.dicomweb_url, headers={"Accept": "application/vnd.sun.wadl+xml"})
    assert get.status_code == 200 and ET.fromstring(get.content).tag == W + "application"
    bad = web.options(server.dicomweb_url, headers={"Accept": "text/html"})
    assert bad.status_code == 406 and bad.json()["status"] == 406


def test_base_follows_the_proxy(server: YunyingServer) -> None:
    root = wadl(server, **{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "pacs.example", "X-Forwarded-Prefix": "/yy"})
    resources = root.find(W + "resources")
    assert resources is not None and resources.get("base") == "https://pacs.example/yy/dicomweb/"


def test_allow_on_every_resource_matches_the_description(server: YunyingServer) -> None:
    doc = web.options(server.dicomweb_url, headers={"Accept": "application/json"}).json()
    for res in doc["resources"]:
        path = res["path"]
        for template, value in EXAMPLE.items():
            path = path.replace(template, value)
        url = server.dicomweb_url + path
        options = web.options(url)
        assert options.status_code in (200, 204), path
        assert options.headers["allow"] == ", ".join(res["allow"]), path
        if "PUT" not in res["allow"]:
            put = web.put(url, content=b"")
            assert put.status_code == 405 and put.headers["allow"] == ", ".join(res["allow"]), path
