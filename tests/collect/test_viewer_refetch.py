"""A study purged from the delivery cache, opened in the viewer (issue 15 part 6): the archive
fetches it back from a slow source PACS; meanwhile the viewer shows the progress (not an error),
then the image, with no reload by the user."""
from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from benchmarks.collect import SyntheticPacs
from benchmarks.net import YunyingServer
from tests.collect.conftest import api, run, source, start_collecting
from tests.frontends.conftest import PHONE


@pytest.fixture(scope="module")
def slow_pacs() -> Iterator[SyntheticPacs]:
    p = SyntheticPacs(studies=2, days=1, series=1, instances=4, seed=21, pace=0.7).start()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def server(slow_pacs: SyntheticPacs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[YunyingServer]:
    srv = start_collecting(tmp_path_factory.mktemp("viewer-refetch") / "data",
                           [source("slow", slow_pacs.aet, slow_pacs.port, retrieve="get", window_days=1)],
                           YUNYING_DELIVERY_CACHE_BYTES="3000", YUNYING_REFETCH_WAIT_S="1",
                           YUNYING_CACHE_CHECK_S="3600")
    slow_pacs.pace = 0.0  # the first collection at full speed
    assert run(srv, "slow", kind="sync")["state"] == "done"
    slow_pacs.pace = 0.7  # the re-fetch from a slow hospital archive: ~3 s for the study
    yield srv
    srv.stop()


def test_the_viewer_shows_refetch_progress_then_the_image(server: YunyingServer, slow_pacs: SyntheticPacs,
                                                          open_page: Any) -> None:
    study = slow_pacs.study_uid(0)
    with api(server) as c:
        report = c.post("/api/lifecycle/purge").json()
        assert report["purged"] >= 1, report
        assert c.get(f"/api/lifecycle/studies/{study}").json()["purged"] is True, report
    p = open_page(**PHONE)
    seen: list[str] = []
    p.page.expose_function("yyStatus", lambda text: seen.append(text))
    p.page.add_init_script("""new MutationObserver(() => {
        const s = document.querySelector('#status'); if (s && s.textContent) window.yyStatus(s.textContent);
      }).observe(document, {subtree: true, childList: true, characterData: true});""")
    p.page.goto(f"{server.http_url}/viewer/?study={study}&lang=en#access_token={server.api_key}")
    p.page.wait_for_function("performance.getEntriesByName('first-image').length > 0", timeout=60_000)
    assert any("Fetching this exam from the hospital archive" in s for s in seen), seen
    assert not any("Could not load" in s for s in seen), seen
    with api(server) as c:
        assert c.get(f"/api/lifecycle/studies/{study}").json()["purged"] is False
    # the 503s the viewer waited out are the only failed answers; nothing else went wrong
    assert all(" 503 " in f"{f} " or f.startswith("503") for f in p.failed), p.failed
    assert not [e for e in p.errors if "503" not in e], p.errors
    assert json.loads(p.page.evaluate("JSON.stringify(document.documentElement.scrollWidth <= 390)"))
