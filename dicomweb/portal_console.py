"""The delivery console's HTTP API (issue 14 part 9), for the delivery operator (and admins):
exam search with upload status, Excel exports, the report PDF preview, delivery switched off
per exam or per patient, the patients' access log. Every answer is scoped to the caller's
hospitals; a phone number is matched through its blind index and never echoed or logged."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dicomweb import portal_history
from dicomweb.access import principal_of
from dicomweb.accounts import call, field, json_body, json_response, store_of
from dicomweb.portal import _text, portal_of
from dicomweb.portal_reports import png_page
from index.query import Query, StudyScope
from yunying.auth import roles as R
from yunying.auth.errors import Conflict, InvalidRequest, NotFound
from yunying.mpi.views import person_studies
from yunying.portal import console, console_search, exams, patients, pdfpages
from yunying.portal.console import REPORT_CLASSES
from yunying.portal.schema import exams as exam_rows
from yunying.scope import study_scope

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
FILTERS = ("accession", "name", "sex", "age", "visit", "modality", "body_part", "date")


def _xlsx(body: bytes, name: str) -> Response:
    return Response(body, media_type=XLSX, headers={"Content-Disposition": f'attachment; filename="{name}"',
                                                    "Cache-Control": "no-store"})


def _scope(request: Request) -> StudyScope:
    """What the caller's console covers: its visibility, plus its own hospital for a delivery
    operator (whose role reads no images, so its visibility alone names no hospital)."""
    p = principal_of(request)
    scope = study_scope(p.visibility)
    if p.may(R.DELIVERY) and not scope.everything and p.hospital:
        scope = replace(scope, hospitals=scope.hospitals | {p.hospital})
    return scope


async def _require(request: Request, study: str) -> None:
    owner = await run_in_threadpool(request.app.state.archive.owner, study)
    if owner is None or not _scope(request).admits(study, *owner):
        raise NotFound("no such exam")


async def console_stats(request: Request) -> Response:
    """Counts per day, hospital and modality, and storage over time (`?format=xlsx`: a workbook)."""
    got = await call(console.stats, request.app.state.archive, store_of(request), Path(request.app.state.settings.data))
    if request.query_params.get("format") == "xlsx":
        return _xlsx(await run_in_threadpool(console_search.stats_xlsx, got), "delivery-figures.xlsx")
    return json_response(got)


async def console_exams(request: Request) -> Response:
    """GET ?accession&name&sex&age&visit&modality&body_part&date&limit[&format=xlsx]."""
    q = request.query_params
    for name in FILTERS:
        if len(q.get(name, "")) > 64:
            raise InvalidRequest(f"{name}: at most 64 characters")
    try:
        limit = int(q.get("limit", "100"))
    except ValueError:
        raise InvalidRequest("limit: a number 1-1000") from None
    if not 1 <= limit <= 1000:
        raise InvalidRequest("limit: a number 1-1000")
    filters = console_search.Filters(**{name: q.get(name, "") for name in FILTERS})
    rows = await call(console_search.search, request.app.state.archive, store_of(request), filters,
                      _scope(request), limit)
    if q.get("format") == "xlsx":
        return _xlsx(await run_in_threadpool(console_search.exams_xlsx, rows), "exams.xlsx")
    return json_response({"exams": rows})


async def console_report(request: Request) -> Response:
    """GET ?study=UID[&page=N&width=W]: the newest report PDF of an exam (released or not), for the
    preview; with `page`, that page as PNG (`X-Page-Count`)."""
    study = request.query_params.get("study", "")
    if not study:
        raise InvalidRequest("study: required")
    await _require(request, study)
    archive = request.app.state.archive

    def newest_pdf() -> bytes:
        rows = [r for r in archive.instances(study) if r.sop_class == REPORT_CLASSES[0]]
        if not rows:
            raise NotFound("no PDF report in this exam")

        def written(row: Any) -> str:  # the index's order is not the order of writing
            h = archive.read_header(row)
            return f"{h.get('ContentDate', '')}{h.get('ContentTime', '')}"
        ds = archive.read_dataset(max(rows, key=written))
        return bytes(ds.EncapsulatedDocument)
    pdf = await run_in_threadpool(newest_pdf)
    if "page" in request.query_params:  # one page as PNG: the console shows the report in place
        page, width = pdfpages.page_args(request.query_params.get("page"), request.query_params.get("width"))
        return await png_page(pdf, page, width)
    return Response(pdf, media_type="application/pdf",
                    headers={"Cache-Control": "no-store", "Content-Disposition": 'inline; filename="report.pdf"'})


def _patients(request: Request, patient: str, issuer: str) -> dict[tuple[str, str], list[str]]:
    """The caller's studies of a PatientID (and issuer, when given), per (issuer, PatientID)."""
    matches = [console_search.match("patient", "00100020", patient)]
    if issuer:
        matches.append(console_search.match("issuer", "00100021", issuer))
    found: dict[tuple[str, str], list[str]] = {}
    query = Query("STUDY", matches, limit=5000, scope=_scope(request), includefields={"00100021"})
    for js in request.app.state.archive.search(query):
        key = ((js.get("00100021", {}).get("Value") or [""])[0], patient)
        found.setdefault(key, []).append(js["0020000D"]["Value"][0])
    return found


async def delivery(request: Request) -> Response:
    """Switch online delivery off (or on again) for an exam {"study"} or a patient {"patient",
    optional "issuer"}: the patient's exams stored so far and later, and those of every identity
    the master index links to it (dicomweb.portal_history)."""
    body = await json_body(request)
    on, study, patient = field(body, "on", bool), _text(body, "study"), _text(body, "patient")
    issuer = _text(body, "issuer", 200)
    if bool(study) == bool(patient):
        raise InvalidRequest("study or patient: exactly one is required")
    if any(c in patient + issuer for c in "*?\\"):  # a wildcard would switch off other patients too
        raise InvalidRequest("patient: one PatientID, no wildcards")
    if study:
        await _require(request, study)
        owner = await run_in_threadpool(request.app.state.archive.owner, study)
        done = await call(exams.set_delivery, store_of(request), owner[0], study, on)
        return json_response({"delivery": on, "exams": [done["exam"]]})
    found = await run_in_threadpool(_patients, request, patient, issuer)
    if not found:
        raise NotFound("no such patient")
    if len(found) > 1:
        raise Conflict("patient: this PatientID has several issuers here; name the issuer")
    [(key, studies)] = found.items()
    by = f"{principal_of(request).kind}:{principal_of(request).id}"
    store = store_of(request)
    await call(patients.set_patient, store, key, on, by)

    def exam_ids() -> list[str]:
        with store.engine.begin() as conn:  # the exam-level switches follow the patient's
            rows = conn.execute(select(exam_rows.c.id).where(exam_rows.c.study_uid.in_(studies))).scalars().all()
            conn.execute(update(exam_rows).where(exam_rows.c.study_uid.in_(studies)).values(delivery_off=not on))
        if not on:  # linked identities' studies too: what a session or share may have seen
            exams.end_patient_access(store, set(studies) | portal_history.withheld(request, _linked(request, key)))
        return list(rows)
    return json_response({"delivery": on, "patient": {"issuer": key[0]}, "exams": await run_in_threadpool(exam_ids)})


def _linked(request: Request, patient: tuple[str, str]) -> list[str]:
    """Studies of every identity of the patient's MPI person (blocking)."""
    persons = portal_history.persons_of(request)
    person = persons.person_of(*patient)
    return person_studies(request.app.state.archive, persons, person) if person else []


async def access_log(request: Request) -> Response:
    """POST {"name" | "accession" | "phone"}: who opened those exams (patients, share links, staff),
    newest first. A POST body, not a query: URLs (with their query) are kept in the audit trail."""
    if not request.app.state.settings.audit:
        raise Conflict("the audit trail is switched off (setting audit)")
    body = await json_body(request)
    name, accession, phone = _text(body, "name"), _text(body, "accession"), _text(body, "phone", 20)
    if not (name or accession or phone):
        raise InvalidRequest("name, accession or phone: one is required")
    store, scope = store_of(request), _scope(request)
    hospitals = None if scope.everything else frozenset(scope.hospitals)

    def lookup() -> list[dict[str, Any]]:
        from yunying.audit.store import search

        studies = console_search.access_studies(request.app.state.archive, scope, name, accession)
        principals: list[str] = []
        if phone:
            principals, by_phone = console_search.phone_principals(store, portal_of(request).key, phone)
            studies += [s for s in by_phone if s not in studies]
        found: dict[int, dict[str, Any]] = {}
        for s in studies[:50]:
            found |= {r["seq"]: r for r in search(store.engine, 200, study=s, hospitals=hospitals)}
        for p in principals:
            found |= {r["seq"]: r for r in search(store.engine, 200, principal=p, hospitals=hospitals)}
        keep = ("seq", "at_ms", "principal_kind", "principal_id", "client", "action", "outcome", "status",
                "studies", "accession", "count")
        return [{k: r[k] for k in keep} for _, r in sorted(found.items(), reverse=True)[:500]]
    return json_response({"records": await run_in_threadpool(lookup)})


def routes() -> list[Route]:
    return [
        Route("/api/portal/console/stats", console_stats, methods=["GET"]),
        Route("/api/portal/console/exams", console_exams, methods=["GET"]),
        Route("/api/portal/console/report", console_report, methods=["GET"]),
        Route("/api/portal/console/access", access_log, methods=["POST"]),
        Route("/api/portal/delivery", delivery, methods=["POST"]),
    ]
