"""Greyscale display pipeline: Modality LUT -> VOI LUT -> Presentation LUT (PS3.4 N.2; PS3.3 C.11)."""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import numpy as np
from pydicom.pixels import apply_modality_lut

Window = tuple[float, float, str]

_LUT_DOMAIN_MAX = 1 << 17  # integer ranges up to this size go through a lookup table
_TABLES_MAX = 64  # whole-domain tables kept (64 KiB each for 16-bit samples)
_TABLES: OrderedDict[tuple[Any, ...], np.ndarray] = OrderedDict()
_TABLES_LOCK = threading.Lock()


def frame_attr(header: Any, frame_index: int, sequence: str, keyword: str) -> Any:
    """An attribute from the per-frame, then shared functional groups, then the top level (PS3.3 C.7.6.16)."""
    for groups in ("PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence"):
        seq = header.get(groups)
        if not seq:
            continue
        item = seq[min(frame_index, len(seq) - 1)] if groups.startswith("PerFrame") else seq[0]
        inner = item.get(sequence)
        if inner and keyword in inner[0]:
            return inner[0].get(keyword)
    return header.get(keyword)


def _first(value: Any) -> float | None:
    """First value of a possibly multi-valued numeric attribute."""
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple)) or hasattr(value, "__getitem__") and not isinstance(value, str):
        try:
            value = value[0]
        except (IndexError, TypeError):
            return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def modality(values: np.ndarray, header: Any, frame_index: int = 0) -> np.ndarray:
    """Stored values -> modality values: rescale (C.7.6.16.2.9 / C.11.1) or Modality LUT Sequence."""
    slope = _first(frame_attr(header, frame_index, "PixelValueTransformationSequence", "RescaleSlope"))
    intercept = _first(
        frame_attr(header, frame_index, "PixelValueTransformationSequence", "RescaleIntercept"))
    if slope is None and intercept is None and header.get("ModalityLUTSequence"):
        return np.asarray(apply_modality_lut(values, header), dtype=np.float64)
    slope = 1.0 if slope is None else slope
    intercept = 0.0 if intercept is None else intercept
    return values.astype(np.float64) * slope + intercept


def header_window(header: Any, frame_index: int = 0) -> Window | None:
    """The first Window Center/Width pair and VOI LUT Function the header offers, if any."""
    centre = _first(frame_attr(header, frame_index, "FrameVOILUTSequence", "WindowCenter"))
    width = _first(frame_attr(header, frame_index, "FrameVOILUTSequence", "WindowWidth"))
    if centre is None or width is None or width <= 0:
        return None
    function = frame_attr(header, frame_index, "FrameVOILUTSequence", "VOILUTFunction") or "LINEAR"
    return centre, width, str(function).strip().upper()


def apply_window(x: np.ndarray, window: Window) -> np.ndarray:
    """Modality values -> [0, 1] by a window (PS3.3 C.11.2.1.2 LINEAR, LINEAR_EXACT, SIGMOID)."""
    c, w, function = float(window[0]), float(window[1]), window[2].upper().replace("-", "_")
    if function == "SIGMOID":  # C.11.2.1.3.1
        with np.errstate(over="ignore"):  # exp overflow -> inf -> 0: the right limit
            return 1.0 / (1.0 + np.exp(-4.0 * (x - c) / max(w, 1e-9)))
    if function == "LINEAR_EXACT":  # C.11.2.1.3.2
        return np.clip((x - c) / max(w, 1e-9) + 0.5, 0.0, 1.0)
    if w <= 1:  # C.11.2.1.2.1 with width 1: a threshold at c - 0.5
        return (x > c - 0.5).astype(np.float64)
    return np.clip((x - (c - 0.5)) / (w - 1.0) + 0.5, 0.0, 1.0)


def lut_table(item: Any) -> tuple[np.ndarray, int, int]:
    """(entries, first mapped value, bits) of a LUT item (PS3.3 C.11.1.1.1 LUT Descriptor)."""
    desc = [int(v) for v in item.LUTDescriptor]
    n = desc[0] or 65536
    data = item.LUTData
    if isinstance(data, (bytes, bytearray)):
        table = np.frombuffer(data, np.uint8 if len(data) == n else np.dtype("<u2"))
    else:
        table = np.asarray(data if not isinstance(data, (int, float)) else [data])
    first = desc[1] - 65536 if desc[1] > 32767 else desc[1]  # US or SS (C.11.1.1.1)
    return table[:n].astype(np.float64), first, desc[2] or 16


def _voi_lut(values: np.ndarray, header: Any) -> np.ndarray | None:
    """The first VOI LUT Sequence item applied, scaled to [0, 1] (C.11.2.1.1), or None."""
    seq = header.get("VOILUTSequence")
    if not seq or "LUTDescriptor" not in seq[0] or "LUTData" not in seq[0]:
        return None
    table, first, bits = lut_table(seq[0])
    # values below the first entry map to the first, above the last to the last
    out = table[np.clip(np.rint(values).astype(np.int64) - first, 0, len(table) - 1)]
    top = float((1 << bits) - 1)
    data_max = float(table.max()) if len(table) else top
    if 0 < data_max < top / 2 and bits > 8:  # descriptor says 16 bits, data is 12: trust the data
        top = float((1 << int(data_max).bit_length()) - 1)
    return np.clip(out / top, 0.0, 1.0)


def inverts(header: Any) -> bool:
    """MONOCHROME1 or an INVERSE Presentation LUT Shape shows low values bright (C.7.6.3.1.2, C.11.6)."""
    shape = str(header.get("PresentationLUTShape", "") or "").strip().upper()
    photometric = str(header.get("PhotometricInterpretation", "")).strip().upper()
    return photometric == "MONOCHROME1" or shape == "INVERSE"


def display_lut(lo: int, hi: int, header: Any, window: Window | None, frame_index: int,
                auto: tuple[float, float] | None = None) -> np.ndarray:
    """uint8 lookup table for stored values lo..hi through the whole greyscale pipeline."""
    stored = np.arange(lo, hi + 1, dtype=np.int64)
    return to_unit8(stored, header, window, frame_index, auto)


def to_unit8(stored: np.ndarray, header: Any, window: Window | None, frame_index: int,
             auto: tuple[float, float] | None = None) -> np.ndarray:
    """Stored values -> display uint8 (Modality, VOI, Presentation LUT, inversion)."""
    values = modality(stored, header, frame_index)
    y: np.ndarray | None = None
    if window is None and header_window(header, frame_index) is None:
        y = _voi_lut(values, header)
    if y is None:
        win = window or header_window(header, frame_index)
        if win is None:  # PS3.18 8.3.5.1.3: no window -> the full range of the values
            vmin, vmax = auto if auto is not None else (float(values.min()), float(values.max()))
            win = ((vmin + vmax) / 2.0, max(vmax - vmin, 1e-9), "LINEAR_EXACT")
        y = apply_window(values, win)
    if inverts(header):
        y = 1.0 - y
    return np.rint(y * 255.0).astype(np.uint8)


def pipeline_key(header: Any, window: Window | None, frame_index: int = 0) -> tuple[Any, ...] | None:
    """Everything to_unit8 reads from the header, when it is rescale + window + inversion only.

    None when the result depends on the frame (no window anywhere: its min..max) or on a table
    (Modality LUT Sequence): such frames keep the per-frame path.
    """
    win = window or header_window(header, frame_index)
    if win is None:
        return None
    slope = _first(frame_attr(header, frame_index, "PixelValueTransformationSequence", "RescaleSlope"))
    intercept = _first(
        frame_attr(header, frame_index, "PixelValueTransformationSequence", "RescaleIntercept"))
    if slope is None and intercept is None and header.get("ModalityLUTSequence"):
        return None
    return slope, intercept, tuple(win), inverts(header)


def domain_lut(dtype: np.dtype, header: Any, window: Window | None, frame_index: int = 0) -> np.ndarray | None:
    """uint8 table indexed by a frame's raw sample bits (`frame.view(unsigned)`), cached by pipeline.

    One table per (sample type, rescale, window, inversion): every slice of a CT series shown
    with one window shares it, so a frame costs one np.take instead of a min/max and a new LUT.
    """
    if dtype.kind not in "iu" or dtype.itemsize > 2 or not dtype.isnative:
        return None
    pipeline = pipeline_key(header, window, frame_index)
    if pipeline is None:
        return None
    key = (dtype.str, pipeline)
    with _TABLES_LOCK:
        table = _TABLES.get(key)
        if table is not None:
            _TABLES.move_to_end(key)
            return table
    raw = np.arange(1 << (8 * dtype.itemsize), dtype=np.dtype(f"u{dtype.itemsize}")).view(dtype)
    table = to_unit8(raw, header, pipeline[2], frame_index)  # type: ignore[arg-type]
    table.flags.writeable = False
    with _TABLES_LOCK:
        _TABLES[key] = table
        while len(_TABLES) > _TABLES_MAX:
            _TABLES.popitem(last=False)
    return table


def grey_to_uint8(frame: np.ndarray, header: Any, window: Window | None, frame_index: int = 0,
                  auto: tuple[float, float] | None = None) -> np.ndarray:
    """Render one greyscale frame to uint8 through a lookup table when its range allows."""
    if auto is None and (table := domain_lut(frame.dtype, header, window, frame_index)) is not None:
        return np.take(table, frame.view(f"u{frame.dtype.itemsize}"))
    if frame.dtype.kind in "iub":
        lo, hi = int(frame.min()), int(frame.max())
        if hi - lo < _LUT_DOMAIN_MAX:
            lut = display_lut(lo, hi, header, window, frame_index, auto)
            return lut[(frame.astype(np.int64) - lo) if lo else frame]
    return to_unit8(frame, header, window, frame_index, auto)


def auto_range(frames: list[np.ndarray], header: Any, frame_index: int = 0) -> tuple[float, float]:
    """Min/max modality value over frames: the default window when the header has none."""
    lo = min(float(f.min()) for f in frames)
    hi = max(float(f.max()) for f in frames)
    ends = modality(np.array([lo, hi]), header, frame_index)
    return float(ends.min()), float(ends.max())
