"""WADO-RS frames, PS3.18 §10.4.1 (Frame List resource) and §8.7.3 (transfer syntax per part)."""

from __future__ import annotations

from pydicom.encaps import generate_frames
from pydicom.uid import ExplicitVRLittleEndian

from conformance.data import Instance, native_frames
from conformance.runner import Context, Failed, check
from conformance.wire import MULTIPART_OCTET, Part, media_params, parse_multipart


def frames(ctx: Context, inst: Instance, frame_list: str, accept: str = MULTIPART_OCTET) -> list[Part]:
    resp = ctx.http.get(ctx.url(f"{inst.path}/frames/{frame_list}"), headers={"Accept": accept})
    if resp.status_code != 200:
        raise Failed(f"frames/{frame_list} {accept!r}: status {resp.status_code}")
    return parse_multipart(resp.headers.get("content-type", ""), resp.content)


def part_ts(part: Part) -> str | None:
    return media_params(part.content_type)[1].get("transfer-syntax")


@check("frames-single", "PS3.18 §10.4.1", "frames/1 of a single-frame CT: native bytes equal")
def single(ctx: Context) -> None:
    ctx.ensure_stored("A")
    parts = frames(ctx, ctx.data.ct, "1")
    if len(parts) != 1 or parts[0].body != native_frames(ctx.data.ct)[0]:
        raise Failed(f"{len(parts)} parts or bytes differ")
    if media_params(parts[0].content_type)[0] != "application/octet-stream":
        raise Failed(f"part Content-Type {parts[0].content_type!r}")


@check("frames-list", "PS3.18 §10.4.1", "frames/3,1 of a multi-frame: two parts, in the order asked")
def frame_list(ctx: Context) -> None:
    ctx.ensure_stored("A")
    mf = ctx.data.multiframe
    want = native_frames(mf)
    parts = frames(ctx, mf, "3,1")
    if [p.body for p in parts] != [want[2], want[0]]:
        raise Failed(f"{len(parts)} parts; order or bytes differ")


@check("frames-part-ts", "PS3.18 §8.7.3 / §10.4.3", "each frame part's Content-Type names its transfer-syntax")
def part_transfer_syntax(ctx: Context) -> str:
    ctx.ensure_stored("A")
    parts = frames(ctx, ctx.data.ct, "1", MULTIPART_OCTET + "; transfer-syntax=*")
    ts = part_ts(parts[0])
    if not ts:
        raise Failed(f"part Content-Type {parts[0].content_type!r} has no transfer-syntax")
    return ts


@check("frames-compressed-star", "PS3.18 §8.7.3", "transfer-syntax=* on JPEG 2000: the original codestream")
def compressed_star(ctx: Context) -> str:
    ctx.ensure_stored("A")
    inst = ctx.data.compressed
    parts = frames(ctx, inst, "1", 'multipart/related; type="application/octet-stream"; transfer-syntax=*')
    original = next(generate_frames(inst.ds.PixelData, number_of_frames=1))
    if parts[0].body.rstrip(b"\0") != original.rstrip(b"\0"):
        raise Failed("frame bytes differ from the stored codestream")
    ts = part_ts(parts[0])
    if ts != inst.transfer_syntax:
        raise Failed(f"part names transfer-syntax={ts}, stored {inst.transfer_syntax}")
    return f"{len(parts[0].body)} bytes"


@check("frames-compressed-default", "PS3.18 §8.7.3",
       "JPEG 2000 frame, no transfer-syntax asked: native (Explicit VR LE) pixels")
def compressed_default(ctx: Context) -> None:
    ctx.ensure_stored("A")
    inst = ctx.data.compressed
    parts = frames(ctx, inst, "1")
    ts = part_ts(parts[0])
    if ts not in (None, ExplicitVRLittleEndian):
        raise Failed(f"part names transfer-syntax={ts}")
    if parts[0].body != native_frames(inst)[0]:
        raise Failed(f"{len(parts[0].body)} bytes, not the decoded frame")


@check("frames-dicomweb-client", "PS3.18 §10.4.1", "dicomweb-client retrieve_instance_frames")
def client(ctx: Context) -> None:
    ctx.ensure_stored("A")
    mf = ctx.data.multiframe
    # The client's default Accept is type="*/*"; ask for the standard native form explicitly.
    got = ctx.dicomweb_client().retrieve_instance_frames(
        mf.study, mf.series, mf.sop, [2],
        media_types=(("application/octet-stream", ExplicitVRLittleEndian),))
    if got != [native_frames(mf)[1]]:
        raise Failed("frame bytes differ")


@check("frames-out-of-range", "PS3.18 §10.4.3", "frames/99 of a 3-frame instance: 4xx, not 5xx")
def out_of_range(ctx: Context) -> str:
    ctx.ensure_stored("A")
    resp = ctx.http.get(ctx.url(f"{ctx.data.multiframe.path}/frames/99"),
                        headers={"Accept": MULTIPART_OCTET})
    if not 400 <= resp.status_code < 500:
        raise Failed(f"status {resp.status_code}")
    return str(resp.status_code)


@check("frames-bad-list", "PS3.18 §10.4.1", "frames/abc: 400")
def bad_list(ctx: Context) -> None:
    ctx.ensure_stored("A")
    resp = ctx.http.get(ctx.url(f"{ctx.data.multiframe.path}/frames/abc"),
                        headers={"Accept": MULTIPART_OCTET})
    if resp.status_code != 400:
        raise Failed(f"status {resp.status_code}")
