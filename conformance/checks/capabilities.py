"""OPTIONS and the capabilities description, PS3.18 §8.9 (Annex H). Optional in PS3.18."""

from __future__ import annotations

from conformance.runner import Context, Failed, Skipped, check


def _options(ctx: Context, path: str, accept: str = "*/*") -> tuple[int, str, str]:
    resp = ctx.http.options(ctx.url(path), headers={"Accept": accept})
    if resp.status_code in (404, 405, 501):
        raise Skipped(f"OPTIONS {path[:20] or '/'} -> {resp.status_code}: not supported")
    if resp.status_code not in (200, 204):     # RFC 9110 §9.3.7: either is a success
        raise Failed(f"OPTIONS {path[:20] or '/'} -> {resp.status_code}")
    return resp.status_code, resp.headers.get("allow", ""), resp.text


def _methods(allow: str) -> set[str]:
    return {m.strip().upper() for m in allow.split(",") if m.strip()}


@check("capabilities-root", "PS3.18 §8.9", "OPTIONS on the root answers 2xx", optional=True)
def root(ctx: Context) -> str:
    _, allow, body = _options(ctx, "")
    return f"Allow: {allow or '-'}; {len(body)} bytes"


@check("capabilities-studies-allow", "PS3.18 §8.9 / RFC 9110 §9.3.7",
       "OPTIONS /studies: Allow lists GET and POST", optional=True)
def studies_allow(ctx: Context) -> str:
    _, allow, _ = _options(ctx, "studies")
    if not {"GET", "POST"} <= _methods(allow):
        raise Failed(f"Allow: {allow!r}")
    return f"Allow: {allow}"


@check("capabilities-instance-allow", "PS3.18 §8.9 / RFC 9110 §9.3.7",
       "OPTIONS on an instance: Allow lists GET, not POST", optional=True)
def instance_allow(ctx: Context) -> str:
    ctx.ensure_stored("A")
    _, allow, _ = _options(ctx, ctx.data.ct.path)
    methods = _methods(allow)
    if "GET" not in methods or "POST" in methods:
        raise Failed(f"Allow: {allow!r}")
    return f"Allow: {allow}"


@check("capabilities-description", "PS3.18 §8.9 / Annex H",
       "OPTIONS root with Accept WADL or JSON returns a description of the services",
       optional=True)
def description(ctx: Context) -> str:
    for accept in ("application/vnd.sun.wadl+xml", "application/dicom+json", "application/json"):
        resp = ctx.http.options(ctx.url(""), headers={"Accept": accept})
        if resp.status_code == 200 and resp.content.strip():
            if accept.endswith("xml") and b"application" not in resp.content:
                raise Failed("WADL body without an <application>")
            return f"{accept}, {len(resp.content)} bytes"
    raise Skipped("no capabilities description (WADL or JSON) offered")
