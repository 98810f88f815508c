"""The patient portal's HTTP API (issue 14): exam QR codes for the PACS/RIS, verification by SMS
code or ID card, the patient's exams, share links. Store calls run in threads; no handler logs
or echoes a phone number, ID number, name or token it was given."""
from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dicomweb import portal_history
from dicomweb.access import principal_of, require_visible, scoped_query
from dicomweb.accounts import call, field, json_body, json_response, pii_of, store_of
from index.query import Match, Query
from yunying.auth.errors import Forbidden, InvalidRequest, NotFound
from yunying.portal import claims, codes, exams, shares, verify
from yunying.portal.keyed import mask_phone, portal_secret
from yunying.portal.sms import SmsGateway, gateway_from_env

MEDIA = {"png": "image/png", "svg": "image/svg+xml"}


@dataclass
class Portal:
    key: bytes  # the portal secret (blind indexes, exam tokens), from the personal-data key file
    base_url: str  # YUNYING_PORTAL_URL, else the request's own origin
    gateway: SmsGateway | None = None  # made at the first SMS: the QR API works without one


def portal_of(request: Request) -> Portal:
    portal = getattr(request.app.state, "portal", None)
    if portal is None:
        settings = request.app.state.settings
        portal = Portal(portal_secret(Path(settings.data), settings.pii_key_file), os.environ.get("YUNYING_PORTAL_URL", ""))
        request.app.state.portal = portal
    return portal


def gateway_of(request: Request) -> SmsGateway:
    portal = portal_of(request)
    if portal.gateway is None:
        try:
            portal.gateway = gateway_from_env(Path(request.app.state.settings.data))
        except (KeyError, ValueError) as exc:  # a missing or wrong YUNYING_SMS_* setting: say which
            raise verify.GatewayFailed(f"the SMS gateway is misconfigured: {exc}") from None
    return portal.gateway


def exam_url(request: Request, token: str) -> str:
    base = portal_of(request).base_url or str(request.base_url)
    return base.rstrip("/") + "/portal/#exam=" + token  # the fragment never reaches a server log


def _text(body: dict[str, Any], name: str, limit: int = 64, required: bool = False) -> str:
    value = field(body, name, required=required) or ""
    if required and not value.strip():
        raise InvalidRequest(f"{name}: required")
    if len(value) > limit:
        raise InvalidRequest(f"{name}: at most {limit} characters")
    return value


def _header_contact(request: Request, study: str) -> exams.Contact:
    """The phone (PatientTelephoneNumbers) and name of the study's header, when the RIS sent none."""
    archive = request.app.state.archive
    rows = archive.instances(study)
    if not rows:
        return exams.Contact()
    meta = archive.read_json(rows[0])
    phones = meta.get("00102154", {}).get("Value") or [""]
    names = meta.get("00100010", {}).get("Value") or [{}]
    name = names[0].get("Ideographic") or names[0].get("Alphabetic") or "" if isinstance(names[0], dict) else ""
    return exams.Contact(phone=str(phones[0]), name=name)


def _study_of_accession(request: Request, accession: str) -> str:
    query = scoped_query(request, Query("STUDY", [Match("00080050", "single", (accession,))], limit=2))
    found = list(request.app.state.archive.search(query))
    if len(found) != 1:
        raise NotFound("no study (or more than one) with this accession number")
    return found[0]["0020000D"]["Value"][0]


async def issue_exam(request: Request) -> Response:
    """PACS/RIS: the exam's portal URL, QR code (PNG, SVG) and Code 128 barcode.

    Body: {"study" | "accession", optional "phone", "id_number", "name", "renew": bool,
    "format": "json" | "qr.png" | "qr.svg" | "barcode.png" | "barcode.svg"}."""
    body = await json_body(request)
    study, accession = _text(body, "study"), _text(body, "accession")
    if not study and not accession:
        raise InvalidRequest("study or accession: one is required")
    if not study:
        study = await run_in_threadpool(_study_of_accession, request, accession)
    await require_visible(request, study)
    owner = await run_in_threadpool(request.app.state.archive.owner, study)
    contact = exams.Contact(_text(body, "phone", 20), _text(body, "id_number", 32), _text(body, "name", 128))
    if not (contact.phone or contact.id_number):
        header = await run_in_threadpool(_header_contact, request, study)
        contact = exams.Contact(header.phone, "", contact.name or header.name)
    portal, principal = portal_of(request), principal_of(request)
    renew = field(body, "renew", bool, required=False) or False
    done = await call(exams.issue_exam, store_of(request), portal.key, pii_of(request), hospital=owner[0], study=study,
                      accession=accession, contact=contact, created_by=principal.id, renew=renew)
    url = exam_url(request, done["token"])
    fmt = _text(body, "format") or "json"
    if fmt in ("qr.png", "qr.svg"):
        return Response(await run_in_threadpool(codes.qr, url, fmt[3:]), media_type=MEDIA[fmt[3:]])
    if fmt in ("barcode.png", "barcode.svg"):
        return Response(await run_in_threadpool(codes.code128, done["token"], fmt[8:]), media_type=MEDIA[fmt[8:]],
                        headers={"Cache-Control": "no-store"})
    if fmt != "json":
        raise InvalidRequest("format: json, qr.png, qr.svg, barcode.png or barcode.svg")

    def images() -> dict[str, str]:
        png, bar = codes.qr(url, "png"), codes.code128(done["token"], "png")
        return {"qr_png": base64.b64encode(png).decode(), "qr_svg": codes.qr(url, "svg").decode(),
                "barcode_png": base64.b64encode(bar).decode(), "barcode_svg": codes.code128(done["token"], "svg").decode()}
    answer = {"exam": done["exam"], "study": study, "token": done["token"], "url": url} | await run_in_threadpool(images)
    return json_response(answer, 201 if done["created"] else 200)


async def _exam(request: Request, body: dict[str, Any], required: bool = True) -> Any:
    """The exam an exam code names; 410 when its delivery (or its patient's) is switched off."""
    token = field(body, "exam", required=required)
    if token is None:
        return None
    exam = await call(exams.exam_of_token, store_of(request), token)
    await portal_history.require_delivered(request, [exam.study_uid])
    return exam


async def exam_info(request: Request) -> Response:
    """What the verification page may show before anything is proven: the masked phone, the ways."""
    exam = await _exam(request, await json_body(request))
    ways = (["sms"] if exam.phone_hash else []) + (["id"] if exam.id_hash and exam.name_hash else [])
    return json_response({"phone": mask_phone(exam.phone_last4), "ways": ways})


def _address(request: Request) -> str:
    return request.client.host if request.client else ""


async def send_code(request: Request) -> Response:
    body = await json_body(request)
    exam = await _exam(request, body, required=False)
    portal = portal_of(request)
    wait = await call(verify.send_code, store_of(request), portal.key, gateway_of(request), exam, _text(body, "phone", 20, True),
                      _address(request))
    return json_response({"sent": True, "resend_after": wait, "expires_in": verify.CODE_TTL})


async def check_code(request: Request) -> Response:
    body = await json_body(request)
    exam = await _exam(request, body, required=False)
    store, key, phone = store_of(request), portal_of(request).key, _text(body, "phone", 20, True)
    account = await call(verify.check_code, store, key, exam, phone, _text(body, "code", 12, True), _address(request))
    await call(exams.remember_phone, store, key, pii_of(request), phone)
    return json_response(await portal_history.session(request, account))


async def check_id(request: Request) -> Response:
    body = await json_body(request)
    exam = await _exam(request, body)
    store = store_of(request)
    account = await call(verify.check_id, store, portal_of(request).key, exam, _text(body, "id_number", 32, True),
                         _text(body, "name", 128, True), _address(request))
    return json_response(await portal_history.session(request, account))


def _account(request: Request) -> str:
    p = principal_of(request)
    if p.kind != "patient" or not p.id.startswith(("p_", "i_")):
        raise Forbidden("only a patient signed in on the portal")
    return p.id


async def me(request: Request) -> Response:
    """The exams and history this session's token sees (a study stored since shows at the next sign-in)."""
    account, seen = _account(request), principal_of(request).visibility.studies
    found = await run_in_threadpool(portal_history.deliverable, request, account)
    return json_response({"exams": [e for e in found if e["study"] in seen]})


async def add_exam(request: Request) -> Response:
    """A signed-in patient adds an exam by hand: hospital, accession, date (YYYY-MM-DD), name;
    answers a new session (the access token now sees that exam too)."""
    account, body = _account(request), await json_body(request)
    hospital, accession = _text(body, "hospital", required=True), _text(body, "accession", required=True)
    date, name = _text(body, "date", 10, True).replace("-", ""), _text(body, "name", 128, True)
    store, archive = store_of(request), request.app.state.archive
    exam = await call(claims.find_exam, store, hospital, accession)

    def study_date() -> str:
        rows = archive.instances(exam.study_uid) if exam is not None else []
        return str(archive.read_header(rows[0]).get("StudyDate", "")) if rows else ""
    same_day = exam is not None and await run_in_threadpool(study_date) == date
    await call(claims.claim, store, portal_of(request).key, account, exam, name, same_day)
    await portal_history.require_delivered(request, [exam.study_uid])  # proven first: a 410 tells nothing to a guesser
    return json_response(await portal_history.session(request, account), 201)


async def list_shares(request: Request) -> Response:
    return json_response({"shares": await call(shares.list_shares, store_of(request), _account(request))})


async def create_share(request: Request) -> Response:
    account, body = _account(request), await json_body(request)
    study = _text(body, "study")
    owner = await run_in_threadpool(request.app.state.archive.owner, study) if study else None
    if owner is None or study not in principal_of(request).visibility.studies:
        raise NotFound("not one of your exams")  # the token sees exactly the exams and history delivered to it
    await portal_history.require_delivered(request, [study])
    exam = {"study": study, "hospital": owner[0]}
    done = await call(shares.create_share, store_of(request), account, exam, field(body, "hours", int))
    url = (portal_of(request).base_url or str(request.base_url)).rstrip("/") + "/portal/share.html#t=" + done["token"]
    svg = await run_in_threadpool(codes.qr, url, "svg")
    return json_response(done | {"url": url, "qr_svg": svg.decode()}, 201)


async def revoke_share(request: Request) -> Response:
    await call(shares.revoke_share, store_of(request), _account(request), request.path_params["share"])
    return json_response({"revoked": True})


async def share_state(request: Request) -> Response:
    body = await json_body(request)
    return json_response(await call(shares.share_state, store_of(request), field(body, "token"),
                                    lambda studies: bool(portal_history.withheld(request, studies))))


def routes() -> list[Route]:
    from dicomweb import (  # they import this module's helpers
        portal_console,
        portal_downloads,
        portal_reports,
        portal_wechat,
    )

    return portal_reports.routes() + portal_console.routes() + portal_wechat.routes() + portal_downloads.routes() + [
        Route("/api/portal/exams", issue_exam, methods=["POST"]),
        Route("/api/portal/verify/exam", exam_info, methods=["POST"]),
        Route("/api/portal/verify/send", send_code, methods=["POST"]),
        Route("/api/portal/verify/sms", check_code, methods=["POST"]),
        Route("/api/portal/verify/id", check_id, methods=["POST"]),
        Route("/api/portal/me", me, methods=["GET"]),
        Route("/api/portal/me/exams", add_exam, methods=["POST"]),
        Route("/api/portal/shares", list_shares, methods=["GET"]),
        Route("/api/portal/shares", create_share, methods=["POST"]),
        Route("/api/portal/shares/{share}", revoke_share, methods=["DELETE"]),
        Route("/api/portal/verify/share", share_state, methods=["POST"]),
    ]
