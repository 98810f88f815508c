"""The conformance statement renders every table row into both Markdown and HTML."""
from __future__ import annotations

import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

from conformance import tables
from conformance.statement import build_document, render_html, render_markdown

REPO = Path(__file__).resolve().parents[2]


def test_every_table_row_is_in_both_renderings() -> None:
    doc = build_document("test")
    md, page = render_markdown(doc), render_html(doc)
    for key in tables.QUERY_KEYS:
        assert f"| {key.tag} |" in md and f"<td>{key.tag}</td>" in page
    for ts in tables.TRANSFER_SYNTAXES:
        assert ts.uid in md and ts.uid in page
    for tx in tables.TRANSACTIONS:
        assert tx.name in md


def test_html_is_well_formed() -> None:
    class Checker(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.stack: list[str] = []

        def handle_starttag(self, tag: str, attrs: object) -> None:
            if tag not in {"meta", "br"}:
                self.stack.append(tag)

        def handle_endtag(self, tag: str) -> None:
            assert self.stack and self.stack.pop() == tag, tag

    checker = Checker()
    checker.feed(render_html(build_document()))
    assert checker.stack == []


def test_cli_writes_both_files(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "conformance", "statement", "--out", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "conformance-statement.md").read_text().startswith("# Yunying")
    assert "<table>" in (tmp_path / "conformance-statement.html").read_text()
