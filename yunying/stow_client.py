"""A minimal STOW-RS sender for `yunying import --stow` (one instance per request)."""
from __future__ import annotations

import os
from pathlib import Path

import httpx

from yunying.errors import ArchiveError


class StowSender:
    """Posts files to a DICOMweb root's /studies."""

    def __init__(self, root: str) -> None:
        self.url = root.rstrip("/") + "/studies"
        self.client = httpx.Client(timeout=120)

    def store(self, path: Path) -> str:
        boundary = "yunying-" + os.urandom(8).hex()
        body = (f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + path.read_bytes()
                + f"\r\n--{boundary}--\r\n".encode())
        resp = self.client.post(self.url, content=body, headers={
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
            "Accept": "application/dicom+json"})
        if resp.status_code == 200:
            return "stored"
        raise ArchiveError(f"HTTP {resp.status_code}: {resp.text[:200]}")
