"""Rich Text Format: the text of the document (striprtf), and its title, author and date from ``\\info``.

striprtf decodes ``\\'hh`` escapes in the code page of ``\\ansicpg`` or of the current
font, and ``\\uN`` escapes; this module adds what it misses: Mac and other code pages
Python knows under another name, surrogate pairs written as two ``\\uN``, table cells as
tabs, and the ``\\info`` group it skips. Headers, footers, footnotes and comments are
left out (striprtf skips them as destinations).
"""

from __future__ import annotations

import codecs
import datetime as dt
import re

from striprtf.striprtf import rtf_to_text

from docq.errors import CorruptDocument
from docq.processing.content import Content, clean_title, describe, utc_iso

EXTRACTOR = "striprtf"

_DEFAULT_ENCODING = "cp1252"
_HEADER_SIZE = 4096  # the declarations are at the start; a font table can be long
# The character set a document declares after "{\rtf1", when \ansicpg does not say more.
_CHARSETS = {b"ansi": "cp1252", b"mac": "mac_roman", b"pc": "cp437", b"pca": "cp850"}
# Names striprtf builds ("cp" + \ansicpg, or its own for \fcharset) that Python knows by
# another name or not at all; the last ones are the nearest codec Python has.
_CODEC_NAMES = {
    "cp10000": "mac_roman",
    "cp10006": "mac_greek",
    "cp10007": "mac_cyrillic",
    "cp10029": "mac_latin2",
    "cp10079": "mac_iceland",
    "cp10081": "mac_turkish",
    "cp20127": "ascii",
    "cp28591": "latin_1",
    "cp65001": "utf_8",
    "mac_japanese": "cp932",
    "mac_chinesetrad": "cp950",
    "mac_chinesesimp": "gbk",
    "mac_korean": "cp949",
    "mac_rumanian": "mac_romanian",
    "mac_ukrainian": "mac_cyrillic",
    "mac_ce": "mac_latin2",
    "mac_hebrew": "cp1255",
    "mac_thai": "cp874",
}


def _codec_alias(name: str) -> codecs.CodecInfo | None:
    target = _CODEC_NAMES.get(name)
    return codecs.lookup(target) if target else None


# striprtf looks code pages up by name: teach Python these names (only names it lacks reach
# this search function, so no other decoding in the process changes).
codecs.register(_codec_alias)

_RTF_START = re.compile(rb"\s*\{\\rtf")
_CHARSET = re.compile(rb"\\(ansi|mac|pca|pc)(?![a-z])")
_ANSICPG = re.compile(rb"\\ansicpg(\d+)")
# Control words, after an even number of backslashes (an odd one escapes the last).
_CELL = re.compile(r"(?<!\\)((?:\\\\)*)\\(?:nest)?cell(?![a-zA-Z])")
_CODEPAGE_WORD = re.compile(r"(?<!\\)((?:\\\\)*)\\ansicpg(?![a-zA-Z])")
_BRACE = re.compile(r"\\[\\{}]|[{}]")
# Groups of hex-encoded binaries (pictures, OLE objects, Office themes) that striprtf would
# skip anyway, one character at a time: cut first, they are most of a large RTF's bytes.
_BINARY_GROUP = re.compile(r"\{\\(?:\*\\)?(?:pict|objdata|themedata|colorschememapping|datastore)(?![a-z])")
_UNWANTED = re.compile("[\x00-\x08\x0b-\x1f\x7f\xad]")  # and soft hyphens, which split words
_TRAILING = re.compile(r"[ \t]+$", re.MULTILINE)
_GAPS = re.compile(r"\n{3,}")
_INFO = re.compile(r"\{\\info(?![a-z])")
_INFO_GROUP = re.compile(r"\{\\(title|author|creatim|nofpages)(?![a-z])")
_TIME_PARTS = ("yr", "mo", "dy", "hr", "min", "sec")


def extract_rtf(data: bytes, name: str) -> Content:
    """The text of an RTF document: one line per paragraph, table cells tab-separated.

    Title, author and creation date come from the ``\\info`` group; the page count is the
    one the writer saved (``\\nofpages``). Raises `CorruptDocument` for input that is not
    RTF or that striprtf cannot read.
    """
    if not _RTF_START.match(data):
        raise CorruptDocument(f"corrupt: {name}: not an RTF document (no {{\\rtf header)")
    encoding = _encoding(data)
    # RTF is 7-bit text; stray 8-bit bytes are taken to be in the document's code page.
    source = data.decode(encoding, errors="replace")
    try:
        # striprtf would decode in an \ansicpg it does not know as UTF-8: it gets the code
        # page resolved here instead (\ansicpg becomes a word it ignores, keeping its number
        # and delimiter), and cells end with tabs rather than "|".
        source_for_striprtf = _CELL.sub(
            r"\1\\tab", _CODEPAGE_WORD.sub(r"\1\\docqignored", _text_only(source))
        )
        text = _to_text(source_for_striprtf, encoding)
        info = _info(source, encoding)
    # striprtf reports bad input as whatever failed inside it (an \uc or \bin without a
    # number, a code page Python lacks...): each means the document is damaged.
    except (ValueError, TypeError, LookupError, IndexError, AttributeError) as error:
        raise CorruptDocument(f"corrupt: {name}: {describe(error)}") from error
    extra: dict[str, object] = {}
    if not _balanced(source):
        extra["notes"] = ["the RTF ends inside an open group: it may be cut short"]
    return Content(
        text=_tidy(text),
        extractor=EXTRACTOR,
        title=clean_title(info.get("title")),
        author=clean_title(info.get("author")),
        created=_created(info.get("creatim", "")),
        pages=_number(info.get("nofpages", ""), "nofpages"),
        encoding=encoding,
        extra=extra,
    )


def _encoding(data: bytes) -> str:
    """The code page the header declares (``\\ansicpg``, else ``\\ansi``, ``\\mac``...)."""
    codepage = _ANSICPG.search(data, 0, _HEADER_SIZE)
    if codepage:
        try:
            return codecs.lookup(f"cp{int(codepage.group(1))}").name
        except LookupError:
            pass
    charset = _CHARSET.search(data, 0, _HEADER_SIZE)
    return codecs.lookup(_CHARSETS[charset.group(1)] if charset else _DEFAULT_ENCODING).name


def _to_text(source: str, encoding: str) -> str:
    text: str = rtf_to_text(source, encoding=encoding, errors="replace")  # type: ignore[no-untyped-call]
    return text


def _tidy(text: str) -> str:
    # Characters above U+FFFF come as two \uN escapes, a surrogate pair: join them.
    text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    text = _UNWANTED.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    return _GAPS.sub("\n\n", _TRAILING.sub("", text)).strip("\n")


def _group_end(source: str, start: int) -> int | None:
    """The index just after the group that opens at ``source[start]``; None if it never closes."""
    depth = 0
    for brace in _BRACE.finditer(source, start):
        token = brace.group()
        if token in ("{", "}"):
            depth += 1 if token == "{" else -1
            if depth == 0:
                return brace.end()
    return None


def _text_only(source: str) -> str:
    """``source`` without its binary groups (see ``_BINARY_GROUP``)."""
    pieces, position = [], 0
    for found in _BINARY_GROUP.finditer(source):
        if found.start() < position:
            continue  # inside a group cut already
        end = _group_end(source, found.start()) or len(source)
        # Raw \bin data may hold braces that fool the count: striprtf skips such groups itself.
        if "\\bin" not in source[found.start() : end]:
            pieces.append(source[position : found.start()])
            position = end
    pieces.append(source[position:])
    return "".join(pieces)


def _balanced(source: str) -> bool:
    """Whether the document's outer group closes (a cut-off file's does not)."""
    return _group_end(source, source.index("{")) is not None


def _info(source: str, encoding: str) -> dict[str, str]:
    """The groups of ``{\\info ...}`` by control word: ``title`` and ``author`` as text,
    ``creatim`` and ``nofpages`` as their whole RTF group."""
    found = _INFO.search(source)
    if found is None:
        return {}
    end = _group_end(source, found.start()) or len(source)
    info: dict[str, str] = {}
    for group in _INFO_GROUP.finditer(source, found.end(), end):
        word, group_end = group.group(1), _group_end(source, group.start()) or end
        # A title may hold \'hh and \uN escapes: read it as a document of its own.
        info[word] = (
            _to_text(f"{{\\rtf1\\ansi {source[group.end() : group_end - 1]}}}", encoding)
            if word in ("title", "author")
            else source[group.start() : group_end]
        )
    return info


def _number(source: str, word: str) -> int | None:
    """The parameter of control word ``word`` in ``source`` (``\\yr2015``: 2015), if present."""
    match = re.search(rf"\\{word}\s*(\d+)", source)
    return int(match.group(1)) if match else None


def _created(creatim: str) -> str | None:
    """``\\yr2015\\mo6\\dy14\\hr12\\min49`` as ISO 8601 (a local time, taken as UTC)."""
    year, month, day, hour, minute, second = (_number(creatim, part) for part in _TIME_PARTS)
    if not year:
        return None
    try:
        moment = dt.datetime(year, month or 1, day or 1, hour or 0, minute or 0, second or 0)
    except ValueError:  # month 13, day 0: no usable date
        return None
    return utc_iso(moment)
