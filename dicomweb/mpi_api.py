"""The patient master index's HTTP API under /api/mpi (issue 15 part 5).

Management (identities, review queue, links, events, rebuild, code table) needs `admin`;
`GET /api/mpi/lookup` tells a DICOMweb reader the person of a patient it can already see, so
the viewer can ask `/dicomweb/studies?person=` for the whole history (still scoped); `null`
when the index has no such patient yet, 404 for a patient the reader cannot see.
No handler logs or echoes an ID number or phone.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dicomweb.access import scoped_query
from dicomweb.accounts import call, field, json_body, json_response
from index.query import Match, Query
from yunying.auth.errors import InvalidRequest, NotFound
from yunying.mpi import codes, views
from yunying.mpi.facts import PatientFacts
from yunying.mpi.feed import Feeder, rebuild
from yunying.mpi.linker import PatientIndex
from yunying.pii import keys_for
from yunying.records import events
from yunying.routing import hook

M = "/api/mpi"
MAX_TABLE = 8 * 1024 * 1024  # an exam code table upload (CSV or .xlsx)


def start(app: Any) -> PatientIndex:
    """The app's master index; with the setting `mpi`, fed by every stored instance from now on."""
    index = getattr(app.state, "mpi", None)
    if index is None:
        settings = app.state.settings
        index = PatientIndex(app.state.auth.store.engine, keys_for(Path(settings.data), settings.pii_key_file),
                             upper=settings.mpi_link_upper, lower=settings.mpi_link_lower)
        app.state.mpi = index
        if settings.mpi:
            app.state.mpi_feeder = feeder = Feeder(index)
            hook.subscribe(app.state.archive, feeder)  # every stored instance's patient
            events.on_patient(feeder.on_record)  # every HIS/RIS/HL7 patient record (yunying.records)
    return index


def stop(app: Any) -> None:
    feeder = getattr(app.state, "mpi_feeder", None)
    if feeder is not None:
        hook.unsubscribe(app.state.archive, feeder)
        events.remove(feeder.on_record)
        feeder.close()


def index_of(request: Request) -> PatientIndex:
    return start(request.app)


def _int(request: Request, name: str, default: int, top: int = 500) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9:
        raise InvalidRequest(f"{name}: a non-negative integer")
    return min(int(raw), top)


def _actor(request: Request) -> str:
    p = request.state.principal
    return f"{p.kind}:{p.id}"


async def identity_list(request: Request) -> Response:
    q = request.query_params
    return json_response(await call(views.find_identities, index_of(request), q.get("q", "")[:64],
                                    q.get("person", "")[:32], _int(request, "limit", 50), _int(request, "offset", 0, 10**9)))


async def observe(request: Request) -> Response:
    """POST a patient record from a system (his, ris, ...): the same path as records' hook."""
    body = await json_body(request)
    facts = PatientFacts(**{k: str(field(body, k, required=k in ("source", "issuer", "patient_id")) or "")
                            for k in PatientFacts.__dataclass_fields__})
    done = await call(index_of(request).observe, facts)
    return json_response({"identity": done.identity_id, "person": done.person_id, "link": done.link,
                          "score": done.score, "changed": done.changed})


async def review_list(request: Request) -> Response:
    status = request.query_params.get("status", "open")
    if status not in ("open", "linked", "rejected"):
        raise InvalidRequest("status: open | linked | rejected")
    return json_response(await call(views.review_items, index_of(request), status,
                                    _int(request, "limit", 50), _int(request, "offset", 0, 10**9)))


def _path_int(request: Request, name: str) -> int:
    raw = request.path_params[name]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 12:
        raise NotFound(f"{name} {raw[:20]}: unknown")
    return int(raw)


async def review_decide(request: Request) -> Response:
    accept = request.url.path.endswith("/link")
    return json_response(await call(index_of(request).decide, _path_int(request, "review"), accept, _actor(request)))


async def identity_link(request: Request) -> Response:
    body = await json_body(request)
    done = await call(index_of(request).link, _path_int(request, "identity"), field(body, "person")[:32],
                      _actor(request), str(field(body, "reason", required=False) or "")[:200])
    return json_response({"identity": done.identity_id, "person": done.person_id, "link": done.link})


async def identity_unlink(request: Request) -> Response:
    done = await call(index_of(request).unlink, _path_int(request, "identity"), _actor(request))
    return json_response({"identity": done.identity_id, "person": done.person_id, "link": done.link})


async def event_list(request: Request) -> Response:
    raw = request.query_params.get("identity")
    identity = None if raw is None else _int(request, "identity", 0, 10**12)
    return json_response(await call(views.event_list, index_of(request), identity,
                                    _int(request, "limit", 100), _int(request, "offset", 0, 10**9)))


async def event_revert(request: Request) -> Response:
    done = await call(index_of(request).revert, _path_int(request, "event"), _actor(request))
    return json_response({"identity": done.identity_id, "person": done.person_id, "link": done.link})


async def rebuild_all(request: Request) -> Response:
    """Observe every stored study's patient again (after a restore, or a crash lost queued facts)."""
    counts = await run_in_threadpool(rebuild, request.app.state.archive, index_of(request))
    return json_response({"counts": counts})


async def lookup(request: Request) -> Response:
    """The person of a patient the caller can see: ?PatientID=&IssuerOfPatientID=."""
    pid = request.query_params.get("PatientID", "")
    issuer = request.query_params.get("IssuerOfPatientID", "")
    if not pid or not issuer or len(pid) > 64 or len(issuer) > 200:
        raise InvalidRequest("PatientID and IssuerOfPatientID: both required")
    archive = request.app.state.archive
    query = scoped_query(request, Query(level="STUDY", limit=1, matches=[
        Match("00100020", "single", (pid,)), Match("00100021", "single", (issuer,))]))
    index = index_of(request)

    def find() -> tuple[bool, str | None]:
        if not list(archive.search(query)):
            return False, None  # a patient the caller cannot see does not exist for it
        return True, index.person_of(issuer, pid)

    seen, person = await run_in_threadpool(find)
    if not seen:
        raise NotFound("no such patient")
    return json_response({"person": person})  # null: seen, not (yet) in the master index


async def code_table(request: Request) -> Response:
    engine = index_of(request).engine
    if request.method == "POST":
        data = b""
        async for chunk in request.stream():
            data += chunk
            if len(data) > MAX_TABLE:
                raise InvalidRequest(f"body: at most {MAX_TABLE} bytes")
        return json_response({"imported": await call(codes.import_table, engine, data)})
    return json_response(await call(codes.list_codes, engine, request.query_params.get("hospital", "")[:64],
                                    _int(request, "limit", 500, 5000), _int(request, "offset", 0, 10**9)))


def routes() -> list[Route]:
    return [
        Route(M + "/identities", identity_list, methods=["GET"]),
        Route(M + "/observe", observe, methods=["POST"]),
        Route(M + "/identities/{identity}/link", identity_link, methods=["POST"]),
        Route(M + "/identities/{identity}/unlink", identity_unlink, methods=["POST"]),
        Route(M + "/reviews", review_list, methods=["GET"]),
        Route(M + "/reviews/{review}/link", review_decide, methods=["POST"]),
        Route(M + "/reviews/{review}/reject", review_decide, methods=["POST"]),
        Route(M + "/events", event_list, methods=["GET"]),
        Route(M + "/events/{event}/revert", event_revert, methods=["POST"]),
        Route(M + "/rebuild", rebuild_all, methods=["POST"]),
        Route(M + "/lookup", lookup, methods=["GET"]),
        Route(M + "/codes", code_table, methods=["GET", "POST"]),
    ]
