"""The JSON admin API under /api/admin (issue 11 part 1): hospitals, departments, roles, users,
API keys, capability tokens, self-registrations. The policy table admits the caller by
permission; here each handler narrows to what that caller may touch: `admin` acts on every
hospital, a hospital's user or security admin on their own hospital only."""
from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dicomweb.accounts import call, field, json_body, json_response, pii_of, principal_of, store_of
from dicomweb.admin_scope import ADMIN_DUTIES, department_of, hospital_for, same_department
from yunying import scope
from yunying.auth import directory, grants, keys, launch, registrations, tokens
from yunying.auth import roles as R
from yunying.auth.errors import Forbidden, InvalidRequest
from yunying.auth.principal import ADMIN, Principal

A = "/api/admin"


def _role_list(raw: Any, hospital: str) -> list[tuple[str, str | None]]:
    if not isinstance(raw, list) or not all(isinstance(r, dict) and isinstance(r.get("role"), str) for r in raw):
        raise InvalidRequest('roles: a list of {"role": name, "level": optional}')
    return [(r["role"], r.get("level")) for r in raw]


async def _check_grantable(request: Request, role_names: list[str]) -> None:
    """Only a platform admin hands out platform roles or roles carrying `admin`."""
    p = principal_of(request)
    if p.may(ADMIN):
        return
    known = {r["name"]: r for r in await call(directory.list_roles, store_of(request))}
    limited = await department_of(request) is not None
    for name in role_names:
        r = known.get(name)
        if r is not None and (r["platform"] or ADMIN in r["permissions"]):
            raise Forbidden(f"only a platform admin may grant {name}")
        if r is not None and limited and ADMIN_DUTIES & set(r["permissions"]):
            raise Forbidden(f"a department admin may not grant {name}")


async def _target_user(request: Request) -> dict[str, Any]:
    user = await call(directory.get_user, store_of(request), request.path_params["username"])
    hospital_for(principal_of(request), user["hospital_id"])
    department = await department_of(request)
    if department is not None and user["department_id"] != department:
        raise Forbidden("you administer your own department only")
    if not principal_of(request).may(ADMIN) and any(r["role"] in ("super_admin", "operations_admin")
                                                    for r in user["roles"]):
        raise Forbidden("platform administrators are managed by a platform admin")
    return user


# hospitals, departments, launch secrets
async def hospitals(request: Request) -> Response:
    store, p = store_of(request), principal_of(request)
    if request.method == "POST":
        body = await json_body(request)
        await call(directory.add_hospital, store, field(body, "id"), field(body, "name", required=False) or "")
        return json_response({"id": body["id"]}, 201)
    mine = hospital_for(p, None)
    return json_response([h for h in await call(directory.list_hospitals, store) if mine in (None, h["id"])])


async def departments(request: Request) -> Response:
    store = store_of(request)
    hospital = hospital_for(principal_of(request), request.path_params["hospital"])
    if request.method == "POST":
        if await department_of(request) is not None:
            raise Forbidden("a department admin does not create departments")
        body = await json_body(request)
        return json_response({"id": await call(directory.add_department, store, hospital, field(body, "name"))}, 201)
    return json_response(await call(directory.list_departments, store, hospital))


async def launch_secret(request: Request) -> Response:
    hospital = hospital_for(principal_of(request), request.path_params["hospital"])
    return json_response({"hospital": hospital, "secret": await call(launch.rotate_secret, store_of(request), hospital)})


# roles
async def roles(request: Request) -> Response:
    store = store_of(request)
    if request.method == "POST":
        body = await json_body(request)
        await call(directory.save_role, store, field(body, "name"), field(body, "permissions", list),
                   field(body, "description", required=False) or "", bool(body.get("platform")))
        return json_response({"name": body["name"]}, 201)
    return json_response(await call(directory.list_roles, store, request.query_params.get("q", "")))


async def role(request: Request) -> Response:
    store, name = store_of(request), request.path_params["role"]
    if request.method == "DELETE":
        await call(directory.delete_role, store, name)
        return json_response({"deleted": name})
    body = await json_body(request)
    await call(directory.save_role, store, name, field(body, "permissions", list),
               field(body, "description", required=False) or "", bool(body.get("platform")), create=False)
    return json_response({"name": name})


# users
async def users(request: Request) -> Response:
    store, p = store_of(request), principal_of(request)
    department = await department_of(request)
    if request.method == "GET":
        hospital = hospital_for(p, request.query_params.get("hospital"))
        found = await call(directory.list_users, store, hospital, request.query_params.get("q", ""))
        return json_response([u for u in found if department is None or u["department_id"] == department])
    body = await json_body(request)
    hospital = hospital_for(p, field(body, "hospital", required=False) or p.hospital)
    assert hospital is not None
    same_department(department, body.get("department_id"))
    if department is not None:
        body["department_id"] = department
    wanted = _role_list(body.get("roles", []), hospital)
    await _check_grantable(request, [r for r, _ in wanted])
    password = await call(
        directory.add_user, store, field(body, "username"), hospital, field(body, "password", required=False),
        display_name=field(body, "display_name", required=False) or "",
        department=field(body, "department_id", int, required=False), title=field(body, "title", required=False) or "",
        phone=field(body, "phone", required=False) or "", roles=wanted)
    out = {"username": body["username"], "hospital": hospital}
    return json_response(out | ({"one_time_password": password} if password else {}), 201)


async def user(request: Request) -> Response:
    store = store_of(request)
    target = await _target_user(request)
    if request.method == "GET":
        return json_response(target)
    if request.method == "DELETE":
        if target["username"] == principal_of(request).id:
            raise InvalidRequest("you cannot delete yourself")
        await call(directory.delete_user, store, target["username"])
        return json_response({"deleted": target["username"]})
    body = await json_body(request)
    department = await department_of(request)
    if department is not None and "department_id" in body:
        same_department(department, body["department_id"] if body["department_id"] is not None else -1)
    await call(directory.update_user, store, target["username"], **body)
    return json_response(await call(directory.get_user, store, target["username"]))


async def user_password(request: Request) -> Response:
    target = await _target_user(request)
    body = await json_body(request) if int(request.headers.get("content-length") or 0) else {}
    password = await call(directory.reset_password, store_of(request), target["username"],
                          field(body, "password", required=False))
    return json_response({"username": target["username"], "one_time_password": password})


async def user_role(request: Request) -> Response:
    target = await _target_user(request)
    hospital = hospital_for(principal_of(request), request.path_params["hospital"])
    name = request.path_params["role"]
    if request.method == "DELETE":
        await call(directory.remove_role, store_of(request), target["username"], hospital, name)
        return json_response({"removed": name})
    await _check_grantable(request, [name])
    body = await json_body(request) if int(request.headers.get("content-length") or 0) else {}
    await call(directory.assign_role, store_of(request), target["username"], hospital, name,
               field(body, "level", required=False))
    return json_response(await call(directory.get_user, store_of(request), target["username"]))


# API keys and capability tokens
async def api_keys(request: Request) -> Response:
    store, p = store_of(request), principal_of(request)
    if request.method == "GET":
        return json_response(await call(keys.list_keys, store, hospital_for(p, request.query_params.get("hospital"))))
    body = await json_body(request)
    hospital = hospital_for(p, field(body, "hospital", required=False) or p.hospital)
    scopes = field(body, "scopes", list)
    if ADMIN in scopes and not p.may(ADMIN):
        raise Forbidden("only a platform admin may create admin keys")
    key_id, secret = await call(keys.create_key, store, field(body, "name"), scopes, hospital)
    return json_response({"id": key_id, "key": secret, "hospital": hospital}, 201)


async def api_key(request: Request) -> Response:
    p = principal_of(request)
    await call(keys.revoke_key, store_of(request), request.path_params["key"], hospital_for(p, None))
    return json_response({"revoked": request.path_params["key"]})


def _strings(value: Any, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidRequest(f"{name}: a list of strings")
    return value


def _own_only(p: Principal) -> str | None:
    """A sharer (not an admin) sees and revokes the tokens they created."""
    return None if p.may(ADMIN) or p.may(R.SECURITY_MANAGE) else p.id


async def capability_tokens(request: Request) -> Response:
    store, p = store_of(request), principal_of(request)
    if request.method == "GET":
        return json_response(await call(tokens.list_capabilities, store, hospital_for(p, None), _own_only(p)))
    body = await json_body(request)
    if body.get("series") and not p.visibility.everything:
        # the index answers visibility by study; a series-only token could name another hospital's series
        raise Forbidden("series-bound tokens: name the whole study for now")
    token_id, token = await call(
        tokens.create_capability, store, created_by=p.id, hospital=p.hospital or "default",
        may_share=lambda study: scope.visible(request.app.state.archive, p.visibility, study),
        studies=body.get("studies", []), series=body.get("series", []),
        permissions=_strings(body.get("permissions", ["view"]), "permissions"),
        expires_in=body.get("expires_in", 7 * 86400),
        not_before=field(body, "not_before", int, required=False), code=field(body, "code", required=False),
        label=field(body, "label", required=False) or "", kind=field(body, "kind", required=False) or "share")
    return json_response({"id": token_id, "token": token}, 201)


async def capability_token(request: Request) -> Response:
    p = principal_of(request)
    await call(tokens.revoke_capability, store_of(request), request.path_params["token"], hospital_for(p, None),
               _own_only(p))
    return json_response({"revoked": request.path_params["token"]})


async def grant_list(request: Request) -> Response:
    p, store = principal_of(request), store_of(request)
    if request.method == "GET":
        return json_response(await call(grants.list_grants, store, _own_only(p)))
    body = await json_body(request)
    grant_id = await call(
        grants.share, store, created_by=p.id, study=field(body, "study"), series=field(body, "series", required=False),
        username=field(body, "username", required=False), department=field(body, "department_id", int, required=False),
        expires_in=field(body, "expires_in", int, required=False), hospital=hospital_for(p, None),
        may_share=lambda study, series: scope.visible(request.app.state.archive, p.visibility, study, series))
    return json_response({"id": grant_id}, 201)


async def grant_item(request: Request) -> Response:
    try:
        grant_id = int(request.path_params["grant"])
    except ValueError:
        raise InvalidRequest("grant: a number") from None
    await call(grants.revoke, store_of(request), grant_id, _own_only(principal_of(request)))
    return json_response({"revoked": grant_id})


# self-registrations
async def registration_list(request: Request) -> Response:
    hospital = hospital_for(principal_of(request), request.query_params.get("hospital"))
    status = request.query_params.get("status", "pending")
    return json_response(await call(registrations.list_pending, store_of(request), pii_of(request), hospital, status))


async def _registration(request: Request) -> dict[str, Any]:
    reg = await call(registrations.get, store_of(request), pii_of(request), request.path_params["reg"])
    hospital_for(principal_of(request), reg["hospital_id"])
    return reg


async def registration_photo(request: Request) -> Response:
    await _registration(request)
    try:
        photo_id = int(request.path_params["photo"])
    except ValueError:
        raise InvalidRequest("photo: a number") from None
    ctype, data = await call(registrations.photo, store_of(request), pii_of(request), request.path_params["reg"], photo_id)
    return Response(data, media_type=ctype, headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})


async def registration_review(request: Request) -> Response:
    reg, p = await _registration(request), principal_of(request)
    body = await json_body(request)
    if request.url.path.endswith("/approve"):
        wanted = _role_list(body.get("roles"), reg["hospital_id"])
        await _check_grantable(request, [r for r, _ in wanted])
        username = await call(registrations.approve, store_of(request), pii_of(request), reg["id"], p.id, wanted)
        return json_response({"approved": reg["id"], "username": username})
    await call(registrations.reject, store_of(request), pii_of(request), reg["id"], p.id, field(body, "reason"))
    return json_response({"rejected": reg["id"]})


def routes() -> list[Route]:
    from dicomweb import security_api  # the security administrator's part (it uses hospital_for)

    return security_api.routes() + [
        Route(A + "/hospitals", hospitals, methods=["GET", "POST"]),
        Route(A + "/hospitals/{hospital}/departments", departments, methods=["GET", "POST"]),
        Route(A + "/hospitals/{hospital}/launch-secret", launch_secret, methods=["PUT"]),
        Route(A + "/roles", roles, methods=["GET", "POST"]),
        Route(A + "/roles/{role}", role, methods=["PUT", "DELETE"]),
        Route(A + "/users", users, methods=["GET", "POST"]),
        Route(A + "/users/{username}", user, methods=["GET", "PATCH", "DELETE"]),
        Route(A + "/users/{username}/password", user_password, methods=["POST"]),
        Route(A + "/users/{username}/roles/{hospital}/{role}", user_role, methods=["PUT", "DELETE"]),
        Route(A + "/api-keys", api_keys, methods=["GET", "POST"]),
        Route(A + "/api-keys/{key}", api_key, methods=["DELETE"]),
        Route(A + "/capability-tokens", capability_tokens, methods=["GET", "POST"]),
        Route(A + "/capability-tokens/{token}", capability_token, methods=["DELETE"]),
        Route(A + "/grants", grant_list, methods=["GET", "POST"]),
        Route(A + "/grants/{grant}", grant_item, methods=["DELETE"]),
        Route(A + "/registrations", registration_list, methods=["GET"]),
        Route(A + "/registrations/{reg}/photos/{photo}", registration_photo, methods=["GET"]),
        Route(A + "/registrations/{reg}/approve", registration_review, methods=["POST"]),
        Route(A + "/registrations/{reg}/reject", registration_review, methods=["POST"]),
    ]
