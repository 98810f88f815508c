"""Records every HTTP access to patient data, and every refusal, as audit records (issue 12).

An ASGI class wrapping the authorization middleware (dicomweb/app.py): it sees the answer of
every request, the auth middleware's own 401/403 refusals included, and reads the principal
the auth middleware put on the scope (`scope["state"]["principal"]`) once the answer comes.
The final body chunk goes out once the record is in the journal (yunying.audit.trail: what
"acknowledged" means); a series' frames fold into one record. Plain ASGI: the yunying package
needs no web framework.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import orjson

from yunying.audit import current, principal_fields
from yunying.audit.trail import Entry, new_id

log = logging.getLogger("yunying.audit")
Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]

# possessive: a UID holds no "/", and backtracking through three UIDs cost ~15 us of a frame's path
_DW = re.compile(r"^/dicomweb(?:/studies/(?P<study>[^/]++)(?:/series/(?P<series>[^/]++)"
                 r"(?:/instances/(?P<sop>[^/]++))?)?)?(?P<rest>/.*)?$")
_TAIL = {"metadata": "metadata", "frames": "frames", "rendered": "rendered", "thumbnail": "thumbnail",
         "bulkdata": "bulkdata", "reformat": "reformat", "series": "query", "instances": "query",
         "studies": "query"}
_LOGIN = {("POST", "/api/auth/login"): "login", ("POST", "/login"): "login",
          ("POST", "/api/auth/logout"): "logout", ("POST", "/login/logout"): "logout",
          ("POST", "/api/auth/password"): "password.change", ("POST", "/login/password"): "password.change",
          ("POST", "/api/auth/exchange"): "token.exchange", ("POST", "/oauth/token"): "token",
          ("POST", "/api/auth/break-glass"): "break-glass"}
_WITH_USERNAME = {"login", "password.change"}
_STUDY_IN_URL = re.compile(rb"/studies/([0-9.]{1,64})/")


@functools.lru_cache(maxsize=4096)  # a QIDO-RS path repeats; a viewer's frame paths repeat per series
def classify(method: str, path: str) -> tuple[str, dict[str, str]] | None:
    """(action, {study, series, sop}) for a request worth a record whatever its answer; None
    otherwise. The answer is shared between requests of the same method and path: read it only."""
    return _classify(method, path)


def _classify(method: str, path: str) -> tuple[str, dict[str, str]] | None:
    m = _DW.match(path)
    if m is not None and method != "OPTIONS":
        uids: dict[str, str] = {k: m.group(k) for k in ("study", "series", "sop") if m.group(k)}
        rest = (m.group("rest") or "").strip("/")
        if method == "POST":
            return "store", uids
        if method == "DELETE":
            return "delete", uids
        if rest in ("", "conformance") and not uids:
            return None  # capabilities and the conformance statement carry no patient data
        if rest == "wado" and not uids:
            return "retrieve", uids  # WADO-URI (PS3.18 9): the UIDs are in the query
        if not rest:
            return "retrieve", uids
        tail = rest.split("/")
        action = _TAIL.get(tail[-1]) or _TAIL.get(tail[-2] if len(tail) > 1 else "", "query")
        if tail[0] in ("frames", "bulkdata"):
            action = tail[-1] if tail[-1] in ("rendered", "thumbnail") else tail[0]
        return action, uids
    named = _LOGIN.get((method, path))
    if named is not None:
        return named, {}
    if path.startswith("/api/audit"):
        return "audit.read", {}
    if path.startswith("/api/portal/"):  # the patient portal (issue 14): downloads, films, shares
        if path.startswith("/api/portal/downloads/") and path.endswith("/progress"):
            return None  # a background ZIP's progress, polled each second: counts, no patient data
        if path.startswith(("/api/portal/downloads", "/api/portal/film")):
            return "download", {}
        if path.startswith("/api/portal/shares") and method in ("POST", "DELETE"):
            return ("share.create" if method == "POST" else "share.revoke"), {}
        return ("portal" if method in ("GET", "HEAD") else "portal.change"), {}
    if path.startswith("/api/admin") and method in ("POST", "PUT", "PATCH", "DELETE"):
        return "admin.change", {}
    if path.startswith("/api/mpi/"):  # issue 15: the master index shows demographics; links change them
        return ("mpi.read" if method in ("GET", "HEAD") else "mpi.change"), {}
    if path.startswith("/api/routing/") and method in ("POST", "PUT", "PATCH", "DELETE"):
        return "admin.change", {}
    return None


def _outcome(status: int) -> str:
    return "success" if status < 400 else "refused" if status in (401, 403, 404, 423, 429) else "failure"


class AuditMiddleware:
    """Wraps an ASGI app (the auth middleware); `wait` bounds how long an answer waits for its record."""

    def __init__(self, app: ASGIApp, wait: float = 10.0) -> None:
        self.app, self.wait = app, wait
        # id(principal) -> (principal, its record fields): the identity cache hands out the same
        # Principal for a token's every request, and sorting its roles cost ~2 us each time
        self._fields: dict[int, tuple[Any, Entry]] = {}

    def _who(self, principal: Any) -> Entry:
        hit = self._fields.get(id(principal))
        if hit is not None and hit[0] is principal:
            return hit[1]
        if len(self._fields) >= 1024:
            self._fields.clear()
        fields = principal_fields(principal)
        self._fields[id(principal)] = (principal, fields)  # the principal held: its id stays its own
        return fields

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        trail = current()
        if scope["type"] != "http" or trail is None:
            await self.app(scope, receive, send)
            return
        kind = classify(scope["method"], scope["path"])
        request_id = _header(scope, b"x-request-id")[:64] or new_id()
        id_header = (b"x-request-id", request_id.encode())
        status = 0
        sent_record = False
        body: list[bytes] = []
        username = [""]
        store = kind is not None and kind[0] == "store"
        if kind is not None and kind[0] in _WITH_USERNAME:
            receive = _capture_username(receive, username)

        async def audited_send(message: dict[str, Any]) -> None:
            nonlocal status, sent_record
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), id_header]}
            elif not sent_record and message["type"] == "http.response.body":
                if store and len(body) < 64:
                    body.append(bytes(message.get("body", b"")))
                if not message.get("more_body") and (kind is not None or status in (401, 403)):
                    sent_record = True
                    await self._record(scope, kind, status, request_id, body, username[0])
            await send(message)

        try:
            await self.app(scope, receive, audited_send)
        except Exception:
            if not sent_record and (kind is not None):
                sent_record = True
                await self._record(scope, kind, 500, request_id, body, username[0])
            raise

    async def _record(self, scope: Scope, kind: tuple[str, dict[str, str]] | None, status: int,
                      request_id: str, body: list[bytes], username: str) -> None:
        trail = current()
        if trail is None:
            return
        action, uids = kind if kind is not None else ("refused", {})
        principal = scope.get("state", {}).get("principal")
        client = scope.get("client")
        if action == "frames" and status < 300:  # a viewer's next frame of an open series window:
            who = self._who(principal)  # only counted, so the record is not built (~8 us a frame)
            if trail.counted((who["principal_kind"], who["principal_id"], client[0] if client else "",
                              uids.get("study", ""), uids.get("series", ""))):
                return
        entry: Entry = {"action": action, "status": str(status), "outcome": _outcome(status),
                        **self._who(principal), "client": client[0] if client else "",
                        "face": "http", "request_id": request_id,
                        "studies": uids.get("study", ""), "series": uids.get("series", "")}
        if username and entry["principal_kind"] == "anonymous":
            entry["principal_kind"], entry["principal_id"] = "user", username
        detail: dict[str, Any] = {"method": scope["method"], "path": scope["path"]}
        if scope.get("query_string"):
            detail["query"] = scope["query_string"].decode("latin-1")[:2000]
        if uids.get("sop"):
            detail["sop"] = uids["sop"]
        if action == "store" and body:
            found = sorted({m.decode() for m in _STUDY_IN_URL.findall(b"".join(body))})
            entry["studies"] = " ".join(found) or entry["studies"]
        if action == "query":
            _patient_from_query(detail.get("query", ""), entry)
        elif scope["path"].endswith("/wado"):
            params = parse_qs(detail.get("query", ""))
            entry["studies"] = params.get("studyUID", [""])[0][:64]
            entry["series"] = params.get("seriesUID", [""])[0][:64]
            detail["sop"] = params.get("objectUID", [""])[0][:64]
        entry["detail"] = orjson.dumps(detail).decode()
        if action == "frames" and status < 300:
            key = (entry["principal_kind"], entry["principal_id"], entry["client"], entry["studies"], entry["series"])
            fut = trail.fold(key, entry)
        else:
            fut = trail.journal_or_submit(entry)
        if fut is None:
            return  # folded, or safe in the journal: nothing to wait for
        try:
            await asyncio.wait_for(asyncio.wrap_future(fut), self.wait)
        except TimeoutError:  # the record stays queued and is written when it can be
            log.error("audit record of request %s not committed within %.0f s", request_id, self.wait)


def _header(scope: Scope, name: bytes) -> str:
    for k, v in scope.get("headers", ()):
        if k == name:
            return v.decode("latin-1")
    return ""


_NAMED = re.compile(r"PatientID|00100020|StudyInstanceUID|0020000D|AccessionNumber|00080050", re.IGNORECASE)


def _patient_from_query(query: str, entry: Entry) -> None:
    """A QIDO query naming a patient or a study says whose data was asked for."""
    if not _NAMED.search(query):
        return  # most queries name none: no parsing on the hot path
    patient, studies, accession = _named_in(query)
    if patient is not None:
        entry["patient_id"] = patient
    if studies is not None and not entry["studies"]:
        entry["studies"] = studies
    if accession is not None:
        entry["accession"] = accession


@functools.lru_cache(maxsize=1024)  # a viewer repeats its queries; parse_qs cost ~5 us of each
def _named_in(query: str) -> tuple[str | None, str | None, str | None]:
    """(PatientID, the studies, AccessionNumber) a query names; None for what it does not."""
    params = parse_qs(query)
    patient = studies = accession = None
    for key in ("PatientID", "00100020"):
        if params.get(key):
            patient = params[key][0][:200]
    for key in ("StudyInstanceUID", "0020000D"):
        if params.get(key) and studies is None:
            studies = " ".join(params[key][0].split(","))[:2000]
    for key in ("AccessionNumber", "00080050"):
        if params.get(key):
            accession = params[key][0][:64]
    return patient, studies, accession


def _capture_username(receive: Any, out: list[str]) -> Any:
    """Reads the user name (never the password) of a login form or JSON body as it passes."""
    async def wrapped() -> dict[str, Any]:
        message = await receive()
        if message.get("type") == "http.request" and not out[0]:
            chunk = bytes(message.get("body", b""))[:8192]
            name = ""
            try:
                if chunk.startswith(b"{"):
                    name = str(orjson.loads(chunk).get("username", ""))
                else:
                    name = parse_qs(chunk.decode("utf-8", "replace")).get("username", [""])[0]
            except (ValueError, AttributeError):
                pass
            out[0] = name[:200]
        return message
    return wrapped
