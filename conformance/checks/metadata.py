"""WADO-RS metadata, PS3.18 §10.4.1 (Metadata resources) and Annex F (DICOM JSON)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin

from conformance.runner import Context, Failed, check
from conformance.wire import annex_f_problems, media_params, parse_multipart, tag_key, value

JSON = {"Accept": "application/dicom+json"}
PIXEL_DATA = tag_key("PixelData")


def metadata(ctx: Context, path: str) -> list[dict[str, Any]]:
    resp = ctx.http.get(ctx.url(path + "/metadata"), headers=JSON)
    if resp.status_code != 200:
        raise Failed(f"status {resp.status_code}")
    mtype, _ = media_params(resp.headers.get("content-type", ""))
    if mtype != "application/dicom+json":
        raise Failed(f"Content-Type {mtype!r}")
    body = resp.json()
    if not isinstance(body, list):
        raise Failed("metadata body is not a JSON array")
    return body


@check("metadata-instance", "PS3.18 §10.4.1", "instance metadata: one object, the instance's attributes")
def instance(ctx: Context) -> None:
    ctx.ensure_stored("A")
    ct = ctx.data.ct
    objs = metadata(ctx, ct.path)
    if len(objs) != 1 or value(objs[0], "SOPInstanceUID") != ct.sop:
        raise Failed(f"{len(objs)} objects")
    for kw in ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "Rows", "ImagePositionPatient",
               "RescaleSlope"):
        if value(objs[0], kw) is None:
            raise Failed(f"{kw} missing")


@check("metadata-series", "PS3.18 §10.4.1", "series metadata: one object per instance")
def series(ctx: Context) -> str:
    ctx.ensure_stored("A")
    ct = ctx.data.ct
    objs = metadata(ctx, f"studies/{ct.study}/series/{ct.series}")
    got = {value(o, "SOPInstanceUID") for o in objs}
    want = {i.sop for i in ctx.data.series_of("A")[ct.series]}
    if got != want:
        raise Failed(f"{len(got)} instances, expected {len(want)}")
    return f"{len(objs)} objects"


@check("metadata-study", "PS3.18 §10.4.1", "study metadata: one object per instance")
def study(ctx: Context) -> str:
    ctx.ensure_stored("A")
    objs = metadata(ctx, f"studies/{ctx.data.study_uid('A')}")
    want = {i.sop for i in ctx.data.studies["A"]}
    if not want <= {value(o, "SOPInstanceUID") for o in objs}:
        raise Failed("stored instances missing")
    return f"{len(objs)} objects"


@check("metadata-annex-f", "PS3.18 Annex F.2", "metadata is valid DICOM JSON (vr, PN objects, numbers)")
def annex_f(ctx: Context) -> None:
    ctx.ensure_stored("A")
    objs = metadata(ctx, f"studies/{ctx.data.study_uid('A')}")
    if problems := annex_f_problems(objs):
        raise Failed(f"{len(problems)} problems: " + "; ".join(problems[:3]))
    names = {str(value(o, "PatientName")) for o in objs}
    if names != {str({"Alphabetic": "Zhang^San", "Ideographic": "张^三"})}:
        raise Failed(f"PatientName {sorted(names)[:2]}")


@check("metadata-bulkdata", "PS3.18 §10.4.1 / Annex F.2.6",
       "PixelData as BulkDataURI (not inline) and the URI retrieves the bytes")
def bulkdata(ctx: Context) -> str:
    ctx.ensure_stored("A")
    ct = ctx.data.ct
    objs = metadata(ctx, ct.path)
    attr = objs[0].get(PIXEL_DATA) if objs else None
    if attr is None:
        raise Failed("PixelData absent from metadata (expected a BulkDataURI)")
    if "InlineBinary" in attr or "BulkDataURI" not in attr:
        raise Failed("PixelData not given as BulkDataURI")
    uri = urljoin(ctx.url(ct.path + "/metadata"), attr["BulkDataURI"])   # RFC 3986 §5.2
    resp = ctx.http.get(uri, headers={"Accept": 'multipart/related; type="application/octet-stream"'})
    if resp.status_code != 200:
        raise Failed(f"GET BulkDataURI: status {resp.status_code}")
    body = b"".join(p.body for p in parse_multipart(resp.headers.get("content-type", ""), resp.content))
    if body[: len(ct.ds.PixelData)] != ct.ds.PixelData:
        raise Failed("bulk data bytes differ from PixelData")
    return "bytes equal"


@check("metadata-dicomweb-client", "PS3.18 §10.4.1", "dicomweb-client retrieve_series_metadata")
def client(ctx: Context) -> None:
    ctx.ensure_stored("A")
    mf = ctx.data.multiframe
    objs = ctx.dicomweb_client().retrieve_series_metadata(mf.study, mf.series)
    if len(objs) != 1 or value(objs[0], "NumberOfFrames") != 3:
        raise Failed("NumberOfFrames missing or not the number 3")


@check("metadata-unknown", "PS3.18 §10.4.3", "metadata of an unknown series: 404")
def unknown(ctx: Context) -> None:
    resp = ctx.http.get(ctx.url(f"studies/{ctx.data.study_uid('A')}/series/1.2.3.404/metadata"),
                        headers=JSON)
    if resp.status_code != 404:
        raise Failed(f"status {resp.status_code}")


@check("metadata-xml", "PS3.18 Table 10.4.4-1",
       'metadata as multipart/related; type="application/dicom+xml" (Required)')
def xml(ctx: Context) -> str:
    ctx.ensure_stored("A")
    resp = ctx.http.get(ctx.url(ctx.data.ct.path + "/metadata"),
                        headers={"Accept": 'multipart/related; type="application/dicom+xml"'})
    if resp.status_code != 200:
        raise Failed(f"status {resp.status_code}")
    parts = parse_multipart(resp.headers.get("content-type", ""), resp.content)
    if len(parts) != 1 or b"NativeDicomModel" not in parts[0].body:
        raise Failed(f"{len(parts)} parts, expected one NativeDicomModel")
    if ctx.data.ct.sop.encode() not in parts[0].body:
        raise Failed("SOPInstanceUID not in the XML")
    return "1 XML part"
