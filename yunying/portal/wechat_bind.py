"""Binding a patient's WeChat identity to the portal account (issue 14 part 8), so report notices
reach them as template messages of the hospital's official account (yunying.portal.wechat).

Web authorisation, silent scope (snsapi_base, WeChat's 网页授权): the portal, opened inside
WeChat by a verified patient, sends the browser to `open.weixin.qq.com/connect/oauth2/authorize`
with a `state` that names the account (an HMAC under the portal secret, 10 minutes); WeChat comes
back to `/portal/?code=…&state=…`; the server trades the code at
`api.weixin.qq.com/sns/oauth2/access_token` for the openid and keeps it sealed (SM4-GCM,
yunying.pii). The openid is never logged, echoed or put in a URL of ours. The patient may unbind;
the portal then does not ask again unless they choose to.

Environment: YUNYING_WECHAT_APP_ID, YUNYING_WECHAT_APP_SECRET (the official account), and, for
tests or a proxy, YUNYING_WECHAT_ENDPOINT (api.weixin.qq.com) and YUNYING_WECHAT_OAUTH_URL (the
authorize page).
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from sqlalchemy import (
    Boolean,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
)
from sqlalchemy.engine import Connection

from yunying.auth.errors import InvalidRequest
from yunying.auth.store import Store, migration
from yunying.errors import ArchiveError
from yunying.pii import PiiKeys, sealed_column
from yunying.portal.schema import bindings

STATE_TTL = 600
logging.getLogger("httpx").setLevel(logging.WARNING)  # its INFO line is the URL: the secret and the code
AUTHORIZE = "https://open.weixin.qq.com/connect/oauth2/authorize"
API = "https://api.weixin.qq.com"

meta = MetaData()
wechat = Table(  # one WeChat identity per portal account (or the patient's "no, thanks")
    "portal_wechat", meta,
    Column("account_id", String(32), primary_key=True),
    Column("app_id", String(64), nullable=False, default=""),  # an openid belongs to one official account
    Column("openid_sealed", Text),  # None: unbound by the patient
    Column("declined", Boolean, nullable=False, default=False),
    Column("updated_at", Integer, nullable=False),
)
OPENID = sealed_column(wechat, "openid_sealed")


@migration("portal", 8)
def create_wechat(conn: Connection) -> None:
    meta.create_all(conn, tables=[wechat])


class WeChatFailed(ArchiveError):
    """WeChat refused the code or could not be reached (its error code only)."""

    http_status = 502


class WeChatOff(ArchiveError):
    """The hospital configured no official account."""

    http_status = 404


@dataclass(frozen=True)
class OAuth:
    app_id: str
    secret: str
    authorize: str = AUTHORIZE
    api: str = API

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> OAuth | None:
        app_id, secret = env.get("YUNYING_WECHAT_APP_ID", ""), env.get("YUNYING_WECHAT_APP_SECRET", "")
        if not (app_id and secret):
            return None
        return cls(app_id, secret, env.get("YUNYING_WECHAT_OAUTH_URL") or AUTHORIZE,
                   (env.get("YUNYING_WECHAT_ENDPOINT") or API).rstrip("/"))

    def authorize_url(self, redirect_uri: str, state: str) -> str:
        query = urlencode({"appid": self.app_id, "redirect_uri": redirect_uri, "response_type": "code",
                           "scope": "snsapi_base", "state": state}, quote_via=quote)
        return f"{self.authorize}?{query}#wechat_redirect"  # WeChat asks for the parameters in this order

    def openid(self, code: str) -> str:
        """The openid a code (one use, 5 minutes) stands for; WeChatFailed otherwise."""
        try:  # a GET with the secret in the query, as WeChat requires: httpx's URL log stays at WARNING
            r = httpx.get(self.api + "/sns/oauth2/access_token", timeout=10, params={
                "appid": self.app_id, "secret": self.secret, "code": code, "grant_type": "authorization_code"})
            got = r.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise WeChatFailed(f"wechat: {type(exc).__name__}") from None
        if not isinstance(got, dict) or not isinstance(got.get("openid"), str) or not got["openid"]:
            errcode = got.get("errcode", "") if isinstance(got, dict) else ""
            raise WeChatFailed(f"wechat refused the sign-in (errcode {errcode})")
        return str(got["openid"])


def make_state(key: bytes, account: str, now: int | None = None) -> str:
    """Letters and digits only, at most 128 (WeChat's rule for `state`)."""
    until = (int(time.time()) if now is None else now) + STATE_TTL
    return f"{until}x{_mac(key, account, until)}"


def check_state(key: bytes, account: str, state: str) -> None:
    until, _, mac = (state or "").partition("x")
    if not until.isdigit() or len(until) > 12 or int(until) < time.time() or not hmac.compare_digest(
            mac, _mac(key, account, int(until))):
        raise InvalidRequest("state: not this sign-in's, or expired; start again")


def _mac(key: bytes, account: str, until: int) -> str:
    return hmac.new(key, f"wechat\n{account}\n{until}".encode(), hashlib.sha256).hexdigest()[:40]


def state_of(store: Store, account: str, app_id: str) -> dict[str, bool]:
    with store.engine.connect() as conn:
        row = conn.execute(select(wechat).where(wechat.c.account_id == account)).first()
    bound = row is not None and row.openid_sealed is not None and row.app_id == app_id
    return {"bound": bound, "declined": bool(row is not None and row.declined)}


def bind(store: Store, keys: PiiKeys, account: str, app_id: str, openid: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(delete(wechat).where(wechat.c.account_id == account))
        conn.execute(insert(wechat).values(account_id=account, app_id=app_id, openid_sealed=keys.seal(openid, OPENID),
                                           declined=False, updated_at=int(time.time())))


def unbind(store: Store, account: str) -> None:
    """Forget the openid; the portal does not offer WeChat again on its own."""
    with store.engine.begin() as conn:
        conn.execute(delete(wechat).where(wechat.c.account_id == account))
        conn.execute(insert(wechat).values(account_id=account, app_id="", openid_sealed=None, declined=True,
                                           updated_at=int(time.time())))


def openids_of_exam(store: Store, keys: PiiKeys, exam_id: str, app_id: str) -> list[str]:
    """The openids (for this official account) of the accounts the exam is bound to."""
    q = (select(wechat.c.openid_sealed).join(bindings, bindings.c.account_id == wechat.c.account_id)
         .where(bindings.c.exam_id == exam_id, wechat.c.app_id == app_id, wechat.c.openid_sealed.is_not(None)))
    with store.engine.connect() as conn:
        sealed: list[Any] = list(conn.execute(q).scalars())
    return sorted({keys.unseal(s, OPENID) for s in sealed})
