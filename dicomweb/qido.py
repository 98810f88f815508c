"""QIDO-RS (PS3.18 10.6): parameters parsed at the edge into index.query.Query, results streamed."""
from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import orjson
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from dicomweb.access import scoped_query
from dicomweb.http import base_url, multipart_body, new_boundary, parse_accept, warning_header
from dicomweb.offload import off_loop
from dicomweb.xml import MEDIA_TYPE as XML_TYPE
from dicomweb.xml import dataset_xml
from index.errors import InvalidQueryValue
from index.parse import parse_match, supported_match_tags, tag_of
from index.query import Level, Match, Query
from yunying.errors import InvalidQuery, NotAcceptable

RESERVED = {"limit", "offset", "includefield", "fuzzymatching", "orderby", "person"}
JSON_TYPES = ("application/dicom+json", "application/json", "*/*", "application/*")
STUDY, SERIES, SOP = "0020000D", "0020000E", "00080018"


def representation(request: Request) -> str:
    """PS3.18 10.6.3.3: "json" (the default) or "xml" (multipart/related of PS3.19 NativeDicomModel
    parts, one per result), whichever the Accept header prefers; neither is a 406."""
    return _representation(request.headers.get("accept"))


@functools.lru_cache(maxsize=256)  # a client sends the same Accept with every query (~5 us parsed)
def _representation(accept: str | None) -> str:
    for r in parse_accept(accept):
        inner = r.params.get("type", "").lower()
        if r.type in JSON_TYPES or (r.type == "multipart/related" and inner == "application/dicom+json"):
            return "json"
        if r.type in ("multipart/related", "multipart/*") and inner == XML_TYPE:
            return "xml"
    raise NotAcceptable('QIDO-RS answers in application/dicom+json or multipart/related; '
                        'type="application/dicom+xml"')


def parse_qido(request: Request, level: Level, scope: dict[str, str], max_results: int) -> tuple[Query, list[str]]:
    """Turn the query string into a typed Query, plus Warning texts for what was ignored."""
    query = Query(level=level)
    warnings: list[str] = []
    seen: set[str] = set()
    allowed = supported_match_tags(level)
    for name, raw in request.query_params.multi_items():
        lname = name.lower()
        if lname == "limit":
            query.limit = _int(name, raw)
        elif lname == "offset":
            query.offset = _int(name, raw)
        elif lname == "fuzzymatching":
            if raw.lower() not in ("true", "false"):
                raise InvalidQuery(name, "must be true or false")
            query.fuzzy = raw.lower() == "true"
        elif lname == "includefield":
            for field in filter(None, (f.strip() for f in raw.split(","))):
                if field.lower() == "all":
                    query.include_all = True
                elif (tag := tag_of(field)) is not None:
                    query.includefields.add(tag)
                else:
                    warnings.append(f"includefield {field} is not a known attribute and was ignored")
        elif lname == "orderby":
            warnings.append("orderby is not supported; results are in the archive's stable order")
        elif lname == "person":  # our extension (issue 15 part 5): resolved by person_match in _search
            if not raw or len(raw) > 32 or not raw.isascii() or not raw.isalnum():
                raise InvalidQuery(name, "must be a person id of the patient master index")
        else:
            _match(query, name, raw, allowed, seen, warnings)
    for tag, uid in scope.items():
        query.matches.append(Match(tag, "single", (uid,)))
    query.path_scoped = frozenset(scope)  # issue 10 part 10: /instances?0020000E= keeps the study's attributes
    if query.limit is None or query.limit > max_results:
        if query.limit is not None:
            warnings.append(f"limit lowered to the archive's maximum of {max_results}")
        query.limit = max_results
    return query, warnings


def _match(query: Query, name: str, raw: str, allowed: frozenset[str], seen: set[str], warnings: list[str]) -> None:
    path = [tag_of(p) for p in name.split(".")]
    if any(p is None for p in path):
        warnings.append(f"{name} is not a known attribute and was ignored")
        return
    tag = ".".join(p for p in path if p)
    if tag not in allowed:
        warnings.append(f"{name} is not a supported matching key at this level and was ignored")
        query.includefields.add(tag.split(".")[0])
        return
    if tag in seen:
        raise InvalidQuery(name, "given more than once")
    seen.add(tag)
    try:
        query.matches.append(parse_match(tag, raw))
    except InvalidQueryValue as exc:
        raise InvalidQuery(name, exc.reason) from None


def _int(name: str, raw: str) -> int:
    if not raw.isascii() or not raw.isdigit():
        raise InvalidQuery(name, "must be a non-negative integer")
    if len(raw) > 18:  # beyond what the index's 64-bit integers hold: a 400, not a 500
        raise InvalidQuery(name, "is too large")
    return int(raw)


async def person_match(request: Request, person: str) -> Match:
    """StudyInstanceUID in the studies of every identity the master index links to `person`."""
    from dicomweb.mpi_api import index_of
    from yunying.mpi.views import person_studies

    archive, index = request.app.state.archive, index_of(request)
    uids = await run_in_threadpool(person_studies, archive, index, person)
    return Match(STUDY, "list", tuple(uids) or ("",))  # no study: matches nothing


def _with_url(item: dict[str, Any], base: str, level: Level) -> dict[str, Any]:
    """The result with its RetrieveURL (0008,1190), attributes in tag order."""
    study = _uid(item, STUDY)
    url = f"{base}/studies/{study}"
    if level in ("SERIES", "IMAGE") and (series := _uid(item, SERIES)):
        url += f"/series/{series}"
        if level == "IMAGE" and (sop := _uid(item, SOP)):
            url += f"/instances/{sop}"
    if study:
        item["00081190"] = {"vr": "UR", "Value": [url]}
    return dict(sorted(item.items()))


def _json_body(items: Iterator[dict[str, Any]], base: str, level: Level) -> Iterator[bytes]:
    yield b"["
    first = True
    for item in items:
        yield (b"" if first else b",") + orjson.dumps(_with_url(item, base, level))
        first = False
    yield b"]"


def _xml_parts(items: Iterator[dict[str, Any]], base: str, level: Level) -> Iterator[tuple[str, bytes, None]]:
    for item in items:
        yield XML_TYPE, dataset_xml(_with_url(item, base, level)), None


def _uid(item: dict[str, Any], tag: str) -> str | None:
    value = item.get(tag, {}).get("Value")
    return value[0] if value else None


async def _search(request: Request, level: Level, scope: dict[str, str]) -> Response:
    form = representation(request)
    archive = request.app.state.archive
    query, warnings = parse_qido(request, level, scope, request.app.state.settings.qido_max_results)
    person = next((v for k, v in request.query_params.multi_items() if k.lower() == "person"), "")
    if person:  # every identity's studies, never beyond the scope set below
        query.matches.append(await person_match(request, person))
    scoped_query(request, query)  # filtered inside the index query: paging and counts stay right
    wanted = query.limit if query.limit is not None else request.app.state.settings.qido_max_results
    query.limit = wanted + 1  # one more than asked tells whether results were cut (PS3.18 8.3.4.4)
    base = base_url(request)
    if form == "xml":
        rows = await run_in_threadpool(lambda: list(archive.search(query)))
        more = len(rows) > wanted
        rows = rows[:wanted]
    else:
        # search and JSON in one worker hop: the answer is at most `limit` rows, already in memory
        def search_json() -> tuple[bool, bytes]:
            found = list(archive.search(query))
            return len(found) > wanted, b"".join(_json_body(iter(found[:wanted]), base, level))

        more, body = await off_loop(search_json)
    if more:
        warnings.append("There are additional results that can be requested")
    headers = {"Warning": warning_header(*warnings)} if warnings else {}
    if form == "xml":
        boundary = new_boundary()
        parts = iterate_in_threadpool(_xml_parts(iter(rows), base, level))
        return StreamingResponse(multipart_body(boundary, parts), headers=headers,
                                 media_type=f'multipart/related; type="{XML_TYPE}"; boundary={boundary}')
    return Response(body, media_type="application/dicom+json", headers=headers)


async def search_studies(request: Request) -> Response:
    """GET /studies."""
    return await _search(request, "STUDY", {})


async def search_series(request: Request) -> Response:
    """GET /series and /studies/{study}/series."""
    p = request.path_params
    return await _search(request, "SERIES", {STUDY: p["study"]} if "study" in p else {})


async def search_instances(request: Request) -> Response:
    """GET /instances, /studies/{study}/instances, /studies/{study}/series/{series}/instances."""
    p = request.path_params
    scope = {STUDY: p["study"]} if "study" in p else {}
    if "series" in p:
        scope[SERIES] = p["series"]
    return await _search(request, "IMAGE", scope)
