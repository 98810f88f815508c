"""The master index's pinyin table (yunying.mpi.pinyin) reads every name as pypinyin does,
without the 11 MiB pypinyin costs the server from its import (issue 9 part 5;
tests/yunying/test_startup_imports.py keeps pypinyin out of the server's imports)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from yunying.mpi import pinyin
from yunying.mpi.scoring import Demographics, compare, pinyin_of

REPO = Path(__file__).resolve().parents[2]

# pypinyin in a fresh interpreter: its PYPINYIN_NO_PHRASES setting is read once, at its import
AGAINST_PYPINYIN = textwrap.dedent("""
    import json, random, sys
    from pypinyin import Style, lazy_pinyin
    from pypinyin.pinyin_dict import pinyin_dict
    from yunying.mpi import pinyin
    def reference(text):
        return "".join(lazy_pinyin(text, style=Style.NORMAL, errors="default"))
    han = sorted(pinyin_dict)
    differ = [hex(p) for p in han if pinyin.of(chr(p)) != reference(chr(p))]
    rng = random.Random(9)
    others = "abcxyz019 -^.·〇ㄅぁアー"
    names = ["".join(chr(rng.choice(han)) if rng.random() < 0.7 else rng.choice(others)
                     for _ in range(rng.randint(1, 6))) for _ in range(3000)]
    differ += [n for n in names if pinyin.of(n) != reference(n)]
    print(json.dumps({"checked": len(han) + len(names), "differ": differ[:20]}))
""")


def test_every_character_and_mixed_names_read_as_pypinyin_reads_them() -> None:
    env = dict(os.environ, PYPINYIN_NO_PHRASES="1", PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", AGAINST_PYPINYIN], env=env, cwd=REPO,
                         capture_output=True, text=True, check=True, timeout=120)
    result = json.loads(out.stdout)
    assert result["checked"] > 40_000
    assert result["differ"] == []


def test_homophones_and_latin_names_compare_by_pinyin() -> None:
    assert pinyin.of("张伟") == "zhangwei"
    assert pinyin_of("章伟") == pinyin_of("张伟") == pinyin_of("ZHANG^WEI") == "zhangwei"
    assert pinyin.of("吕x1") == "lvx1"  # ü as v, anything not Han kept
    assert compare(Demographics("张伟"), Demographics("章伟"))["name"] == "pinyin"
    assert compare(Demographics("张伟"), Demographics("李娜"))["name"] == "different"
    assert "pypinyin" not in sys.modules  # reading names needs none of it

