"""WeChat Official Account template messages (模板消息) for report notifications, behind the same
`send_notice(recipient, notice)` interface as the SMS gateways; the recipient is the patient's
openid for the hospital's official account.

Environment: YUNYING_WECHAT_APP_ID, YUNYING_WECHAT_APP_SECRET, YUNYING_WECHAT_TEMPLATE_ID,
YUNYING_WECHAT_FIELDS (JSON: notice key -> the template's field, default hospital/exam/date ->
keyword1/2/3), YUNYING_WECHAT_ENDPOINT (another base URL: a proxy, or a fake one in tests).
The access token is fetched with `stable_token` (a POST: the secret stays out of URLs) and
kept until shortly before it expires; the template send carries it in the URL as WeChat
requires, so httpx's request log is kept at WARNING (it would print the URL).
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping

import httpx

from yunying.portal.sms import SmsFailed

logging.getLogger("httpx").setLevel(logging.WARNING)  # its INFO line holds the URL (access_token=...)
EXPIRED = {40001, 40014, 42001}  # invalid or expired access token: fetch a new one, send again


class WeChatTemplateGateway:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.app_id, self.secret = env["YUNYING_WECHAT_APP_ID"], env["YUNYING_WECHAT_APP_SECRET"]
        self.template = env["YUNYING_WECHAT_TEMPLATE_ID"]
        self.fields: dict[str, str] = json.loads(env.get("YUNYING_WECHAT_FIELDS") or "{}") or {
            "hospital": "keyword1", "exam": "keyword2", "date": "keyword3"}
        self.base = (env.get("YUNYING_WECHAT_ENDPOINT") or "https://api.weixin.qq.com").rstrip("/")
        self._token, self._until, self._lock = "", 0.0, threading.Lock()

    def _post(self, url: str, body: Mapping[str, object]) -> dict[str, object]:
        try:
            r = httpx.post(url, json=body, timeout=10)
            answer = r.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise SmsFailed(f"wechat: {type(exc).__name__}") from None
        if not isinstance(answer, dict):
            raise SmsFailed(f"wechat: HTTP {r.status_code}")
        return answer

    def access_token(self, renew: bool = False) -> str:
        with self._lock:
            if renew or not self._token or time.monotonic() > self._until:
                got = self._post(self.base + "/cgi-bin/stable_token", {
                    "grant_type": "client_credential", "appid": self.app_id, "secret": self.secret,
                    "force_refresh": renew})
                if "access_token" not in got:
                    raise SmsFailed(f"wechat: token refused ({got.get('errcode', '')})")
                self._token = str(got["access_token"])
                self._until = time.monotonic() + max(60, int(str(got.get("expires_in", 7200))) - 300)
            return self._token

    def send_notice(self, openid: str, notice: Mapping[str, str]) -> None:
        body = {"touser": openid, "template_id": self.template, "url": notice.get("url", ""),
                "data": {field: {"value": notice.get(key, "")} for key, field in self.fields.items()}}
        for renew in (False, True):
            url = f"{self.base}/cgi-bin/message/template/send?access_token={self.access_token(renew)}"
            answer = self._post(url, body)
            if answer.get("errcode", 0) == 0:
                return
            if answer.get("errcode") not in EXPIRED:
                break
        raise SmsFailed(f"wechat: errcode {answer.get('errcode')}")

    def send_code(self, openid: str, code: str) -> None:
        raise SmsFailed("wechat: verification codes go by SMS")
