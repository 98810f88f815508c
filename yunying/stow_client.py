"""A minimal STOW-RS sender: `yunying import --stow` (one instance per request) and routing
(several per request, yunying/routing)."""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import httpx

from yunying.errors import ArchiveError


class StowSender:
    """Posts files to a DICOMweb root's /studies."""

    def __init__(self, root: str, api_key: str | None = None, own_key: bool = True, timeout: float = 120) -> None:
        self.url = root.rstrip("/") + "/studies"
        if own_key:  # our server's bearer key (issue 11); never for another party's server (routing)
            api_key = api_key or os.environ.get("YUNYING_API_KEY")
        self.client = httpx.Client(timeout=timeout, headers={"Authorization": f"Bearer {api_key}"} if api_key else {})

    def store(self, path: Path) -> str:
        refused = self.store_parts([path.read_bytes()])
        if refused:
            raise ArchiveError("refused: " + "; ".join(refused.values()))
        return "stored"

    def store_parts(self, bodies: Sequence[bytes]) -> dict[str, str]:
        """POST Part 10 instances in one request; the refused ones (FailedSOPSequence), SOP
        Instance UID -> reason. Raises ArchiveError when the request failed as a whole (and
        httpx.HTTPError when there was no answer)."""
        boundary = "yunying-" + os.urandom(8).hex()
        body = b"".join(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + b + b"\r\n"
                        for b in bodies) + f"--{boundary}--\r\n".encode()
        resp = self.client.post(self.url, content=body, headers={
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
            "Accept": "application/dicom+json"})
        # PS3.18 10.5.3: 200 stored; 202 stored with warnings unless a part is in FailedSOPSequence
        if resp.status_code == 200:
            return {}
        answer = _json(resp)
        failed = answer.get("00081198")
        if resp.status_code in (202, 409) and isinstance(failed, dict):
            return dict(_reason(item) for item in failed.get("Value") or [])
        if resp.status_code == 202 and failed is None:
            return {}
        raise ArchiveError(f"HTTP {resp.status_code}: {resp.text[:200]}")

    def close(self) -> None:
        self.client.close()


def _reason(item: object) -> tuple[str, str]:
    """(SOP Instance UID, reason) of a FailedSOPSequence item (PS3.18 Table 10.5.3-1)."""
    if not isinstance(item, dict):
        return "", "refused"
    sop = (item.get("00081155", {}).get("Value") or [""])[0]
    code = (item.get("00081197", {}).get("Value") or [""])[0]
    return str(sop), f"STOW-RS failure reason {code}"


def _json(resp: httpx.Response) -> dict:
    try:
        body = resp.json()
    except ValueError:
        return {"00081198": "unreadable answer"}
    return body if isinstance(body, dict) else {"00081198": "unexpected answer"}
