"""One catalog per language shared by every page: no key in one language only, no key used by a
page that a catalog lacks (style: a test fails on a missing key)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

FRONTENDS = Path(__file__).resolve().parents[2] / "frontends"
LANGUAGES = ("zh-CN", "en")
# every page folder (frontends/<page>/) is a key prefix: "viewer.*", "login.*", "common.*" ...
PAGES = tuple(sorted(p.name for p in FRONTENDS.iterdir()
                     if p.is_dir() and p.name not in ("i18n", "__pycache__") and not p.name.startswith(".")))
KEY = rf"(?:{'|'.join(PAGES)})\.[A-Za-z0-9_.]+"
# data-i18n="key", data-i18n-title="key" ... in pages; quoted literals "key" / 'key' / `key` in
# scripts (file names such as "viewer.css" are not keys)
IN_HTML = re.compile(rf"""data-i18n[\w-]*=["']({KEY})["']""")
IN_JS = re.compile(rf"""["'`]({KEY})(?<!\.css)(?<!\.js)(?<!\.json)["'`]""")
PREFIX_TEMPLATE = re.compile(rf"""`({KEY}\.)\$\{{""")  # `viewer.tool.${tool}`: some key must start so


def catalog(lang: str) -> dict[str, str]:
    return json.loads((FRONTENDS / "i18n" / f"{lang}.json").read_text(encoding="utf-8"))


def sources() -> list[Path]:
    return [p for p in FRONTENDS.rglob("*") if p.suffix in (".html", ".js") and "vendor" not in p.parts]


def test_every_language_has_the_same_keys() -> None:
    keys = {lang: set(catalog(lang)) for lang in LANGUAGES}
    for lang in LANGUAGES:
        for other in LANGUAGES:
            assert not keys[lang] - keys[other], f"in {lang}, missing in {other}: {sorted(keys[lang] - keys[other])}"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_keys_are_prefixed_by_page_and_texts_are_not_empty(lang: str) -> None:
    for key, text in catalog(lang).items():
        assert re.fullmatch(KEY, key), key
        assert isinstance(text, str) and text.strip(), key


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_key_a_page_uses_exists(lang: str) -> None:
    keys = set(catalog(lang))
    missing: dict[str, list[str]] = {}
    for path in sources():
        text = path.read_text(encoding="utf-8")
        for key in (IN_HTML if path.suffix == ".html" else IN_JS).findall(text):
            if key not in keys and not key.endswith("."):
                missing.setdefault(str(path.relative_to(FRONTENDS)), []).append(key)
        for prefix in PREFIX_TEMPLATE.findall(text):
            if not any(k.startswith(prefix) for k in keys):
                missing.setdefault(str(path.relative_to(FRONTENDS)), []).append(prefix + "*")
    assert not missing, missing


def test_the_check_sees_the_viewer_keys() -> None:
    """The scan itself works: it finds keys in the viewer's HTML and scripts."""
    found = {k for p in sources() for k in (IN_HTML if p.suffix == ".html" else IN_JS).findall(p.read_text(encoding="utf-8"))}
    assert {"viewer.studyList", "viewer.overlay.window", "common.otherLanguage"} <= found
