"""Many STOW-RS and QIDO-RS clients at once: everything acknowledged is stored, counters stay exact."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from pydicom.uid import generate_uid

from benchmarks.net import YunyingServer
from tests import web
from tests.dicomweb.helpers import make_ct, multipart, part10


def test_parallel_stow_and_qido_lose_nothing(fresh_server: YunyingServer) -> None:
    base = fresh_server.dicomweb_url
    studies = [generate_uid() for _ in range(4)]
    series = {s: generate_uid() for s in studies}

    def stow(k: int) -> list[str]:
        study = studies[k % 4]
        batch = [make_ct(study, series[study], number=k * 10 + i) for i in range(5)]
        body, ctype = multipart(*(part10(d) for d in batch))
        with web.Client(timeout=120) as client:
            resp = client.post(base + "/studies", content=body, headers={"Content-Type": ctype})
            assert resp.status_code == 200, resp.text
            # a QIDO client reads while others write: never an error, never a partial row
            q = client.get(base + "/studies", params={"StudyInstanceUID": study})
            assert q.status_code == 200
        return [d.SOPInstanceUID for d in batch]

    with ThreadPoolExecutor(max_workers=8) as pool:
        stored = [uid for batch in pool.map(stow, range(40)) for uid in batch]
    assert len(stored) == 200
    total = 0
    for study in studies:
        inst = web.get(f"{base}/studies/{study}/instances", timeout=60).json()
        total += len(inst)
        [row] = web.get(base + "/studies", params={"StudyInstanceUID": study}).json()
        assert row["00201208"]["Value"] == [len(inst)] and row["00201206"]["Value"] == [1]
        [srow] = web.get(f"{base}/studies/{study}/series").json()
        assert srow["00201209"]["Value"] == [len(inst)]
    assert total == 200
    found = {i["00080018"]["Value"][0] for s in studies for i in web.get(f"{base}/studies/{s}/instances").json()}
    assert found == set(stored)


def test_delete_right_after_store_wins(fresh_server: YunyingServer) -> None:
    """An acknowledged store still on its way to the index is not resurrected by it after a DELETE."""
    base = fresh_server.dicomweb_url
    with web.Client(timeout=60) as client:
        for _ in range(15):
            study = generate_uid()
            body, ctype = multipart(*(part10(make_ct(study, number=i)) for i in range(4)))
            assert client.post(base + "/studies", content=body, headers={"Content-Type": ctype}).status_code == 200
            assert client.delete(f"{base}/studies/{study}").status_code == 204
            assert client.get(base + "/studies", params={"StudyInstanceUID": study}).json() == []
            assert client.get(f"{base}/studies/{study}/metadata").status_code == 404
