"""The statement lists what the live objects hold: routes, matching keys, codecs, SCP contexts."""

from __future__ import annotations

import html
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pydicom.charset
import pytest

from benchmarks.net import YunyingServer, free_port, start_yunying
from conformance import tables
from conformance.statement import HTML, MARKDOWN, render
from dicomweb.app import ROUTES
from dicomweb.http import DICOMWEB_ROOT
from dicomweb.qido import RESERVED
from dimse.identifier import LEVELS as CFIND_LEVELS
from dimse.server import build_ae
from index.parse import supported_match_tags
from yunying.pixels import codecs, syntaxes
from yunying.settings import Settings

REPO = Path(__file__).resolve().parents[2]
SETTINGS = Settings(
    aet="CONFTEST_AE", http_port=18080, dimse_port=11199, peers={"WORKSTATION1": ("10.1.2.3", 104)}
)


@pytest.fixture(scope="module")
def docs() -> dict[str, str]:
    return render(SETTINGS)


def md_rows(md: str) -> list[list[str]]:
    """The cells of every Markdown table row (header and separator rows included)."""
    return [
        [c.strip().replace("\\|", "|") for c in line.strip("|").split(" | ")]
        for line in md.splitlines()
        if line.startswith("| ")
    ]


def html_cells(page: str) -> set[str]:
    """The text of every <td>, unescaped, code markup removed."""

    class Cells(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.cells: set[str] = set()
            self.current: list[str] | None = None

        def handle_starttag(self, tag: str, attrs: object) -> None:
            if tag == "td":
                self.current = []

        def handle_endtag(self, tag: str) -> None:
            if tag == "td" and self.current is not None:
                self.cells.add("".join(self.current))
                self.current = None

        def handle_data(self, data: str) -> None:
            if self.current is not None:
                self.current.append(data)

    parser = Cells()
    parser.feed(page)
    return parser.cells


def test_every_route_is_listed_with_its_methods(docs: dict[str, str]) -> None:
    rows = {(r[2], r[3]): r for r in md_rows(docs[MARKDOWN]) if len(r) == 6}
    cells = html_cells(docs[HTML])
    for path, methods, _endpoint in ROUTES:
        for method in methods:
            row = rows.get((method, DICOMWEB_ROOT + path))
            assert row is not None, (method, path)
            assert tables.UNDESCRIBED not in row, row
            assert DICOMWEB_ROOT + path in cells


def test_every_matching_key_of_every_level_is_listed(docs: dict[str, str]) -> None:
    rows = {r[1]: r for r in md_rows(docs[MARKDOWN]) if len(r) == 6}
    for level, label in tables.QIDO_LEVELS.items():
        for tag in supported_match_tags(level):
            assert tag in rows, (level, tag)
            assert label in rows[tag][4].split(", "), (level, tag)
    for level in {lv for levels in CFIND_LEVELS.values() for lv in levels}:
        for tag in supported_match_tags(level):
            assert level in rows[tag][5].split(", "), (level, tag)
    assert "PatientName" in rows["00100010"][0] and "fuzzy" in rows["00100010"][3]


def test_every_reserved_qido_parameter_is_described(docs: dict[str, str]) -> None:
    params = {r[1]: r for r in md_rows(docs[MARKDOWN]) if len(r) == 4}
    for name in RESERVED:
        assert name in params and params[name][2] != tables.UNDESCRIBED, name


def test_every_decodable_transfer_syntax_is_listed(docs: dict[str, str]) -> None:
    rows = {r[1]: r for r in md_rows(docs[MARKDOWN]) if len(r) == 7}
    decodable = [uid for uid in syntaxes.SYNTAXES if codecs.can_decode(uid)]
    assert decodable
    for uid in decodable:
        assert rows[uid][3] == "yes", uid
        assert uid in html_cells(docs[HTML])
    for media, uids, _ in tables.frame_media_types():
        assert any(media in r[1] for r in md_rows(docs[MARKDOWN]) if len(r) == 4), media
        assert all(u in docs[MARKDOWN] for u in uids)


def test_every_sop_class_and_syntax_the_scp_accepts_is_listed(docs: dict[str, str]) -> None:
    rows = {r[1]: r for r in md_rows(docs[MARKDOWN]) if len(r) == 4}
    sets = {r[0]: r[1] for r in md_rows(docs[MARKDOWN]) if len(r) == 2}
    cells = html_cells(docs[HTML])
    contexts = build_ae(SETTINGS.aet).supported_contexts
    assert len(contexts) > 100
    for cx in contexts:
        uid = str(cx.abstract_syntax)
        assert uid in rows and uid in cells, uid
        listed = sets[rows[uid][3]]
        assert all(f"`{ts}`" in listed for ts in cx.transfer_syntax), uid
        if cx.scp_role and cx.scu_role:
            assert "role selection" in rows[uid][2]


def test_configuration_and_character_sets_appear(docs: dict[str, str]) -> None:
    md = docs[MARKDOWN]
    for text in (
        "CONFTEST_AE",
        "11199",
        "18080",
        "WORKSTATION1",
        "10.1.2.3",
        "ISO_IR 192",
        "GB18030",
        "GBK",
        "ISO 2022 IR 87",
    ):
        assert text in md, text
    for term in pydicom.charset.python_encoding:
        assert term in md
    for heading in (
        "Implementation model",
        "AE specification",
        "Extended negotiation",
        "Character sets",
        "Security",
        "Matching rules",
        "Extensions",
    ):
        assert heading in md
    assert "every token is a prefix" in md  # fuzzy matching semantics, from index/parse.py


def test_the_statement_follows_the_configuration_and_is_deterministic() -> None:
    assert render(SETTINGS) == render(SETTINGS)
    other = Settings(dimse_port=0, dimse_accept_all=True, cors_origins=["https://v.example"])
    md = render(other)[MARKDOWN]
    assert "DIMSE is disabled" in md and "`dimse_accept_all`" in md and "https://v.example" in md
    assert "WORKSTATION1" not in md and "(none configured)" in md


def test_html_is_a_well_formed_self_contained_page(docs: dict[str, str]) -> None:
    void = {"meta", "br", "link", "img", "hr"}

    class Checker(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.stack: list[str] = []
            self.lang = ""
            self.external: list[str] = []
            self.tags: set[str] = set()

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.tags.add(tag)
            a = dict(attrs)
            if tag == "html":
                self.lang = a.get("lang") or ""
            for key in ("src", "href"):
                if a.get(key) and not str(a[key]).startswith("#"):
                    self.external.append(str(a[key]))
            if tag not in void:
                self.stack.append(tag)

        def handle_endtag(self, tag: str) -> None:
            assert self.stack and self.stack.pop() == tag, tag

    page = docs[HTML]
    checker = Checker()
    checker.feed(page)
    checker.close()
    assert checker.stack == []
    assert checker.lang == "en"
    assert checker.external == []
    assert {"style", "table", "thead", "nav", "h1", "h2", "h3"} <= checker.tags
    assert page.startswith("<!doctype html>")
    assert html.escape('type="application/dicom"') in page  # text is escaped


def test_generation_in_a_fresh_process_gives_both_forms() -> None:
    """Its speed is not asserted here (issue 10 part 9: no timing in tests); it only has to work
    from a cold start, as `serve` renders it once at start."""
    code = (
        "from conformance.statement import render; from yunying.settings import Settings; "
        "out = render(Settings()); print(sorted(out), len(out['text/markdown']) > 1000, len(out['text/html']) > 1000)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert proc.stdout.split() == ["['text/html',", "'text/markdown']", "True", "True"], proc.stdout


def test_cli_writes_both_files_for_a_config(tmp_path: Path) -> None:
    config = tmp_path / "yunying.toml"
    config.write_text('aet = "CLI_AE"\npeers = { PACS1 = ["10.9.9.9", 11112] }\n')
    env = {**os.environ, "YUNYING_CONFIG": str(config)}
    proc = subprocess.run(
        [sys.executable, "-m", "conformance", "statement", "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "conformance-statement.md").read_text(encoding="utf-8")
    assert md.startswith("# Yunying") and "CLI_AE" in md and "PACS1" in md
    assert "<table>" in (tmp_path / "conformance-statement.html").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[YunyingServer]:
    srv = start_yunying(
        tmp_path_factory.mktemp("statement") / "data",
        aet="SERVED_AE",
        peers={"VIEWER1": ("127.0.0.1", free_port())},
    )
    yield srv
    srv.stop()


@pytest.mark.parametrize("media", [MARKDOWN, HTML])
def test_server_serves_the_statement_of_its_configuration(
    server: YunyingServer, media: str
) -> None:
    req = urllib.request.Request(f"{server.dicomweb_url}/conformance", headers={"Accept": media, **server.headers})
    with urllib.request.urlopen(req, timeout=30) as rsp:
        assert rsp.headers["Content-Type"].startswith(media)
        body = rsp.read().decode("utf-8")
    assert "SERVED_AE" in body and "VIEWER1" in body and str(server.dimse_port) in body
