"""Polling a hospital web service that answers JSON (issue 15 part 2, WebService variant).

GET <url>?after=<watermark>&after_key=<key>&limit=<n> (the first call without `after`) answers
a JSON array of objects, or {"rows": [...]}, in (watermark, key) order; the mapping's columns
are the objects' keys. GET <url>?patient_id=<id>&limit=<n> answers one patient's rows (refresh). `token_env` names an environment variable holding a bearer token.
"""
from __future__ import annotations

import os
from datetime import date
from typing import Any

import httpx

from yunying.records.collector import Position, ReadFailed
from yunying.records.mapping import Source


def _text(value: Any) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)


class WebServiceReader:
    def __init__(self, source: Source) -> None:
        self.source = source
        headers = {"Accept": "application/json"}
        if source.token_env and os.environ.get(source.token_env):
            headers["Authorization"] = f"Bearer {os.environ[source.token_env]}"
        self.client = httpx.Client(headers=headers, timeout=source.timeout_seconds)

    def read(self, after: Position | None, limit: int) -> list[dict[str, Any]]:
        params = {"limit": str(limit)}
        if after is not None:
            params |= {"after": _text(after[0]), "after_key": _text(after[1])}
        return self._get(params)

    def read_patient(self, patient_id: str, limit: int) -> list[dict[str, Any]]:
        """GET <url>?patient_id=<id>&limit=N: every row of one patient."""
        return self._get({"patient_id": patient_id, "limit": str(limit)})

    def _get(self, params: dict[str, str]) -> list[dict[str, Any]]:
        try:
            answer = self.client.get(self.source.url, params=params)
        except httpx.HTTPError as exc:
            raise ReadFailed(f"cannot reach the web service: {type(exc).__name__}") from None
        if answer.status_code != 200:
            raise ReadFailed(f"the web service answered {answer.status_code}")
        try:
            body = answer.json()
        except ValueError:
            raise ReadFailed("the web service did not answer JSON") from None
        rows = body.get("rows") if isinstance(body, dict) else body
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ReadFailed("the web service's answer is not a list of objects (or {\"rows\": [...]})")
        return rows

    def close(self) -> None:
        self.client.close()


def reader_for(source: Source) -> Any:
    """The reader of a source's kind."""
    if source.kind == "webservice":
        return WebServiceReader(source)
    if source.kind == "soap":
        from yunying.records.soap import SoapReader
        return SoapReader(source)
    from yunying.records.sql import SqlReader
    return SqlReader(source)
