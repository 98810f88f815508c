"""The 18-digit resident identity number (GB 11643-1999): its check character, ISO 7064 MOD 11-2.

Written here because the MPI needs it first; `yunying/records/idcard.py` (issue 15 parts 2-4)
checks the same numbers and one of the two should go once both have landed.
"""
from __future__ import annotations

import re
from datetime import date

_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))  # 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2
_CHECK = "10X98765432"  # ISO 7064 MOD 11-2: the character for (sum mod 11)
_SHAPE = re.compile(r"[1-9]\d{16}[\dX]")


def check_character(first17: str) -> str:
    """The check character of the first 17 digits."""
    return _CHECK[sum(int(c) * w for c, w in zip(first17, _WEIGHTS)) % 11]


def normalise(value: str) -> str:
    """Spaces removed, a lower-case x upper-cased."""
    return re.sub(r"\s+", "", value).upper()


def is_valid(value: str) -> bool:
    """An 18-character number with a right check character and a real birth date."""
    number = normalise(value)
    if not _SHAPE.fullmatch(number) or check_character(number[:17]) != number[17]:
        return False
    return birth_date(number) is not None


def birth_date(number: str) -> str | None:
    """The birth date the number encodes, as DICOM DA (YYYYMMDD), or None when it is no date."""
    digits = normalise(number)[6:14]
    try:
        born = date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        return None
    return digits if 1880 <= born.year <= date.today().year else None


def sex(number: str) -> str:
    """DICOM sex (M/F) from the 17th digit: odd for men."""
    return "M" if int(normalise(number)[16]) % 2 else "F"
