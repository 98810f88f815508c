"""Interop matrix (issue 5): objects stored through each face (STOW-RS, C-STORE) are found and
retrieved through every other face (QIDO-RS, C-FIND, WADO-RS, C-MOVE, C-GET), and what comes
back introduces no dciodvfy error the original did not have."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.dataset import Dataset

from benchmarks.net import YunyingServer, free_port, start_yunying
from conformance.checks import dimse as d
from conformance.checks.qido import qido
from conformance.checks.wado import dciodvfy_errors, part_datasets, retrieve
from conformance.data import Instance, build_test_data
from conformance.runner import DEFAULT_CALLING_AET, Context, Dimse
from tests.conftest import missing_tool

DCIODVFY = Path("/usr/bin/dciodvfy")
IN_FACES = ("stow", "c-store")
OUT_FACES = ("qido", "c-find", "wado", "c-move", "c-get")



@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Context]]:
    """One archive; one test study stored through each in-face; a Context per in-face."""
    move_port = free_port()
    srv: YunyingServer = start_yunying(tmp_path_factory.mktemp("interop") / "data",
                                       peers={DEFAULT_CALLING_AET: ("127.0.0.1", move_port)})
    contexts: dict[str, Context] = {}
    try:
        for face in IN_FACES:
            ctx = Context(srv.dicomweb_url,
                          Dimse("127.0.0.1", srv.dimse_port, srv.aet, DEFAULT_CALLING_AET,
                                move_port), build_test_data(), api_key=srv.api_key)
            if face == "stow":
                assert ctx.stow(ctx.data.studies["A"]).status_code == 200
            else:
                for inst in ctx.data.studies["A"]:
                    assert d._c_store(ctx, inst) == 0x0000, inst.sop_class
            contexts[face] = ctx
        yield contexts
    finally:
        for ctx in contexts.values():
            ctx.close()
        srv.stop()


def _retrieved(face: str, ctx: Context) -> list[Dataset]:
    study = ctx.data.study_uid("A")
    if face == "wado":
        parts = retrieve(ctx, f"studies/{study}",
                         'multipart/related; type="application/dicom"; transfer-syntax=*')
        return part_datasets(parts)
    if face == "c-get":
        status, got = d._get(ctx, {"StudyInstanceUID": study}, "STUDY")
        assert status == 0x0000, hex(status)
        return got
    assert ctx.dimse and ctx.dimse.move_port
    scp = d._StoreSCP(ctx.dimse.calling_aet, ctx.dimse.move_port)
    try:
        status = d._move(ctx, ctx.dimse.calling_aet, {"StudyInstanceUID": study}, "STUDY")
    finally:
        scp.stop()
    assert status == 0x0000, hex(status)
    return scp.received


def _found(face: str, ctx: Context) -> set[str]:
    study = ctx.data.study_uid("A")
    if face == "qido":
        objs = qido(ctx, f"studies/{study}/instances")
        return {o["00080018"]["Value"][0] for o in objs}
    # Hierarchical C-FIND (PS3.4 C.4.1.2.1): series first, then the instances of each series.
    series = d.c_find(ctx, "SERIES", {"StudyInstanceUID": study, "SeriesInstanceUID": ""})
    sops: set[str] = set()
    for s in series:
        found = d.c_find(ctx, "IMAGE", {"StudyInstanceUID": study,
                                        "SeriesInstanceUID": s.SeriesInstanceUID,
                                        "SOPInstanceUID": ""})
        sops |= {str(x.SOPInstanceUID) for x in found}
    return sops


@pytest.mark.parametrize("out_face", OUT_FACES)
@pytest.mark.parametrize("in_face", IN_FACES)
def test_stored_through_one_face_comes_back_through_another(
        stored: dict[str, Context], in_face: str, out_face: str) -> None:
    ctx = stored[in_face]
    originals: dict[str, Instance] = {i.sop: i for i in ctx.data.studies["A"]}
    if out_face in ("qido", "c-find"):
        assert _found(out_face, ctx) == set(originals)
        return
    got = _retrieved(out_face, ctx)
    assert {str(x.SOPInstanceUID) for x in got} == set(originals)
    if not DCIODVFY.exists():
        missing_tool("dicom3tools not installed")
    new_errors = {}
    for ds in got:
        orig = originals[str(ds.SOPInstanceUID)].ds
        extra = dciodvfy_errors(ds) - dciodvfy_errors(orig)
        if extra:
            new_errors[orig.SOPClassUID.name] = sorted(extra)[:3]
    assert not new_errors, new_errors
