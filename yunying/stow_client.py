"""A minimal STOW-RS sender for `yunying import --stow` (one instance per request)."""
from __future__ import annotations

import os
from pathlib import Path

import httpx

from yunying.errors import ArchiveError


class StowSender:
    """Posts files to a DICOMweb root's /studies."""

    def __init__(self, root: str, api_key: str | None = None) -> None:
        self.url = root.rstrip("/") + "/studies"
        api_key = api_key or os.environ.get("YUNYING_API_KEY")  # the server's bearer key (issue 11)
        self.client = httpx.Client(timeout=120, headers={"Authorization": f"Bearer {api_key}"} if api_key else {})

    def store(self, path: Path) -> str:
        boundary = "yunying-" + os.urandom(8).hex()
        body = (f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + path.read_bytes()
                + f"\r\n--{boundary}--\r\n".encode())
        resp = self.client.post(self.url, content=body, headers={
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
            "Accept": "application/dicom+json"})
        # PS3.18 10.5.3: 200 stored; 202 stored with warnings unless the part is in FailedSOPSequence
        if resp.status_code == 200 or (resp.status_code == 202 and "00081198" not in _json(resp)):
            return "stored"
        raise ArchiveError(f"HTTP {resp.status_code}: {resp.text[:200]}")


def _json(resp: httpx.Response) -> dict:
    try:
        body = resp.json()
    except ValueError:
        return {"00081198": "unreadable answer"}
    return body if isinstance(body, dict) else {"00081198": "unexpected answer"}
