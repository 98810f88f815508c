"""Cloud film: a series laid out on a 14x17-inch film at 300 dpi (4200x5100 px), from the archive's
own rendering (yunying.pixels.render.to_display), with a header (hospital, masked patient name,
exam, date, W/L). The same inputs give the same film, byte for byte."""
from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from yunying.archive import Archive
from yunying.auth.errors import InvalidRequest, NotFound
from yunying.pixels.render import to_display

WIDTH, HEIGHT, DPI = 4200, 5100, 300  # 14 x 17 inches
HEADER, MARGIN, GAP = 330, 60, 12
GRIDS = ((1, 1), (1, 2), (2, 2), (2, 3), (3, 3), (3, 4), (4, 4), (4, 5), (5, 6), (6, 7))  # (columns, rows)
FONTS = ("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",  # CJK glyphs (fonts-droid-fallback)
         "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc")


def grid_for(count: int, layout: str = "") -> tuple[int, int]:
    """(columns, rows): the asked layout ("3x4") or the smallest grid holding `count` (at most 6x7)."""
    if layout:
        try:
            cols, rows = (int(x) for x in layout.lower().split("x"))
        except ValueError:
            raise InvalidRequest("layout: CxR, e.g. 3x4") from None
        if not (1 <= cols <= 8 and 1 <= rows <= 10):
            raise InvalidRequest("layout: 1-8 columns, 1-10 rows")
        return cols, rows
    return next((g for g in GRIDS if g[0] * g[1] >= count), GRIDS[-1])


def evenly(items: Sequence[Any], cells: int) -> list[Any]:
    """`cells` items spread evenly from first to last (all of them when they fit)."""
    if len(items) <= cells:
        return list(items)
    return [items[round(i * (len(items) - 1) / (cells - 1))] if cells > 1 else items[0] for i in range(cells)]


def masked_name(name: str) -> str:
    """张三 -> 张*, Zhang^San -> Z*** S**: enough for the patient to recognise, not to identify."""
    if any("\u4e00" <= ch <= "\u9fff" for ch in name):
        return name[:1] + "*" * max(len(name) - 1, 1)
    return " ".join(p[:1] + "*" * (len(p) - 1) for p in name.replace("^", " ").split())


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for path in FONTS:
        if Path(path).exists():
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size)


def _name(ds: Any) -> str:
    pn = ds.get("PatientName")
    if not pn:
        return ""
    return str(getattr(pn, "ideographic", "") or getattr(pn, "alphabetic", "") or pn)


def make_film(archive: Archive, study: str, series: str = "", layout: str = "", hospital: str = "") -> Image.Image:
    """The film of `series` (default: the study's series with the most images)."""
    rows = [r for r in archive.instances(study) if r.frames > 0]
    if not rows:
        raise NotFound("the exam has no images")
    by_series: dict[str, list[Any]] = {}
    for r in rows:
        by_series.setdefault(r.series, []).append(r)
    chosen = by_series.get(series) if series else max(by_series.values(), key=len)
    if not chosen:
        raise NotFound("no images in this series")
    headers = sorted(((archive.read_header(r), r) for r in chosen),
                     key=lambda hr: (int(hr[0].get("InstanceNumber") or 0), hr[1].sop))
    cols, nrows = grid_for(len(headers), layout)
    picked = evenly(headers, cols * nrows)
    film = Image.new("L", (WIDTH, HEIGHT), 0)
    cell_w = (WIDTH - 2 * MARGIN - (cols - 1) * GAP) // cols
    cell_h = (HEIGHT - HEADER - 2 * MARGIN - (nrows - 1) * GAP) // nrows
    small = _font(34)
    for i, (_, row) in enumerate(picked):
        ds = archive.read_dataset(row)
        img = Image.fromarray(to_display(ds.pixel_array if row.frames == 1 else ds.pixel_array[0], ds))
        img = img.convert("L")
        img.thumbnail((cell_w, cell_h), Image.Resampling.LANCZOS)
        x = MARGIN + (i % cols) * (cell_w + GAP) + (cell_w - img.width) // 2
        y = HEADER + MARGIN + (i // cols) * (cell_h + GAP) + (cell_h - img.height) // 2
        film.paste(img, (x, y))
        ImageDraw.Draw(film).text((x + 8, y + 4), f"Im {ds.get('InstanceNumber', '')}", fill=255, font=small)
    first = headers[0][0]
    wl = (f"W/L {first.get('WindowWidth', '')}/{first.get('WindowCenter', '')}"
          if "WindowWidth" in first else "W/L auto")
    draw = ImageDraw.Draw(film)
    date = str(first.get("StudyDate", ""))
    lines = [f"{hospital or first.get('InstitutionName', '')}",
             (f"{masked_name(_name(first))}   {first.get('AccessionNumber', '')}   "
              f"{date[:4]}-{date[4:6]}-{date[6:8]}   {first.get('Modality', '')} {first.get('SeriesDescription', '')}"),
             f"{wl}   {len(picked)}/{len(headers)} images   {cols}x{nrows}"]
    for n, text in enumerate(lines):
        draw.text((MARGIN, 40 + n * 90), text, fill=255, font=_font(64 if n == 0 else 54))
    return film


def encode(film: Image.Image, fmt: str, when: str = "") -> bytes:
    """PNG or PDF (300 dpi, 14x17 in); the PDF's dates are the study date, so the bytes repeat."""
    out = io.BytesIO()
    if fmt == "png":
        film.save(out, format="PNG", dpi=(DPI, DPI))
    else:
        stamp = datetime.strptime(when, "%Y%m%d") if len(when) == 8 and when.isdigit() else datetime(2000, 1, 1)
        film.save(out, format="PDF", resolution=DPI, creationDate=stamp.timetuple(), modDate=stamp.timetuple())
    return out.getvalue()
