"""The routing page in headless Chromium on a phone: a rule added, its failures shown and retried."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from benchmarks.net import YunyingServer
from tests.conftest import start_with_env
from tests.dicomweb.helpers import make_ct, multipart, part10
from tests.frontends.conftest import PHONE


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[YunyingServer]:
    s = start_with_env(tmp_path_factory.mktemp("routingpage") / "data", YUNYING_ROUTING_ATTEMPTS="1")
    yield s
    s.stop()


def test_add_a_rule_see_it_fail_and_retry(srv: YunyingServer, open_page: Any) -> None:
    p = open_page(**PHONE)
    page = p.page
    page.goto(f"{srv.http_url}/admin/routing/?lang=zh-CN#access_token={srv.api_key}")
    page.wait_for_selector("#add-rule")
    assert page.locator("h1").inner_text() == "转发路由"
    assert not page.is_visible("#add-rule [name=url]")  # a DICOMweb field, hidden for C-STORE
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.fill("#add-rule [name=name]", "to-nowhere")
    page.fill("#add-rule [name=aet]", "NOWHERE")
    page.fill("#add-rule [name=host]", "127.0.0.1")
    page.fill("#add-rule [name=port]", "9")  # nothing listens: the association fails
    page.fill("#add-rule [name=modalities]", "CT")
    page.click("#add-rule button[type=submit]")
    page.wait_for_selector("#rule-list li")
    body, ctype = multipart(part10(make_ct()))
    assert httpx.post(srv.dicomweb_url + "/studies", content=body,
                      headers={**srv.headers, "Content-Type": ctype}).status_code == 200
    # the page refreshes itself: the failed forward appears with its reason
    page.wait_for_selector("#queue-list li", timeout=30_000)
    assert "失败 1" in page.locator("#rule-list").inner_text()
    page.get_by_text("重试失败项").click()
    page.wait_for_function("document.querySelector('#rule-list').textContent.includes('失败 1')")
    # one item given up on, by hand: it leaves the failed list and is kept as dropped
    page.locator("#queue-list li").first.get_by_text("放弃").click()
    page.wait_for_function("document.querySelectorAll('#queue-list li').length === 0")
    rows = httpx.get(srv.http_url + "/api/routing/queue", headers=srv.headers).json()
    assert [r["state"] for r in rows] == ["dropped"]
    # all sending paused and resumed from the page
    page.get_by_text("暂停全部转发").click()
    page.wait_for_selector("text=已暂停全部转发")
    assert httpx.get(srv.http_url + "/api/routing/paused", headers=srv.headers).json() == {"paused": True}
    page.get_by_text("恢复转发").click()
    page.wait_for_selector("text=正在转发")
    assert httpx.get(srv.http_url + "/api/routing/paused", headers=srv.headers).json() == {"paused": False}
    page.click("#lang")
    page.wait_for_function("document.querySelector('h1').textContent === 'Routing'")
    assert "Delete" in page.locator("#rule-list").inner_text()
    assert not p.errors, p.errors
