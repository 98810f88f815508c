"""The viewer's limits in Debian's Chromium: a 1000-image series scrolled end to end on a phone
stays within the decoded-pixel budget, and a browser without WebGL2 (some WeChat builds) draws
the same values on the canvas 2D path."""
from __future__ import annotations

from typing import Any

import pytest

from benchmarks.net import YunyingServer
from tests.frontends.conftest import DESKTOP, PHONE
from tests.frontends.phantom import HEADER_WINDOW, store_ct, stored_value
from tests.frontends.test_viewer import SIZE, assert_close, corner, expected, opened, pixels, url

LONG, SMALL = 1000, 32  # 2 KB a frame
BUDGET_MB = 0.25  # 128 frames: an eighth of the series

# scroll image by image as a reader's swipe would, recording the cache's peak after every insert
SCROLL_JS = """async (n) => {
  const v = window.yunyingViewer, vp = v.active, cache = v.loader.cache, put = cache.put.bind(cache);
  let peak = 0, peakFrames = 0;
  cache.put = (key, entry) => { put(key, entry); peak = Math.max(peak, cache.bytes); peakFrames = Math.max(peakFrames, cache.map.size); };
  for (let i = 0; i < n; i++) { vp.setIndex(i); await v.loader.load(vp.series, i, 0); }
  await new Promise(r => setTimeout(r, 300));
  const last = v.loader.cached(vp.series, n - 1);
  const lastRow = Array.from(last.pixels.slice(0, last.columns));
  vp.setIndex(0);  // back to the start: long evicted, fetched again
  const first = await v.loader.load(vp.series, 0, 0);
  return { peak, peakFrames, budget: cache.budget, fetched: v.loader.fetched, lastRow, firstRow: Array.from(first.pixels.slice(0, first.columns)) };
}"""


def stripe_row(slice_index: int, size: int) -> list[int]:
    return [stored_value(x * 8 // size, slice_index) for x in range(size)]


def test_a_1000_image_series_scrolls_within_the_memory_budget(open_page: Any, archive: YunyingServer) -> None:
    study = store_ct(archive, LONG, SMALL)[0]
    p = open_page(**PHONE)
    page = opened(p.page, url(archive, study, f"&lang=en&cacheMb={BUDGET_MB}"))
    assert f"Im 1/{LONG}" in corner(page, "bl")
    seen = page.evaluate(SCROLL_JS, LONG)
    assert seen["budget"] == BUDGET_MB * 2 ** 20
    assert 0 < seen["peak"] <= seen["budget"] and seen["peakFrames"] <= seen["budget"] // (SMALL * SMALL * 2)
    assert seen["fetched"] >= LONG + 1  # every image decoded once, the first one twice
    assert seen["lastRow"] == stripe_row(LONG - 1, SMALL) and seen["firstRow"] == stripe_row(0, SMALL)
    assert f"Im 1/{LONG}" in corner(page, "bl")
    assert not p.errors, p.errors


@pytest.fixture(scope="module")
def study(archive: YunyingServer) -> str:
    return store_ct(archive, 2, SIZE)[0]


# WebGL2 missing as in some WeChat builds: the context is simply not there
NO_WEBGL2 = """(() => { const get = HTMLCanvasElement.prototype.getContext;
  HTMLCanvasElement.prototype.getContext = function (kind, ...rest) { return kind === 'webgl2' ? null : get.call(this, kind, ...rest); };
})();"""


@pytest.mark.parametrize("asked", ["", "webgl2"])
def test_without_webgl2_the_canvas_path_draws_the_values(open_page: Any, archive: YunyingServer, study: str,
                                                         asked: str) -> None:
    p = open_page(**DESKTOP)
    p.page.add_init_script(NO_WEBGL2)
    page = opened(p.page, url(archive, study, f"&lang=en&renderer={asked}"))
    assert page.evaluate("document.createElement('canvas').getContext('webgl2')") is None
    assert page.get_attribute(".viewport", "data-renderer") == "canvas2d"
    assert_close(pixels(page), expected(*HEADER_WINDOW))
    page.evaluate("window.yunyingViewer.viewports[0].setWindow(-500, 400)")
    assert_close(pixels(page), expected(-500, 400))
    assert not p.errors, p.errors
