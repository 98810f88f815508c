"""Cloud film: 4200x5100 at 300 dpi, the right images in the right cells, the same bytes twice,
PNG and PDF, 404 outside the caller's exams."""
from __future__ import annotations

import io

import httpx
import numpy as np
import pydicom
from PIL import Image
from pydicom.uid import generate_uid

from benchmarks.net import YunyingServer
from tests.dicomweb.helpers import make_ct, multipart, part10
from tests.portal.test_downloads import patient_of


def flat_ct(study: str, series: str, number: int, value: int) -> pydicom.Dataset:
    ds = make_ct(study, series, number=number, rows=64, cols=64, name="Zhang^San", ideographic="张三",
                 charset="ISO_IR 192")
    ds.WindowCenter, ds.WindowWidth = 2000, 4000
    ds.PixelData = np.full((64, 64), value, np.uint16).tobytes()
    return ds


def test_film_is_14x17_at_300_dpi_with_the_images_in_order(srv: YunyingServer) -> None:
    study, series = generate_uid(), generate_uid()
    values = [0, 1000, 2000, 3000, 4000]  # brightness rises with InstanceNumber: each cell is checkable
    body, ctype = multipart(*[part10(flat_ct(study, series, n + 1, v)) for n, v in enumerate(values)])
    assert httpx.post(srv.dicomweb_url + "/studies", content=body,
                      headers={"Content-Type": ctype, **srv.headers}).status_code == 200
    patient = patient_of(srv, study, "13000000077")
    url = f"{srv.http_url}/api/portal/film?study={study}"
    r = httpx.get(url, headers=patient, timeout=60)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    img = Image.open(io.BytesIO(r.content))
    assert img.size == (4200, 5100) and round(img.info["dpi"][0]) == 300
    # 5 images -> a 2x3 grid; cell centres in reading order get brighter
    cols, rows, margin, gap, header = 2, 3, 60, 12, 330
    cw, ch = (4200 - 2 * margin - gap) // cols, (5100 - header - 2 * margin - 2 * gap) // rows
    grey = np.asarray(img.convert("L"))
    centres = [grey[header + margin + (i // cols) * (ch + gap) + ch // 2, margin + (i % cols) * (cw + gap) + cw // 2]
               for i in range(5)]
    assert centres == sorted(centres) and centres[0] < 20 and centres[-1] > 235, centres
    assert grey[header + margin + 2 * (ch + gap) + ch // 2, margin + cw + gap + cw // 2] == 0  # the 6th is empty
    assert httpx.get(url, headers=patient, timeout=60).content == r.content  # the same film again
    pdf = httpx.get(url + "&format=pdf&layout=1x1", headers=patient, timeout=60)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert b"/MediaBox [ 0 0 1008.0 1224.0 ]" in pdf.content  # 14x17 inches in points
    assert httpx.get(url + "&layout=9x99", headers=patient).status_code == 400
    assert httpx.get(url + "&format=gif", headers=patient).status_code == 400
    other = generate_uid()
    assert httpx.get(f"{srv.http_url}/api/portal/film?study={other}", headers=patient).status_code == 404
