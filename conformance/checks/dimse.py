"""DIMSE services, PS3.4 Annexes A (Verification), B (Storage), C (Query/Retrieve), with DCMTK
and pynetdicom as the clients. Objects stored through STOW are found through C-FIND and back."""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE, build_role, evt
from pynetdicom.association import Association
from pynetdicom.sop_class import (  # type: ignore[attr-defined]  # pynetdicom makes its SOP classes at import time
    CTImageStorage,
    MRImageStorage,
    MultiFrameGrayscaleWordSecondaryCaptureImageStorage,
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from conformance.data import Instance
from conformance.runner import Context, Dimse, Failed, Skipped, check

DCMTK = Path("/usr/bin")
STORAGE = (CTImageStorage, MRImageStorage, MultiFrameGrayscaleWordSecondaryCaptureImageStorage)
TIMEOUT = 30


def _dimse(ctx: Context) -> Dimse:
    assert ctx.dimse is not None
    return ctx.dimse


def _tool(name: str, *args: str, cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a DCMTK tool by absolute path (a venv's pynetdicom scripts shadow the names)."""
    exe = DCMTK / name
    if not exe.exists():
        raise Skipped(f"{exe} not installed (Debian package dcmtk)")
    env = {**os.environ, "TCP_NODELAY": "1"}   # DCMTK stalls ~40 ms per PDU without it
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=TIMEOUT * 2,
                          env=env, cwd=cwd, check=False)


def _peer(ctx: Context) -> list[str]:
    d = _dimse(ctx)
    return ["-aet", d.calling_aet, "-aec", d.aet, d.host, str(d.port)]


def _ae(ctx: Context) -> AE:
    ae = AE(ae_title=_dimse(ctx).calling_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = TIMEOUT
    return ae


@contextmanager
def _associate(ae: AE, ctx: Context, **kwargs: Any) -> Iterator[Association]:
    d = _dimse(ctx)
    assoc = ae.associate(d.host, d.port, ae_title=d.aet, **kwargs)
    if not assoc.is_established:
        raise Failed("association rejected or aborted")
    try:
        yield assoc
    finally:
        assoc.release()


def _status(status: Dataset | None) -> int:
    if status is None or "Status" not in status:
        raise Failed("no response (timeout or aborted association)")
    return int(status.Status)


def c_find(ctx: Context, level: str, keys: dict[str, object],
           model: Any = StudyRootQueryRetrieveInformationModelFind) -> list[Dataset]:
    """One C-FIND on a fresh association; the pending identifiers."""
    ae = _ae(ctx)
    ae.add_requested_context(model)
    query = Dataset()
    query.QueryRetrieveLevel = level
    for kw, val in keys.items():
        setattr(query, kw, val)
    out = []
    with _associate(ae, ctx) as assoc:
        for status, ident in assoc.send_c_find(query, model):
            code = _status(status)
            if code in (0xFF00, 0xFF01):
                if ident is None:
                    raise Failed("pending C-FIND response without an identifier")
                out.append(ident)
            elif code != 0x0000:
                raise Failed(f"C-FIND status 0x{code:04X}")
    return out


def ensure_dimse_stored(ctx: Context) -> None:
    """Study D goes in through C-STORE (pynetdicom) once; skip the caller if that failed."""
    if "D" not in ctx.stored:
        try:
            ctx.stored["D"] = all(_c_store(ctx, inst) == 0 for inst in ctx.data.studies["D"])
        except (Failed, OSError):
            ctx.stored["D"] = False
    if not ctx.stored["D"]:
        raise Skipped("test study D could not be stored through C-STORE")


def _c_store(ctx: Context, inst: Instance) -> int:
    ae = _ae(ctx)
    ae.add_requested_context(inst.sop_class, inst.transfer_syntax)
    with _associate(ae, ctx) as assoc:
        return _status(assoc.send_c_store(inst.ds))


@check("dimse-echo-dcmtk", "PS3.4 Annex A / PS3.7 §9.1.5", "C-ECHO with DCMTK echoscu", needs="dimse")
def echo_dcmtk(ctx: Context) -> None:
    res = _tool("echoscu", *_peer(ctx))
    if res.returncode != 0:
        raise Failed(f"echoscu exit {res.returncode}: {res.stderr.strip()[-160:]}")


@check("dimse-echo-pynetdicom", "PS3.4 Annex A", "C-ECHO with pynetdicom: status 0x0000", needs="dimse")
def echo_pynetdicom(ctx: Context) -> None:
    ae = _ae(ctx)
    ae.add_requested_context(Verification)
    with _associate(ae, ctx) as assoc:
        code = _status(assoc.send_c_echo())
    if code != 0:
        raise Failed(f"status 0x{code:04X}")


@check("dimse-store-pynetdicom", "PS3.4 Annex B.2.3", "C-STORE (pynetdicom) of two CT instances: 0x0000",
       needs="dimse")
def store_pynetdicom(ctx: Context) -> str:
    ctx.stored.pop("D", None)
    ensure_dimse_stored(ctx)
    return f"{len(ctx.data.studies['D'])} instances"


@check("dimse-store-dcmtk", "PS3.4 Annex B", "C-STORE with DCMTK storescu (re-store keeps one copy)",
       needs="dimse")
def store_dcmtk(ctx: Context) -> None:
    ensure_dimse_stored(ctx)
    # Re-send study D's first instance as stored; the archive must keep one copy (B.4.1).
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "d0.dcm"
        path.write_bytes(ctx.data.studies["D"][0].encode())
        res = _tool("storescu", *_peer(ctx), str(path))
    if res.returncode != 0:
        raise Failed(f"storescu exit {res.returncode}: {res.stderr.strip()[-160:]}")
    found = c_find(ctx, "IMAGE", {"StudyInstanceUID": ctx.data.study_uid("D"),
                                  "SeriesInstanceUID": ctx.data.studies["D"][0].series,
                                  "SOPInstanceUID": ""})
    if len(found) != len(ctx.data.studies["D"]):
        raise Failed(f"{len(found)} instances in the series after re-store, expected "
                     f"{len(ctx.data.studies['D'])}")


@check("dimse-find-study", "PS3.4 §C.6.2", "C-FIND STUDY level, PatientID wildcard: STOW and C-STORE studies",
       needs="dimse")
def find_study(ctx: Context) -> str:
    want = set()
    for name in ("A", "B"):
        if ctx.dicomweb:
            try:
                ctx.ensure_stored(name)
                want.add(ctx.data.study_uid(name))
            except Skipped:
                pass
    ensure_dimse_stored(ctx)
    want.add(ctx.data.study_uid("D"))
    found = c_find(ctx, "STUDY", {"PatientID": f"YYC{ctx.data.run}*", "StudyInstanceUID": "",
                                  "PatientName": "", "NumberOfStudyRelatedInstances": ""})
    got = {str(d.StudyInstanceUID) for d in found}
    if got != want:
        raise Failed(f"found {len(got)} studies, expected {len(want)}")
    return f"{len(got)} studies"


@check("dimse-find-charset", "PS3.4 §C.4.1.1.3.1 / PS3.5 §6.1",
       "C-FIND returns the ISO_IR 192 name intact", needs="dimse")
def find_charset(ctx: Context) -> str:
    ensure_dimse_stored(ctx)
    found = c_find(ctx, "STUDY", {"StudyInstanceUID": ctx.data.study_uid("D"), "PatientName": "",
                                  "SpecificCharacterSet": "ISO_IR 192"})
    if len(found) != 1:
        raise Failed(f"{len(found)} matches")
    name = str(found[0].PatientName)
    if name != "Wang^Wu=王^五":
        raise Failed(f"PatientName {name!r} (SpecificCharacterSet "
                     f"{found[0].get('SpecificCharacterSet')!r})")
    return str(found[0].get("SpecificCharacterSet"))


@check("dimse-find-series-image", "PS3.4 §C.6.2", "C-FIND SERIES and IMAGE levels list every series/instance",
       needs="dimse")
def find_series(ctx: Context) -> str:
    ensure_dimse_stored(ctx)
    study = ctx.data.study_uid("D")
    series = c_find(ctx, "SERIES", {"StudyInstanceUID": study, "SeriesInstanceUID": "",
                                    "Modality": ""})
    if {str(d.SeriesInstanceUID) for d in series} != set(ctx.data.series_of("D")):
        raise Failed(f"{len(series)} series")
    images = c_find(ctx, "IMAGE", {"StudyInstanceUID": study,
                                   "SeriesInstanceUID": ctx.data.studies["D"][0].series,
                                   "SOPInstanceUID": "", "SOPClassUID": ""})
    if {str(d.SOPInstanceUID) for d in images} != {i.sop for i in ctx.data.studies["D"]}:
        raise Failed(f"{len(images)} instances")
    return f"{len(series)} series, {len(images)} instances"


@check("dimse-find-patient-root", "PS3.4 §C.6.1", "Patient Root C-FIND at PATIENT level",
       needs="dimse")
def find_patient_root(ctx: Context) -> str:
    ensure_dimse_stored(ctx)
    found = c_find(ctx, "PATIENT", {"PatientID": ctx.data.patient_id("D"), "PatientName": ""},
                   PatientRootQueryRetrieveInformationModelFind)
    if len(found) != 1 or str(found[0].PatientID) != ctx.data.patient_id("D"):
        raise Failed(f"{len(found)} patients")
    return "1 patient"


@check("dimse-find-bad-level", "PS3.4 §C.4.1.1.4 / Table C.4-1",
       "C-FIND with QueryRetrieveLevel=NONSENSE: a failure status (A900 or Cxxx)", needs="dimse")
def find_bad_level(ctx: Context) -> str:
    ae = _ae(ctx)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    query = Dataset()
    query.QueryRetrieveLevel = "NONSENSE"
    query.StudyInstanceUID = ""
    codes = []
    with _associate(ae, ctx) as assoc:
        for status, _ in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind):
            codes.append(_status(status))
    final = codes[-1] if codes else -1
    if not (final == 0xA900 or 0xC000 <= final <= 0xCFFF):
        raise Failed(f"final status 0x{final:04X}")
    return f"0x{final:04X}"


@check("dimse-find-dcmtk", "PS3.4 §C.6.2", "C-FIND with DCMTK findscu (study level)", needs="dimse")
def find_dcmtk(ctx: Context) -> str:
    ensure_dimse_stored(ctx)
    with tempfile.TemporaryDirectory() as tmp:
        res = _tool("findscu", "-S", "-k", "QueryRetrieveLevel=STUDY",
                    "-k", f"StudyInstanceUID={ctx.data.study_uid('D')}", "-k", "PatientID",
                    "-k", "StudyDate", "-X", "-od", tmp, *_peer(ctx))
        files = sorted(Path(tmp).glob("rsp*.dcm"))
    if res.returncode != 0:
        raise Failed(f"findscu exit {res.returncode}: {res.stderr.strip()[-160:]}")
    if len(files) != 1:
        raise Failed(f"{len(files)} responses, expected 1")
    return "1 response"


def _get(ctx: Context, keys: dict[str, str], level: str) -> tuple[int, list[Dataset]]:
    received: list[Dataset] = []

    def on_store(event: evt.Event) -> int:
        ds = event.dataset
        ds.file_meta = event.file_meta
        received.append(ds)
        return 0x0000

    ae = _ae(ctx)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    for cls in STORAGE:
        ae.add_requested_context(cls)
    roles = [build_role(cls, scp_role=True) for cls in STORAGE]
    query = Dataset()
    query.QueryRetrieveLevel = level
    for kw, val in keys.items():
        setattr(query, kw, val)
    final = None
    with _associate(ae, ctx, ext_neg=roles, evt_handlers=[(evt.EVT_C_STORE, on_store)]) as assoc:
        for status, _ in assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet):
            final = _status(status)
    return final if final is not None else -1, received


@check("dimse-get-series", "PS3.4 §C.4.3", "C-GET (pynetdicom) of a STOW-stored series, dataset-equal",
       needs="dimse")
def get_series(ctx: Context) -> str:
    if not ctx.dicomweb:
        raise Skipped("needs --dicomweb to store the series")
    ctx.ensure_stored("A")
    ct = ctx.data.ct
    status, got = _get(ctx, {"StudyInstanceUID": ct.study, "SeriesInstanceUID": ct.series}, "SERIES")
    want = {i.sop: i for i in ctx.data.series_of("A")[ct.series]}
    if status != 0x0000:
        raise Failed(f"final status 0x{status:04X}, {len(got)} received")
    if {str(d.SOPInstanceUID) for d in got} != set(want):
        raise Failed(f"{len(got)} instances received, expected {len(want)}")
    for ds in got:
        orig = want[str(ds.SOPInstanceUID)].ds
        if ds.PixelData != orig.PixelData or ds.PatientName != orig.PatientName:
            raise Failed("retrieved instance differs (PixelData or PatientName)")
    return f"{len(got)} instances"


@check("dimse-get-dcmtk", "PS3.4 §C.4.3", "C-GET with DCMTK getscu (study level)", needs="dimse")
def get_dcmtk(ctx: Context) -> str:
    ensure_dimse_stored(ctx)
    with tempfile.TemporaryDirectory() as tmp:
        res = _tool("getscu", "-S", "-k", "QueryRetrieveLevel=STUDY",
                    "-k", f"StudyInstanceUID={ctx.data.study_uid('D')}", "-od", tmp, *_peer(ctx))
        files = [p for p in Path(tmp).iterdir() if p.is_file()]
    if res.returncode != 0:
        raise Failed(f"getscu exit {res.returncode}: {res.stderr.strip()[-160:]}")
    if len(files) != len(ctx.data.studies["D"]):
        raise Failed(f"{len(files)} files received, expected {len(ctx.data.studies['D'])}")
    return f"{len(files)} files"


class _StoreSCP:
    """Our C-MOVE destination: a pynetdicom Storage SCP on the given port."""

    def __init__(self, ae_title: str, port: int) -> None:
        self.received: list[Dataset] = []
        self._lock = threading.Lock()
        self.ae = AE(ae_title=ae_title)
        for cls in STORAGE:
            self.ae.add_supported_context(cls, ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2",
                                                "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"])
        server = self.ae.start_server(("127.0.0.1", port), block=False,
                                      evt_handlers=[(evt.EVT_C_STORE, self._on_store)])
        assert server is not None      # block=False always returns the server
        self.server = server

    def _on_store(self, event: evt.Event) -> int:
        ds = event.dataset
        ds.file_meta = event.file_meta
        with self._lock:
            self.received.append(ds)
        return 0x0000

    def stop(self) -> None:
        self.server.shutdown()


def _move(ctx: Context, destination: str, keys: dict[str, str], level: str) -> int:
    ae = _ae(ctx)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    query = Dataset()
    query.QueryRetrieveLevel = level
    for kw, val in keys.items():
        setattr(query, kw, val)
    final = -1
    with _associate(ae, ctx) as assoc:
        for status, _ in assoc.send_c_move(query, destination,
                                           StudyRootQueryRetrieveInformationModelMove):
            final = _status(status)
    return final


@check("dimse-move-pynetdicom", "PS3.4 §C.4.2", "C-MOVE of a study to our Storage SCP", needs="dimse")
def move(ctx: Context) -> str:
    d = _dimse(ctx)
    if not d.move_port:
        raise Skipped("no --move-port (the archive must know CALLING-AET at that port)")
    ensure_dimse_stored(ctx)
    scp = _StoreSCP(d.calling_aet, d.move_port)
    try:
        status = _move(ctx, d.calling_aet, {"StudyInstanceUID": ctx.data.study_uid("D")}, "STUDY")
    finally:
        scp.stop()
    if status != 0x0000:
        raise Failed(f"final status 0x{status:04X}, {len(scp.received)} received")
    got = {str(x.SOPInstanceUID) for x in scp.received}
    if got != {i.sop for i in ctx.data.studies["D"]}:
        raise Failed(f"{len(got)} instances received")
    return f"{len(got)} instances"


@check("dimse-move-dcmtk", "PS3.4 §C.4.2", "C-MOVE with DCMTK movescu (its own store SCP)", needs="dimse")
def move_dcmtk(ctx: Context) -> str:
    d = _dimse(ctx)
    if not d.move_port:
        raise Skipped("no --move-port (the archive must know CALLING-AET at that port)")
    ensure_dimse_stored(ctx)
    with tempfile.TemporaryDirectory() as tmp:
        res = _tool("movescu", "-S", "-aem", d.calling_aet, "--port", str(d.move_port),
                    "-k", "QueryRetrieveLevel=STUDY",
                    "-k", f"StudyInstanceUID={ctx.data.study_uid('D')}", "-od", tmp, *_peer(ctx))
        files = [p for p in Path(tmp).iterdir() if p.is_file()]
    if res.returncode != 0:
        raise Failed(f"movescu exit {res.returncode}: {res.stderr.strip()[-160:]}")
    if len(files) != len(ctx.data.studies["D"]):
        raise Failed(f"{len(files)} files received")
    return f"{len(files)} files"


@check("dimse-move-unknown-dest", "PS3.4 §C.4.2.1.5 (Table C.4-2)",
       "C-MOVE to an unknown AE: 0xA801 Move Destination unknown", needs="dimse")
def move_unknown(ctx: Context) -> None:
    ensure_dimse_stored(ctx)
    status = _move(ctx, "NOSUCHAE", {"StudyInstanceUID": ctx.data.study_uid("D")}, "STUDY")
    if status != 0xA801:
        raise Failed(f"status 0x{status:04X}")


@check("dimse-store-then-wado", "PS3.4 Annex B / PS3.18 §10.4",
       "instance stored by C-STORE is retrieved by WADO-RS, dataset-equal", needs="dimse")
def store_then_wado(ctx: Context) -> None:
    if not ctx.dicomweb:
        raise Skipped("needs --dicomweb")
    ensure_dimse_stored(ctx)
    from conformance.checks.wado import differences, retrieve_one

    inst = ctx.data.studies["D"][1]
    _, ds = retrieve_one(ctx, inst)
    if diffs := differences(inst.ds, ds):
        raise Failed(", ".join(diffs[:5]))
