"""The hospital-records HTTP API (issue 15 parts 2-4): source jobs, exams with their patient and
report, the unmatched-studies queue, body-part mapping, patient merges and their undo.

Every handler narrows to the caller's hospitals (a platform principal sees all); reads of
personal data and every change leave an audit record (yunying.audit). Store calls run in threads.
"""
from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import yunying.audit
from dicomweb.accounts import call, field, json_body, json_response, principal_of
from yunying.auth.errors import Conflict, InvalidRequest, NotFound
from yunying.auth.principal import ADMIN
from yunying.records import matching, merges
from yunying.records.jobs import status
from yunying.records.service import Records

P = "/api/records"


async def records_of(request: Request) -> Records:
    """The server's records runtime; made on first use (off the event loop: it migrates the store
    and reads the key file) when the composition root started none."""
    rt = getattr(request.app.state, "records", None)
    if rt is None:
        rt = await call(Records, request.app.state.settings, request.app.state.auth.store, request.app.state.archive)
        request.app.state.records = getattr(request.app.state, "records", None) or rt
    return request.app.state.records


def hospitals_of(request: Request) -> set[str] | None:
    """The hospitals the caller acts for; None = all (platform-wide)."""
    p = principal_of(request)
    if p.visibility.everything or p.may(ADMIN):  # the platform administrator
        return None
    return set(p.visibility.hospitals) | ({p.hospital} if p.hospital else set())


def _hospital(request: Request) -> str:
    """?hospital= (default: the caller's own), refused outside the caller's hospitals (404)."""
    hospital = request.query_params.get("hospital") or principal_of(request).hospital or "default"
    allowed = hospitals_of(request)
    if allowed is not None and hospital not in allowed:
        raise NotFound("no such hospital")
    return hospital


def _audit(request: Request, action: str, **fields: Any) -> None:
    yunying.audit.record(action, principal=principal_of(request), client=request.client.host if request.client
                         else "", status="200", detail={"path": request.url.path}, **fields)


async def jobs(request: Request) -> Response:
    rt = await records_of(request)
    return json_response({"jobs": await call(status, rt)})


async def run_source(request: Request) -> Response:
    rt = await records_of(request)
    name = request.path_params["name"]
    if name not in {s.name for s in rt.sources}:
        raise NotFound("no such source (records_sources)")
    result = await call(rt.run_source, name)
    _audit(request, "records.collect", accession="")
    return json_response({"source": name, "rows": result.rows, "rejected": result.rejected, "error": result.error},
                         status=200 if not result.error else 502)


async def refresh_patient(request: Request) -> Response:
    """Real-time refresh of one patient from a source: {"patient_id": "..."}; audited."""
    rt = await records_of(request)
    name = request.path_params["name"]
    source = next((s for s in rt.sources if s.name == name), None)
    allowed = hospitals_of(request)
    if source is None or (allowed is not None and source.hospital not in allowed):
        raise NotFound("no such source (records_sources)")
    patient_id = field(await json_body(request), "patient_id")
    if not patient_id.strip() or len(patient_id) > 64:
        raise InvalidRequest("patient_id: 1-64 characters")
    result = await call(rt.collector(name).refresh_patient, patient_id.strip())
    _audit(request, "records.collect", patient_id=patient_id.strip())
    return json_response({"source": name, "rows": result.rows, "rejected": result.rejected, "error": result.error},
                         status=200 if not result.error else 502)


async def exam(request: Request) -> Response:
    """An exam by accession (exam number) with its patient, visits and report: personal data, audited."""
    rt, hospital = await records_of(request), _hospital(request)
    accession = request.path_params["accession"]
    found = await call(rt.store.exam, hospital, accession)
    if found is None:
        raise NotFound("no such exam")
    _audit(request, "records.read", accession=accession[:64], patient_id=found["patient"]["patient_id"][:200],
           studies=found["study_uid"] or "")
    return json_response(found)


async def open_exams(request: Request) -> Response:
    """Exams without a study yet, by ?patient_id= or ?accession= (to resolve the queue with)."""
    rt, hospital = await records_of(request), _hospital(request)
    pid, acc = request.query_params.get("patient_id", ""), request.query_params.get("accession", "")
    if not pid and not acc:
        raise InvalidRequest("patient_id or accession: one is required")
    found = await call(matching.open_exams, rt.store, hospital, pid[:64], acc[:64])
    _audit(request, "records.read", patient_id=pid[:200], accession=acc[:64])
    return json_response({"exams": found})


async def unmatched(request: Request) -> Response:
    rt = await records_of(request)
    return json_response({"unmatched": await call(matching.queue, rt.store, hospitals_of(request))})


async def resolve(request: Request) -> Response:
    rt = await records_of(request)
    body = await json_body(request)
    if "exam" not in body:
        raise InvalidRequest("exam: an exam id, or null to dismiss the study")
    exam_id = field(body, "exam", str, required=False)
    study = request.path_params["study"]
    try:
        done = await call(matching.resolve, rt.store, study, exam_id, principal_of(request).id, hospitals_of(request))
    except matching.NotQueued as exc:
        raise NotFound(str(exc)) from None
    except ValueError as exc:
        raise Conflict(str(exc)) from None
    _audit(request, "records.match", studies=study)
    return json_response(done)


async def match_now(request: Request) -> Response:
    rt = await records_of(request)
    counts = await call(rt.match)
    return json_response({"counts": counts})


async def body_parts(request: Request) -> Response:
    rt = await records_of(request)
    return json_response({"body_parts": await call(matching.body_parts, rt.store, hospitals_of(request))})


async def put_body_part(request: Request) -> Response:
    rt = await records_of(request)
    body = await json_body(request)
    item, part = field(body, "exam_item"), field(body, "body_part")
    hospital = field(body, "hospital", required=False) or principal_of(request).hospital or "default"
    allowed = hospitals_of(request)
    if allowed is not None and hospital not in allowed:
        raise NotFound("no such hospital")
    if not item.strip() or len(item) > 200 or len(part) > 64 or (part and not part.replace("_", "").isalnum()):
        raise InvalidRequest("exam_item: 1-200 characters; body_part: a DICOM body part code such as CHEST, or \"\"")
    await call(matching.set_body_part, rt.store, hospital, item.strip(), part.upper())
    _audit(request, "records.change")
    return json_response({"hospital": hospital, "exam_item": item.strip(), "body_part": part.upper()})


async def list_merges(request: Request) -> Response:
    rt = await records_of(request)
    allowed = hospitals_of(request)
    found = await call(merges.list_merges, rt.store)
    return json_response({"merges": [m for m in found if allowed is None or m["hospital"] in allowed]})


async def undo_merge(request: Request) -> Response:
    rt = await records_of(request)
    try:
        merge_id = int(request.path_params["merge"])
    except ValueError:
        raise InvalidRequest("merge: a number") from None
    allowed = hospitals_of(request)
    found = [m for m in await call(merges.list_merges, rt.store, None, 10_000) if m["id"] == merge_id]
    if not found or (allowed is not None and found[0]["hospital"] not in allowed):
        raise NotFound("no such merge")
    try:
        done = await call(merges.undo, rt.store, rt.mover, merge_id, principal_of(request).id)
    except merges.MergeRefused as exc:
        raise Conflict(str(exc)) from None
    _audit(request, "records.unmerge", studies=" ".join(done["studies"])[:10_000])
    return json_response(done)


def routes() -> list[Route]:
    return [
        Route(P + "/jobs", jobs, methods=["GET"]),
        Route(P + "/sources/{name}/run", run_source, methods=["POST"]),
        Route(P + "/sources/{name}/refresh", refresh_patient, methods=["POST"]),
        Route(P + "/exams", open_exams, methods=["GET"]),
        Route(P + "/exams/{accession}", exam, methods=["GET"]),
        Route(P + "/unmatched", unmatched, methods=["GET"]),
        Route(P + "/unmatched/{study}/resolve", resolve, methods=["POST"]),
        Route(P + "/match", match_now, methods=["POST"]),
        Route(P + "/body-parts", body_parts, methods=["GET"]),
        Route(P + "/body-parts", put_body_part, methods=["PUT"]),
        Route(P + "/merges", list_merges, methods=["GET"]),
        Route(P + "/merges/{merge}/undo", undo_merge, methods=["POST"]),
    ]
