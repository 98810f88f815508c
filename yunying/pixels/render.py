"""Rendered frames and thumbnails (PS3.18 8.3.5, 10.4.1.1.3 rendered, 10.4.1.1.4 thumbnail)."""
from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from pydicom.pixels import apply_color_lut, convert_color_space

from yunying.errors import NotAcceptable
from yunying.pixels.lut import Window, auto_range, frame_attr, grey_to_uint8

RENDERED_TYPES = ("image/jpeg", "image/png", "image/gif")
_OVERLAY_GROUPS = range(0x6000, 0x6020, 2)  # PS3.3 C.9.2: repeating groups 6000-601E


_JPEG_LOSSY = ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51")


def frame_photometric(header: Any) -> str:
    """Colour space of frames as decode_frame returns them for this header.

    Lossy JPEG YBR is a codec-internal transform (PS3.5 8.2.1): its decoded frames are RGB.
    """
    photometric = str(header.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    meta = getattr(header, "file_meta", None)
    ts = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    if photometric.startswith("YBR") and ts in _JPEG_LOSSY or photometric in ("YBR_ICT", "YBR_RCT"):
        return "RGB"
    return photometric


def to_display(frame: np.ndarray, header: Any, window: Window | None = None, frame_index: int = 0,
               auto: tuple[float, float] | None = None, photometric: str | None = None) -> np.ndarray:
    """One frame -> uint8 (rows, cols) grey or (rows, cols, 3) RGB, ready for an image codec."""
    photometric = (photometric or frame_photometric(header)).upper()
    if photometric == "PALETTE COLOR":  # C.7.6.3.1.5
        return _palette(frame, header)
    if frame.ndim == 3:
        if photometric.startswith("YBR_FULL"):  # YBR_FULL / YBR_FULL_422 (sub-sampling already removed)
            frame = convert_color_space(frame, "YBR_FULL", "RGB")
        bits = int(header.get("BitsStored", 8) or 8)
        if frame.dtype != np.uint8:
            frame = (frame.astype(np.uint32) >> max(bits - 8, 0)).clip(0, 255).astype(np.uint8)
        return np.ascontiguousarray(frame[..., :3])
    return grey_to_uint8(frame, header, window, frame_index, auto)


def _palette(frame: np.ndarray, header: Any) -> np.ndarray:
    """Palette indices -> uint8 RGB through one 8-bit table built per call (C.7.6.3.1.5/6)."""
    desc = [int(v) for v in header.get("RedPaletteColorLookupTableDescriptor", [256, 0, 16])]
    entries, first, bits = desc[0] or 65536, desc[1], desc[2] or 16
    info = np.iinfo(frame.dtype) if frame.dtype.kind in "iu" else np.iinfo(np.uint16)
    domain = np.arange(max(first, info.min), min(first + entries, info.max + 1)).astype(frame.dtype)
    table = np.asarray(apply_color_lut(domain, header))
    if table.dtype != np.uint8:
        table = (table >> max(bits - 8, 0)).astype(np.uint8) if bits > 8 else table.astype(np.uint8)
    if frame.dtype in (np.uint8, np.uint16):  # index a full-range table: no per-pixel clip
        full = table[np.clip(np.arange(info.max + 1) - int(domain[0]), 0, len(domain) - 1)]
        return full[frame]
    return table[np.clip(frame.astype(np.int64) - int(domain[0]), 0, len(domain) - 1)]


def burn_overlays(image: np.ndarray, header: Any, frame_index: int = 0) -> np.ndarray:
    """Burn 60xx overlay planes into the frame as white (PS3.3 C.9.2, 60xx,3000 Overlay Data)."""
    for group in _OVERLAY_GROUPS:
        if (group, 0x3000) not in header:
            continue
        try:
            plane = np.asarray(header.overlay_array(group))
        except (ValueError, TypeError, AttributeError, KeyError):
            continue  # a malformed overlay is left out; it never stops the image
        first = int(header.get((group, 0x0051), None).value if (group, 0x0051) in header else 1) - 1
        if plane.ndim == 3:
            k = frame_index - first
            if not 0 <= k < plane.shape[0]:
                continue
            plane = plane[k]
        elif frame_index != first:
            continue
        origin = header[(group, 0x0050)].value if (group, 0x0050) in header else [1, 1]
        r0, c0 = int(origin[0]) - 1, int(origin[1]) - 1
        rows, cols = image.shape[:2]
        rs, cs = max(r0, 0), max(c0, 0)
        re, ce = min(r0 + plane.shape[0], rows), min(c0 + plane.shape[1], cols)
        if re <= rs or ce <= cs:
            continue
        mask = plane[rs - r0:re - r0, cs - c0:ce - c0].astype(bool)
        if image.flags.writeable is False or image.base is not None:
            image = image.copy()
        image[rs:re, cs:ce][mask] = 255
    return image


def _fit(size: tuple[int, int], viewport: tuple[int, int], header: Any) -> tuple[int, int]:
    """Largest (w, h) inside the viewport keeping the physical aspect (PS3.18 8.3.5.1.2)."""
    rows, cols = size
    aspect = 1.0
    spacing = header.get("PixelSpacing") or frame_attr(header, 0, "PixelMeasuresSequence", "PixelSpacing")
    if spacing and len(spacing) == 2 and float(spacing[1]) > 0:
        aspect = float(spacing[0]) / float(spacing[1])  # row spacing / column spacing
    width, height = float(cols), rows * aspect
    vw, vh = max(int(viewport[0]), 1), max(int(viewport[1]), 1)
    scale = min(vw / width, vh / height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _image(frame: np.ndarray, header: Any, window: Window | None, viewport: tuple[int, int] | None,
           frame_index: int, auto: tuple[float, float] | None, photometric: str | None) -> Image.Image:
    display = to_display(frame, header, window, frame_index, auto, photometric)
    img_arr = burn_overlays(display, header, frame_index)
    img = Image.fromarray(img_arr, "L" if img_arr.ndim == 2 else "RGB")
    if viewport:
        target = _fit(img_arr.shape[:2], viewport, header)
        if target != img.size:
            img = img.resize(target, Image.Resampling.BILINEAR, reducing_gap=2.0)
    return img


_ANNOTATIONS = {
    "patient": ("PatientName", "PatientID", "PatientBirthDate", "StudyDate", "InstitutionName"),
    "technique": ("Modality", "SeriesDescription", "SliceThickness", "KVP", "InstanceNumber"),
}


def annotate(img: Image.Image, header: Any, annotation: str, window: Window | None) -> Image.Image:
    """Burn the requested text groups (PS3.18 8.3.5.1.1 annotation=patient,technique) into corners."""
    wanted = [a.strip().lower() for a in annotation.split(",") if a.strip()]
    unknown = [a for a in wanted if a not in _ANNOTATIONS]
    if unknown:
        raise NotAcceptable(f"annotation {','.join(unknown)} is not supported")
    img = img.convert("RGB") if img.mode not in ("L", "RGB") else img
    draw = ImageDraw.Draw(img)
    white = 255 if img.mode == "L" else (255, 255, 255)
    for corner, group in enumerate(wanted):
        lines = [str(header.get(k)) for k in _ANNOTATIONS[group] if header.get(k) not in (None, "")]
        if group == "technique" and window is not None:
            lines.append(f"W {window[1]:g} C {window[0]:g}")
        y = 2 if corner == 0 else max(2, img.height - 12 * len(lines) - 2)
        for line in lines:
            draw.text((2, y), line[:40], fill=white)
            y += 12
    return img


def _frame_ms(header: Any) -> int:
    """Frame duration for a cine from FrameTime or CineRate (PS3.3 C.7.6.5), else 30 fps."""
    for value, per in ((header.get("FrameTime"), 1.0), (header.get("CineRate"), None)):
        try:
            if value:
                return max(20, round(float(value) if per else 1000.0 / float(value)))
        except (TypeError, ValueError):
            continue
    return 33


def render(frames: list[np.ndarray], header: Any, *, media_type: str, window: Window | None,
           viewport: tuple[int, int] | None, quality: int | None, frame_index: int = 0,
           photometric: str | None = None, annotation: str | None = None) -> bytes:
    """Render frames (frames[0] is frame frame_index of the instance) as JPEG, PNG or a GIF cine.

    photometric: the frames' colour space when it differs from what frame_photometric(header)
    infers (pass decode_frame_info(...)[1].photometric when in doubt). annotation: "patient",
    "technique" or both, comma-separated; off by default.
    """
    media = media_type.split(";")[0].strip().lower()
    if media not in RENDERED_TYPES:
        raise NotAcceptable(f"rendered media type {media_type} is not supported")
    if not frames:
        raise ValueError("render needs at least one frame")
    grey = frames[0].ndim == 2 and (photometric or frame_photometric(header)) != "PALETTE COLOR"
    auto = None
    if grey and window is None and len(frames) > 1 and media == "image/gif":
        auto = auto_range(frames, header, frame_index)  # one scale for the whole cine
    out = io.BytesIO()
    if media == "image/gif":
        images = [_image(f, header, window, viewport, frame_index + i, auto, photometric)
                  for i, f in enumerate(frames)]
        if annotation:
            images = [annotate(im, header, annotation, window) for im in images]
        images = [im if im.mode == "L" else im.quantize(256) for im in images]
        images[0].save(out, "GIF", save_all=len(images) > 1, append_images=images[1:],
                       duration=_frame_ms(header), loop=0)
        return out.getvalue()
    img = _image(frames[0], header, window, viewport, frame_index, auto, photometric)
    if annotation:
        img = annotate(img, header, annotation, window)
    if media == "image/jpeg":
        img.save(out, "JPEG", quality=90 if quality is None else max(1, min(100, int(quality))))
    else:
        img.save(out, "PNG", compress_level=1)
    return out.getvalue()


def thumbnail(frame: np.ndarray, header: Any, size: int = 128) -> bytes:
    """A small JPEG of one frame with its default window (PS3.18 10.4.1.1.4)."""
    return render([frame], header, media_type="image/jpeg", window=None, viewport=(size, size),
                  quality=80)
