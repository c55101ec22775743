"""Reports as CSV that Excel opens correctly: UTF-8 with a BOM, one titled table after another."""
from __future__ import annotations

import csv
import io
from typing import NamedTuple

BOM = "\ufeff"
# Excel runs a cell starting with these as a formula; residents' own words reach the CSV (unanswered
# questions), so such cells are prefixed with an apostrophe (OWASP's advice against CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class Section(NamedTuple):
    title: str
    headers: list[str]
    rows: list[list]


def to_csv(*, title: str, scope_line: str, sections: list[Section]) -> str:
    """The whole document as text, BOM first; CRLF line ends as Excel expects."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([title, scope_line])
    for section in sections:
        writer.writerow([])
        writer.writerow([section.title])
        writer.writerow(section.headers)
        writer.writerows([_cell(v) for v in row] for row in section.rows)
    return BOM + buffer.getvalue()


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def percent(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.1f}%"


def minutes(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds / 60:.1f}"
