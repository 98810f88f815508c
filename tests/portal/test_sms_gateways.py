"""The Aliyun and Tencent Cloud gateways against a local fake vendor (real HTTP on 127.0.0.1),
Aliyun's signature against the vector of its documentation; failures become SmsFailed."""
from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from yunying.portal.sms import AliyunGateway, SmsFailed, TencentGateway, aliyun_sign


def test_aliyun_signature_matches_the_documented_example() -> None:
    params = {"AccessKeyId": "testId", "Action": "SendSms", "Format": "XML", "OutId": "123",
              "PhoneNumbers": "15300000001", "RegionId": "cn-hangzhou", "SignName": "阿里云短信测试专用",
              "SignatureMethod": "HMAC-SHA1", "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466",
              "SignatureVersion": "1.0", "TemplateCode": "SMS_71390007", "TemplateParam": '{"customer":"test"}',
              "Timestamp": "2017-07-12T02:42:19Z", "Version": "2017-05-25"}
    assert aliyun_sign(params, "testSecret")["Signature"] == "zJDF+Lrzhj/ThnlvIToysFRq6t4="


class Vendor:
    """A fake SMS vendor: records requests, answers `reply` (status, JSON)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.reply: tuple[int, dict[str, Any]] = (200, {})
        vendor = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                form = dict(parse_qsl(body.decode())) if "form" in self.headers.get("Content-Type", "") else {}
                vendor.requests.append({"method": self.command, "path": urlsplit(self.path).path,
                                        "query": dict(parse_qsl(urlsplit(self.path).query)),
                                        "form": form,
                                        "headers": dict(self.headers), "body": body})
                status, payload = vendor.reply
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json;charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def vendor() -> Iterator[Vendor]:
    v = Vendor()
    yield v
    v.server.shutdown()


def test_aliyun_sends_a_signed_request_and_reads_the_answer(vendor: Vendor) -> None:
    gw = AliyunGateway({"YUNYING_SMS_ACCESS_KEY_ID": "id1", "YUNYING_SMS_ACCESS_KEY_SECRET": "s3cret",
                        "YUNYING_SMS_SIGN_NAME": "云影医院", "YUNYING_SMS_TEMPLATE": "SMS_1",
                        "YUNYING_SMS_ENDPOINT": vendor.url})
    vendor.reply = (200, {"Code": "OK", "Message": "OK"})
    gw.send_code("13800138000", "123456")
    assert vendor.requests[-1]["query"] == {}  # nothing in the URL (httpx logs URLs)
    got = vendor.requests[-1]["form"]
    assert got["PhoneNumbers"] == "13800138000" and json.loads(got["TemplateParam"]) == {"code": "123456"}
    assert got["SignName"] == "云影医院" and got["Action"] == "SendSms"
    signature = got.pop("Signature")
    assert aliyun_sign(got, "s3cret", "POST")["Signature"] == signature  # what arrived is what was signed
    vendor.reply = (200, {"Code": "isv.BUSINESS_LIMIT_CONTROL"})
    with pytest.raises(SmsFailed, match="BUSINESS_LIMIT_CONTROL"):
        gw.send_code("13800138000", "123456")


def tc3_signature(secret_key: str, headers: dict[str, str], body: bytes) -> str:
    """Tencent's TC3-HMAC-SHA256, written out from the documentation's steps (independently)."""
    ts = int(headers["X-TC-Timestamp"])
    import datetime as dt
    date = dt.datetime.fromtimestamp(ts, dt.UTC).date().isoformat()
    canonical = (f"POST\n/\n\ncontent-type:{headers['Content-Type'].lower()}\nhost:{headers['Host']}\n\n"
                 f"content-type;host\n{hashlib.sha256(body).hexdigest()}")
    string_to_sign = (f"TC3-HMAC-SHA256\n{ts}\n{date}/sms/tc3_request\n"
                      f"{hashlib.sha256(canonical.encode()).hexdigest()}")
    k = hmac.new(("TC3" + secret_key).encode(), date.encode(), hashlib.sha256).digest()
    k = hmac.new(k, b"sms", hashlib.sha256).digest()
    k = hmac.new(k, b"tc3_request", hashlib.sha256).digest()
    return hmac.new(k, string_to_sign.encode(), hashlib.sha256).hexdigest()


def test_tencent_sends_a_signed_request_and_reads_the_answer(vendor: Vendor) -> None:
    gw = TencentGateway({"YUNYING_SMS_SECRET_ID": "AKID1", "YUNYING_SMS_SECRET_KEY": "key1",
                         "YUNYING_SMS_APP_ID": "1400000000", "YUNYING_SMS_SIGN_NAME": "云影",
                         "YUNYING_SMS_TEMPLATE": "100001", "YUNYING_SMS_ENDPOINT": vendor.url})
    vendor.reply = (200, {"Response": {"SendStatusSet": [{"Code": "Ok"}], "RequestId": "r"}})
    gw.send_code("13800138000", "654321")
    req = vendor.requests[-1]
    body = json.loads(req["body"])
    assert body["PhoneNumberSet"] == ["+8613800138000"] and body["TemplateParamSet"] == ["654321"]
    assert req["headers"]["X-TC-Action"] == "SendSms" and req["headers"]["X-TC-Version"] == "2021-01-11"
    auth = req["headers"]["Authorization"]
    assert auth.startswith("TC3-HMAC-SHA256 Credential=AKID1/")
    assert auth.endswith("Signature=" + tc3_signature("key1", req["headers"], req["body"]))
    vendor.reply = (200, {"Response": {"Error": {"Code": "AuthFailure.SignatureFailure"}}})
    with pytest.raises(SmsFailed, match="SignatureFailure"):
        gw.send_code("13800138000", "654321")


def test_an_unreachable_vendor_is_sms_failed() -> None:
    gw = AliyunGateway({"YUNYING_SMS_ACCESS_KEY_ID": "i", "YUNYING_SMS_ACCESS_KEY_SECRET": "s",
                        "YUNYING_SMS_SIGN_NAME": "x", "YUNYING_SMS_TEMPLATE": "t",
                        "YUNYING_SMS_ENDPOINT": "http://127.0.0.1:9/"})
    with pytest.raises(SmsFailed):
        gw.send_code("13800138000", "1")


def test_a_refusing_vendor_is_a_502_with_a_reason_and_a_retry_is_allowed(vendor: Vendor, tmp_path: Any) -> None:
    from tests.conftest import start_with_env
    from tests.portal.conftest import api, issue, store_study

    srv = start_with_env(tmp_path / "data", YUNYING_SMS_GATEWAY="aliyun", YUNYING_SMS_ACCESS_KEY_ID="i",
                         YUNYING_SMS_ACCESS_KEY_SECRET="s", YUNYING_SMS_SIGN_NAME="x", YUNYING_SMS_TEMPLATE="t",
                         YUNYING_SMS_ENDPOINT=vendor.url)
    try:
        token = issue(srv, study=store_study(srv), phone="13800138000").json()["token"]
        vendor.reply = (200, {"Code": "isv.MOBILE_NUMBER_ILLEGAL"})
        refused = api(srv, "verify/send", {"exam": token, "phone": "13800138000"})
        assert refused.status_code == 502 and "could not be sent" in refused.json()["error"]
        vendor.reply = (200, {"Code": "OK"})
        assert api(srv, "verify/send", {"exam": token, "phone": "13800138000"}).status_code == 200
        assert "13800138000" not in srv.log_path.read_text(errors="replace")
    finally:
        srv.stop()


def test_a_misconfigured_gateway_says_so_instead_of_a_500(tmp_path: Any) -> None:
    from tests.conftest import start_with_env
    from tests.portal.conftest import api, issue, store_study

    srv = start_with_env(tmp_path / "data", YUNYING_SMS_GATEWAY="aliyun")  # no keys
    try:
        token = issue(srv, study=store_study(srv), phone="13800138000").json()["token"]
        r = api(srv, "verify/send", {"exam": token, "phone": "13800138000"})
        assert r.status_code == 502 and "YUNYING_SMS_ACCESS_KEY_ID" in r.json()["error"]
    finally:
        srv.stop()


NOTICE = {"hospital": "云影医院", "exam": "CT-1", "date": "20240102", "url": "https://h/portal/#exam=ycap_x"}


def test_report_notices_use_the_notice_template(vendor: Vendor) -> None:
    env = {"YUNYING_SMS_ACCESS_KEY_ID": "id1", "YUNYING_SMS_ACCESS_KEY_SECRET": "s3cret",
           "YUNYING_SMS_SIGN_NAME": "云影医院", "YUNYING_SMS_TEMPLATE": "SMS_1", "YUNYING_SMS_ENDPOINT": vendor.url}
    with pytest.raises(SmsFailed, match="NOTICE_TEMPLATE"):  # not configured: said, nothing sent
        AliyunGateway(env).send_notice("13800138000", NOTICE)
    assert vendor.requests == []
    vendor.reply = (200, {"Code": "OK"})
    AliyunGateway(env | {"YUNYING_SMS_NOTICE_TEMPLATE": "SMS_2"}).send_notice("13800138000", NOTICE)
    got = vendor.requests[-1]["form"]
    assert got["TemplateCode"] == "SMS_2" and json.loads(got["TemplateParam"]) == NOTICE
    tencent = TencentGateway({"YUNYING_SMS_SECRET_ID": "AKID1", "YUNYING_SMS_SECRET_KEY": "key1",
                              "YUNYING_SMS_APP_ID": "1400000000", "YUNYING_SMS_SIGN_NAME": "云影",
                              "YUNYING_SMS_TEMPLATE": "100001", "YUNYING_SMS_NOTICE_TEMPLATE": "100002",
                              "YUNYING_SMS_ENDPOINT": vendor.url})
    vendor.reply = (200, {"Response": {"SendStatusSet": [{"Code": "Ok"}]}})
    tencent.send_notice("13800138000", NOTICE)
    body = json.loads(vendor.requests[-1]["body"])
    assert body["TemplateId"] == "100002" and body["TemplateParamSet"] == ["云影医院", "CT-1", "20240102", NOTICE["url"]]


def test_wechat_template_message_gets_a_token_sends_and_renews_an_expired_one(vendor: Vendor) -> None:
    from yunying.portal.wechat import WeChatTemplateGateway

    gw = WeChatTemplateGateway({"YUNYING_WECHAT_APP_ID": "wx1", "YUNYING_WECHAT_APP_SECRET": "sec",
                                "YUNYING_WECHAT_TEMPLATE_ID": "tpl1", "YUNYING_WECHAT_ENDPOINT": vendor.url})
    vendor.reply = (200, {"access_token": "AT1", "expires_in": 7200})
    token = gw.access_token()
    assert token == "AT1" and json.loads(vendor.requests[-1]["body"])["secret"] == "sec"
    assert vendor.requests[-1]["query"] == {}  # the secret is in the body, not the URL
    vendor.reply = (200, {"errcode": 0, "errmsg": "ok"})
    gw.send_notice("openid-1", NOTICE)
    sent = vendor.requests[-1]
    assert sent["query"] == {"access_token": "AT1"}
    body = json.loads(sent["body"])
    assert body["touser"] == "openid-1" and body["template_id"] == "tpl1" and body["url"] == NOTICE["url"]
    assert body["data"] == {"keyword1": {"value": "云影医院"}, "keyword2": {"value": "CT-1"},
                            "keyword3": {"value": "20240102"}}
    vendor.reply = (200, {"errcode": 40001, "errmsg": "invalid credential"})  # the token expired early
    with pytest.raises(SmsFailed, match="40001"):
        gw.send_notice("openid-1", NOTICE)
    assert [r["path"] for r in vendor.requests[-2:]] == ["/cgi-bin/message/template/send", "/cgi-bin/stable_token"]
    assert json.loads(vendor.requests[-1]["body"])["force_refresh"] is True  # a new token was asked for
