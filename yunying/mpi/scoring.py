"""Candidate links scored by the Fellegi-Sunter model (Fellegi & Sunter, JASA 1969).

Each field is compared into a level (exact, close, different, missing); a level's weight is
log2(m/u), m the probability of that level among records of one person, u among records of
different people. A pair's score is the sum of its fields' weights. String closeness is
rapidfuzz's Jaro-Winkler; names are also compared by their pinyin (yunying.mpi.pinyin), so 张伟 and 章伟
(a clerk's homophone) or ZHANG^WEI from a device without Chinese input stay close.

The m/u values below are priors for Chinese hospital registries (a common name such as 张伟
lowers the true u of an exact name match: the defaults are deliberately cautious, linking
automatically only when name, birth date and sex all agree, or a phone joins the same name;
a homophone with the same phone, often a child on a parent's phone, waits for review).
In a large registry `name_frequency_adjustment` replaces the exact-name u by the name's share.
"""
from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from rapidfuzz.distance import JaroWinkler

from yunying.mpi import pinyin

# field -> level -> (m, u)
PRIORS: dict[str, dict[str, tuple[float, float]]] = {
    "name": {"exact": (0.80, 0.0005), "pinyin": (0.10, 0.002), "close": (0.05, 0.01),
             "different": (0.05, 0.9875)},
    "sex": {"exact": (0.98, 0.5), "different": (0.02, 0.5)},
    "birth_date": {"exact": (0.90, 0.0003), "close": (0.06, 0.003), "different": (0.04, 0.9967)},
    "phone": {"exact": (0.60, 0.0001), "different": (0.30, 0.9999)},
}
CLOSE_NAME = 0.88  # Jaro-Winkler similarity of pinyin at or above which names are "close"


@dataclass(frozen=True)
class Demographics:
    """What is compared: name, its pinyin, sex, birth date (YYYYMMDD), phone blind index."""

    name: str = ""
    sex: str = ""
    birth_date: str = ""
    phone_blind: str = ""

    @property
    def pinyin(self) -> str:
        return pinyin_of(self.name)


def clean_name(name: str) -> str:
    """A person name without DICOM PN carets, spacing and case; width-normalised (NFKC)."""
    return re.sub(r"[\s^=·.]+", "", unicodedata.normalize("NFKC", name)).lower()


@lru_cache(maxsize=4096)  # a few µs per name now (a table lookup per character): a small cache
def pinyin_of(name: str) -> str:
    """Toneless pinyin of the Han characters, Latin letters kept: 张伟 -> zhangwei."""
    return pinyin.of(clean_name(name))


def compare(a: Demographics, b: Demographics) -> dict[str, str]:
    """The comparison level of each field both records have (a missing field adds nothing)."""
    levels: dict[str, str] = {}
    na, nb = clean_name(a.name), clean_name(b.name)
    if na and nb:
        if na == nb:
            levels["name"] = "exact"
        elif a.pinyin == b.pinyin:
            levels["name"] = "pinyin"
        elif JaroWinkler.similarity(a.pinyin, b.pinyin) >= CLOSE_NAME:
            levels["name"] = "close"
        else:
            levels["name"] = "different"
    if a.sex in ("M", "F") and b.sex in ("M", "F"):
        levels["sex"] = "exact" if a.sex == b.sex else "different"
    if len(a.birth_date) == 8 and len(b.birth_date) == 8:
        levels["birth_date"] = _date_level(a.birth_date, b.birth_date)
    if a.phone_blind and b.phone_blind:
        levels["phone"] = "exact" if a.phone_blind == b.phone_blind else "different"
    return levels


def _date_level(a: str, b: str) -> str:
    """Exact; close when one of year, month, day differs or month and day are swapped (typing)."""
    if a == b:
        return "exact"
    ya, ma, da = a[:4], a[4:6], a[6:]
    yb, mb, db = b[:4], b[4:6], b[6:]
    same = (ya == yb) + (ma == mb) + (da == db)
    return "close" if same == 2 or (ya == yb and ma == db and da == mb) else "different"


def weight(field: str, level: str, priors: dict[str, dict[str, tuple[float, float]]] = PRIORS) -> float:
    m, u = priors[field][level]
    return math.log2(m / u)


def name_frequency_adjustment(same_name: int, total: int, minimum: int = 10_000) -> float:
    """Term-frequency adjustment of an exact name agreement (as Splink does): its u is at least
    the share of records carrying that name, so 张伟 agreeing weighs less than a rare name.
    Only once `total` records make the share an estimate; 0 (the prior) before."""
    if total < minimum or same_name <= 0:
        return 0.0
    prior_u = PRIORS["name"]["exact"][1]
    return math.log2(prior_u / max(prior_u, same_name / total))


def score(a: Demographics, b: Demographics) -> tuple[float, dict[str, str]]:
    """The Fellegi-Sunter match weight of a pair and the levels it came from."""
    levels = compare(a, b)
    return sum(weight(f, lv) for f, lv in levels.items()), levels
