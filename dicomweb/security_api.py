"""The security administrator's API (issue 12 parts 4-5): the password, lockout, session and
second-factor policy, and removing a user's second factor (a lost phone).

Only `security.manage` changes the policy (the system administrator's `admin` does not imply
it: separation of duties); every change is recorded in the audit trail with what changed, from
what to what. Reading it is open to the system and audit administrators too.
"""
from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dicomweb.accounts import call, json_body, json_response, principal_of, store_of
from dicomweb.admin_scope import hospital_for
from yunying import audit
from yunying.auth import directory, secpolicy, totp

P = "/api/admin/security-policy"


def describe(policy: secpolicy.Policy) -> dict[str, Any]:
    return {"policy": secpolicy.as_dict(policy), "defaults": secpolicy.as_dict(secpolicy.DEFAULT),
            "ranges": {k: list(v) for k, v in secpolicy.RANGES.items()}}


async def get_policy(request: Request) -> Response:
    return json_response(describe(await call(secpolicy.load, store_of(request))))


async def put_policy(request: Request) -> Response:
    body = await json_body(request)
    p = principal_of(request)
    policy, diff = await call(secpolicy.save, store_of(request), body, p.id)
    if diff:
        audit.record("security.policy", "success", p, client=request.client.host if request.client else "",
                     detail=orjson.dumps({k: {"from": old, "to": new} for k, (old, new) in diff.items()}).decode())
    return json_response(describe(policy))


async def user_second_factor(request: Request) -> Response:
    """GET: whether a user has a second factor; DELETE: remove it (they set it up again at login)."""
    store = store_of(request)
    user = await call(directory.get_user, store, request.path_params["username"])
    hospital_for(principal_of(request), user["hospital_id"])
    if request.method == "DELETE":
        removed = await call(totp.reset, store, user["username"])
        return json_response({"username": user["username"], "removed": removed})
    return json_response({"username": user["username"], **await call(totp.status, store, user["username"])})


def routes() -> list[Route]:
    return [Route(P, get_policy, methods=["GET"]), Route(P, put_policy, methods=["PUT"]),
            Route("/api/admin/users/{username}/second-factor", user_second_factor, methods=["GET", "DELETE"])]
