"""A patient's exam as a ZIP encrypted with AES-256 (WinZip AE-2, pyzipper) under a generated
extraction password shown once; kept DOWNLOAD_TTL, then deleted. It holds the originals with a
DICOMDIR (`DICOM/`), JPEGs of the images drawn by the archive's rendering (`JPEG/`, one per image
instance, its first frame, the header's window: for a phone or a computer without a DICOM
viewer), or both (issue 14 part 7)."""
from __future__ import annotations

import io
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from PIL import Image
from pydicom.dataset import Dataset
from sqlalchemy import delete, insert, select

from yunying.archive import Archive
from yunying.auth.errors import InvalidRequest, NotFound
from yunying.auth.store import Store
from yunying.pixels.render import to_display
from yunying.portal.dicomdir import write_dicomdir
from yunying.portal.schema import downloads

DOWNLOAD_TTL = 24 * 3600
FOLDER = "portal-downloads"
ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789"  # no 0/O, 1/l/I: read off a phone


def _folder(data: Path) -> Path:
    folder = Path(data) / FOLDER
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


STALE = 900  # seconds: a build writes its .part and staging folder continuously; one untouched this long died


def sweep(store: Store, data: Path) -> None:
    """Delete expired ZIPs and their rows, and what a build left when its server died: a `.part`,
    a staging folder, or a ZIP finished but never recorded (a patient's images are on that disk)."""
    now = int(time.time())
    with store.engine.begin() as conn:
        old = conn.execute(select(downloads.c.id).where(downloads.c.expires_at <= now)).scalars().all()
        conn.execute(delete(downloads).where(downloads.c.expires_at <= now))
        recorded = set(conn.execute(select(downloads.c.id)).scalars().all())
    folder = _folder(data)
    for name in old:
        (folder / f"{name}.zip").unlink(missing_ok=True)
    for path in folder.iterdir():
        try:
            stale = path.stat().st_mtime < now - STALE
        except FileNotFoundError:  # a build finished or cleaned up meanwhile
            continue
        if not stale or (path.suffix == ".zip" and path.stem in recorded):
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


CONTENTS = ("dicom", "jpeg", "both")
ZIP64_SAFE = 2**31  # a member this large gets ZIP64 sizes (deflate may grow it; the limit is 4 GB)


Progress = Callable[[], None]  # called once per instance written (a DICOM file or a JPEG)


def _nothing() -> None:
    pass


def _dicom(z: Any, archive: Archive, rows: list[Any], tmp: Path, step: Progress = _nothing) -> None:
    """DICOM/: the DICOMDIR made from the headers, then each instance's stored bytes at the File
    ID it names, written into the ZIP as they are read (one instance in memory at a time)."""
    by_uid = {}

    def headers() -> Iterator[Dataset]:  # one at a time: pydicom stages each to a file as it comes
        for row in rows:
            ds = archive.read_header(row)  # no pixel data: all a DICOMDIR needs
            by_uid[str(ds.SOPInstanceUID)] = row
            yield ds

    file_ids = write_dicomdir(headers(), tmp)
    z.write(tmp / "DICOMDIR", "DICOM/DICOMDIR")
    for uid, file_id in sorted(file_ids.items(), key=lambda item: item[1]):
        pieces = archive.read_part10_parts(by_uid[uid])
        size = sum(len(p) for p in pieces)
        with z.open(f"DICOM/{file_id}", "w", force_zip64=size > ZIP64_SAFE) as member:
            for piece in pieces:
                member.write(piece)
        del pieces
        step()


def _jpegs(z: Any, archive: Archive, rows: list[Any], step: Progress = _nothing) -> None:
    """JPEG/: each image instance's first frame drawn with its header's window, one at a time."""
    import pyzipper  # type: ignore[import-untyped]  # imported on first use: the server starts without it
    for n, row in enumerate(rows, 1):
        step()  # counted as it starts: an instance without pixels counts too
        ds = archive.read_dataset(row)
        if "PixelData" not in ds:
            continue  # reports, structured documents: in DICOM/ only
        frame = ds.pixel_array if row.frames == 1 else ds.pixel_array[0]
        out = io.BytesIO()
        Image.fromarray(to_display(frame, ds)).save(out, "JPEG", quality=92)
        name = f"{int(ds.get('SeriesNumber') or 0):03d}-{int(ds.get('InstanceNumber') or n):04d}-{n:05d}.jpg"
        del ds, frame
        z.writestr(f"JPEG/{name}", out.getbuffer(), compress_type=pyzipper.ZIP_STORED)  # JPEG does not deflate


def plan(store: Store, archive: Archive, data: Path, study: str, contents: str) -> list[Any]:
    """The instances a ZIP of `study` will hold; refuses what cannot be made before anything is."""
    if contents not in CONTENTS:
        raise InvalidRequest("contents: dicom, jpeg or both")
    sweep(store, data)
    rows = archive.instances(study)
    if not rows:
        raise NotFound("the exam has no images yet")
    return list(rows)


def steps(rows: list[Any], contents: str) -> int:
    """How many times a build of `rows` calls its progress callback."""
    return len(rows) * (2 if contents == "both" else 1)


def new_zip() -> tuple[str, str]:
    """A new download's id and extraction password."""
    return "d_" + secrets.token_urlsafe(24), "".join(secrets.choice(ALPHABET) for _ in range(12))


def make_zip(store: Store, archive: Archive, data: Path, account: str, study: str,
             contents: str = "dicom") -> dict[str, Any]:
    """Build the ZIP of `study` for `account` within the call; answers its id, password (once),
    size and expiry. A big study goes to yunying.portal.download_jobs instead."""
    rows = plan(store, archive, data, study, contents)
    zip_id, password = new_zip()
    return build(store, archive, data, account, study, contents, rows, zip_id, password)


def build(store: Store, archive: Archive, data: Path, account: str, study: str, contents: str,
          rows: list[Any], zip_id: str, password: str, step: Progress = _nothing) -> dict[str, Any]:
    """Write the ZIP `zip_id` of `rows` and record it; `step` is called per instance written.

    Written to its file as the instances are read, with memory bounded by one instance (and the
    DICOMDIR's small records), never the study: a 2 GB CT downloads like a 2 MB X-ray.
    The ZIP is a file, not a stream to the response, because the patient sees its size before
    downloading (issue 14 part 7) and may download it again until it expires.
    """
    target = _folder(data) / f"{zip_id}.zip"
    partial = target.with_suffix(".part")
    import pyzipper  # imported on first use: the server starts without it (issue 9 part 5)

    try:
        # deflate level 1: 66 MB per CPU-second on CT against 12 at the default 6, for 3 % more
        # bytes (0.383 vs 0.371 of the input; issue 9 part 4)
        with tempfile.TemporaryDirectory(dir=_folder(data)) as tmp, pyzipper.AESZipFile(
                partial, "w", compression=pyzipper.ZIP_DEFLATED, encryption=pyzipper.WZ_AES, compresslevel=1) as z:
            z.setpassword(password.encode())
            if contents != "jpeg":
                _dicom(z, archive, rows, Path(tmp), step)
            if contents != "dicom":
                _jpegs(z, archive, rows, step)
        partial.replace(target)  # never a half-written ZIP under a download's name
    finally:
        partial.unlink(missing_ok=True)
    now = int(time.time())
    size = target.stat().st_size
    with store.engine.begin() as conn:
        conn.execute(insert(downloads).values(id=zip_id, account_id=account, study_uid=study, size=size,
                                              created_at=now, expires_at=now + DOWNLOAD_TTL))
    return {"id": zip_id, "password": password, "size": size, "expires_at": now + DOWNLOAD_TTL}


def made(store: Store, account: str, zip_id: str, studies: frozenset[str]) -> Any:
    """The row of a live ZIP of this account (for a study its token still sees); NotFound otherwise."""
    now = int(time.time())
    with store.engine.connect() as conn:
        row = conn.execute(select(downloads).where(downloads.c.id == zip_id, downloads.c.account_id == account)).first()
    if row is None or row.expires_at <= now or row.study_uid not in studies:
        raise NotFound("unknown or expired download")
    return row


def zip_path(store: Store, data: Path, account: str, zip_id: str, studies: frozenset[str]) -> Path:
    """The file of a live ZIP of this account (for a study its token still sees); NotFound otherwise."""
    made(store, account, zip_id, studies)
    return _folder(data) / f"{zip_id}.zip"
