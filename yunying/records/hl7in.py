"""What an HL7 v2 message does to the record store, and the ACK it gets (issue 15 part 3).

AA: applied. AE: understood but not applicable (a required field missing, a wrong ID card check
digit, a merge that cannot be done): nothing applied. AR: refused (not HL7, an unsupported
message type, event, version or character set): nothing applied. Each message is one
transaction; its control ID, event and outcome are kept in `rec_hl7` (never its content).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from sqlalchemy import insert
from sqlalchemy.exc import SQLAlchemyError

import yunying.audit
import yunying.records.schema as t
from yunying.records import hl7msg
from yunying.records.hl7msg import Header, Refused
from yunying.records.merges import MergeRefused, Mover, merge
from yunying.records.model import RecordError, make_record
from yunying.records.store import RecordStore, Where

log = logging.getLogger("yunying.records.hl7")


@dataclass
class Outcome:
    code: str  # AA | AE | AR
    reason: str
    head: Header


class Hl7Handler:
    """Turns one framed message (bytes) into an applied record and an ACK (bytes)."""

    def __init__(self, records: RecordStore, where: Where, mover: Mover | None = None,
                 default_codec: str = "utf-8", app: str = "YUNYING") -> None:
        self.records, self.where, self.mover = records, where, mover
        self.default_codec, self.app = default_codec, app
        self.counts = {"AA": 0, "AE": 0, "AR": 0}

    def handle(self, raw: bytes, sender: str = "") -> bytes:
        outcome = self.process(raw)
        self.counts[outcome.code] += 1
        try:
            with self.records.store.engine.begin() as conn:
                conn.execute(insert(t.messages).values(
                    sender=sender[:200], control_id=outcome.head.control_id[:64],
                    event=f"{outcome.head.message_type}^{outcome.head.event}"[:16], ack=outcome.code,
                    reason=outcome.reason[:300], at=int(time.time())))
        except SQLAlchemyError as exc:  # the log of messages must not change the answer
            log.error("could not record an HL7 message outcome: %s", type(exc).__name__)
        if outcome.code != "AA":  # control id and reason only: reasons never quote values
            log.info("HL7 %s %s^%s: %s", outcome.code, outcome.head.message_type, outcome.head.event, outcome.reason)
        error = getattr(outcome, "hl7_error", "207")
        return hl7msg.ack(outcome.head, outcome.code, outcome.reason, error, self.app)

    def process(self, raw: bytes) -> Outcome:
        head = Header()
        try:
            head = hl7msg.read_header(raw, self.default_codec)
            msg = hl7msg.parse_message(raw, head)
            if (head.message_type, head.event) not in hl7msg.EVENTS:
                raise Refused("AR", f"MSH-9: {head.message_type}^{head.event} is not supported", "200"
                              if head.message_type not in {m for m, _ in hl7msg.EVENTS} else "201")
            if head.event in ("A40", "A47"):
                self._merge(msg, head)
            else:
                rec = hl7msg.to_record(msg, head)
                self.records.run(self.records.apply, rec, self.where)
        except Refused as exc:
            out = Outcome(exc.code, exc.reason, head)
            out.hl7_error = exc.hl7_error  # type: ignore[attr-defined]
            return out
        except MergeRefused as exc:
            return Outcome("AE", str(exc), head)
        except SQLAlchemyError as exc:
            log.error("HL7 message %s not stored: %s", head.control_id, type(exc).__name__)
            return Outcome("AE", "the record store could not apply the message; send it again", head)
        return Outcome("AA", "", head)

    def _merge(self, msg: object, head: Header) -> None:
        if not hl7msg.has(msg, "MRG"):  # type: ignore[arg-type]
            raise Refused("AE", f"ADT^{head.event}: MRG segment required", "100")
        survivor = hl7msg.to_record(msg, head)  # type: ignore[arg-type]
        prior = hl7msg.patient_fields(msg, "MRG", 1)  # type: ignore[arg-type]
        try:
            make_record({"patient_id": prior["patient_id"]})
        except RecordError as exc:
            raise Refused("AE", f"MRG-1: {exc}", "102") from None
        merge_id = merge(self.records, self.mover, head.event, survivor, prior["patient_id"], prior.get("issuer", ""),
                         self.where, head.control_id)
        # an administrative change to patient data, made by the HIS: recorded in the audit trail
        yunying.audit.record("patient.merge", principal_kind="system", principal_id="hl7", face="hl7",
                             hospital=self.where.hospital, patient_id=survivor.get("patient_id"),
                             status="AA", detail={"merge": merge_id, "event": head.event, "control_id": head.control_id})
