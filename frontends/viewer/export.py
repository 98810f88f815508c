"""Exports the viewer asks the server to package: the images it rendered (the window, invert,
colour map, sharpening, rotation and flip the user sees) as one MP4 cine (H.264 through PyAV's
FFmpeg) or one ZIP of PNG / JPEG files. Like the SR builder, the route reads nothing from the
archive: it only packages what the caller sent, so it sees no more than the caller already had."""
from __future__ import annotations

import io
import re
import zipfile
from fractions import Fraction

import numpy as np
from PIL import Image

MAX_IMAGES = 2000  # a long cine; a series of more images is exported in parts
MAX_SIDE = 4096
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}\.(png|jpg|jpeg)")


class InvalidExport(ValueError):
    """The upload cannot be packaged (the route answers 400 with the message)."""


def decoded(raw: bytes, i: int) -> Image.Image:
    """One uploaded PNG or JPEG as RGB; 400 for anything else or an oversized image."""
    try:
        img = Image.open(io.BytesIO(raw))
        if img.format not in ("PNG", "JPEG"):
            raise InvalidExport(f"image {i}: PNG or JPEG expected")
        if max(img.size) > MAX_SIDE:
            raise InvalidExport(f"image {i}: at most {MAX_SIDE} pixels a side")
        return img.convert("RGB")
    except (OSError, Image.DecompressionBombError, SyntaxError, ValueError) as exc:
        if isinstance(exc, InvalidExport):
            raise
        raise InvalidExport(f"image {i}: not a readable PNG or JPEG") from None


def mp4_of(images: list[bytes], fps: float) -> bytes:
    """The images as an H.264 MP4 (yuv420p, so every player plays it), `fps` frames a second."""
    import av  # FFmpeg: loaded at the first export

    if not images or len(images) > MAX_IMAGES:
        raise InvalidExport(f"1 to {MAX_IMAGES} images expected")
    if not 0.5 <= fps <= 120:
        raise InvalidExport("fps: 0.5 to 120")
    first = decoded(images[0], 0)
    width, height = first.width + first.width % 2, first.height + first.height % 2  # 4:2:0 wants even sides
    out = io.BytesIO()
    with av.open(out, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast"}  # visually lossless for reading, fast on 2 cores
        for i, raw in enumerate(images):
            img = first if i == 0 else decoded(raw, i)
            canvas = Image.new("RGB", (width, height))  # a differently sized image is centred, not stretched
            canvas.paste(img, ((width - img.width) // 2, (height - img.height) // 2))
            frame = av.VideoFrame.from_ndarray(np.asarray(canvas), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return out.getvalue()


def zip_of(files: list[tuple[str, bytes]]) -> bytes:
    """The images in one ZIP, stored (PNG and JPEG are compressed already)."""
    if not files or len(files) > MAX_IMAGES:
        raise InvalidExport(f"1 to {MAX_IMAGES} images expected")
    out, seen = io.BytesIO(), set()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for i, (name, raw) in enumerate(files):
            if not NAME.fullmatch(name) or name in seen:
                raise InvalidExport(f"image {i}: a unique file name ending .png or .jpg expected")
            decoded(raw, i)
            seen.add(name)
            z.writestr(name, raw)
    return out.getvalue()
