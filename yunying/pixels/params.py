"""Rendered-resource query parameters and media type, parsed into typed values (PS3.18 8.3.5, 8.7.4)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from yunying.errors import InvalidQuery
from yunying.pixels.lut import Window
from yunying.pixels.negotiate import parse_accept
from yunying.pixels.render import RENDERED_TYPES

_FUNCTIONS = {"linear": "LINEAR", "linear-exact": "LINEAR_EXACT", "sigmoid": "SIGMOID"}


@dataclass(frozen=True)
class RenderParams:
    """window, viewport, quality and annotation of a /rendered or /thumbnail request."""

    window: Window | None = None
    viewport: tuple[int, int] | None = None
    quality: int | None = None
    annotation: str | None = None


def _numbers(param: str, value: str, count: tuple[int, ...]) -> list[float]:
    parts = [p.strip() for p in value.split(",")]
    if len(parts) not in count:
        raise InvalidQuery(param, f"expected {' or '.join(map(str, count))} comma-separated values")
    try:
        return [float(p) for p in parts]
    except ValueError:
        raise InvalidQuery(param, f"not a number in {value!r}") from None


def parse_render_params(query: Mapping[str, str]) -> RenderParams:
    """PS3.18 8.3.5.1: window=center,width[,function], viewport=vw,vh, quality=1..100, annotation."""
    window = None
    if raw := query.get("window"):
        parts = [p.strip() for p in raw.split(",")]
        centre, width = _numbers("window", ",".join(parts[:2]), (2,))
        function = _FUNCTIONS.get(parts[2].lower()) if len(parts) == 3 else "LINEAR"
        if function is None or len(parts) > 3:
            raise InvalidQuery("window", "function must be linear, linear-exact or sigmoid")
        if width <= 0:
            raise InvalidQuery("window", "width must be positive")
        window = (centre, width, function)
    viewport = None
    if raw := query.get("viewport"):
        # vw,vh (the sx,sy,sw,sh source rectangle form is not supported: 400 names it)
        vw, vh = _numbers("viewport", raw, (2,))
        if not (1 <= vw <= 8192 and 1 <= vh <= 8192) or vw != int(vw) or vh != int(vh):
            raise InvalidQuery("viewport", "vw,vh must be whole numbers from 1 to 8192")
        viewport = (int(vw), int(vh))
    quality = None
    if raw := query.get("quality"):
        (q,) = _numbers("quality", raw, (1,))
        if not 1 <= q <= 100 or q != int(q):
            raise InvalidQuery("quality", "must be a whole number from 1 to 100")
        quality = int(q)
    annotation = query.get("annotation") or None
    if annotation and any(a.strip().lower() not in ("patient", "technique")
                          for a in annotation.split(",")):
        raise InvalidQuery("annotation", "patient, technique or both")
    return RenderParams(window, viewport, quality, annotation)


def negotiate_rendered_media(accept: str) -> str | None:
    """The rendered media type for an Accept header, best q first; wildcards get image/jpeg; None -> 406.

    image/gif is chosen only when named: it is the cine form of a multi-frame image.
    """
    for r in parse_accept(accept):
        if r.media_type in ("*/*", "image/*"):
            return "image/jpeg"
        if r.media_type in RENDERED_TYPES:
            return r.media_type
    return None
