"""Issue 14 part 8: a patient inside WeChat binds the official account's openid through WeChat's
web sign-in (snsapi_base) and report notices then come as WeChat template messages, SMS being
the fallback (unbound, or WeChat refusing). WeChat is a fake HTTP server on 127.0.0.1 speaking
the vendor's API; the portal runs in Chromium with WeChat's user agent. The openid never
reaches a log or the database in clear."""
from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest

from benchmarks.net import YunyingServer
from tests.conftest import start_with_env
from tests.frontends.conftest import PHONE as PHONE_CONTEXT
from tests.portal.conftest import api, issue, last_code, store_study
from tests.portal.test_fhir_reports import post, report
from tests.portal.test_notifications import acsn, notices, wait_for
from tests.portal.test_portal_page import verify_by_sms

APP_ID, SECRET = "wx5e11c0ffee", "wx-secret-0123456789"
WECHAT_UA = ("Mozilla/5.0 (Linux; Android 14; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 "
             "Mobile Safari/537.36 XWEB/1260117 MMWEBSDK/20240404 MicroMessenger/8.0.49.2600(0x2800313D) "
             "WeChat/arm64 Weixin NetType/4G Language/zh_CN ABI/arm64")


class FakeWeChat:
    """open.weixin.qq.com's authorize page and api.weixin.qq.com's calls we use, on loopback."""

    def __init__(self) -> None:
        self.openids: list[str] = []  # who signs in next (one per authorize visit)
        self.codes: dict[str, str] = {}
        self.authorized: list[dict[str, str]] = []
        self.sent: list[dict[str, Any]] = []
        self.refuse: set[str] = set()  # openids whose messages WeChat refuses (unfollowed the account)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _json(self, payload: dict[str, Any], status: int = 200) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                q = dict(parse_qsl(url.query))
                if url.path == "/connect/oauth2/authorize":
                    fake.authorized.append(q)
                    if q.get("appid") != APP_ID or q.get("scope") != "snsapi_base" or not fake.openids:
                        return self._json({"errcode": 10003, "errmsg": "redirect_uri or appid wrong"}, 400)
                    code = secrets.token_hex(8)
                    fake.codes[code] = fake.openids.pop(0)
                    self.send_response(302)  # WeChat sends the browser back with the code and the state
                    self.send_header("Location", q["redirect_uri"] + "?" + urlencode({"code": code, "state": q["state"]}))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif url.path == "/sns/oauth2/access_token":
                    openid = fake.codes.pop(q.get("code", ""), None)  # one use
                    if (q.get("appid"), q.get("secret"), q.get("grant_type")) != (APP_ID, SECRET, "authorization_code") \
                            or openid is None:
                        return self._json({"errcode": 40029, "errmsg": "invalid code"})
                    self._json({"access_token": "web-" + secrets.token_hex(4), "expires_in": 7200, "openid": openid,
                                "refresh_token": "r", "scope": "snsapi_base"})
                else:
                    self._json({"errcode": 404}, 404)

            def do_POST(self) -> None:
                url = urlsplit(self.path)
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                if url.path == "/cgi-bin/stable_token":
                    ok = (body.get("appid"), body.get("secret")) == (APP_ID, SECRET)
                    return self._json({"access_token": "api-token", "expires_in": 7200} if ok else {"errcode": 40125})
                if url.path == "/cgi-bin/message/template/send":
                    if body.get("touser") in fake.refuse:
                        return self._json({"errcode": 43004, "errmsg": "require subscribe"})
                    fake.sent.append(body)
                    return self._json({"errcode": 0, "errmsg": "ok", "msgid": 1})
                self._json({"errcode": 404}, 404)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def wechat() -> Iterator[FakeWeChat]:
    fake = FakeWeChat()
    yield fake
    fake.server.shutdown()


@pytest.fixture(scope="module")
def wx(tmp_path_factory: pytest.TempPathFactory, wechat: FakeWeChat) -> Iterator[YunyingServer]:
    s = start_with_env(tmp_path_factory.mktemp("wechat") / "data", YUNYING_PORTAL_NOTIFY_SECONDS="1",
                       YUNYING_WECHAT_APP_ID=APP_ID, YUNYING_WECHAT_APP_SECRET=SECRET,
                       YUNYING_WECHAT_TEMPLATE_ID="tpl-report", YUNYING_WECHAT_ENDPOINT=wechat.url,
                       YUNYING_WECHAT_OAUTH_URL=wechat.url + "/connect/oauth2/authorize")
    yield s
    s.stop()


def state(srv: YunyingServer, token: str) -> dict[str, Any]:
    r = httpx.get(srv.http_url + "/api/portal/wechat", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    return dict(r.json())


def sent_to(wechat: FakeWeChat, openid: str, count: int, timeout: float = 20) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while len(found := [m for m in wechat.sent if m["touser"] == openid]) < count and time.monotonic() < deadline:
        time.sleep(0.3)
    return found


def test_bound_in_wechat_notices_come_by_wechat_unbound_by_sms(open_page: Any, wx: YunyingServer,
                                                              wechat: FakeWeChat) -> None:
    phone, openid = "13622220001", "oWx_" + secrets.token_hex(10)
    study = store_study(wx, accession="WX-1")
    url = issue(wx, study=study, accession="WX-1", phone=phone).json()["url"]
    wechat.openids.append(openid)
    p = open_page(**PHONE_CONTEXT, locale="en-US", user_agent=WECHAT_UA)
    page = p.page
    verify_by_sms(page, wx, url, phone)  # then, inside WeChat, off to WeChat's sign-in and back
    page.locator("#wechat-notify-text").filter(has_text="in WeChat").wait_for()  # waits across the navigations
    assert len(wechat.authorized) == 1 and wechat.authorized[0]["redirect_uri"] == wx.http_url + "/portal/"
    assert "code=" not in page.url and page.url.endswith("/portal/")  # the code left the address bar
    assert page.locator(".exam").count() == 1
    token = page.evaluate("sessionStorage.getItem('yunying.access_token')")
    assert state(wx, token) == {"available": True, "bound": True, "declined": False}

    assert post(wx, report("final", identifier=acsn("WX-1"))).status_code == 201
    [message] = sent_to(wechat, openid, 1)
    assert message["template_id"] == "tpl-report" and message["url"].startswith(wx.http_url + "/portal/#exam=")
    assert message["data"]["keyword2"] == {"value": "WX-1"}
    time.sleep(2)
    assert notices(wx, phone) == []  # WeChat took it: no SMS as well

    page.tap("#wechat-notify-toggle")  # the patient stops WeChat notices
    page.wait_for_function("document.querySelector('#wechat-notify-text').innerText.includes('by SMS')")
    assert state(wx, token) == {"available": True, "bound": False, "declined": True}
    page.goto("about:blank")
    page.goto(wx.http_url + "/portal/")  # a later visit does not send them to WeChat again
    page.wait_for_selector("#home:not([hidden]) .exam")
    page.wait_for_function("document.querySelector('#wechat-notify-text').innerText.includes('by SMS')")
    assert len(wechat.authorized) == 1
    assert post(wx, report("amended", identifier=acsn("WX-1"))).status_code == 201
    assert len(wait_for(wx, phone, 1)) == 1  # unbound: by SMS
    assert len(sent_to(wechat, openid, 2, timeout=2)) == 1
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert not p.errors, p.errors

    log = (wx.data_dir.parent / f"{wx.data_dir.name}.yunying.log").read_text()
    assert openid not in log and SECRET not in log
    db = sqlite3.connect(wx.data_dir / "app.sqlite")
    dump = "\n".join(db.iterdump())
    assert "portal_wechat" in dump and openid not in dump  # sealed


def test_wechat_refusing_falls_back_to_sms_and_bad_binds_are_refused(wx: YunyingServer, wechat: FakeWeChat) -> None:
    phone, openid = "13622220002", "oWx_" + secrets.token_hex(10)
    study = store_study(wx, accession="WX-2")
    exam = issue(wx, study=study, accession="WX-2", phone=phone).json()["token"]
    api(wx, "verify/send", {"exam": exam, "phone": phone})
    token = api(wx, "verify/sms", {"exam": exam, "phone": phone, "code": last_code(wx, phone)}).json()["access_token"]
    start = api(wx, "wechat/start", {}, token)
    assert start.status_code == 200 and start.json()["url"].endswith("#wechat_redirect")
    wechat.openids.append(openid)
    back = httpx.get(start.json()["url"].split("#")[0], follow_redirects=False)
    assert back.status_code == 302
    answer = dict(parse_qsl(urlsplit(back.headers["location"]).query))
    for bad, status in (({"code": answer["code"], "state": "1x" + "0" * 40}, 400),  # a forged state
                        ({"code": answer["code"], "state": answer["state"][:-1] + ("1" if answer["state"].endswith("0") else "0")}, 400),
                        ({"code": "not-a-code", "state": answer["state"]}, 502),  # WeChat says 40029
                        ({"state": answer["state"]}, 400)):
        r = api(wx, "wechat/bind", bad, token)
        assert r.status_code == status and r.json()["error"], (bad, r.text)
    assert state(wx, token)["bound"] is False
    assert api(wx, "wechat/bind", answer, token).json() == {"bound": True}
    assert api(wx, "wechat/bind", answer, token).status_code == 502  # a code is used once

    wechat.refuse.add(openid)  # the patient unfollowed the official account
    assert post(wx, report("final", identifier=acsn("WX-2"))).status_code == 201
    [notice] = wait_for(wx, phone, 1)
    assert notice["exam"] == "WX-2" and sent_to(wechat, openid, 1, timeout=1) == []

    for method, path in (("GET", "wechat"), ("DELETE", "wechat"), ("POST", "wechat/start"), ("POST", "wechat/bind")):
        url = wx.http_url + "/api/portal/" + path
        assert httpx.request(method, url, json={}).status_code == 401
        assert httpx.request(method, url, json={}, headers=wx.headers).status_code == 403  # staff: not a patient


def test_without_an_official_account_nothing_is_offered(srv: YunyingServer) -> None:
    phone = "13622220003"
    exam = issue(srv, study=store_study(srv, accession="WX-3"), phone=phone).json()["token"]
    api(srv, "verify/send", {"exam": exam, "phone": phone})
    token = api(srv, "verify/sms", {"exam": exam, "phone": phone, "code": last_code(srv, phone)}).json()["access_token"]
    assert state(srv, token) == {"available": False, "bound": False, "declined": False}
    assert api(srv, "wechat/start", {}, token).status_code == 404
    assert api(srv, "wechat/bind", {"code": "c", "state": "s"}, token).status_code == 404
