"""Reading one received instance into what storage/ and index/ keep (no I/O beyond the source)."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import orjson
import pydicom
from pydicom import Dataset
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.errors import BytesLengthException, InvalidDicomError
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import UID

from index.model import InstanceRecord, Origin
from yunying.dicomjson import BULK_PREFIX, dataset_json
from yunying.errors import InvalidInstance, SOPClassMismatch, UnsupportedTransferSyntax
from yunying.lenient import noting, unknown_vrs
from yunying.sequences import check_sequences

PIXEL_DATA = 0x7FE00010
STREAM_ABOVE = 64 << 20  # larger files are parsed in place: pixel data never sits in memory
UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
NATIVE_SYNTAXES = {pydicom.uid.ImplicitVRLittleEndian, pydicom.uid.ExplicitVRLittleEndian,
                   pydicom.uid.ExplicitVRBigEndian, pydicom.uid.DeflatedExplicitVRLittleEndian}


@dataclass
class Parsed:
    """One received instance, split into header, pixel payload and index facts."""

    header: Dataset  # everything but PixelData, with file meta
    transfer_syntax: str
    sop_class: str
    sop: str
    study: str
    series: str
    digest: str
    size: int
    pixel_form: str  # none | native | encapsulated | blob
    frames: int = 0
    native: Any = None  # (frames, *frame_shape) array, or bigfile.FrameFile: shape, dtype, frames in order
    blob: bytes | memoryview | None = None  # encapsulated value or unusual native value, bit-exact
    extra: dict[str, Any] = field(default_factory=dict)
    head: bytes = b""  # Part 10 bytes of the instance without its PixelData element
    meta_agrees: bool = False  # the received file meta named this SOP class and instance
    json: dict[str, Any] | None = None  # the header's DICOM JSON when read in one pass (ingest_fast)


def _digest(src: Any) -> tuple[str, int]:
    h = hashlib.sha256()
    if isinstance(src, (bytes, bytearray, memoryview)):
        h.update(src)
        return h.hexdigest(), len(src)
    size = 0
    src.seek(0)
    while chunk := src.read(1 << 20):
        h.update(chunk)
        size += len(chunk)
    src.seek(0)
    return h.hexdigest(), size


def check_uid(name: str, value: Any) -> str:
    """A UID per PS3.5 9.1, or InvalidInstance naming the attribute."""
    text = str(value or "").rstrip("\0 ")
    if not text:
        raise InvalidInstance(f"{name} is missing")
    if len(text) > 64 or not UID_RE.match(text):
        raise InvalidInstance(f"{name} is not a valid UID")
    return text


def parse_instance(source: Path | bytes | BinaryIO) -> Parsed:
    """Parse a Part 10 stream (preamble and file meta optional); raises ArchiveError subclasses."""
    if isinstance(source, Path):
        if source.stat().st_size >= STREAM_ABOVE:
            from yunying.bigfile import parse_large

            return parse_large(source)
        data = source.read_bytes()
        return _parse(data, io.BytesIO(data))
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _parse(bytes(source), io.BytesIO(source))
    return _parse(source, source)


def _parse(src: Any, fp: BinaryIO) -> Parsed:
    digest, size = _digest(src if isinstance(src, bytes) else fp)
    if isinstance(src, bytes):
        from yunying.ingest_fast import parse_fast  # it builds on this module

        fast = parse_fast(src, digest, size)
        if fast is not None:
            return fast
    return parse_pydicom(fp, digest, size, None if isinstance(src, bytes) else 1 << 16)


def parse_pydicom(fp: BinaryIO, digest: str, size: int, defer_size: int | None = None) -> Parsed:
    """The instance read by pydicom: what every instance ingest_fast does not take goes through."""
    with noting() as converted:  # values pydicom could only keep as UN (yunying/lenient.py)
        ds = read_dataset(fp, defer_size=defer_size)
        parsed = identify(ds, digest, size)
        notes = unknown_vrs(ds) + check_sequences(ds)
        raw = ds.get_item(PIXEL_DATA) if PIXEL_DATA in ds else None
        if raw is not None:
            _split_pixels(parsed, ds, fp, UID(parsed.transfer_syntax))
            keep_image_module(parsed, ds)
        _cut_header(parsed, ds, fp, raw)
    if notes or converted:
        parsed.extra["warnings"] = notes + converted
    return parsed


def keep_image_module(parsed: Parsed, ds: Dataset) -> None:
    """The Image Pixel module beside the row, so frame requests never re-read a header."""
    from yunying.pixels import FrameInfo

    try:
        info = FrameInfo.from_dataset(ds)  # its fields are ints and a str: no deep copy (asdict)
        parsed.extra["image"] = {f.name: getattr(info, f.name) for f in dataclasses.fields(info)}
    except (AttributeError, TypeError, ValueError):
        pass  # an unusable module: frame requests read the header and answer why


def read_dataset(fp: BinaryIO, **kwargs: Any) -> Dataset:
    """pydicom's reading, with every way it can fail turned into InvalidInstance."""
    if fp.seek(0, 2) < 8:
        raise InvalidInstance("empty or truncated DICOM stream")
    fp.seek(0)
    try:
        ds = pydicom.dcmread(fp, force=True, **kwargs)
        ds.file_meta  # noqa: B018 - touch: file meta must parse
        elems = list(ds.keys())  # forces the top level to be read
    except (InvalidDicomError, EOFError, ValueError, struct.error, OSError, NotImplementedError,
            KeyError, TypeError, AttributeError, BytesLengthException) as exc:
        raise InvalidInstance(f"not a readable DICOM data set: {type(exc).__name__}") from None
    if not elems:
        raise InvalidInstance("not a DICOM data set: no elements")
    return ds


def identify(ds: Dataset, digest: str, size: int) -> Parsed:
    """Transfer syntax and the four UIDs every stored instance needs (PS3.3 C.12.1, PS3.10 7.1)."""
    meta = ds.file_meta
    ts = str(meta.get("TransferSyntaxUID") or "")
    had_ts = bool(ts)
    if not ts:
        ts = pydicom.uid.ImplicitVRLittleEndian if ds.original_encoding[0] else (
            pydicom.uid.ExplicitVRLittleEndian if ds.original_encoding[1] else pydicom.uid.ExplicitVRBigEndian)
        meta.TransferSyntaxUID = ts
    if not UID(ts).is_transfer_syntax:
        raise UnsupportedTransferSyntax(f"unknown transfer syntax {ts}")
    try:
        sop_class = check_uid("SOPClassUID", ds.get("SOPClassUID"))
        sop = check_uid("SOPInstanceUID", ds.get("SOPInstanceUID"))
        study = check_uid("StudyInstanceUID", ds.get("StudyInstanceUID"))
        series = check_uid("SeriesInstanceUID", ds.get("SeriesInstanceUID"))
    except (ValueError, TypeError, struct.error):
        raise InvalidInstance("unreadable UID attributes") from None
    agrees = had_ts and (meta.get("MediaStorageSOPClassUID"), meta.get("MediaStorageSOPInstanceUID")) == (sop_class, sop)
    if not agrees:
        meta.MediaStorageSOPClassUID = UID(sop_class)
        meta.MediaStorageSOPInstanceUID = UID(sop)
    return Parsed(header=ds, transfer_syntax=ts, sop_class=sop_class, sop=sop, study=study,
                  series=series, digest=digest, size=size, pixel_form="none", meta_agrees=agrees)


def _cut_header(parsed: Parsed, ds: Dataset, fp: BinaryIO, raw: Any) -> None:
    """Keep the received data set bytes exactly, minus the PixelData element (design rule 1)."""
    if UID(parsed.transfer_syntax) == pydicom.uid.DeflatedExplicitVRLittleEndian:
        parsed.head = _reencoded(ds)  # the deflated stream has no byte offsets to cut at
        return
    start = _dataset_start(fp)
    meta = _received_meta(ds, fp, start, parsed) or _meta_bytes(ds)
    fp.seek(start)
    if raw is None:
        parsed.head = meta + fp.read()
        return
    little = ds.original_encoding[1]
    tag = struct.pack("<HH" if little else ">HH", 0x7FE0, 0x0010)
    tell = raw.value_tell
    fp.seek(max(tell - 12, 0))
    before_value = fp.read(min(tell, 12))
    # the element header is 12 bytes (explicit VR) or 8 (implicit), whatever the meta claims
    elem_start = tell - (12 if before_value[-12:-8] == tag and before_value[-8:-6] in (b"OB", b"OW") else 8)
    if parsed.pixel_form == "encapsulated":
        assert parsed.blob is not None
        elem_end = tell + len(parsed.blob) + 8
    else:
        elem_end = tell + raw.length
    fp.seek(elem_start)
    elem_head = fp.read(tell - elem_start)
    fp.seek(elem_end - 8)
    tail = fp.read(8) if parsed.pixel_form == "encapsulated" else b""
    if elem_start < start or not elem_head.startswith(tag) or tail not in (b"", b"\xfe\xff\xdd\xe0\0\0\0\0"):
        parsed.head = _reencoded(ds)
        return
    fp.seek(start)
    before = fp.read(elem_start - start)
    fp.seek(elem_end)
    parsed.head = meta + before + fp.read()
    parsed.extra.update(cut=len(meta) + len(before), elem_head=elem_head.hex(), elem_tail=tail.hex())


def _dataset_start(fp: BinaryIO) -> int:
    """Offset of the first data set element: after the preamble and the file meta group (PS3.10 7.1)."""
    fp.seek(0)
    pos = 132 if fp.read(132)[128:132] == b"DICM" else 0
    long_vrs = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
    while True:
        fp.seek(pos)
        head = fp.read(8)
        if len(head) < 8 or struct.unpack_from("<H", head)[0] != 0x0002:
            return pos
        if head[4:6] in long_vrs:
            pos += 12 + struct.unpack("<I", fp.read(4))[0]
        else:
            pos += 8 + struct.unpack_from("<H", head, 6)[0]


_META_REQUIRED = (0x00020001, 0x00020002, 0x00020003, 0x00020010, 0x00020012)


def _received_meta(ds: Dataset, fp: BinaryIO, start: int, parsed: Parsed) -> bytes | None:
    """The received file meta group, kept as it came when it is complete and agrees (PS3.10 7.1)."""
    meta = ds.file_meta
    fp.seek(128)
    meta_start = 132 if fp.read(4) == b"DICM" else 0
    if start - meta_start < 12 or any(tag not in meta for tag in _META_REQUIRED):
        return None
    if not parsed.meta_agrees or meta.get("TransferSyntaxUID") != parsed.transfer_syntax:
        return None
    fp.seek(meta_start)
    group = fp.read(start - meta_start)
    # (0002,0000) UL, explicit VR little endian, must count exactly the elements after it
    if group[:8] != b"\x02\x00\x00\x00UL\x04\x00" or struct.unpack_from("<I", group, 8)[0] != len(group) - 12:
        return None
    return b"\0" * 128 + b"DICM" + group  # the preamble is not kept (PS3.10 7.5: it may hold anything)


def _meta_bytes(ds: Dataset) -> bytes:
    buf = DicomBytesIO()
    buf.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(buf, ds.file_meta, enforce_standard=True)
    return buf.getvalue()


def _reencoded(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    try:
        ds.save_as(buf, enforce_file_format=True)
    except (TypeError, ValueError, AttributeError, struct.error) as exc:
        raise InvalidInstance(f"data set cannot be re-encoded: {exc}") from None
    return buf.getvalue()


def _split_pixels(parsed: Parsed, ds: Dataset, fp: BinaryIO, ts: UID) -> None:
    raw = ds.get_item(PIXEL_DATA)
    try:
        frames = int(ds.get("NumberOfFrames") or 1)
    except (ValueError, TypeError):
        raise SOPClassMismatch("NumberOfFrames is not a number") from None
    if frames < 1:
        raise SOPClassMismatch("NumberOfFrames must be at least 1")
    parsed.frames = frames
    if ts.is_encapsulated:
        value = raw.value if isinstance(raw, (RawDataElement, DataElement)) else None
        if not isinstance(value, (bytes, bytearray)):
            raise InvalidInstance("encapsulated PixelData could not be read")
        parsed.pixel_form, parsed.blob = "encapsulated", bytes(value)
        parsed.extra["frames"] = frame_map(bytes(value), frames)
        parsed.extra["vr"] = raw.VR if raw.VR in ("OB", "OW") else "OB"
        del ds[PIXEL_DATA]
        return
    value = _native_value(raw, fp)
    parsed.extra["vr"] = native_vr(ds, raw.VR)
    del ds[PIXEL_DATA]
    layout = native_layout(ds, frames, len(value), ts)
    if layout is None:
        parsed.pixel_form, parsed.blob = "blob", value
        return
    dtype, shape, count = layout
    arr = np.frombuffer(value, dtype=dtype, count=count).reshape(frames, *shape)
    set_native(parsed, arr, dtype, shape, bytes(value[count * dtype.itemsize:]))


def native_vr(ds: Dataset, vr: str | None) -> str:
    """OB or OW as received; by BitsAllocated when the data set was implicit (PS3.5 A.1)."""
    try:
        return vr if vr in ("OB", "OW") else ("OW" if int(ds.get("BitsAllocated", 8) or 8) > 8 else "OB")
    except (ValueError, TypeError):
        raise SOPClassMismatch("BitsAllocated is not a number") from None


def native_layout(ds: Dataset, frames: int, length: int, ts: UID) -> tuple[np.dtype, tuple[int, ...], int] | None:
    """(dtype as received, frame shape, item count) when the value is plain frames; None keeps it as a blob."""
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        spp, bits = int(ds.get("SamplesPerPixel", 1)), int(ds.BitsAllocated)
        planar = int(ds.get("PlanarConfiguration", 0) or 0)
    except (AttributeError, ValueError, TypeError):
        raise SOPClassMismatch("PixelData without valid Rows, Columns, BitsAllocated") from None
    photometric = str(ds.get("PhotometricInterpretation", ""))
    frame_bytes = rows * cols * spp * bits // 8
    if photometric.endswith("_422"):
        frame_bytes = rows * cols * 2 * bits // 8  # PS3.3 C.7.6.3.1.2: two samples per pixel pair
    if bits % 8 == 0 and length < frames * frame_bytes:
        raise SOPClassMismatch(
            f"PixelData holds {length} bytes, {frames} frame(s) of {rows}x{cols}x{spp} at {bits} bits need "
            f"{frames * frame_bytes}")
    simple = (bits in (8, 16, 32, 64) and not photometric.endswith("_422")
              and length in (frames * frame_bytes, frames * frame_bytes + 1) and rows and cols)
    if not simple:
        return None
    big = ts == pydicom.uid.ExplicitVRBigEndian and bits > 8
    dtype = np.dtype(f"{'>' if big else '<'}u{bits // 8}")
    shape = (rows, cols) if spp == 1 else ((spp, rows, cols) if planar else (rows, cols, spp))
    return dtype, shape, frames * frame_bytes // dtype.itemsize


def set_native(parsed: Parsed, arr: np.ndarray, dtype: np.dtype, shape: tuple[int, ...], pad: bytes) -> None:
    """Record native frames (converted to little-endian frame by frame when written)."""
    parsed.native = arr
    parsed.pixel_form = "native"
    parsed.extra.update(shape=list(shape), dtype=dtype.newbyteorder("<").str, big_endian=dtype.byteorder == ">")
    if pad:
        parsed.extra["pad"] = bytes(pad).hex()


def _native_value(raw: Any, fp: BinaryIO) -> bytes | memoryview:
    value = getattr(raw, "value", None)
    if value is not None:
        return value
    tell, length = getattr(raw, "value_tell", None), getattr(raw, "length", None)
    if tell is None or length is None:
        raise InvalidInstance("PixelData could not be read")
    fp.seek(tell)
    data = fp.read(length)
    if len(data) != length:
        raise InvalidInstance("PixelData is truncated")
    return data


def frame_map(value: bytes, frames: int) -> list[list[list[int]]] | None:
    """Per frame, the (offset, length) of its fragments in an encapsulated value (PS3.5 A.4)."""
    return assign_fragments(list(walk_items(lambda o, n: value[o:o + n], len(value))), frames,
                            lambda o, n: value[o:o + n])


def walk_items(read: Any, limit: int) -> Iterator[tuple[int, int]]:
    """(offset, length) of each item's data up to the sequence delimiter; the first is the offset table."""
    pos = 0
    while pos + 8 <= limit:
        group, elem, length = struct.unpack("<HHI", read(pos, 8))
        if (group, elem) == (0xFFFE, 0xE0DD):
            return
        if (group, elem) != (0xFFFE, 0xE000) or length == 0xFFFFFFFF or pos + 8 + length > limit:
            raise InvalidInstance("encapsulated PixelData has a malformed item")
        yield pos + 8, length
        pos += 8 + length


def assign_fragments(items: list[tuple[int, int]], frames: int, read: Any) -> list[list[list[int]]] | None:
    """Group fragments into frames: by count, by the Basic Offset Table, or by JPEG EOI markers."""
    if len(items) < 2:
        raise InvalidInstance("encapsulated PixelData has no fragments")
    bot, frags = items[0], items[1:]
    if frames == 1:
        return [[list(f) for f in frags]]
    if len(frags) == frames:
        return [[list(f)] for f in frags]
    starts: list[int] = []
    if bot[1] and bot[1] // 4 == frames:
        first_item = frags[0][0] - 8
        starts = [first_item + o for o in struct.unpack(f"<{frames}I", read(bot[0], bot[1]))]
    else:  # no offset table: frames end where a fragment ends with a JPEG EOI marker (PS3.5 A.4)
        ends = [i for i, (o, n) in enumerate(frags) if read(o + max(n - 4, 0), min(n, 4)).rstrip(b"\0")[-2:] == b"\xff\xd9"]
        if len(ends) != frames:
            return None
        starts, prev = [], 0
        for e in ends:
            starts.append(frags[prev][0] - 8)
            prev = e + 1
    out: list[list[list[int]]] = [[] for _ in range(frames)]
    for off, length in frags:
        k = max(i for i, s in enumerate(starts) if s <= off - 8) if starts[0] <= off - 8 else -1
        if k < 0:
            return None
        out[k].append([off, length])
    return out if all(out) else None


def instance_json(header: Dataset, parsed: Parsed) -> dict[str, Any]:
    """DICOM JSON of an instance (PS3.18 Annex F) with bulk data as placeholders for BulkDataURIs."""
    base = f"studies/{parsed.study}/series/{parsed.series}/instances/{parsed.sop}/bulkdata/"
    out = dict(parsed.json) if parsed.json is not None else dataset_json(header, base)
    if parsed.pixel_form != "none":
        out["7FE00010"] = {"vr": parsed.extra.get("vr", "OW"), "BulkDataURI": f"{BULK_PREFIX}{base}7FE00010"}
    return dict(sorted(out.items()))


def dump_record(record: InstanceRecord) -> bytes:
    """The index record of a version, kept beside its bytes so the index can be rebuilt."""
    return orjson.dumps({
        "json": record.json, "transfer_syntax": record.transfer_syntax, "pixel_form": record.pixel_form,
        "frames": record.frames, "size": record.size, "digest": record.digest,
        "storage_key": record.storage_key, "received": record.received.isoformat(), "extra": record.extra,
        "origin": {"face": record.origin.face, "source": record.origin.source,
                   "institution": record.origin.institution, "hospital": record.origin.hospital,
                   "department": record.origin.department}})


def load_record(data: bytes) -> InstanceRecord:
    """The inverse of dump_record (a record written before issue 11 belongs to the default hospital)."""
    raw = orjson.loads(data)
    return InstanceRecord(
        json=raw["json"], transfer_syntax=raw["transfer_syntax"], pixel_form=raw["pixel_form"],
        frames=raw["frames"], size=raw["size"], digest=raw["digest"], storage_key=raw["storage_key"],
        origin=Origin(**raw["origin"]), received=datetime.fromisoformat(raw["received"]), extra=raw["extra"])
