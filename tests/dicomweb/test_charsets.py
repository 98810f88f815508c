"""Design rule 7: character sets are decoded at ingest; JSON is UTF-8; Chinese names match."""
from __future__ import annotations

import pytest

from benchmarks.net import YunyingServer
from tests import web
from tests.dicomweb.helpers import make_ct, multipart, part10


def stow_raw(server: YunyingServer, raw: bytes) -> None:
    body, ctype = multipart(raw)
    resp = web.post(server.dicomweb_url + "/studies", content=body, headers={"Content-Type": ctype}, timeout=60)
    assert resp.status_code == 200, resp.text


@pytest.mark.parametrize("charset", ["GB18030", "GBK", "ISO_IR 192"])
def test_chinese_names_in_legacy_charsets_match_and_come_back_as_utf8(server: YunyingServer, charset: str) -> None:
    ds = make_ct(name="Zhang^Wei", ideographic="张^伟", charset=charset, patient_id=f"CS-{charset}")
    raw = part10(ds)
    assert "张".encode("gb18030") in raw or "张".encode() in raw  # really encoded in that character set
    stow_raw(server, raw)
    for value in ("张^伟", "张*", "Zhang^Wei"):
        resp = web.get(server.dicomweb_url + "/studies", params={"PatientName": value, "PatientID": f"CS-{charset}"})
        assert resp.headers["content-type"].startswith("application/dicom+json")
        [study] = resp.json()
        assert study["00100010"]["Value"] == [{"Alphabetic": "Zhang^Wei", "Ideographic": "张^伟"}]


@pytest.mark.parametrize("charset, alphabetic, ideographic", [
    ("\\ISO 2022 IR 87", "Yamada^Tarou", "山田^太郎"),  # ISO 2022 escape sequences (PS3.5 6.1.2.5)
    ("\\ISO 2022 IR 149", "Hong^Gildong", "洪^吉洞"),
    ("ISO_IR 144", "Lyuksemburg^Gera", None),
])
def test_iso2022_and_other_charsets_decode(server: YunyingServer, charset: str, alphabetic: str,
                                           ideographic: str | None) -> None:
    name = alphabetic if ideographic else "Люксембург^Гера"
    ds = make_ct(name=name, ideographic=ideographic, charset=charset.split("\\") if "\\" in charset else charset,
                 patient_id=f"CS2-{charset.strip(chr(92))}")
    stow_raw(server, part10(ds))
    [study] = web.get(server.dicomweb_url + "/studies", params={"PatientID": f"CS2-{charset.strip(chr(92))}"}).json()
    groups = study["00100010"]["Value"][0]
    if ideographic:
        assert groups == {"Alphabetic": alphabetic, "Ideographic": ideographic}
    else:
        assert groups == {"Alphabetic": "Люксембург^Гера"}
