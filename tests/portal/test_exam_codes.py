"""Part 1: exam QR codes for the PACS/RIS, through a real server."""
from __future__ import annotations

import base64
import io

import httpx
from PIL import Image

from benchmarks.net import YunyingServer
from tests.portal.conftest import issue, store_study


def test_qr_api_answers_url_qr_and_barcode_and_the_same_token_again(srv: YunyingServer) -> None:
    study = store_study(srv, accession="ACC-QR-1")
    first = issue(srv, study=study, phone="13900001111")
    assert first.status_code == 201, first.text
    got = first.json()
    assert got["url"].startswith(srv.http_url + "/portal/#exam=ycap_")
    assert got["url"].endswith(got["token"]) and study not in got["url"]
    png = Image.open(io.BytesIO(base64.b64decode(got["qr_png"])))
    assert png.format == "PNG" and png.size[0] == png.size[1] > 100
    assert got["qr_svg"].startswith("<svg") and "<svg" in got["barcode_svg"]
    assert Image.open(io.BytesIO(base64.b64decode(got["barcode_png"]))).format == "PNG"
    again = issue(srv, accession="ACC-QR-1")  # a reprint (by accession) shows the same code
    assert again.status_code == 200 and again.json()["token"] == got["token"]
    renewed = issue(srv, study=study, renew=True)
    assert renewed.json()["token"] != got["token"]
    old = httpx.post(srv.http_url + "/api/portal/verify/exam", json={"exam": got["token"]})
    assert old.status_code == 404  # the renewed code replaced the printed one
    raw = issue(srv, study=study, format="qr.png")
    assert raw.headers["content-type"] == "image/png" and raw.content[:4] == b"\x89PNG"
    svg = issue(srv, study=study, format="barcode.svg")
    assert svg.headers["content-type"] == "image/svg+xml"


def test_exam_token_alone_opens_nothing(srv: YunyingServer) -> None:
    study = store_study(srv)
    token = issue(srv, study=study).json()["token"]
    r = httpx.post(srv.http_url + "/api/auth/exchange", json={"token": token})
    assert r.status_code == 401  # only the portal's verification turns it into access


def test_bad_requests_are_clear_4xx(srv: YunyingServer) -> None:
    assert issue(srv).status_code == 400
    assert issue(srv, study="1.2.3.999").status_code == 404
    assert issue(srv, accession="NO-SUCH").status_code == 404
    assert issue(srv, study=store_study(srv), format="gif").status_code == 400
    assert issue(srv, study="1.2", phone="12").status_code in (400, 404)
    r = httpx.post(srv.http_url + "/api/portal/exams", json={"study": "1.2"})
    assert r.status_code == 401  # no key
    assert httpx.post(srv.http_url + "/api/portal/verify/exam", json={"exam": "ycap_nope"}).status_code == 404
    assert httpx.post(srv.http_url + "/api/portal/verify/exam", content=b"[").status_code == 400


def test_phone_comes_from_the_header_when_the_ris_sends_none(srv: YunyingServer) -> None:
    study = store_study(srv, phone="13712345678")
    token = issue(srv, study=study).json()["token"]
    info = httpx.post(srv.http_url + "/api/portal/verify/exam", json={"exam": token}).json()
    assert info == {"phone": "*******5678", "ways": ["sms"]}
