"""C-STORE SCP (PS3.4 Annex B): every instance goes through the archive's one store path."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, cast

from pydicom import Dataset
from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.events import Event

from dimse.access import AccessPolicy
from dimse.associations import tally
from yunying.errors import ArchiveError
from yunying.logsafe import summary
from yunying.part10 import file_meta
from yunying.writing import Written

if TYPE_CHECKING:
    from yunying.archive import Archive

log = logging.getLogger("yunying.dimse")

SUCCESS = 0x0000
REFUSED_NOT_AUTHORIZED = 0x0124  # PS3.7 C.5.x: Refused: Not Authorized
PROCESSING_FAILURE = 0x0110  # PS3.7 C.4: an unexpected failure on our side
DATA_SET_DOES_NOT_MATCH = 0xB007
SOP_CLASS_NOT_SUPPORTED = 0x0122  # PS3.4 B.2.3: Refused: SOP Class not supported
IMPLEMENTATION = (PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION)  # as pynetdicom's own file meta


def status(code: int, comment: str = "") -> Dataset:
    """A status dataset; ErrorComment is LO, at most 64 characters (PS3.7 C.4)."""
    ds = Dataset()
    ds.Status = code
    if comment:
        ds.ErrorComment = comment[:64]
    return ds


def on_c_store(event: Event, archive: Archive, policy: AccessPolicy) -> Dataset | int:
    """EVT_C_STORE: store the received file meta + data set as received."""
    aet = str(event.assoc.requestor.ae_title).strip()
    if not policy.may(aet, "store"):
        tally(event, "store_refused")
        written = getattr(event, "written", None)
        if isinstance(written, Written) and not written.existed:  # a lent worker wrote it first
            archive.storage.delete(written.key)
        return status(REFUSED_NOT_AUTHORIZED, "calling AE title not authorized to store")
    request = cast(C_STORE, event.request)
    if str(request.AffectedSOPClassUID) != str(event.context.abstract_syntax):
        # PS3.7 9.1.1.1.x / PS3.4 B.2.3: only the SOP class negotiated for this context
        tally(event, "store_refused")
        return status(SOP_CLASS_NOT_SUPPORTED, "SOP class is not the presentation context's")
    try:
        written = getattr(event, "written", None)
        if written is not None:  # a lent ingest worker wrote it (dimse/fastrecv.py): decide it here
            result = archive.admit(written, policy.origin(aet), event.rewrite, durable=False)  # type: ignore[attr-defined]
        else:
            # the data set as received behind a file meta group naming it (pynetdicom's
            # encoded_dataset() builds that group through pydicom: ~1 ms of GIL per instance)
            raw = file_meta(str(request.AffectedSOPClassUID), str(request.AffectedSOPInstanceUID),
                            str(event.context.transfer_syntax), IMPLEMENTATION, aet) \
                + event.encoded_dataset(include_meta=False)
            # acknowledged once the bytes are durable; the index row follows in the next group
            # commit and every query waits for it (Archive.search): nothing acknowledged is missed
            result = archive.store(raw, policy.origin(aet), wait=False)  # the peer's hospital owns it
    except ArchiveError as exc:
        log.info("C-STORE from %s refused: %s (0x%04X)", aet, type(exc).__name__, exc.dimse_status)
        tally(event, "store_failed")
        return status(exc.dimse_status, exc.reason)
    except Exception as exc:  # noqa: BLE001 - the association survives; no PHI in the log
        log.error("C-STORE from %s failed: %s", aet, summary(exc))
        tally(event, "store_failed")
        return status(PROCESSING_FAILURE, "internal error while storing")  # ours, not the sender's
    tally(event, result.outcome)
    if result.warnings:
        # PS3.4 B.2.3: stored as received, though the data set does not conform (issue 10 part 2)
        return status(DATA_SET_DOES_NOT_MATCH, "; ".join(result.warnings))
    return SUCCESS


