"""WADO-RS instance retrieval, PS3.18 §10.4: multipart/related application/dicom, transfer syntaxes."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian

from conformance.data import Instance
from conformance.runner import Context, Failed, Skipped, check
from conformance.wire import MULTIPART_DICOM, Part, media_params, parse_multipart, read_part10

MPEG2_MPML = "1.2.840.10008.1.2.4.100"


def retrieve(ctx: Context, path: str, accept: str = MULTIPART_DICOM) -> list[Part]:
    resp = ctx.http.get(ctx.url(path), headers={"Accept": accept})
    if resp.status_code != 200:
        raise Failed(f"GET {path.split('/')[0]}/... {accept!r}: status {resp.status_code}")
    return parse_multipart(resp.headers.get("content-type", ""), resp.content)


def part_datasets(parts: list[Part]) -> list[Dataset]:
    out = []
    for part in parts:
        mtype, _ = media_params(part.content_type or "application/dicom")
        if mtype != "application/dicom":
            raise Failed(f"part Content-Type {part.content_type!r}")
        out.append(read_part10(part.body))
    return out


def differences(orig: Dataset, got: Dataset) -> list[str]:
    """Elements of the original that did not come back equal (pixels compared decoded when
    the transfer syntax changed)."""
    diffs = []
    same_ts = orig.file_meta.TransferSyntaxUID == got.file_meta.TransferSyntaxUID
    for elem in orig:
        if elem.tag.element == 0 or (elem.keyword == "PixelData" and not same_ts):
            continue
        if elem.tag not in got:
            diffs.append(f"{elem.keyword or elem.tag} missing")
        elif got[elem.tag].value != elem.value:
            diffs.append(f"{elem.keyword or elem.tag} differs")
    pixels_recoded = "PixelData" in orig and not same_ts
    if pixels_recoded and not np.array_equal(orig.pixel_array, got.pixel_array):
        diffs.append("decoded pixels differ")
    return diffs


def retrieve_one(ctx: Context, inst: Instance, accept: str = MULTIPART_DICOM) -> tuple[Part, Dataset]:
    parts = retrieve(ctx, inst.path, accept)
    if len(parts) != 1:
        raise Failed(f"{len(parts)} parts for one instance")
    return parts[0], part_datasets(parts)[0]


@check("wado-instance", "PS3.18 §10.4.1", "instance as multipart/related application/dicom, dataset-equal")
def instance(ctx: Context) -> None:
    ctx.ensure_stored("A")
    _, ds = retrieve_one(ctx, ctx.data.ct)
    if diffs := differences(ctx.data.ct.ds, ds):
        raise Failed(", ".join(diffs[:5]))


@check("wado-series", "PS3.18 §10.4.1", "series retrieval returns every instance of the series")
def series(ctx: Context) -> str:
    ctx.ensure_stored("A")
    ct = ctx.data.ct
    got = {str(d.SOPInstanceUID) for d in part_datasets(retrieve(ctx, f"studies/{ct.study}/series/{ct.series}"))}
    want = {i.sop for i in ctx.data.series_of("A")[ct.series]}
    if got != want:
        raise Failed(f"{len(got)} instances, expected {len(want)}")
    return f"{len(got)} instances"


@check("wado-study", "PS3.18 §10.4.1", "study retrieval returns every instance of the study")
def study(ctx: Context) -> str:
    ctx.ensure_stored("A")
    study_uid = ctx.data.study_uid("A")
    parts = retrieve(ctx, f"studies/{study_uid}", 'multipart/related; type="application/dicom"; transfer-syntax=*')
    got = {str(d.SOPInstanceUID) for d in part_datasets(parts)}
    want = {i.sop for i in ctx.data.studies["A"]}
    if not want <= got:
        raise Failed(f"{len(want - got)} of the stored instances missing")
    return f"{len(got)} instances"


@check("wado-dicomweb-client", "PS3.18 §10.4", "dicomweb-client retrieve_instance / retrieve_series")
def client(ctx: Context) -> None:
    ctx.ensure_stored("B")
    b = ctx.data.studies["B"][0]
    api = ctx.dicomweb_client()
    ds = api.retrieve_instance(b.study, b.series, b.sop)
    if diffs := differences(b.ds, ds):
        raise Failed(", ".join(diffs[:5]))
    if len(api.retrieve_series(b.study, b.series)) != 1:
        raise Failed("retrieve_series did not return one instance")


@check("wado-default-ts", "PS3.18 §8.7.3",
       "no transfer-syntax asked: Explicit VR Little Endian")
def default_ts(ctx: Context) -> None:
    ctx.ensure_stored("A")
    part, ds = retrieve_one(ctx, ctx.data.ct)
    if ds.file_meta.TransferSyntaxUID != ExplicitVRLittleEndian:
        raise Failed(f"got {ds.file_meta.TransferSyntaxUID}")
    ts = media_params(part.content_type)[1].get("transfer-syntax")
    if ts and ts != ExplicitVRLittleEndian:
        raise Failed(f"part Content-Type names transfer-syntax={ts}")


@check("wado-default-ts-compressed", "PS3.18 §8.7.3",
       "JPEG 2000 original, no transfer-syntax asked: Explicit VR LE, same pixels")
def default_ts_compressed(ctx: Context) -> None:
    ctx.ensure_stored("A")
    _part, ds = retrieve_one(ctx, ctx.data.compressed)
    if ds.file_meta.TransferSyntaxUID != ExplicitVRLittleEndian:
        raise Failed(f"got {ds.file_meta.TransferSyntaxUID} (the stored syntax?)")
    if diffs := differences(ctx.data.compressed.ds, ds):
        raise Failed(", ".join(diffs[:5]))


@check("wado-ts-star", "PS3.18 §8.7.3", "transfer-syntax=*: the stored syntax, bitstream bit-exact")
def ts_star(ctx: Context) -> None:
    ctx.ensure_stored("A")
    inst = ctx.data.compressed
    _part, ds = retrieve_one(ctx, inst, MULTIPART_DICOM + "; transfer-syntax=*")
    if ds.file_meta.TransferSyntaxUID != inst.transfer_syntax:
        raise Failed(f"got {ds.file_meta.TransferSyntaxUID}, stored {inst.transfer_syntax}")
    if ds.PixelData != inst.ds.PixelData:
        raise Failed("PixelData bitstream differs from what was stored")


@check("wado-ts-explicit", "PS3.18 §8.7.3", "transfer-syntax=1.2.840.10008.1.2.1 on a JPEG 2000 original")
def ts_explicit(ctx: Context) -> None:
    ctx.ensure_stored("A")
    inst = ctx.data.compressed
    _, ds = retrieve_one(ctx, inst, MULTIPART_DICOM + f"; transfer-syntax={ExplicitVRLittleEndian}")
    if ds.file_meta.TransferSyntaxUID != ExplicitVRLittleEndian:
        raise Failed(f"got {ds.file_meta.TransferSyntaxUID}")
    if diffs := differences(inst.ds, ds):
        raise Failed(", ".join(diffs[:5]))


@check("wado-ts-unsupported", "PS3.18 §8.7.8.1 / §10.4.3", "transfer-syntax it cannot produce (MPEG2): 406")
def ts_unsupported(ctx: Context) -> None:
    ctx.ensure_stored("A")
    resp = ctx.http.get(ctx.url(ctx.data.ct.path),
                        headers={"Accept": MULTIPART_DICOM + f"; transfer-syntax={MPEG2_MPML}"})
    if resp.status_code != 406:
        raise Failed(f"status {resp.status_code}")


@check("wado-accept-unsupported", "PS3.18 §8.7.8.1 / §10.4.3", "Accept: application/pdf on an image: 406")
def accept_unsupported(ctx: Context) -> None:
    ctx.ensure_stored("A")
    resp = ctx.http.get(ctx.url(ctx.data.ct.path),
                        headers={"Accept": 'multipart/related; type="application/pdf"'})
    if resp.status_code != 406:
        raise Failed(f"status {resp.status_code}")


@check("wado-unknown-study", "PS3.18 §10.4.3", "unknown study UID: 404")
def unknown_study(ctx: Context) -> None:
    resp = ctx.http.get(ctx.url("studies/1.2.3.4.5.6.7.404"), headers={"Accept": MULTIPART_DICOM})
    if resp.status_code != 404:
        raise Failed(f"status {resp.status_code}")


@check("wado-unknown-instance", "PS3.18 §10.4.3", "unknown instance in a known series: 404")
def unknown_instance(ctx: Context) -> None:
    ctx.ensure_stored("A")
    ct = ctx.data.ct
    path = f"studies/{ct.study}/series/{ct.series}/instances/1.2.3.4.5.6.7.404"
    resp = ctx.http.get(ctx.url(path), headers={"Accept": MULTIPART_DICOM})
    if resp.status_code != 404:
        raise Failed(f"status {resp.status_code}")


@check("wado-instance-octet-stream", "PS3.18 Table 10.4.4-1",
       'instance with Accept multipart/related; type="application/octet-stream" (Required): bulk data')
def instance_octet_stream(ctx: Context) -> str:
    ctx.ensure_stored("A")
    ct = ctx.data.ct
    parts = retrieve(ctx, ct.path, 'multipart/related; type="application/octet-stream"')
    if not any(p.body == ct.ds.PixelData for p in parts):
        raise Failed(f"{len(parts)} parts, none is the PixelData")
    return f"{len(parts)} parts"


def _optional_get(ctx: Context, path: str, accept: str) -> tuple[str, bytes]:
    resp = ctx.http.get(ctx.url(path), headers={"Accept": accept})
    if resp.status_code in (404, 405, 406, 501):
        raise Skipped(f"status {resp.status_code}: not supported")
    if resp.status_code != 200:
        raise Failed(f"status {resp.status_code}")
    return resp.headers.get("content-type", ""), resp.content


@check("wado-single-part", "PS3.18 Table 10.4.4-1", "instance as single-part application/dicom",
       optional=True)
def single_part(ctx: Context) -> None:
    ctx.ensure_stored("A")
    ctype, body = _optional_get(ctx, ctx.data.ct.path, "application/dicom")
    if media_params(ctype)[0] != "application/dicom":
        raise Failed(f"Content-Type {ctype!r}")
    if str(read_part10(body).SOPInstanceUID) != ctx.data.ct.sop:
        raise Failed("wrong instance")


@check("wado-rendered", "PS3.18 §10.4.1 / §8.7.4", "rendered instance as image/jpeg", optional=True)
def rendered(ctx: Context) -> str:
    ctx.ensure_stored("A")
    ctype, body = _optional_get(ctx, ctx.data.ct.path + "/rendered", "image/jpeg")
    if media_params(ctype)[0] != "image/jpeg" or not body.startswith(b"\xff\xd8"):
        raise Failed(f"Content-Type {ctype!r}, not a JPEG")
    return f"{len(body)} bytes"


@check("wado-thumbnail", "PS3.18 §10.4.1 / Table 10.4.4-1", "series thumbnail as image/jpeg",
       optional=True)
def thumbnail(ctx: Context) -> str:
    ctx.ensure_stored("A")
    ct = ctx.data.ct
    ctype, body = _optional_get(ctx, f"studies/{ct.study}/series/{ct.series}/thumbnail",
                                "image/jpeg")
    if media_params(ctype)[0] != "image/jpeg" or not body.startswith(b"\xff\xd8"):
        raise Failed(f"Content-Type {ctype!r}, not a JPEG")
    return f"{len(body)} bytes"


def dciodvfy_errors(ds: Dataset) -> set[str]:
    """dicom3tools' dciodvfy Error lines for a dataset (written as Part 10)."""
    exe = Path("/usr/bin/dciodvfy")
    if not exe.exists():
        raise Skipped("dciodvfy not installed (Debian package dicom3tools)")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.dcm"
        ds.save_as(path, enforce_file_format=True)
        res = subprocess.run([str(exe), str(path)], capture_output=True, text=True, timeout=60,
                             check=False)
    return {ln for ln in (res.stdout + res.stderr).splitlines() if ln.startswith("Error")}


@check("wado-iod-valid", "PS3.3 (IODs) / PS3.18 §10.4",
       "retrieved instances add no dciodvfy error to the originals")
def iod_valid(ctx: Context) -> str:
    ctx.ensure_stored("A")
    study = ctx.data.study_uid("A")
    parts = retrieve(ctx, f"studies/{study}", MULTIPART_DICOM + "; transfer-syntax=*")
    originals = {i.sop: i.ds for i in ctx.data.studies["A"]}
    new = []
    for ds in part_datasets(parts):
        orig = originals.get(str(ds.SOPInstanceUID))
        if orig is not None:
            new += sorted(dciodvfy_errors(ds) - dciodvfy_errors(orig))
    if new:
        raise Failed(f"{len(new)} new errors: " + "; ".join(new[:3]))
    return f"{len(originals)} instances"
