"""A QIDO-RS answer never carries the index's internal bulk data placeholders: bulk data nested in
a sequence (a VOI LUT's table) is left out like top-level bulk data, and WADO-RS metadata gives
it as a real BulkDataURI that answers."""
from __future__ import annotations

import io

import httpx
import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from benchmarks.net import YunyingServer
from tests.frontends.phantom import ct_slice, stow


def _with_voi_lut_table(study: str, series: str) -> bytes:
    from pydicom import dcmread

    ds = dcmread(io.BytesIO(ct_slice(0, study, series, 32)))
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 16]
    item.LUTData = np.arange(4096, dtype=np.uint16).tobytes()  # 8 KB: kept as bulk data
    ds.VOILUTSequence = [item]
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def test_includefield_all_answers_no_internal_bulk_uri(server: YunyingServer) -> None:
    study, series = generate_uid(), generate_uid()
    stow(server, [_with_voi_lut_table(study, series)])
    with httpx.Client(base_url=server.dicomweb_url, headers=server.headers, timeout=30) as c:
        r = c.get(f"/studies/{study}/instances", params={"includefield": "all"})
        assert r.status_code == 200 and "yy-bulk" not in r.text
        voi = r.json()[0]["00283010"]["Value"][0]
        assert voi["00283002"]["Value"] == [4096, 0, 16] and "00283006" not in voi  # the table is left out
        meta = c.get(f"/studies/{study}/series/{series}/metadata").json()[0]["00283010"]["Value"][0]
        uri = meta["00283006"]["BulkDataURI"]
        assert uri.startswith("http")
        bulk = c.get(uri, headers={"Accept": 'multipart/related; type="application/octet-stream"'})
        assert bulk.status_code == 200 and np.arange(4096, dtype=np.uint16).tobytes() in bulk.content
