"""The doctors' toolbar: at most two rows on a 1366x768 desktop in both languages (tools grouped
into menus), its menus inside the window, and every tool reachable by touch at 390x844."""
from __future__ import annotations

from typing import Any

import pytest

from benchmarks.net import YunyingServer
from tests.frontends.conftest import DESKTOP, PHONE, press
from tests.frontends.phantom import store_ct
from tests.frontends.test_viewer import opened, url

ROWS_JS = """() => new Set([...document.querySelectorAll('#toolbar > button')].filter(b => !b.hidden)
  .map(b => Math.round(b.getBoundingClientRect().top))).size"""
INSIDE_JS = """(sel) => { const r = document.querySelector(sel).getBoundingClientRect();
  return r.width > 0 && r.left >= 0 && r.top >= 0 && r.right <= innerWidth && r.bottom <= innerHeight; }"""
MENUS = ["measure", "image", "study"]


@pytest.fixture(scope="module")
def study(archive: YunyingServer) -> str:
    return store_ct(archive, 2, 128)[0]


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_desktop_toolbar_is_one_or_two_rows_with_its_menus_in_the_window(
        open_page: Any, archive: YunyingServer, study: str, lang: str) -> None:
    p = open_page(**DESKTOP)
    page = opened(p.page, url(archive, study, f"&lang={lang}"))
    assert page.evaluate(ROWS_JS) <= 2
    for name in MENUS:
        page.click(f"#group-{name}")
        assert page.evaluate(INSIDE_JS, f"#menu-{name}"), name
        # the menu opens under its button, not at a fixed place over the bar
        below = page.evaluate(f"""document.querySelector('#menu-{name}').getBoundingClientRect().top >=
          document.querySelector('#group-{name}').getBoundingClientRect().bottom""")
        assert below, name
        page.click(f"#group-{name}")
        assert not page.is_visible(f"#menu-{name}")
    assert not p.errors, p.errors


def test_measurement_tool_chosen_from_its_menu_is_named_on_the_bar(open_page: Any, archive: YunyingServer, study: str) -> None:
    p = open_page(**DESKTOP)
    page = opened(p.page, url(archive, study, "&lang=en"))
    press(page, "#tool-angle")
    assert not page.is_visible("#menu-measure")  # a choice closes the menu
    assert page.inner_text("#group-measure") == "Angle"
    assert page.get_attribute("#group-measure", "aria-pressed") == "true"
    page.click("#tool-pan")
    assert page.inner_text("#group-measure") == "Measure"
    assert page.get_attribute("#group-measure", "aria-pressed") == "false"
    page.click("#group-image")
    page.mouse.click(700, 500)  # a press on the image closes an open menu
    assert not page.is_visible("#menu-image")
    assert not p.errors, p.errors


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_phone_reaches_every_menu_by_touch_without_horizontal_scroll(
        open_page: Any, archive: YunyingServer, study: str, lang: str) -> None:
    p = open_page(**PHONE)
    page = opened(p.page, url(archive, study, f"&lang={lang}"))
    assert page.evaluate(ROWS_JS) == 1  # one bottom row, scrolled sideways
    for name in MENUS:
        page.tap(f"#group-{name}")
        assert page.evaluate(INSIDE_JS, f"#menu-{name}"), name
        page.tap(f"#group-{name}")
    press(page, "#invert", tap=True)
    assert page.evaluate("window.yunyingViewer.viewports[0].view.invert")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert not p.errors, p.errors
