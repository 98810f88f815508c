"""STOW-RS, PS3.18 §10.5: status codes of Table 10.5.3-1 and the response of Table 10.5.3-2."""

from __future__ import annotations

from typing import Any

import httpx

from conformance.data import extra_instance
from conformance.runner import Context, Failed, check
from conformance.wire import annex_f_problems, media_params, multipart_body, tag_key, value

REFERENCED = tag_key("ReferencedSOPSequence")
FAILED = tag_key("FailedSOPSequence")


def _body(resp: httpx.Response) -> dict[str, Any]:
    mtype, _ = media_params(resp.headers.get("content-type", ""))
    if mtype != "application/dicom+json":
        raise Failed(f"response Content-Type {mtype!r}, asked for application/dicom+json")
    body = resp.json()
    # Table 10.5.3-2 is one dataset; some servers wrap it in an array.
    if isinstance(body, list) and len(body) == 1:
        body = body[0]
    if not isinstance(body, dict):
        raise Failed("response body is not a DICOM JSON dataset")
    return body


def _items(body: dict[str, Any], tag: str) -> list[dict[str, Any]]:
    return list((body.get(tag) or {}).get("Value") or [])


@check("stow-store-study", "PS3.18 §10.5.3", "POST /studies stores 4 instances, 200")
def store_study(ctx: Context) -> str:
    resp = ctx.stow(ctx.data.studies["A"])
    ctx.stored["A"] = resp.status_code == 200
    if resp.status_code != 200:
        raise Failed(f"status {resp.status_code}: {resp.text[:200]}")
    ctx.scratch["stow_a"] = _body(resp)
    return f"{len(ctx.data.studies['A'])} instances"


@check("stow-referenced-sop", "PS3.18 Table 10.5.3-2",
       "ReferencedSOPSequence: class, instance UID and RetrieveURL per instance")
def referenced_sop(ctx: Context) -> None:
    ctx.ensure_stored("A")
    body = ctx.scratch.get("stow_a")
    if body is None:
        raise Failed("no response body from stow-store-study")
    items = _items(body, REFERENCED)
    got = {value(i, "ReferencedSOPInstanceUID"): i for i in items}
    for inst in ctx.data.studies["A"]:
        item = got.get(inst.sop)
        if item is None:
            raise Failed(f"instance {inst.sop} missing from ReferencedSOPSequence")
        if value(item, "ReferencedSOPClassUID") != inst.sop_class:
            raise Failed("ReferencedSOPClassUID missing or wrong")
        if not value(item, "RetrieveURL"):
            raise Failed("RetrieveURL (0008,1190) missing from a ReferencedSOPSequence item")
    if _items(body, FAILED):
        raise Failed("FailedSOPSequence present although every instance was stored")


@check("stow-retrieve-url", "PS3.18 Table 10.5.3-2", "study RetrieveURL present and dereferenceable")
def retrieve_url(ctx: Context) -> None:
    ctx.ensure_stored("A")
    body = ctx.scratch.get("stow_a") or {}
    url = value(body, "RetrieveURL")
    if not url:
        raise Failed("top-level RetrieveURL (0008,1190) missing")
    if ctx.data.study_uid("A") not in url:
        raise Failed(f"RetrieveURL {url} does not name the study")
    item = _items(body, REFERENCED)[0]
    resp = ctx.http.get(value(item, "RetrieveURL"), headers={"Accept": 'multipart/related; type="application/dicom"'})
    if resp.status_code != 200:
        raise Failed(f"GET instance RetrieveURL gave {resp.status_code}")


@check("stow-response-json", "PS3.18 Annex F", "STOW response is valid DICOM JSON")
def response_json(ctx: Context) -> None:
    ctx.ensure_stored("A")
    problems = annex_f_problems([ctx.scratch.get("stow_a") or {}])
    if problems:
        raise Failed("; ".join(problems[:3]))


@check("stow-dicomweb-client", "PS3.18 §10.5", "dicomweb-client store_instances (study B)")
def client_store(ctx: Context) -> None:
    client = ctx.dicomweb_client()
    result = client.store_instances([i.ds for i in ctx.data.studies["B"]])
    ctx.stored["B"] = True
    if _items(result, FAILED):
        raise Failed("FailedSOPSequence in response")


@check("stow-study-in-url", "PS3.18 §10.5.1", "POST /studies/{study} with a matching instance, 200")
def store_into_study(ctx: Context) -> None:
    ctx.ensure_stored("A")
    inst = extra_instance(ctx.data, ctx.data.study_uid("A"), "A")
    resp = ctx.stow([inst], ctx.data.study_uid("A"))
    ctx.data.studies.setdefault("A-extra", []).append(inst)
    if resp.status_code != 200:
        raise Failed(f"status {resp.status_code}")


@check("stow-study-mismatch", "PS3.18 Table 10.5.3-1",
       "instance of another study to /studies/{study}: 409, FailedSOPSequence with reason")
def study_mismatch(ctx: Context) -> None:
    ctx.ensure_stored("A")
    other = extra_instance(ctx.data, "1.2.826.0.1.3680043.8.498.1", "C")
    resp = ctx.stow([other], ctx.data.study_uid("A"))
    if resp.status_code != 409:
        raise Failed(f"status {resp.status_code}, expected 409 (no instance stored)")
    failed = _items(_body(resp), FAILED)
    if not failed or value(failed[0], "ReferencedSOPInstanceUID") != other.sop:
        raise Failed("FailedSOPSequence does not name the refused instance")
    if value(failed[0], "FailureReason") is None:
        raise Failed("FailureReason (0008,1197) missing")
    get = ctx.http.get(ctx.url(other.path), headers={"Accept": 'multipart/related; type="application/dicom"'})
    if get.status_code == 200:
        raise Failed("the refused instance was stored anyway")


@check("stow-partial", "PS3.18 Table 10.5.3-1", "one good + one refused part: 202, good one stored")
def partial(ctx: Context) -> None:
    ctx.ensure_stored("A")
    good = extra_instance(ctx.data, ctx.data.study_uid("A"), "A")
    bad = extra_instance(ctx.data, "1.2.826.0.1.3680043.8.498.2", "C")
    resp = ctx.stow([good, bad], ctx.data.study_uid("A"))
    ctx.data.studies.setdefault("A-extra", []).append(good)
    if resp.status_code != 202:
        raise Failed(f"status {resp.status_code}, expected 202 (some stored, some failed)")
    body = _body(resp)
    if good.sop not in {value(i, "ReferencedSOPInstanceUID") for i in _items(body, REFERENCED)}:
        raise Failed("stored instance missing from ReferencedSOPSequence")
    if bad.sop not in {value(i, "ReferencedSOPInstanceUID") for i in _items(body, FAILED)}:
        raise Failed("refused instance missing from FailedSOPSequence")


@check("stow-garbage-part", "PS3.18 Table 10.5.3-1", "a part that is not DICOM: 400 or 409, not stored")
def garbage(ctx: Context) -> None:
    body, ctype = multipart_body([b"this is not a DICOM file" * 10])
    resp = ctx.http.post(ctx.url("studies"), content=body,
                         headers={"Content-Type": ctype, "Accept": "application/dicom+json"})
    if resp.status_code not in (400, 409):
        raise Failed(f"status {resp.status_code}")


@check("stow-unsupported-media", "PS3.18 Table 10.5.3-1", "Content-Type text/plain: 415")
def unsupported_media(ctx: Context) -> None:
    resp = ctx.http.post(ctx.url("studies"), content=b"hello", headers={"Content-Type": "text/plain"})
    if resp.status_code != 415:
        raise Failed(f"status {resp.status_code}")


@check("stow-idempotent", "PS3.18 §10.5.2",
       "storing an instance again keeps one instance (SOP Instance UID is unique)")
def idempotent(ctx: Context) -> str:
    ctx.ensure_stored("A")
    inst = ctx.data.ct
    resp = ctx.stow([inst])
    if resp.status_code >= 500:
        raise Failed(f"status {resp.status_code}")
    q = ctx.http.get(ctx.url(f"studies/{inst.study}/series/{inst.series}/instances"),
                     headers={"Accept": "application/dicom+json"})
    sops = [value(o, "SOPInstanceUID") for o in q.json()] if q.status_code == 200 else []
    if sops.count(inst.sop) != 1:
        raise Failed(f"instance listed {sops.count(inst.sop)} times after re-store")
    return f"re-store status {resp.status_code}"
