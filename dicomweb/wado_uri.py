"""WADO-URI (PS3.18 9): `GET /dicomweb/wado?requestType=WADO&studyUID=…&seriesUID=…&objectUID=…`.

Hospital PACS and report systems in China still link images this way (issue 10 part 10). One
instance, as `application/dicom` (in `transferSyntax`, default Explicit VR Little Endian) or
rendered as `image/jpeg` (default), `image/png` or `image/gif`, with `frameNumber`,
`windowCenter`/`windowWidth`, `rows`/`columns`, `region` and `imageQuality` (PS3.18 Table 9.1-1).
It reuses the WADO-RS instance retrieval and the rendered pipeline.
"""
from __future__ import annotations

import io

from PIL import Image
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

from dicomweb.access import require_visible
from dicomweb.frames import instance_row
from dicomweb.http import number_param
from dicomweb.prepared import convert_one
from dicomweb.rendering import render_frames
from index.model import InstanceRow
from yunying.errors import InvalidQuery, NotAcceptable, UnknownResource
from yunying.pixels import RenderParams

EXPLICIT_LE = "1.2.840.10008.1.2.1"
RENDERED = {"image/jpeg": "JPEG", "image/png": "PNG", "image/gif": "GIF"}


def _uid(q: QueryParams, name: str) -> str:
    value = (q.get(name) or "").strip()
    if not value:
        raise InvalidQuery(name, "is required (PS3.18 9.1.2.1)")
    return value


def _content_type(q: QueryParams, row: InstanceRow) -> str:
    """The first supported type of the contentType list; image/jpeg by default for images."""
    asked = [t.split(";")[0].strip().lower() for t in (q.get("contentType") or "").split(",") if t.strip()]
    for media in asked or (["image/jpeg"] if row.pixel_form != "none" else ["application/dicom"]):
        if media in ("application/dicom", "*/*") or media in RENDERED:
            return "application/dicom" if media == "*/*" else media
    raise NotAcceptable("contentType: application/dicom, image/jpeg, image/png or image/gif")


def _region(q: QueryParams) -> tuple[float, float, float, float] | None:
    raw = q.get("region")
    if not raw:
        return None
    try:
        x0, y0, x1, y1 = (float(v) for v in raw.split(","))
    except ValueError:
        raise InvalidQuery("region", "xmin,ymin,xmax,ymax from 0.0 to 1.0") from None
    if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
        raise InvalidQuery("region", "xmin,ymin,xmax,ymax from 0.0 to 1.0, min below max")
    return x0, y0, x1, y1


def _crop(data: bytes, media: str, region: tuple[float, float, float, float], box: tuple[int, int] | None,
          quality: int) -> bytes:
    """The region of a rendered image (normalised to its size), then fitted in rows x columns."""
    img: Image.Image = Image.open(io.BytesIO(data))
    w, h = img.size
    x0, y0, x1, y1 = region
    img = img.crop((round(x0 * w), round(y0 * h), max(round(x1 * w), round(x0 * w) + 1),
                    max(round(y1 * h), round(y0 * h) + 1)))
    if box is not None:
        img.thumbnail(box)
    out = io.BytesIO()
    img.save(out, RENDERED[media], **({"quality": quality} if media == "image/jpeg" else {}))
    return out.getvalue()


async def wado_uri(request: Request) -> Response:
    """GET /dicomweb/wado (PS3.18 9.1)."""
    q = request.query_params
    if q.get("requestType") != "WADO":
        raise InvalidQuery("requestType", "must be WADO")
    if (q.get("anonymize") or "").strip().lower() == "yes":  # never answer identified data to it
        raise InvalidQuery("anonymize", "anonymized copies are not supported (PS3.18 9.1.2.1)")
    study, series, sop = _uid(q, "studyUID"), _uid(q, "seriesUID"), _uid(q, "objectUID")
    await require_visible(request, study, series, sop)
    archive = request.app.state.archive
    row = await run_in_threadpool(instance_row, archive, study, series, sop)
    media = _content_type(q, row)
    if media == "application/dicom":
        ts = (q.get("transferSyntax") or EXPLICIT_LE).strip()
        body, _ = await run_in_threadpool(convert_one, archive, row, [ts])
        return Response(body, media_type="application/dicom")
    if row.pixel_form == "none":
        raise NotAcceptable(f"instance {sop} has no pixel data to render; ask for contentType=application/dicom")
    frame = int(number_param(q, "frameNumber", 1, 1 << 31, whole=True) or 1)
    if frame > row.frames:
        raise UnknownResource(f"instance {sop} has {row.frames} frame(s), not {frame}")
    centre, width = number_param(q, "windowCenter", -1e9, 1e9), number_param(q, "windowWidth", 1e-9, 1e9)
    if (centre is None) != (width is None):
        raise InvalidQuery("windowWidth" if width is None else "windowCenter", "windowCenter and windowWidth go together")
    rows, columns = number_param(q, "rows", 1, 8192, whole=True), number_param(q, "columns", 1, 8192, whole=True)
    box = (int(columns or 8192), int(rows or 8192)) if rows or columns else None
    quality = int(number_param(q, "imageQuality", 1, 100, whole=True) or 90)
    region = _region(q)
    params = RenderParams(window=(centre, width, "LINEAR") if centre is not None and width is not None else None,
                          viewport=None if region else box, quality=quality)
    data = await run_in_threadpool(render_frames, archive, request.app.state.rendered_cache, row, [frame], media, params)
    if region:
        data = await run_in_threadpool(_crop, data, media, region, box, quality)
    return Response(data, media_type=media, headers={"Cache-Control": "private, max-age=3600"})
