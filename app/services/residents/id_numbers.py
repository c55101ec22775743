"""Mainland China resident ID numbers (GB 11643-1999): checksum validation and masking."""
from __future__ import annotations

import re
from datetime import date

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_CHARS = "10X98765432"
_SHAPE = re.compile(r"^\d{17}[\dX]$")


def check_char(first17: str) -> str:
    return _CHECK_CHARS[sum(int(d) * w for d, w in zip(first17, _WEIGHTS)) % 11]


def normalise(raw: str) -> str:
    return raw.strip().upper()


def is_valid(raw: str) -> bool:
    number = normalise(raw)
    if not _SHAPE.match(number):
        return False
    try:
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    if born > date.today() or born.year < 1880:
        return False
    return check_char(number[:17]) == number[17]


def mask(last4: str) -> str:
    """How an ID number is shown anywhere: only the last four characters."""
    return "*" * 14 + last4
