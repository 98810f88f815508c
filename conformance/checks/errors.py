"""Error behaviour common to every transaction: PS3.18 §8 (HTTP use), §8.3.4 (query parameters)."""

from __future__ import annotations

from conformance.runner import Context, Failed, check
from conformance.wire import MULTIPART_DICOM, MULTIPART_OCTET, multipart_body

JSON = {"Accept": "application/dicom+json"}


def _malformed(ctx: Context) -> list[tuple[str, str, dict[str, str], bytes | None]]:
    """(method, path, headers, body) requests every archive must refuse without a 5xx."""
    study = ctx.data.study_uid("A")
    inst = ctx.data.ct.path
    empty, ctype = multipart_body([])
    return [
        ("GET", "studies?limit=-1", JSON, None),
        ("GET", "studies?offset=abc", JSON, None),
        ("GET", "studies?limit=99999999999999999999", JSON, None),
        ("GET", "studies?StudyDate=2024-01-01--", JSON, None),
        ("GET", "studies?StudyTime=25:99", JSON, None),
        ("GET", "studies?includefield=NoSuchKeyword", JSON, None),
        ("GET", "studies?00100010=%FF%FE", JSON, None),
        ("GET", "studies?PatientName=" + "A" * 5000, JSON, None),
        ("GET", "studies/not-a-uid", {"Accept": MULTIPART_DICOM}, None),
        ("GET", f"studies/{study}/series/..%2F..%2Fetc", {"Accept": MULTIPART_DICOM}, None),
        ("GET", f"{inst}/frames/0", {"Accept": MULTIPART_OCTET}, None),
        ("GET", f"{inst}/frames/1,,2", {"Accept": MULTIPART_OCTET}, None),
        ("GET", f"{inst}/frames/-1", {"Accept": MULTIPART_OCTET}, None),
        ("GET", inst, {"Accept": "multipart/related; type="}, None),
        ("GET", inst, {"Accept": MULTIPART_DICOM + "; transfer-syntax=not.a.uid"}, None),
        ("POST", "studies", {"Content-Type": ctype}, empty),
        ("POST", "studies", {"Content-Type": "multipart/related; type=\"application/dicom\""},
         b"--x\r\n\r\n"),
        ("POST", "studies", {"Content-Type": "multipart/related; type=\"application/dicom\"; "
                                             "boundary=nope"}, b"garbage without boundary"),
        ("POST", f"studies/{study}", {"Content-Type": ctype}, empty),
    ]


@check("errors-no-5xx", "PS3.18 §8 / RFC 9110 §15.5",
       "malformed requests get 4xx (or a clean 2xx), never 5xx")
def no_5xx(ctx: Context) -> str:
    ctx.ensure_stored("A")
    bad = []
    cases = _malformed(ctx)
    for method, path, headers, body in cases:
        resp = ctx.http.request(method, ctx.url(path), headers=headers, content=body)
        if resp.status_code >= 500:
            bad.append(f"{method} {path[:48]} -> {resp.status_code}")
    if bad:
        raise Failed(f"{len(bad)}/{len(cases)}: " + "; ".join(bad[:4]))
    return f"{len(cases)} requests"


@check("errors-405-allow", "RFC 9110 §15.5.6 / PS3.18 §8.2",
       "method a resource lacks (PUT /studies): 405 with Allow")
def method_not_allowed(ctx: Context) -> str:
    resp = ctx.http.put(ctx.url("studies"), content=b"x", headers={"Content-Type": "text/plain"})
    if resp.status_code != 405:
        raise Failed(f"status {resp.status_code}")
    if not resp.headers.get("allow"):
        raise Failed("405 without Allow header")
    return f"Allow: {resp.headers['allow']}"


@check("errors-unknown-key-warning", "PS3.18 §8.3.4.1",
       "unsupported query key is ignored (200) with a Warning header", optional=True)
def unknown_key(ctx: Context) -> str:
    ctx.ensure_stored("A")
    resp = ctx.http.get(ctx.url("studies"), headers=JSON,
                        params={"StudyInstanceUID": ctx.data.study_uid("A"), "NoSuchKey": "x"})
    if resp.status_code not in (200, 400):
        raise Failed(f"status {resp.status_code}")
    if resp.status_code == 200 and not resp.headers.get("warning"):
        raise Failed("unsupported key ignored silently, no Warning header")
    return f"{resp.status_code} {resp.headers.get('warning', '')}"


@check("errors-unknown-tag-warning", "PS3.18 §8.3.4.1",
       "query on an attribute the archive does not index: ignored with Warning or matched",
       optional=True)
def unknown_tag(ctx: Context) -> str:
    ctx.ensure_stored("A")
    # Bolus Agent (0018,0010) is a valid attribute hardly any archive indexes.
    resp = ctx.http.get(ctx.url("studies"), headers=JSON,
                        params={"StudyInstanceUID": ctx.data.study_uid("A"), "00180010": "X"})
    if resp.status_code >= 500:
        raise Failed(f"status {resp.status_code}")
    if resp.status_code == 200 and resp.json() and not resp.headers.get("warning"):
        raise Failed("non-matching key ignored silently (results without a Warning header)")
    return f"{resp.status_code} {resp.headers.get('warning', '')}".strip()
