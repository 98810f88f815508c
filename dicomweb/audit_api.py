"""The audit admin's JSON API under /api/audit (issue 12 part 3), permission `audit.read`.

GET /api/audit/records   filters: since, until (ISO 8601, UTC unless an offset is given), user,
                         patient, study, action, outcome, limit (<= 10000), offset
GET /api/audit/export    the same filters + format=csv|xlsx|dicom (PS3.15 A.5 audit messages)
GET /api/audit/patients/{patient}?issuer=   who opened this patient's data (the portal's list)
GET /api/audit/verify    the chain checked, with the problems found
GET /api/audit/mine      a patient's own list (patient token): who opened their exams, when, what
An audit admin reads the records of their own hospital (the default hospital's also those of
unidentified callers). Each of these requests is itself recorded (audit.read).
"""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dicomweb.accounts import call, json_response, principal_of
from yunying.audit import current, export, store
from yunying.auth.errors import Forbidden, InvalidRequest
from yunying.auth.principal import DEFAULT_HOSPITAL

MAX_LIMIT = 10_000
_MEDIA = {"csv": ("text/csv; charset=utf-8", "csv"),
          "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"),
          "dicom": ("application/xml", "xml")}


def _ms(request: Request, name: str) -> int | None:
    text = request.query_params.get(name)
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(f"{name}: not an ISO 8601 date or time: {text[:40]!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _int(request: Request, name: str, default: int, top: int) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    if not text.isdigit() or int(text) > top:
        raise InvalidRequest(f"{name}: a whole number from 0 to {top}")
    return int(text)


def _hospitals(request: Request) -> frozenset[str]:
    h = principal_of(request).hospital or DEFAULT_HOSPITAL
    return frozenset({h, ""}) if h == DEFAULT_HOSPITAL else frozenset({h})


def _filters(request: Request) -> dict[str, Any]:
    q = request.query_params
    return {"since_ms": _ms(request, "since"), "until_ms": _ms(request, "until"), "principal": q.get("user"),
            "patient": q.get("patient"), "study": q.get("study"), "action": q.get("action"),
            "outcome": q.get("outcome"), "hospitals": _hospitals(request)}


def _engine(request: Request) -> Any:
    """The store, once every record submitted before this request is committed in it."""
    trail = current()
    if trail is not None:
        trail.sync()
    return request.app.state.auth.store.engine


async def search(request: Request) -> Response:
    rows = await call(lambda **kw: store.search(_engine(request), **kw), limit=_int(request, "limit", 100, MAX_LIMIT),
                      offset=_int(request, "offset", 0, 10**9), **_filters(request))
    return json_response(rows)


async def export_records(request: Request) -> Response:
    fmt = request.query_params.get("format", "csv")
    if fmt not in _MEDIA:
        raise InvalidRequest("format: csv, xlsx or dicom")
    filters = _filters(request)

    def render() -> bytes:
        return export.render(fmt, store.iter_all(_engine(request), **filters))
    media, ext = _MEDIA[fmt]
    return Response(await call(render), media_type=media, headers={
        "Content-Disposition": f'attachment; filename="audit.{ext}"', "Cache-Control": "no-store"})


async def patient(request: Request) -> Response:
    rows = await call(lambda *a: store.patient_accesses(_engine(request), *a), request.path_params["patient"],
                      request.query_params.get("issuer"), _int(request, "limit", 1000, MAX_LIMIT),
                      _hospitals(request))
    return json_response([{**r, "time": export.iso(r.pop("at_ms"))} for r in rows])


async def mine(request: Request) -> Response:
    """Who opened the exams of the signed-in patient (issue 12 part 3, shown by the portal).
    Staff are named (user, roles, hospital); other patients' and shares' token ids are not."""
    p, trail = principal_of(request), current()
    if p.kind != "patient":
        raise Forbidden("the access list of a patient's own exams: sign in on the portal")
    if trail is None or trail.patients is None:
        raise InvalidRequest("the audit trail is switched off (setting audit)")
    await call(trail.sync)  # this patient's own requests so far are in it
    rows = await call(store.study_accesses, _engine(request), p.visibility.studies, trail.patients,
                      _int(request, "limit", 200, 1000))
    out = []
    for r in rows:
        staff = r["principal_kind"] in ("user", "system", "peer", "launch")
        out.append({"time": export.iso(r["at_ms"]), "action": r["action"], "face": r["face"], "count": r["count"],
                    "studies": r["studies"], "kind": r["principal_kind"], "you": r["principal_id"] == p.id,
                    "who": r["principal_id"] if staff else "", "roles": r["roles"] if staff else "",
                    "hospital": r["hospital"]})
    return json_response(out)


async def verify(request: Request) -> Response:
    trail = current()
    if trail is None:
        raise InvalidRequest("the audit trail is switched off (setting audit)")
    n, problems = await call(lambda: store.verify(_engine(request), trail.key))
    return json_response({"checked": n, "intact": not problems, "problems": problems})


async def statement(request: Request) -> Response:
    """The MLPS control statement of the running configuration (issue 12 part 9)."""
    from yunying.security_statement import as_json, as_markdown
    settings = request.app.state.settings
    lang = request.query_params.get("lang", "zh-CN")
    if lang not in ("zh-CN", "en"):
        raise InvalidRequest("lang: zh-CN or en")
    if request.query_params.get("format") == "markdown":
        return Response(as_markdown(settings, lang), media_type="text/markdown; charset=utf-8")
    return json_response(as_json(settings))


def routes() -> list[Route]:
    return [Route("/api/security/statement", statement, methods=["GET"]),Route("/api/audit/records", search, methods=["GET"]),
            Route("/api/audit/mine", mine, methods=["GET"]),
            Route("/api/audit/export", export_records, methods=["GET"]),
            Route("/api/audit/patients/{patient}", patient, methods=["GET"]),
            Route("/api/audit/verify", verify, methods=["GET"])]
