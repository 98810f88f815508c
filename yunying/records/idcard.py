"""Resident ID card numbers (GB 11643-1999): 18 characters, ISO 7064 MOD 11-2 check character.

Shared by the record store (refuses a wrong number) and the patient master index (links people
deterministically only by a verified number).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)  # 2^(18-i) mod 11, i = 1..17
CHECK = "10X98765432"  # ISO 7064 MOD 11-2: (12 - sum mod 11) mod 11, 10 written X
_SHAPE = re.compile(r"[1-9]\d{16}[\dX]")  # region codes never begin with 0


class InvalidIdCard(ValueError):
    """Not an 18-character resident ID number, a wrong check character, or an impossible birth date.

    The message never quotes the number (it is personal data)."""


@dataclass(frozen=True)
class IdCard:
    number: str  # normalised: upper-case X, no spaces
    region: str  # the six-digit administrative division code of registration
    birth_date: str  # YYYYMMDD
    sex: str  # "M" | "F": the 17th digit, odd for men


def check_character(first17: str) -> str:
    """The MOD 11-2 check character of the first 17 digits."""
    return CHECK[sum(int(d) * w for d, w in zip(first17, WEIGHTS)) % 11]


def normalise(value: str) -> str:
    """Spaces removed, a lower-case x upper-cased (the form blind indexes and links use)."""
    return re.sub(r"\s+", "", value or "").upper()


def birth_date(value: str) -> str | None:
    """The birth date a verified number encodes (YYYYMMDD), None when it is not a valid number."""
    try:
        return parse_id_card(value).birth_date
    except InvalidIdCard:
        return None


def parse_id_card(value: str) -> IdCard:
    """A verified resident ID number; raises InvalidIdCard naming what is wrong."""
    number = normalise(value)
    if not _SHAPE.fullmatch(number):
        raise InvalidIdCard("ID card number: 17 digits (not beginning with 0) and a check digit or X expected")
    if check_character(number[:17]) != number[17]:
        raise InvalidIdCard("ID card number: wrong check digit (ISO 7064 MOD 11-2)")
    born = number[6:14]
    try:
        when = date(int(born[:4]), int(born[4:6]), int(born[6:]))
    except ValueError:
        raise InvalidIdCard("ID card number: its birth date is not a date") from None
    if when.year < 1880 or when > date.today():
        raise InvalidIdCard("ID card number: its birth date is out of range")
    return IdCard(number, number[:6], born, "M" if int(number[16]) % 2 else "F")


def is_valid(value: str) -> bool:
    """Whether value is a well-formed resident ID number with a correct check character."""
    if len(value or "") < 18:  # normalising only removes characters: most PatientIDs end here, without an exception
        return False
    try:
        parse_id_card(value)
    except InvalidIdCard:
        return False
    return True
