"""Toneless pinyin of a name, from a table of 42k characters kept in 0.3 MB.

pypinyin gives the same readings, but its character dictionary is a Python dict of 42k
entries: 11 MiB of the server's memory from its first import (issue 9 part 5), for names it
reads one character at a time with the first reading of each. `pinyin.txt` holds exactly that
first, toneless reading (what `lazy_pinyin(c, style=Style.NORMAL)` gives with
PYPINYIN_NO_PHRASES), one line per syllable: `zhang 5f20 7ae0 ...` (hex code points).
The readings are pypinyin's data (MIT licence; pypinyin 0.55.0 by mozillazg, from its
pinyin-data); regenerate it after upgrading pypinyin: `python -m yunying.mpi.pinyin` (tests/mpi/
test_pinyin.py compares every character with pypinyin).
"""
from __future__ import annotations

import os
from array import array
from bisect import bisect_left
from functools import lru_cache
from pathlib import Path

TABLE = Path(__file__).with_name("pinyin.txt")


@lru_cache(maxsize=1)
def _table() -> tuple[array[int], array[int], tuple[str, ...]]:
    """Sorted code points, each one's syllable number, the syllables: read at the first name."""
    pairs: list[tuple[int, int]] = []
    syllables: list[str] = []
    for number, line in enumerate(TABLE.read_text(encoding="ascii").splitlines()):
        syllable, *points = line.split()
        syllables.append(syllable)
        pairs.extend((int(p, 16), number) for p in points)
    pairs.sort()
    return array("I", (p for p, _ in pairs)), array("H", (n for _, n in pairs)), tuple(syllables)


def of(text: str) -> str:
    """Each Han character by its toneless reading, any other character kept: 张伟 -> zhangwei."""
    points, numbers, syllables = _table()
    out = []
    for char in text:
        at = bisect_left(points, ord(char))
        out.append(syllables[numbers[at]] if at < len(points) and points[at] == ord(char) else char)
    return "".join(out)


def generate() -> dict[str, list[int]]:
    """Each syllable's characters, read from the installed pypinyin (a tool: the server never imports it)."""
    os.environ["PYPINYIN_NO_PHRASES"] = "1"  # read at pypinyin's import: each character alone
    from pypinyin import Style, lazy_pinyin
    from pypinyin.pinyin_dict import pinyin_dict

    by_syllable: dict[str, list[int]] = {}
    for point in sorted(pinyin_dict):
        reading = "".join(lazy_pinyin(chr(point), style=Style.NORMAL, errors="default"))
        if reading != chr(point):  # pypinyin does not treat it as Han: kept as it is
            by_syllable.setdefault(reading, []).append(point)
    return by_syllable


def main() -> None:
    lines = [" ".join([syllable, *(f"{p:x}" for p in points)]) for syllable, points in sorted(generate().items())]
    TABLE.write_text("\n".join(lines) + "\n", encoding="ascii")
    print(f"{TABLE}: {sum(len(line.split()) - 1 for line in lines)} characters, {len(lines)} syllables")


if __name__ == "__main__":
    main()
