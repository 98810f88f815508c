"""Polling a hospital web service that speaks SOAP (issue 15 part 2, WebService variant): the
WSDL read by zeep, the same mapping and watermark as every other source.

    [[sources]]
    name = "his-soap"
    kind = "soap"
    url = "http://his.example/ExamService?wsdl"   # the WSDL
    operation = "GetExams"              # called with after, after_key, limit (the first call without after)
    patient_operation = "GetPatientExams"   # optional: called with patient_id, limit (real-time refresh)
    rows = "exam"                       # the answer's repeating element, when it is not the answer itself
    [sources.arguments]                 # optional: the service's own names for our arguments
    after = "since"

A fault, an unreachable service, an answer that is not what the WSDL says: the run fails with
a reason (no value of the answer quoted) and nothing is applied. zeep parses with external
entities and DTD entities refused (its defaults).
"""
from __future__ import annotations

import os
from datetime import date
from decimal import Decimal
from typing import Any

from yunying.records.collector import Position, ReadFailed
from yunying.records.mapping import Source

ARGUMENTS = ("after", "after_key", "limit", "patient_id")


def _plain(value: Any) -> Any:
    """A SOAP value as the mapping takes it: dates and datetimes stay, decimals become text."""
    if isinstance(value, Decimal):
        return str(value)
    return value


def _text(value: Any) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)


class SoapReader:
    def __init__(self, source: Source) -> None:
        import requests
        from zeep.transports import Transport

        self.source = source
        session = requests.Session()
        if source.token_env and os.environ.get(source.token_env):
            session.headers["Authorization"] = f"Bearer {os.environ[source.token_env]}"
        self.transport = Transport(session=session, timeout=source.timeout_seconds,
                                   operation_timeout=source.timeout_seconds)
        self.client: Any = None  # the WSDL is read on the first call: a service down fails a run, not the start

    def _name(self, ours: str) -> str:
        return self.source.arguments.get(ours, ours)

    def read(self, after: Position | None, limit: int) -> list[dict[str, Any]]:
        args: dict[str, Any] = {self._name("limit"): limit}
        if after is not None:
            args |= {self._name("after"): _text(after[0]), self._name("after_key"): _text(after[1])}
        return self._call(self.source.operation, args)

    def read_patient(self, patient_id: str, limit: int) -> list[dict[str, Any]]:
        if not self.source.patient_operation:
            raise ReadFailed("this SOAP source has no patient_operation for a real-time refresh")
        return self._call(self.source.patient_operation, {self._name("patient_id"): patient_id,
                                                          self._name("limit"): limit})

    def _call(self, operation: str, args: dict[str, Any]) -> list[dict[str, Any]]:
        import requests
        import zeep
        from lxml.etree import XMLSyntaxError
        from zeep.helpers import serialize_object

        try:
            if self.client is None:
                self.client = zeep.Client(self.source.url, transport=self.transport)
            result = self.client.service[operation](**args)
        except zeep.exceptions.Fault as exc:  # the service's own refusal: its code, not its text
            raise ReadFailed(f"the SOAP service answered a fault ({exc.code or 'no code'})") from None
        except requests.RequestException as exc:
            raise ReadFailed(f"cannot reach the SOAP service: {type(exc).__name__}") from None
        except (zeep.exceptions.Error, XMLSyntaxError, AttributeError, TypeError, ValueError) as exc:
            # not SOAP, not what the WSDL says, an operation or argument the WSDL does not have
            raise ReadFailed(f"the SOAP service's answer or WSDL does not fit: {type(exc).__name__}") from None
        rows = serialize_object(result, dict)
        if isinstance(rows, dict) and self.source.rows:
            rows = rows.get(self.source.rows)
        if rows is None:
            return []
        if isinstance(rows, dict):
            rows = [rows]  # one row answered as a single element
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ReadFailed("the SOAP answer is not a list of rows (set `rows` to its repeating element)")
        return [{k: _plain(v) for k, v in r.items()} for r in rows]

    def close(self) -> None:
        self.transport.session.close()
