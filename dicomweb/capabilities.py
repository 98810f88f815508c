"""OPTIONS and the capabilities description (PS3.18 8.9, Annex H), generated from the route table."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

WADL = "application/vnd.sun.wadl+xml"  # PS3.18 8.9 / Annex H: the default description
WADL_NS = "http://wadl.dev.java.net/2009/02"
ALLOW = "GET, HEAD, OPTIONS"
_JSON, _XML = "application/dicom+json", 'multipart/related; type="application/dicom+xml"'
_DICOM, _OCTETS = 'multipart/related; type="application/dicom"', 'multipart/related; type="application/octet-stream"'
# URI template variables named after the attributes they carry, as PS3.18 10.4.1 writes them
_TEMPLATE = {"study": "StudyInstanceUID", "series": "SeriesInstanceUID", "sop": "SOPInstanceUID",
             "frames": "FrameList", "path": "AttributePath"}


@dataclass(frozen=True)
class Operation:
    """What one handler does, in PS3.18 terms."""

    transaction: str                 # PS3.18 section and name
    produces: tuple[str, ...] = ()
    consumes: tuple[str, ...] = ()
    query: Callable[[], list[str]] | None = None  # the query parameters it understands
    status: int = 200


def _qido(level: str) -> Callable[[], list[str]]:
    def names() -> list[str]:
        from pydicom.datadict import keyword_for_tag

        from dicomweb.qido import RESERVED
        from index.parse import supported_match_tags

        keys = [".".join(keyword_for_tag(int(t, 16)) or t for t in tag.split("."))
                for tag in supported_match_tags(level)]  # type: ignore[arg-type]
        return sorted(RESERVED) + sorted(keys)
    return names


def _frame_types() -> tuple[str, ...]:
    from yunying.pixels import syntaxes

    media = sorted({s.media_type for s in syntaxes.SYNTAXES.values() if s.encapsulated})
    return (_OCTETS, "application/octet-stream", *(f'multipart/related; type="{m}"' for m in media))


_RENDER = ("image/jpeg", "image/png", "image/gif")
OPERATIONS: dict[str, Callable[[], Operation]] = {
    "qido.search_studies": lambda: Operation("10.6 Search for studies", (_JSON, _XML), query=_qido("STUDY")),
    "qido.search_series": lambda: Operation("10.6 Search for series", (_JSON, _XML), query=_qido("SERIES")),
    "qido.search_instances": lambda: Operation("10.6 Search for instances", (_JSON, _XML), query=_qido("IMAGE")),
    "stow.stow": lambda: Operation("10.5 Store instances", (_JSON,), (_DICOM, "application/dicom")),
    "wado.retrieve": lambda: Operation("10.4 Retrieve instances", (_DICOM, "application/dicom", _OCTETS)),
    "wado.metadata": lambda: Operation("10.4 Retrieve metadata", (_JSON, _XML, "application/dicom+xml")),
    "wado.bulkdata": lambda: Operation("10.4 Retrieve bulk data", ("application/octet-stream", _OCTETS)),
    "wado.delete": lambda: Operation("Delete (extension)", status=204),
    "frames.frames": lambda: Operation("10.4 Retrieve frames", _frame_types()),
    "rendered.rendered": lambda: Operation("10.4.1.1.3 Retrieve rendered", _RENDER),
    "rendered.thumbnail": lambda: Operation("10.4.1.1.4 Retrieve thumbnail", _RENDER),
    "rendered.reformat": lambda: Operation("Reformat (extension)", _RENDER),
    "capabilities.capabilities": lambda: Operation("8.9 Retrieve capabilities", (WADL, "application/json")),
    "capabilities.statement": lambda: Operation("Conformance statement", ("text/markdown", "text/html")),
    "wado_uri.wado_uri": lambda: Operation("9 WADO-URI", ("application/dicom", *_RENDER)),
}


def operation(endpoint: object) -> Operation | None:
    """The description of a ROUTES handler; None when nobody wrote one (a test fails on that)."""
    name = f"{getattr(endpoint, '__module__', '').removeprefix('dicomweb.')}.{getattr(endpoint, '__name__', '')}"
    make = OPERATIONS.get(name)
    return make() if make else None


def resources() -> list[dict[str, Any]]:
    """Every route of dicomweb.app.ROUTES with its methods, parameters and media types."""
    from dicomweb.app import ROUTES  # imported here: app imports this module

    by_path: dict[str, list[dict[str, Any]]] = {}
    for path, methods, endpoint in ROUTES:
        op = operation(endpoint) or Operation("undescribed")
        path = path.rstrip("/")  # "/" and "" are one resource (the root with and without a slash)
        for method in methods:
            if any(m["method"] == method for m in by_path.get(path, [])):
                continue
            by_path.setdefault(path, []).append({
                "method": method, "transaction": "PS3.18 " + op.transaction if op.transaction[0].isdigit()
                else op.transaction, "query": op.query() if op.query else [], "produces": list(op.produces),
                "consumes": list(op.consumes), "status": op.status})
    out: list[dict[str, Any]] = []
    for path, ops in by_path.items():
        names = {m["method"] for m in ops}
        if "GET" in names:
            names.add("HEAD")
        out.append({"path": _template(path), "allow": sorted(names | {"OPTIONS"}), "methods": ops})
    return out


def _template(path: str) -> str:
    """A Starlette path as a URI template with DICOM names: {study} -> {StudyInstanceUID}."""
    for var, name in _TEMPLATE.items():
        path = path.replace(f"{{{var}}}", f"{{{name}}}").replace(f"{{{var}:path}}", f"{{{name}}}")
    return path


def wadl(base: str) -> bytes:
    """Annex H: the service as a WADL application, one flat <resource> per route."""
    from dicomweb.xml import attr

    out = ['<?xml version="1.0" encoding="UTF-8"?>\n',
           f'<application xmlns="{WADL_NS}" xmlns:xsd="http://www.w3.org/2001/XMLSchema">',
           f'<doc title="Yunying DICOMweb (PS3.18)"/><resources base="{attr(base)}/">']
    for res in resources():
        path = str(res["path"]).lstrip("/")
        out.append(f'<resource path="{attr(path)}">')
        for name in sorted({v for k, v in _TEMPLATE.items() if "{" + v + "}" in path}):
            out.append(f'<param name="{name}" style="template" type="xsd:string" required="true"/>')
        for m in res["methods"]:
            out.append(f'<method name="{m["method"]}"><doc title="{attr(m["transaction"])}"/><request>')
            out.extend(f'<param name="{attr(q)}" style="query" type="xsd:string"/>' for q in m["query"])
            out.append('<param name="Accept" style="header" type="xsd:string"/>')
            out.extend(f'<representation mediaType="{attr(t)}"/>' for t in m["consumes"])
            out.append(f'</request><response status="{m["status"]}">')
            out.extend(f'<representation mediaType="{attr(t)}"/>' for t in m["produces"])
            out.append("</response></method>")
        out.append("</resource>")
    out.append("</resources></application>\n")
    return "".join(out).encode()


async def capabilities(request: Request) -> Response:
    """OPTIONS (and GET) on the DICOMweb root: the capabilities, WADL by default, JSON if asked."""
    from dicomweb.http import base_url, media_matches, parse_accept
    from yunying.errors import NotAcceptable

    base = base_url(request)
    headers = {"Allow": ALLOW}
    for r in parse_accept(request.headers.get("accept")):
        if r.type in ("application/json", "application/dicom+json"):
            body = orjson.dumps({"base": base, "resources": resources()})
            return Response(body, media_type="application/json", headers=headers)
        if media_matches(r.type, WADL) or r.type in ("application/xml", "text/xml", "application/*"):
            return Response(wadl(base), media_type=WADL, headers=headers)
    raise NotAcceptable(f"the capabilities are described as {WADL} or application/json")


async def statement(request: Request) -> Response:
    """GET /dicomweb/conformance: the conformance statement generated from the running configuration."""
    from dicomweb.http import media_matches, parse_accept
    from yunying.errors import NotAcceptable, UnknownResource

    docs: dict[str, str] = request.app.state.statement
    if not docs:
        raise UnknownResource("no conformance statement was generated for this server")
    for r in parse_accept(request.headers.get("accept")):
        for media, text in docs.items():
            if media_matches(r.type, media):
                return Response(text, media_type=media, headers={"Allow": ALLOW})
    raise NotAcceptable("the statement is served as " + " or ".join(docs))
