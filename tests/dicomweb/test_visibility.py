"""Visibility over HTTP (issue 11, part 4): two hospitals never see each other's studies in
QIDO-RS or WADO-RS at any level, paging is right under a scope, a study-bound share token sees
exactly its study, and a study outside the scope answers exactly as an unknown one. A real
`yunying serve` (its authorization middleware, API keys of two hospitals from the config
file, a share access token from its app-state store), real httpx and dicomweb-client."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from dicomweb_client.api import DICOMwebClient
from pydicom.uid import generate_uid

from tests.conftest import start_with_env
from yunying.auth.principal import DICOMWEB_READ, DOWNLOAD
from yunying.auth.store import open_store
from yunying.auth.tokens import issue_access_token

from .helpers import make_ct, multipart, part10

H1, H2 = "yk_test_h1_" + "1" * 24, "yk_test_h2_" + "2" * 24
CONFIG = """
[[api_keys]]
name = "h1"
key = "{h1}"
scopes = ["dicomweb.read", "dicomweb.write", "dicomweb.delete"]
hospital = "h1"

[[api_keys]]
name = "h2"
key = "{h2}"
scopes = ["dicomweb.read", "dicomweb.write", "dicomweb.delete"]
hospital = "h2"
"""


class Site:
    def __init__(self, url: str) -> None:
        self.url = url
        self.share = ""
        self.studies: dict[str, list[dict[str, str]]] = {"h1": [], "h2": []}

    def http(self, token: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"},
                            timeout=30, trust_env=False)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    base = tmp_path_factory.mktemp("visibility")
    config = base / "yunying.toml"
    config.write_text(CONFIG.format(h1=H1, h2=H2))
    srv = start_with_env(base / "data", YUNYING_CONFIG=str(config))
    try:
        s = Site(srv.dicomweb_url)
        # h1 stores three studies (the first is shared below), h2 two; dates set the order
        for hospital, token, dates in (("h1", H1, ["20240103", "20240102", "20240101"]),
                                       ("h2", H2, ["20240105", "20240104"])):
            for date in dates:
                study, series = generate_uid(), generate_uid()
                sops = [make_ct(study, series, number=i + 1, date=date, patient_id=f"P{hospital}",
                                modality="CT" if hospital == "h1" else "MR") for i in range(2)]
                body, ctype = multipart(*(part10(ds) for ds in sops))
                with s.http(token) as c:
                    r = c.post("/studies", content=body, headers={"Content-Type": ctype})
                    assert r.status_code == 200, r.text
                s.studies[hospital].append({"study": study, "series": series, "sop": sops[0].SOPInstanceUID})
        store = open_store(base / "data")  # the server's own app-state store (SQLite, shared)
        s.share, _ = issue_access_token(store, kind="share", subject="test-share", hospital="h1",
                                        studies=[s.studies["h1"][0]["study"]],
                                        permissions=[DICOMWEB_READ, DOWNLOAD])
        store.engine.dispose()
        yield s
    finally:
        srv.stop()


def uids(answers: list[dict[str, Any]], tag: str = "0020000D") -> list[str]:
    return [a[tag]["Value"][0] for a in answers]


def test_qido_hospitals_never_see_each_other(site: Site) -> None:
    for token, own, other in ((H1, "h1", "h2"), (H2, "h2", "h1")):
        with site.http(token) as c:
            assert uids(c.get("/studies").json()) == [s["study"] for s in site.studies[own]]
            series = uids(c.get("/series").json(), "0020000E")
            assert sorted(series) == sorted(s["series"] for s in site.studies[own])
            assert len(c.get("/instances").json()) == 2 * len(site.studies[own])
            for s in site.studies[other]:  # scoped by URL to another hospital's study: nothing
                assert c.get(f"/studies/{s['study']}/series").json() == []
                assert c.get(f"/studies/{s['study']}/instances").json() == []
                assert c.get("/studies", params={"StudyInstanceUID": s["study"]}).json() == []
            for a in c.get("/studies", params={"includefield": "00201208"}).json():
                assert a["00201208"]["Value"] == [2]


@pytest.mark.parametrize("limit,offset", [(1, 0), (1, 1), (2, 1), (5, 2), (1, 3)])
def test_paging_under_a_scope(site: Site, limit: int, offset: int) -> None:
    with site.http(H1) as c:
        got = uids(c.get("/studies", params={"limit": limit, "offset": offset}).json())
    assert got == [s["study"] for s in site.studies["h1"]][offset:offset + limit]


def paths(s: dict[str, str]) -> list[str]:
    st, se, sop = f"/studies/{s['study']}", f"/series/{s['series']}", f"/instances/{s['sop']}"
    return [st, st + se, st + se + sop, st + "/metadata", st + se + "/metadata", st + se + sop + "/metadata",
            st + se + sop + "/frames/1", st + se + sop + "/bulkdata/7FE00010", st + "/rendered",
            st + se + "/rendered", st + se + sop + "/rendered", st + se + sop + "/frames/1/rendered",
            st + "/thumbnail", st + se + "/thumbnail", st + se + sop + "/thumbnail",
            st + se + sop + "/frames/1/thumbnail", st + se + "/reformat?orientation=axial"]


def unknown_like(s: dict[str, str]) -> dict[str, str]:
    return {k: generate_uid() for k in s}


def same_404(hidden: httpx.Response, unknown: httpx.Response, s: dict[str, str], u: dict[str, str]) -> None:
    assert hidden.status_code == unknown.status_code == 404, (hidden.status_code, unknown.status_code)
    body = hidden.content
    for k, value in s.items():
        body = body.replace(value.encode(), u[k].encode())
    assert body == unknown.content


def test_wado_outside_the_scope_is_404_at_every_level(site: Site) -> None:
    for token, other in ((H1, "h2"), (H2, "h1")):
        s = site.studies[other][-1]
        u = unknown_like(s)
        with site.http(token) as c:
            for path, upath in zip(paths(s), paths(u)):
                same_404(c.get(path), c.get(upath), s, u)
            st, se, sop = f"/studies/{s['study']}", f"/series/{s['series']}", f"/instances/{s['sop']}"
            for path in (st + se + sop, st + se, st):  # DELETE does not touch it either
                assert c.delete(path).status_code == 404
    with site.http(H2) as c:  # the owner still has all of it
        s = site.studies["h2"][-1]
        for path in paths(s):  # (a reformat of these geometry-less images is refused, not a 404)
            r = c.get(path, headers={"Accept": "*/*"})
            assert r.status_code != 404 and r.status_code < 500, (path, r.status_code)
        assert len(c.get(f"/studies/{s['study']}/instances").json()) == 2


def test_dicomweb_client_sees_own_hospital_only(site: Site) -> None:
    client = DICOMwebClient(site.url, headers={"Authorization": f"Bearer {H2}"})
    assert sorted(uids(client.search_for_studies())) == sorted(s["study"] for s in site.studies["h2"])
    s = site.studies["h1"][1]
    with pytest.raises(Exception) as err:
        client.retrieve_study_metadata(s["study"])
    assert "404" in str(err.value)
    own = site.studies["h2"][0]
    assert len(client.retrieve_series_metadata(own["study"], own["series"])) == 2


def test_a_study_bound_principal_sees_exactly_its_study(site: Site) -> None:
    shared = site.studies["h1"][0]
    with site.http(site.share) as c:
        assert uids(c.get("/studies").json()) == [shared["study"]]
        assert len(c.get("/instances").json()) == 2
        assert c.get(f"/studies/{shared['study']}/metadata").status_code == 200
        assert c.get(paths(shared)[6], headers={"Accept": "multipart/related; type=application/octet-stream; "
                                                          "transfer-syntax=*"}).status_code == 200
        for other in (site.studies["h1"][1], site.studies["h2"][0]):
            u = unknown_like(other)
            for path, upath in zip(paths(other), paths(u)):
                same_404(c.get(path), c.get(upath), other, u)


def test_stow_into_another_hospitals_study_is_refused_untouched(site: Site) -> None:
    s = site.studies["h1"][1]
    intruder = make_ct(s["study"], s["series"], number=9)
    body, ctype = multipart(part10(intruder))
    with site.http(H2) as c:
        r = c.post("/studies", content=body, headers={"Content-Type": ctype})
        assert r.status_code == 409
        assert c.post(f"/studies/{s['study']}", content=body, headers={"Content-Type": ctype}).status_code == 409
        assert c.get("/studies", params={"StudyInstanceUID": s["study"]}).json() == []
    with site.http(H1) as c:
        assert len(c.get(f"/studies/{s['study']}/instances").json()) == 2
        assert c.get(f"/studies/{s['study']}/series/{s['series']}/instances/{intruder.SOPInstanceUID}/metadata"
                     ).status_code == 404


def route_paths(s: dict[str, str]) -> list[tuple[str, str]]:
    """(method, path) of every DICOMweb route naming a study, filled with these UIDs: a route
    added later is checked too."""
    from dicomweb.app import ROUTES

    fill = {"{study}": s["study"], "{series}": s["series"], "{sop}": s["sop"], "{frames}": "1",
            "{path:path}": "7FE00010"}
    out = []
    for path, methods, _ in ROUTES:
        if "{study}" not in path:
            continue
        for key, value in fill.items():
            path = path.replace(key, value)
        out += [(m, path) for m in methods if m != "POST"]  # STOW: the store refuses (409) instead
    return out


def test_every_route_naming_a_hidden_study_answers_as_for_an_unknown_one(site: Site) -> None:
    s = site.studies["h1"][2]
    u = unknown_like(s)
    with site.http(H2) as c:
        for (method, path), (_, upath) in zip(route_paths(s), route_paths(u)):
            hidden, unknown = c.request(method, path), c.request(method, upath)
            if hidden.status_code == 200:  # a search scoped to it: nothing, as for an unknown one
                assert hidden.json() == unknown.json() == [], path
            else:
                same_404(hidden, unknown, s, u)
    with site.http(H1) as c:  # and none of it was touched
        assert len(c.get(f"/studies/{s['study']}/instances").json()) == 2
