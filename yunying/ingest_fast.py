"""The common instance parsed in one pass (yunying.rawparse) into what yunying.ingest's pydicom
path would have made of it: the same Parsed, the same DICOM JSON, the same header cut.

None means "not the common case": the caller parses with pydicom, which also decides what is
wrong with a bad instance (this path never refuses one).
"""
from __future__ import annotations

import functools

import numpy as np
from pydicom import Dataset
from pydicom.uid import UID

from yunying.ingest import (
    Parsed,
    check_uid,
    frame_map,
    keep_image_module,
    native_layout,
    native_vr,
    set_native,
)
from yunying.rawparse import UIDS, Reading, Unusual, image_attrs, read, rebase, single

_BASE = "\0base\0/"
# the header of a one-pass parse: its JSON is in Parsed.json; nothing reads or writes this one
# (a Dataset of its own per instance cost ~15 us)
_NO_HEADER = Dataset()
_uid = functools.lru_cache(maxsize=256)(UID)  # BulkDataURI placeholder base until the UIDs are known


def parse_fast(data: bytes, digest: str, size: int) -> Parsed | None:
    """The Parsed of `data` when it is the common case, else None."""
    try:
        r = read(data, _BASE)
        return _parsed(r, digest, size)
    except Exception:  # noqa: BLE001 - Unusual, or bytes it cannot make sense of: pydicom decides
        return None


def _parsed(r: Reading, digest: str, size: int) -> Parsed:
    js = r.json
    uids = {name: check_uid(name, single(js, key)) for name, key in UIDS.items()}
    if (r.meta_sop_class, r.meta_sop) != (uids["SOPClassUID"], uids["SOPInstanceUID"]):
        raise Unusual("file meta disagrees")  # pydicom's path writes a new file meta
    parsed = Parsed(header=_NO_HEADER, transfer_syntax=r.transfer_syntax, sop_class=uids["SOPClassUID"],
                    sop=uids["SOPInstanceUID"], study=uids["StudyInstanceUID"],
                    series=uids["SeriesInstanceUID"], digest=digest, size=size, pixel_form="none",
                    meta_agrees=True)
    rebase(js, _BASE, f"studies/{parsed.study}/series/{parsed.series}/instances/{parsed.sop}/bulkdata/")
    parsed.json = js
    data, meta = r.data, b"\0" * 128 + r.data[128:r.meta_end]
    if r.pixel is None:
        parsed.head = meta + data[r.meta_end:]
        return parsed
    attrs = image_attrs(js)
    vr, start, length, end = r.pixel
    frames = int(attrs.get("NumberOfFrames") or 1)
    if frames < 1:
        raise Unusual("NumberOfFrames")
    parsed.frames = frames
    if r.encapsulated:
        blob = data[start:start + length]
        parsed.pixel_form, parsed.blob = "encapsulated", blob
        parsed.extra["frames"] = frame_map(blob, frames)
        parsed.extra["vr"] = vr
    else:
        value = memoryview(data)[start:start + length]  # no copy: the frames are compressed from it
        parsed.extra["vr"] = native_vr(attrs, vr)  # type: ignore[arg-type]
        layout = native_layout(attrs, frames, length, _uid(r.transfer_syntax))  # type: ignore[arg-type]
        if layout is None:
            parsed.pixel_form, parsed.blob = "blob", value
        else:
            dtype, shape, count = layout
            arr = np.frombuffer(value, dtype=dtype, count=count).reshape(frames, *shape)
            set_native(parsed, arr, dtype, shape, bytes(value[count * dtype.itemsize:]))
    keep_image_module(parsed, attrs)  # type: ignore[arg-type]
    elem_start = start - 12  # an explicit VR OB/OW element header
    parsed.head = meta + data[r.meta_end:elem_start] + data[end:]
    parsed.extra.update(cut=len(meta) + elem_start - r.meta_end, elem_head=data[elem_start:start].hex(),
                        elem_tail=data[end - 8:end].hex() if r.encapsulated else "")
    return parsed
