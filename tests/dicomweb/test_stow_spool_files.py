"""dicomweb/stow_spool.py on its own: which part goes where, reuse of memory files, removal."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from dicomweb import stow_spool
from dicomweb.stow_spool import MemoryFiles, Parts


def feed(parts: Parts, payloads: list[bytes], piece: int = 300) -> None:
    """Parts arriving in pieces, as from the socket, flushed when the spool asks."""
    for payload in payloads:
        parts.begin({b"content-type": b"application/dicom"})
        for k in range(0, len(payload), piece):
            parts.data(payload[k:k + piece])
            if parts.must_flush():
                parts.flush()
        parts.end()
        if parts.must_flush():
            parts.flush()


def folders(tmp_path: Path) -> tuple[Path, Path]:
    disk, memory = tmp_path / "disk", tmp_path / "memory"
    disk.mkdir()
    memory.mkdir()
    return disk, memory


def test_a_part_over_spool_max_moves_to_disk_with_what_it_had_written(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stow_spool, "SPOOL_MAX", 1000)
    disk, memory = folders(tmp_path)
    parts = Parts(disk, MemoryFiles(memory))
    big, small = bytes(range(256)) * 20, b"tiny part"
    feed(parts, [big, small, b""])
    assert sorted(parts.take_ready()) == [0, 1, 2]
    (first, _), (second, _), (third, _) = (parts.source(i) for i in range(3))
    assert first.parent == disk and first.read_bytes() == big
    assert second.parent == memory and second.read_bytes() == small
    assert third.read_bytes() == b""
    parts.cleanup()
    assert not list(disk.iterdir())


def test_without_a_memory_folder_parts_go_to_disk(tmp_path: Path) -> None:
    parts = Parts(tmp_path, None)
    parts.begin({})
    parts.data(b"abc")
    parts.data(memoryview(b"defg")[1:])
    parts.end()
    assert parts.must_flush() and not parts.take_ready()  # ready only once written, in flush
    parts.flush()
    assert parts.take_ready() == [0]
    assert parts.source(0)[0].read_bytes() == b"abcefg"
    parts.cleanup()
    assert not list(tmp_path.iterdir())


def test_the_request_memory_cap_sends_the_next_parts_to_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stow_spool, "REQUEST_MEMORY", 2500)
    disk, memory = folders(tmp_path)
    parts = Parts(disk, MemoryFiles(memory))
    payloads = [bytes([i]) * 1000 for i in range(4)]
    feed(parts, payloads)
    where = [parts.source(i)[0].parent for i in range(4)]
    assert where == [memory, memory, disk, disk]  # the third would pass 2500 bytes held: disk
    assert [parts.source(i)[0].read_bytes() for i in range(4)] == payloads
    parts.release(0)  # stored: its memory counts no more
    feed(parts, [b"x" * 1000])
    assert parts.source(4)[0].parent == memory


def test_a_memory_file_is_reused_for_a_shorter_part(tmp_path: Path) -> None:
    disk, memory = folders(tmp_path)
    files = MemoryFiles(memory)
    parts = Parts(disk, files)
    feed(parts, [b"a" * 5000])
    path, _ = parts.source(0)
    parts.release(0)
    assert files.kept() == 1 and path.exists()
    feed(parts, [b"short"])
    assert parts.source(1)[0] == path and path.read_bytes() == b"short"  # the older bytes are gone
    parts.cleanup()
    files.trim()
    assert not list(memory.iterdir())


def test_memory_files_beyond_the_kept_bytes_are_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stow_spool, "KEEP_BYTES", 1500)
    disk, memory = folders(tmp_path)
    files = MemoryFiles(memory)
    parts = Parts(disk, files)
    feed(parts, [b"1" * 1000, b"2" * 1000])
    parts.cleanup()
    assert files.kept() == 1 and len(list(memory.iterdir())) == 1


def test_idle_memory_files_are_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stow_spool, "IDLE_S", 0.05)
    disk, memory = folders(tmp_path)
    files = MemoryFiles(memory)

    async def run() -> int:
        parts = Parts(disk, files)
        feed(parts, [b"p" * 100, b"q" * 100])
        parts.cleanup()
        kept = files.kept()
        await asyncio.sleep(0.3)
        return kept

    assert asyncio.run(run()) == 2
    assert files.kept() == 0 and not list(memory.iterdir())


def test_a_part_cut_off_is_released_too(tmp_path: Path) -> None:
    disk, memory = folders(tmp_path)
    files = MemoryFiles(memory)
    parts = Parts(disk, files)
    parts.begin({})
    parts.data(b"half a part")  # the body broke off here: no end()
    assert not parts.take_ready()
    parts.cleanup()
    files.trim()
    assert not list(memory.iterdir()) and not list(disk.iterdir())


def test_a_full_memory_folder_moves_the_part_to_disk_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """tmpfs full in the middle of a part (a partial write, then ENOSPC): the part continues on
    disk with every byte, the ones the memory file took and the rest."""
    import errno
    import os

    disk, memory = folders(tmp_path)
    parts = Parts(disk, MemoryFiles(memory))
    real_write, room = os.write, [700]

    def write(fd: int, data: bytes | memoryview) -> int:
        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(memory)):
            if room[0] <= 0:
                raise OSError(errno.ENOSPC, "No space left on device")
            n = real_write(fd, memoryview(data)[:room[0]])
            room[0] -= n
            return n
        return real_write(fd, data)

    monkeypatch.setattr(stow_spool.os, "write", write)
    payload = bytes(range(256)) * 8
    feed(parts, [payload], piece=500)
    assert parts.take_ready() == [0]
    path, _ = parts.source(0)
    assert path.parent == disk and path.read_bytes() == payload
    parts.cleanup()
    assert not list(memory.iterdir()) and not list(disk.iterdir())
