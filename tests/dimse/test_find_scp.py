"""C-FIND SCP on one association: every pending response answers its own request's message ID."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import SCP_AET, SCU_AET, make_instance
from pynetdicom import AE, evt

from dimse import uids
from dimse.cli import build_identifier
from dimse.requestor import requeue_responses
from index.model import Origin


def test_many_finds_on_one_association_keep_their_message_ids(scp: Any, archive: Any, tmp_path: Path) -> None:
    # the response command set is encoded once per association (find_scp._direct): the ID
    # each pending response answers must still be that of its own request
    for n in range(3):
        archive.store(make_instance(tmp_path / f"{n}.dcm", study=f"1.2.826.9.{n}", series=f"1.2.826.9.{n}.1",
                                    sop=f"1.2.826.9.{n}.1.1", patient_id="MSGID"), Origin("import", "test"))
    seen: list[tuple[int, int]] = []

    def on_recv(event: Any) -> None:
        cs = event.message.command_set
        if cs.CommandField == 0x8020:  # C-FIND-RSP
            seen.append((int(cs.MessageIDBeingRespondedTo), int(cs.Status)))

    ae = AE(ae_title=SCU_AET)
    ae.add_requested_context(uids.STUDY_ROOT_FIND)
    assoc = ae.associate("127.0.0.1", scp.port, ae_title=SCP_AET, evt_handlers=[(evt.EVT_DIMSE_RECV, on_recv)])
    assert assoc.is_established
    requeue_responses(assoc)  # the client's own race (measured-facts), not the server's order
    try:
        for msg_id in (7, 8, 300, 65535):
            found = [rsp.Status for rsp, _ in assoc.send_c_find(
                build_identifier("STUDY", ["PatientID=MSGID", "StudyInstanceUID"]), uids.STUDY_ROOT_FIND,
                msg_id=msg_id)]
            assert found == [0xFF00] * 3 + [0x0000]
    finally:
        assoc.release()
        ae.shutdown()
    assert seen == [(m, s) for m in (7, 8, 300, 65535) for s in (0xFF00,) * 3 + (0x0000,)]


def test_final_responses_keep_order_ids_and_failures(scp: Any, archive: Any,
                                                                      tmp_path: Path) -> None:
    # pending responses written directly, the final one by pynetdicom: each final comes after
    # its query's pending responses, with its own message ID, for a query matching nothing
    # too; a failure status between them leaves the association usable
    archive.store(make_instance(tmp_path / "a.dcm", study="1.2.826.9.7", series="1.2.826.9.7.1",
                                sop="1.2.826.9.7.1.1", patient_id="FINAL"), Origin("import", "test"))
    seen: list[tuple[int, int]] = []

    def on_recv(event: Any) -> None:
        cs = event.message.command_set
        if cs.CommandField == 0x8020:
            seen.append((int(cs.MessageIDBeingRespondedTo), int(cs.Status)))

    ae = AE(ae_title=SCU_AET)
    ae.add_requested_context(uids.STUDY_ROOT_FIND)
    assoc = ae.associate("127.0.0.1", scp.port, ae_title=SCP_AET, evt_handlers=[(evt.EVT_DIMSE_RECV, on_recv)])
    assert assoc.is_established
    requeue_responses(assoc)  # the client's own race (measured-facts), not the server's order
    queries = [(["PatientID=FINAL", "StudyInstanceUID"], [0xFF00, 0x0000]),
               (["PatientID=NOBODY", "StudyInstanceUID"], [0x0000]),
               (["StudyDate=notadate", "StudyInstanceUID"], [0xA900]),
               (["PatientID=FINAL", "StudyInstanceUID"], [0xFF00, 0x0000])]
    try:
        for round_ in range(5):
            for n, (keys, expected) in enumerate(queries):
                found = [rsp.Status for rsp, _ in assoc.send_c_find(
                    build_identifier("STUDY", keys), uids.STUDY_ROOT_FIND, msg_id=10 * round_ + n + 1)]
                assert found == expected, (round_, keys, found)
    finally:
        assoc.release()
        ae.shutdown()
    assert seen == [(10 * r + n + 1, s) for r in range(5) for n, (_, exp) in enumerate(queries) for s in exp]


def test_patient_root_study_level_without_patient_id_is_universal(scp: Any, archive: Any, tmp_path: Path) -> None:
    """Issue 10 part 10: workstations send exactly this (Orthanc and dcm4chee answer it), so a
    missing PatientID above a Patient Root STUDY query matches every patient, for C-FIND and C-GET."""
    for n, pid in enumerate(("PR-A", "PR-B")):
        archive.store(make_instance(tmp_path / f"{n}.dcm", study=f"1.2.826.8.{n}", series=f"1.2.826.8.{n}.1",
                                    sop=f"1.2.826.8.{n}.1.1", patient_id=pid), Origin("import", "test"))
    ae = AE(ae_title=SCU_AET)
    ae.add_requested_context(uids.PATIENT_ROOT_FIND)
    ae.add_requested_context(uids.PATIENT_ROOT_GET)
    ae.add_requested_context("1.2.840.10008.5.1.4.1.1.2")  # CT Image Storage, received in our SCP role
    got: list[str] = []

    def on_store(event: Any) -> int:
        got.append(str(event.dataset.SOPInstanceUID))
        return 0x0000

    from pynetdicom.pdu_primitives import SCP_SCU_RoleSelectionNegotiation

    role = SCP_SCU_RoleSelectionNegotiation()
    role.sop_class_uid, role.scp_role = "1.2.840.10008.5.1.4.1.1.2", True
    assoc = ae.associate("127.0.0.1", scp.port, ae_title=SCP_AET, ext_neg=[role],
                         evt_handlers=[(evt.EVT_C_STORE, on_store)])
    assert assoc.is_established
    try:
        found = list(assoc.send_c_find(build_identifier("STUDY", ["StudyInstanceUID=1.2.826.8.1", "PatientID"]),
                                       uids.PATIENT_ROOT_FIND))
        assert [s.Status for s, _ in found] == [0xFF00, 0x0000]
        assert str(getattr(found[0][1], "PatientID", None)) == "PR-B"
        every = [s.Status for s, _ in assoc.send_c_find(build_identifier("STUDY", ["StudyInstanceUID"]),
                                                          uids.PATIENT_ROOT_FIND)]
        assert every == [0xFF00, 0xFF00, 0x0000]
        done = list(assoc.send_c_get(build_identifier("STUDY", ["StudyInstanceUID=1.2.826.8.0"]),
                                     uids.PATIENT_ROOT_GET))
        assert done[-1][0].Status == 0x0000 and got == ["1.2.826.8.0.1.1"]
    finally:
        assoc.release()
        ae.shutdown()


def test_final_success_encodes_as_pynetdicom_does() -> None:
    # the final Success is written by find_scp.direct_final, no longer by pynetdicom
    from pynetdicom.dimse_messages import C_FIND_RSP
    from pynetdicom.dimse_primitives import C_FIND
    from pynetdicom.dsutils import encode

    from dimse.find_scp import final_rsp

    for sop_class, msg_id in ((uids.STUDY_ROOT_FIND, 1), ("1.2.840.10008.5.1.4.1.2.1.1", 65535)):
        primitive = C_FIND()
        primitive.MessageIDBeingRespondedTo, primitive.Status = msg_id, 0x0000
        primitive.AffectedSOPClassUID = sop_class
        message = C_FIND_RSP()
        message.primitive_to_message(primitive)
        assert final_rsp(sop_class, msg_id) == encode(message.command_set, True, True)


def test_final_queues_behind_pending_responses_sent_by_pynetdicom(scp: Any, archive: Any, tmp_path: Path,
                                                                 monkeypatch: Any) -> None:
    # when the pending responses take pynetdicom's queue (no direct writer: e.g. a deflated
    # syntax), the final Success must not overtake them on the socket
    import dimse.find_scp

    monkeypatch.setattr(dimse.find_scp, "_direct", lambda event: None)
    for n in range(5):
        archive.store(make_instance(tmp_path / f"d{n}.dcm", study=f"1.2.826.8.{n}", series=f"1.2.826.8.{n}.1",
                                    sop=f"1.2.826.8.{n}.1.1", patient_id="QUEUED"), Origin("import", "test"))
    seen: list[int] = []
    ae = AE(ae_title=SCU_AET)
    ae.add_requested_context(uids.STUDY_ROOT_FIND)
    assoc = ae.associate("127.0.0.1", scp.port, ae_title=SCP_AET, evt_handlers=[
        (evt.EVT_DIMSE_RECV, lambda event: seen.append(int(event.message.command_set.Status)))])
    assert assoc.is_established
    requeue_responses(assoc)
    try:
        for msg_id in range(1, 11):
            found = [rsp.Status for rsp, _ in assoc.send_c_find(
                build_identifier("STUDY", ["PatientID=QUEUED", "StudyInstanceUID"]), uids.STUDY_ROOT_FIND,
                msg_id=msg_id)]
            assert found == [0xFF00] * 5 + [0x0000]
    finally:
        assoc.release()
        ae.shutdown()
    assert seen == ([0xFF00] * 5 + [0x0000]) * 10
