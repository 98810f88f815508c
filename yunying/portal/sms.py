"""SMS gateways behind one interface: a file outbox (development, tests), Aliyun, Tencent Cloud.

Chosen by the environment: YUNYING_SMS_GATEWAY = file (default; its outbox is
YUNYING_SMS_OUTBOX, else <data>.sms-outbox.jsonl BESIDE the data folder: it holds phone numbers
in clear, and the data folder holds none) | aliyun | tencent. Aliyun:
YUNYING_SMS_ACCESS_KEY_ID, YUNYING_SMS_ACCESS_KEY_SECRET, YUNYING_SMS_SIGN_NAME,
YUNYING_SMS_TEMPLATE (template with a `${code}` variable). Tencent: YUNYING_SMS_SECRET_ID,
YUNYING_SMS_SECRET_KEY, YUNYING_SMS_APP_ID, YUNYING_SMS_SIGN_NAME, YUNYING_SMS_TEMPLATE,
YUNYING_SMS_REGION (ap-guangzhou). YUNYING_SMS_ENDPOINT overrides the vendor's URL (tests).
Nothing here logs a phone number or a code.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

import httpx


class SmsFailed(Exception):
    """The gateway did not accept the message (its reason, without the phone number)."""


class SmsGateway(Protocol):
    def send_code(self, phone: str, code: str) -> None: ...

    def send_notice(self, phone: str, notice: Mapping[str, str]) -> None:
        """A notification (template parameters: hospital, exam, date, url); SmsFailed if refused."""


def default_outbox(data: Path) -> Path:
    """`<data>.sms-outbox.jsonl`: beside the data folder, not in it (it holds phone numbers)."""
    data = Path(data).resolve()
    return data.with_name(data.name + ".sms-outbox.jsonl")


class FileGateway:
    """Appends {"phone", "code", "at"} (codes) and {"phone", "notice", "at"} (notifications) lines
    to the outbox file (0600): for development and tests only, where a person or a test reads
    the message instead of a phone."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _append(self, line: dict[str, object]) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a") as f:
            f.write(json.dumps(line | {"at": time.time()}, ensure_ascii=False) + "\n")

    def send_code(self, phone: str, code: str) -> None:
        self._append({"phone": phone, "code": code})

    def send_notice(self, phone: str, notice: Mapping[str, str]) -> None:
        self._append({"phone": phone, "notice": dict(notice)})


def _pct(s: str) -> str:
    return quote(s, safe="-_.~")


def aliyun_sign(params: dict[str, str], secret: str, method: str = "GET") -> dict[str, str]:
    """Aliyun's RPC signature (HMAC-SHA1 over the sorted, percent-encoded query) added to params."""
    query = "&".join(f"{_pct(k)}={_pct(v)}" for k, v in sorted(params.items()))
    to_sign = f"{method}&%2F&" + _pct(query)
    mac = hmac.new((secret + "&").encode(), to_sign.encode(), hashlib.sha1).digest()
    return params | {"Signature": base64.b64encode(mac).decode()}


class AliyunGateway:
    """Aliyun SMS (dysmsapi 2017-05-25 SendSms), RPC signature HMAC-SHA1."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.key_id, self.secret = env["YUNYING_SMS_ACCESS_KEY_ID"], env["YUNYING_SMS_ACCESS_KEY_SECRET"]
        self.sign, self.template = env["YUNYING_SMS_SIGN_NAME"], env["YUNYING_SMS_TEMPLATE"]
        self.endpoint = env.get("YUNYING_SMS_ENDPOINT") or "https://dysmsapi.aliyuncs.com/"
        self.notice_template = env.get("YUNYING_SMS_NOTICE_TEMPLATE", "")

    def signed_params(self, phone: str, code: str, now: datetime | None = None,
                      template: str = "", params: Mapping[str, str] | None = None) -> dict[str, str]:
        return aliyun_sign({
            "AccessKeyId": self.key_id, "Action": "SendSms", "Format": "JSON", "PhoneNumbers": phone,
            "SignName": self.sign, "SignatureMethod": "HMAC-SHA1", "SignatureNonce": secrets.token_hex(16),
            "SignatureVersion": "1.0", "TemplateCode": template or self.template,
            "TemplateParam": json.dumps(dict(params) if params is not None else {"code": code}),
            "Timestamp": (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"), "Version": "2017-05-25",
        }, self.secret, "POST")

    def send_code(self, phone: str, code: str) -> None:
        self._post(self.signed_params(phone, code))

    def send_notice(self, phone: str, notice: Mapping[str, str]) -> None:
        if not self.notice_template:
            raise SmsFailed("aliyun: YUNYING_SMS_NOTICE_TEMPLATE is not set")
        self._post(self.signed_params(phone, "", template=self.notice_template, params=notice))

    def _post(self, params: dict[str, str]) -> None:
        try:
            # POST with a form body: httpx logs request URLs, and a query would carry the phone and code
            r = httpx.post(self.endpoint, data=params, timeout=10)
            body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
        except (httpx.HTTPError, ValueError) as exc:
            raise SmsFailed(f"aliyun: {type(exc).__name__}") from None
        if r.status_code != 200 or body.get("Code") != "OK":
            raise SmsFailed(f"aliyun: HTTP {r.status_code} {body.get('Code', '')}")


class TencentGateway:
    """Tencent Cloud SMS (API 3.0, 2021-01-11 SendSms), signature TC3-HMAC-SHA256."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.secret_id, self.secret_key = env["YUNYING_SMS_SECRET_ID"], env["YUNYING_SMS_SECRET_KEY"]
        self.app_id, self.sign, self.template = (env["YUNYING_SMS_APP_ID"], env["YUNYING_SMS_SIGN_NAME"],
                                                 env["YUNYING_SMS_TEMPLATE"])
        self.region = env.get("YUNYING_SMS_REGION") or "ap-guangzhou"
        self.endpoint = env.get("YUNYING_SMS_ENDPOINT") or "https://sms.tencentcloudapi.com/"
        self.host = "sms.tencentcloudapi.com"
        self.notice_template = env.get("YUNYING_SMS_NOTICE_TEMPLATE", "")

    def signed_request(self, phone: str, code: str, now: int | None = None, template: str = "",
                       params: list[str] | None = None) -> tuple[bytes, dict[str, str]]:
        ts = int(now if now is not None else time.time())
        body = json.dumps({"PhoneNumberSet": [phone if phone.startswith("+") else "+86" + phone],
                           "SmsSdkAppId": self.app_id, "SignName": self.sign, "TemplateId": template or self.template,
                           "TemplateParamSet": params if params is not None else [code]}).encode()
        date = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")
        canonical = "\n".join(["POST", "/", "", f"content-type:application/json\nhost:{self.host}\n",
                               "content-type;host", hashlib.sha256(body).hexdigest()])
        scope = f"{date}/sms/tc3_request"
        to_sign = f"TC3-HMAC-SHA256\n{ts}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"

        def h(key: bytes, msg: str) -> bytes:
            return hmac.new(key, msg.encode(), hashlib.sha256).digest()
        signing = h(h(h(("TC3" + self.secret_key).encode(), date), "sms"), "tc3_request")
        signature = hmac.new(signing, to_sign.encode(), hashlib.sha256).hexdigest()
        headers = {
            "Content-Type": "application/json", "Host": self.host, "X-TC-Action": "SendSms",
            "X-TC-Version": "2021-01-11", "X-TC-Timestamp": str(ts), "X-TC-Region": self.region,
            "Authorization": f"TC3-HMAC-SHA256 Credential={self.secret_id}/{scope}, "
                             f"SignedHeaders=content-type;host, Signature={signature}",
        }
        return body, headers

    def send_code(self, phone: str, code: str) -> None:
        self._post(*self.signed_request(phone, code))

    def send_notice(self, phone: str, notice: Mapping[str, str]) -> None:
        """Tencent's templates take positional parameters: hospital, exam, date, url."""
        if not self.notice_template:
            raise SmsFailed("tencent: YUNYING_SMS_NOTICE_TEMPLATE is not set")
        params = [notice.get(k, "") for k in ("hospital", "exam", "date", "url")]
        self._post(*self.signed_request(phone, "", template=self.notice_template, params=params))

    def _post(self, body: bytes, headers: dict[str, str]) -> None:
        try:
            r = httpx.post(self.endpoint, content=body, headers=headers, timeout=10)
            resp = r.json().get("Response", {}) if r.status_code == 200 else {}
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            raise SmsFailed(f"tencent: {type(exc).__name__}") from None
        sent = resp.get("SendStatusSet") or [{}]
        if "Error" in resp or sent[0].get("Code") != "Ok":
            raise SmsFailed(f"tencent: HTTP {r.status_code} {resp.get('Error', {}).get('Code', sent[0].get('Code', ''))}")


def gateway_from_env(data: Path, env: Mapping[str, str] = os.environ) -> SmsGateway:
    """The configured gateway; the file outbox when none is configured."""
    kind = env.get("YUNYING_SMS_GATEWAY", "file")
    if kind == "aliyun":
        return AliyunGateway(env)
    if kind == "tencent":
        return TencentGateway(env)
    if kind != "file":
        raise ValueError(f"YUNYING_SMS_GATEWAY: file, aliyun or tencent, not {kind!r}")
    return FileGateway(Path(env.get("YUNYING_SMS_OUTBOX") or default_outbox(data)))


def startup_warning(data: Path, env: Mapping[str, str] = os.environ) -> str:
    """What `yunying serve` logs at start when the file gateway is configured ("" otherwise)."""
    if env.get("YUNYING_SMS_GATEWAY", "file") != "file":
        return ""
    return (f"SMS gateway 'file' is a DEVELOPMENT gateway: codes and notifications go to "
            f"{env.get('YUNYING_SMS_OUTBOX') or default_outbox(data)}, not to phones; set YUNYING_SMS_GATEWAY "
            f"to aliyun or tencent in production")
