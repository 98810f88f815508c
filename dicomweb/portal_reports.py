"""The portal's reports and films over HTTP (issue 14): FHIR R4 DiagnosticReport in (stored as
Encapsulated PDF through the archive), the cloud film out."""
from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dicomweb.access import origin_of, principal_of, require_visible
from dicomweb.accounts import json_body, json_response
from dicomweb.portal import _study_of_accession
from yunying.auth.errors import InvalidRequest, NotFound
from yunying.portal import fhir_reports, film, pdfpages
from yunying.portal.console import REPORT_CLASSES


async def fhir_report(request: Request) -> Response:
    """A RIS's FHIR R4 DiagnosticReport (PDF attached) -> an Encapsulated PDF in the exam's study."""
    report = await json_body(request, 32 * 1024 * 1024)
    study, accession = fhir_reports.exam_reference(report)
    if not study:
        study = await run_in_threadpool(_study_of_accession, request, accession)
    await require_visible(request, study)
    archive = request.app.state.archive

    def store() -> Any:
        header = archive.read_header(archive.instances(study)[0])
        return archive.store(fhir_reports.encapsulated_pdf(report, header), origin_of(request))
    done = await run_in_threadpool(store)
    return json_response({"study": done.study, "series": done.series, "sop": done.sop_instance,
                          "outcome": done.outcome}, 201)


async def cloud_film(request: Request) -> Response:
    """GET ?study=&series=&layout=CxR&format=png|pdf: the series on a 14x17-inch film at 300 dpi."""
    q = request.query_params
    study, fmt = q.get("study", ""), q.get("format", "png")
    if not study or fmt not in ("png", "pdf"):
        raise InvalidRequest("study is required; format: png or pdf")
    await require_visible(request, study)
    archive = request.app.state.archive

    def made() -> bytes:
        sheet = film.make_film(archive, study, q.get("series", ""), q.get("layout", ""))
        rows = archive.instances(study)
        return film.encode(sheet, fmt, str(archive.read_header(rows[0]).get("StudyDate", "")))
    body = await run_in_threadpool(made)
    return Response(body, media_type="image/png" if fmt == "png" else "application/pdf",
                    headers={"Cache-Control": "private, max-age=3600"})


async def report_page(request: Request) -> Response:
    """GET ?study=&sop=&page=N&width=W: one page of a PDF report as PNG (`X-Page-Count`), for
    pages whose CSP keeps the browser's PDF viewer out and phones that show no PDF. Patients and
    share links see released reports only (VerificationFlag VERIFIED), as the portal lists them."""
    q = request.query_params
    study, sop = q.get("study", ""), q.get("sop", "")
    if not study or not sop:
        raise InvalidRequest("study and sop: both required")
    page, width = pdfpages.page_args(q.get("page"), q.get("width"))
    await require_visible(request, study)
    archive, p = request.app.state.archive, principal_of(request)

    def released_pdf() -> bytes:
        rows = [r for r in archive.instances(study) if r.sop == sop and r.sop_class == REPORT_CLASSES[0]]
        if not rows:
            raise NotFound("no such PDF report in this study")
        ds = archive.read_dataset(rows[0])
        if p.kind in ("patient", "share") and str(ds.get("VerificationFlag", "")).upper() != "VERIFIED":
            raise NotFound("no such PDF report in this study")  # not released: it does not exist for them
        return bytes(ds.EncapsulatedDocument)
    return await png_page(await run_in_threadpool(released_pdf), page, width)


async def png_page(pdf: bytes, page: int, width: int) -> Response:
    png, count = await run_in_threadpool(pdfpages.render_page, pdf, page, width)
    return Response(png, media_type="image/png", headers={"X-Page-Count": str(count), "Cache-Control": "no-store"})


def routes() -> list[Route]:
    return [
        Route("/api/portal/report/page", report_page, methods=["GET"]),
        Route("/api/portal/fhir/DiagnosticReport", fhir_report, methods=["POST"]),
        Route("/api/portal/film", cloud_film, methods=["GET"]),
    ]
