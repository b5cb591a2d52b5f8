"""What a format extractor returns, and the small helpers they share (titles, dates)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

TITLE_LIMIT = 200
"""Titles are cut to this many characters: they label a document, they are not its text."""


@dataclass(frozen=True)
class Content:
    """Text and metadata read from one document by one format's extractor.

    ``title`` is the document's own title (from its metadata or ``<title>``), or None;
    `extract` falls back to the first heading or line of ``text``, then to the file name.
    ``created`` is an ISO 8601 UTC string. ``extra`` holds what only this format has, as
    JSON-serialisable values merged into the metadata: ``sheets``, ``slides``,
    ``attachments`` (a list of ``{"name", "type", "size"}``), ``notes`` (what was left
    out and why, such as a cell cap), and so on.
    """

    text: str
    extractor: str
    pages: int | None = None
    title: str | None = None
    author: str | None = None
    created: str | None = None
    encrypted: bool = False
    needs_ocr: bool = False
    encoding: str | None = None
    extra: dict[str, object] = field(default_factory=dict)


# Whitespace, and control characters that broken metadata carries (NUL-terminated titles).
_SPACES = re.compile(r"[\s\x00-\x1f\x7f]+")
# A line with at least one letter or digit: lines of rules, bullets or page furniture
# such as "* * *" say nothing about what a document is; nor do the lines with which
# docq's extractors mark a document's parts (SECTION_MARK: "## Sheet1", "## Slide 2").
_MEANINGFUL_LINE = re.compile(r"^(?!## )(?!--- attachment: ).*?[^\W_].*$", re.MULTILINE)

SECTION_MARK = "## "
"""How extractors start the line that names a part of a document: a sheet, a slide."""


def clean_title(value: str | None) -> str | None:
    """``value`` with its whitespace collapsed and cut to `TITLE_LIMIT`; None if blank."""
    if not value:
        return None
    title = _SPACES.sub(" ", value).strip()
    return title[:TITLE_LIMIT].rstrip() or None


def first_meaningful_line(text: str) -> str | None:
    """The first line of ``text`` holding a letter or digit, as a title; None if there is none."""
    match = _MEANINGFUL_LINE.search(text)
    return clean_title(match.group()) if match else None


def describe(error: BaseException) -> str:
    """A library's exception as one line for an error message: its type and what it said."""
    detail = " ".join(str(error).split())
    return f"{type(error).__name__}: {detail}" if detail else type(error).__name__


def utc_iso(moment: dt.datetime | None) -> str | None:
    """``moment`` as an ISO 8601 string in UTC; a naive time is taken to be UTC already."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).isoformat()


# PDF dates: "D:YYYYMMDDHHmmSSOHH'mm'" where everything after the year is optional
# and O is "+", "-" or "Z" (ISO 32000-1, 7.9.4). Real files also drop the "D:" and the quotes.
_PDF_DATE = re.compile(
    r"\s*(?:D:)?(\d{4})(\d\d)?(\d\d)?(\d\d)?(\d\d)?(\d\d)?\s*(?:(Z)|([+-])(\d\d)'?(?:(\d\d)'?)?)?"
)


def parse_pdf_date(value: str | None) -> str | None:
    """A PDF date string (``D:20200101120000+01'00'``) as ISO 8601 UTC; None if absent or invalid.

    A date without a time zone is taken to be UTC.
    """
    match = _PDF_DATE.match(value or "")
    if not match:
        return None
    year, month, day, hour, minute, second, _zulu, sign, tz_hours, tz_minutes = match.groups()
    offset = dt.timedelta(hours=int(tz_hours or 0), minutes=int(tz_minutes or 0))
    try:
        zone = dt.timezone(-offset if sign == "-" else offset)
        moment = dt.datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            tzinfo=zone,
        )
    except ValueError:  # month 13, hour 25, a 30-hour offset: no usable date
        return None
    return utc_iso(moment)
