"""dimse/fastsend.py without a network: Part 10 body extraction and P-DATA fragmentation."""
from __future__ import annotations

import struct
from io import BytesIO

import pydicom
from conftest import sample_file

from dimse.fastsend import PreEncoded, _pdus, part10_body


def test_part10_body_is_the_data_set_after_the_meta() -> None:
    raw = sample_file("CT_small.dcm").read_bytes()
    body = bytes(part10_body(raw))
    ds = pydicom.dcmread(BytesIO(raw))
    again = BytesIO()
    ds.save_as(again, enforce_file_format=True)
    assert bytes(part10_body(again.getvalue())) == body
    # no preamble: starts with the meta group
    assert bytes(part10_body(raw[128 + 4:])) == body
    from pydicom.filereader import read_dataset
    plain = read_dataset(BytesIO(body), ds.file_meta.TransferSyntaxUID.is_implicit_VR,
                         ds.file_meta.TransferSyntaxUID.is_little_endian)
    assert plain.SOPInstanceUID == ds.SOPInstanceUID


def _parse(pdus: list) -> list[tuple[int, int, bytes, int]]:
    """(context id, message control header, fragment, PDU length) of each P-DATA-TF."""
    out = []
    blob = b"".join(bytes(p) for p in pdus)
    pos = 0
    while pos < len(blob):
        kind, _, length = struct.unpack_from(">BBI", blob, pos)
        assert kind == 0x04
        item_len, cx, mch = struct.unpack_from(">IBB", blob, pos + 6)
        assert item_len == length - 4
        out.append((cx, mch, blob[pos + 12:pos + 6 + length], length))
        pos += 6 + length
    return out


def test_pdus_fragment_command_then_data_set_within_the_maximum() -> None:
    command, body = b"C" * 100, bytes(range(256)) * 40  # 10,240 bytes
    frames = _parse(_pdus(5, command, memoryview(body), 4096))
    assert [f[0] for f in frames] == [5] * len(frames)
    assert frames[0][1] == 0x03 and frames[0][2] == command  # last (and only) command fragment
    data = frames[1:]
    assert [f[1] for f in data] == [0x00] * (len(data) - 1) + [0x02]
    assert all(f[3] <= 4096 for f in frames)
    assert b"".join(f[2] for f in data) == body


def test_pdus_unlimited_and_exact_multiple() -> None:
    body = b"x" * (4090 * 2)  # exactly two full fragments at a 4096-byte maximum
    frames = _parse(_pdus(1, b"cmd", memoryview(body), 4096))
    assert [f[1] for f in frames] == [0x03, 0x00, 0x02]
    assert len(_parse(_pdus(1, b"cmd", memoryview(body), 0))) == 2


def test_pre_encoded_carries_only_the_uids() -> None:
    ds = PreEncoded("1.2.840.10008.5.1.4.1.1.2", "1.2.3", "1.2.840.10008.1.2.1", b"abc")
    assert bool(ds) and ds.SOPInstanceUID == "1.2.3" and len(ds) == 2
    assert bytes(ds.yy_body) == b"abc" and ds.yy_transfer_syntax == "1.2.840.10008.1.2.1"
