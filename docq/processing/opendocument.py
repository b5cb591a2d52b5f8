"""OpenDocument text and presentations (ODT, ODP): the text of content.xml in document order.

Paragraphs and headings become lines; ``text:s`` and ``text:tab`` keep their spaces and
tabs; list items get their numbers or bullets; table rows are tab-separated cells; text
boxes follow the paragraph they are anchored in; footnotes and endnotes follow the body,
then an ODT's page headers and footers (from styles.xml). Deleted text kept for tracked
changes, and comments, are left out. An ODP gives one block per slide, its speaker notes
after its text. Recursion follows the XML's nesting, which the parser caps at 256 levels.
"""

from __future__ import annotations

import datetime as dt
import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from docq.errors import CorruptDocument, EncryptedDocument
from docq.processing.archive import open_package, parse_xml, read_member
from docq.processing.content import Content, clean_title, utc_iso

EXTRACTOR = "docq"

_NS = {
    "office": "urn:oasis:names:tc:opendocument:xmlns:office:1.0",
    "text": "urn:oasis:names:tc:opendocument:xmlns:text:1.0",
    "table": "urn:oasis:names:tc:opendocument:xmlns:table:1.0",
    "draw": "urn:oasis:names:tc:opendocument:xmlns:drawing:1.0",
    "style": "urn:oasis:names:tc:opendocument:xmlns:style:1.0",
    "presentation": "urn:oasis:names:tc:opendocument:xmlns:presentation:1.0",
    "meta": "urn:oasis:names:tc:opendocument:xmlns:meta:1.0",
    "dc": "http://purl.org/dc/elements/1.1/",
    "manifest": "urn:oasis:names:tc:opendocument:xmlns:manifest:1.0",
    "svg": "urn:oasis:names:tc:opendocument:xmlns:svg-compatible:1.0",
}


def _tag(qualified: str) -> str:
    prefix, local = qualified.split(":")
    return f"{{{_NS[prefix]}}}{local}"


def _attribute(element: Any, qualified: str) -> str | None:
    value: str | None = element.get(_tag(qualified))
    return value


_P, _H, _S, _TAB, _BREAK = (_tag(t) for t in ("text:p", "text:h", "text:s", "text:tab", "text:line-break"))
_LIST, _LIST_ITEM, _LIST_HEADER = (_tag(t) for t in ("text:list", "text:list-item", "text:list-header"))
_NOTE, _NUMBER, _TABLE, _ROW = (
    _tag(t) for t in ("text:note", "text:number", "table:table", "table:table-row")
)
_ROW_GROUPS = frozenset(
    _tag(t) for t in ("table:table-header-rows", "table:table-rows", "table:table-row-group")
)
# Shapes anchored inside a paragraph: their text follows the paragraph's own.
_SHAPES = frozenset(
    _tag(f"draw:{shape}")
    for shape in ("frame", "text-box", "custom-shape", "rect", "ellipse", "polygon", "g", "a", "caption")
)
# Neither body text nor a container of it: deleted text kept for tracked changes, comments,
# declarations, embedded binaries, alt text, and the templates of indexes.
# fmt: off
_SKIPPED = frozenset(
    _tag(t)
    for t in (
        "text:tracked-changes", "text:change", "office:annotation", "office:annotation-end",
        "text:sequence-decls", "text:variable-decls", "text:user-field-decls", "text:dde-connection-decls",
        "office:forms", "office:binary-data", "office:event-listeners", "table:table-source",
        "svg:title", "svg:desc", "presentation:notes",
    )
)
# fmt: on
_SPACE_RUN = re.compile(r"[ \t\n\r]+")
_SPACE = "\x00"  # stands for a text:s space until runs of ordinary white space are collapsed
# A cell or row that claims to repeat a million times is written at most this often, and
# repeats add at most this many characters to a document.
_MAX_REPEAT, _REPEAT_BUDGET = 100, 1_000_000
_PAGE_PARTS = ("header", "header-left", "header-first", "footer", "footer-left", "footer-first")


def extract_odf(path: str, name: str) -> Content:
    """The text of the ODT or ODP at ``path`` (see the module's docstring), and its title,
    author and creation date from meta.xml. An ODP reports ``extra={"slides": n}``.

    Raises `EncryptedDocument` for a password-protected package, `SuspiciousArchive` for a
    zip bomb, and `CorruptDocument` when content.xml is missing or unreadable.
    """
    try:
        with open_package(path, name) as package:
            members = set(package.namelist())

            def part(member: str) -> Any:
                return parse_xml(read_member(package, member, name), name) if member in members else None

            if (manifest := part("META-INF/manifest.xml")) is not None:
                _refuse_encrypted(manifest, name)  # before reading content.xml, ciphertext if so
            root, styles, meta = part("content.xml"), part("styles.xml"), part("meta.xml")
    # A damaged entry fails only when it is read: a bad CRC, bad deflate data, a cut-off file.
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as error:
        raise CorruptDocument(f"corrupt: {name}: a damaged ZIP entry ({error})") from error
    if root is None:
        raise CorruptDocument(f"corrupt: {name}: content.xml is missing")
    body = root.find("office:body", _NS)
    if body is None or len(body) == 0:
        raise CorruptDocument(f"corrupt: {name}: content.xml has no office:body")
    reader = _Reader(_list_styles(styles, root))  # content.xml's styles win
    document = body[0]
    title, author, created, pages = _metadata(meta)
    extra: dict[str, object] = {}
    furniture: list[str] = []
    if document.tag == _tag("office:presentation"):
        lines, extra["slides"] = reader.slides(document)
        pages = None  # a presentation's count is its slides
    else:
        lines = list(reader.blocks(document))
        if styles is not None:
            furniture = _unique(_page_furniture(reader, styles))
    lines += _section(reader.notes) + _section(furniture)
    return Content(
        text="\n".join(lines).strip("\n"),
        extractor=EXTRACTOR,
        title=title,
        author=author,
        created=created,
        pages=pages,
        extra=extra,
    )


def _refuse_encrypted(manifest: Any, name: str) -> None:
    for entry in manifest.iterfind("manifest:file-entry", _NS):
        encrypted = entry.find("manifest:encryption-data", _NS) is not None
        if encrypted and _attribute(entry, "manifest:full-path") == "content.xml":
            raise EncryptedDocument(f"encrypted: {name} needs a password")


@dataclass(frozen=True)
class _Level:
    """How one level of a list style labels its items."""

    number_format: str | None  # "1", "a", "A", "i", "I" or another; None for bullets
    bullet: str = ""
    prefix: str = ""
    suffix: str = ""
    start: int = 1


def _list_styles(*roots: Any) -> dict[str, dict[int, _Level]]:
    """Each text:list-style of the documents ``roots``, by name: its levels (1-based)."""
    styles: dict[str, dict[int, _Level]] = {}
    for root in roots:
        if root is None:
            continue
        for style in root.iter(_tag("text:list-style")):
            levels: dict[int, _Level] = {}
            for level in style:
                depth = _integer(_attribute(level, "text:level"), 1)
                if level.tag == _tag("text:list-level-style-number"):
                    levels[depth] = _Level(
                        _attribute(level, "style:num-format") or "",
                        prefix=_attribute(level, "style:num-prefix") or "",
                        suffix=_attribute(level, "style:num-suffix") or "",
                        start=_integer(_attribute(level, "text:start-value"), 1),
                    )
                elif level.tag == _tag("text:list-level-style-bullet"):
                    levels[depth] = _Level(None, bullet=_attribute(level, "text:bullet-char") or "")
            styles[_attribute(style, "style:name") or ""] = levels
    return styles


@dataclass
class _Reader:
    """Walks content.xml; collects notes on the way, to be written after the body."""

    list_styles: dict[str, dict[int, _Level]]
    notes: list[str] = field(default_factory=list)
    # The last number of each list style's levels, for lists that continue an earlier one.
    _counters: dict[tuple[str, int], int] = field(default_factory=dict)
    _repeat_budget: int = _REPEAT_BUDGET

    def slides(self, presentation: Any) -> tuple[list[str], int]:
        lines: list[str] = []
        count = 0
        for count, page in enumerate(presentation.iterfind("draw:page", _NS), start=1):
            lines += ["", f"## Slide {count}"] if lines else [f"## Slide {count}"]
            lines += self.blocks(page)
            for notes in page.iterfind("presentation:notes", _NS):
                lines += self.blocks(notes)
        return lines, count

    def blocks(self, container: Any, label: str = "", style: str = "", level: int = 1) -> Iterator[str]:
        """The lines of ``container``'s paragraphs, lists, tables and shapes, in order.

        Inside a list item, ``label`` (its number or bullet) goes before its first paragraph,
        and a list within is level ``level`` of list style ``style``.
        """
        for child in container:
            tag = child.tag
            if not isinstance(tag, str) or tag in _SKIPPED:
                continue
            if tag in (_P, _H):
                yield from self._paragraph(child, label)
                label = ""
            elif tag == _LIST:
                yield from self._list(child, style, level)
            elif tag == _TABLE:
                yield from self._rows(child)
            elif not tag.endswith("-source"):  # text:table-of-content-source and such: templates
                yield from self.blocks(child)

    def _paragraph(self, paragraph: Any, label: str) -> Iterator[str]:
        parts: list[str] = []
        anchored: list[Any] = []
        self._inline(paragraph, parts, anchored)
        if paragraph.find(_NUMBER) is not None:
            label = ""  # the paragraph carries its label already
        text = re.sub(" {2,}", " ", "".join(parts))
        text = "\n".join(line.strip(" ") for line in text.split("\n")).replace(_SPACE, " ")
        if text or label:
            yield f"{label}{text}".rstrip(" ")
        for shape in anchored:
            yield from self.blocks(shape)

    def _inline(self, element: Any, parts: list[str], anchored: list[Any]) -> None:
        # ODF collapses runs of white space in text (text:s and text:tab are the spaces kept).
        if element.text:
            parts.append(_SPACE_RUN.sub(" ", element.text))
        for child in element:
            tag = child.tag
            if tag == _S:
                parts.append(_SPACE * min(_integer(_attribute(child, "text:c"), 1), 1000))
            elif tag == _TAB:
                parts.append("\t")
            elif tag == _BREAK:
                parts.append("\n")
            elif tag == _NOTE:
                self._note(child)
            elif tag in _SHAPES:
                anchored.append(child)
            elif isinstance(tag, str) and tag not in _SKIPPED:
                self._inline(child, parts, anchored)
            if child.tail:  # the text after a child is this element's, even after a skipped child
                parts.append(_SPACE_RUN.sub(" ", child.tail))

    def _note(self, note: Any) -> None:
        """Keep the text of a footnote or endnote for after the body, after its number."""
        citation = note.find("text:note-citation", _NS)
        number = " ".join("".join(citation.itertext()).split()) if citation is not None else ""
        body = note.find("text:note-body", _NS)
        lines = list(self.blocks(body)) if body is not None else []
        if lines:
            self.notes += [f"[{number}] {lines[0]}" if number else lines[0], *lines[1:]]

    def _list(self, element: Any, style: str, level: int) -> Iterator[str]:
        # A nested list without a style of its own takes its outer list's.
        style = _attribute(element, "text:style-name") or style
        kind = self.list_styles.get(style, {}).get(level, _Level(None))
        key = (style, level)
        continues = _attribute(element, "text:continue-numbering") == "true" or _attribute(
            element, "text:continue-list"
        )
        number = self._counters.get(key, kind.start - 1) if continues else kind.start - 1
        for item in element:
            label = ""
            if item.tag == _LIST_ITEM:
                number = _integer(_attribute(item, "text:start-value"), number + 1)
                label = _label(kind, number)
            elif item.tag != _LIST_HEADER:  # a list header is an item without a number
                continue
            yield from self.blocks(item, "  " * (level - 1) + label, style, level + 1)
        self._counters[key] = number

    def _rows(self, table: Any) -> Iterator[str]:
        for child in table:
            if child.tag in _ROW_GROUPS:
                yield from self._rows(child)
            elif child.tag == _ROW:
                cells: list[str] = []
                for cell in child.iterfind("table:table-cell", _NS):  # covered cells hold no text
                    text = " ".join(" ".join(self.blocks(cell)).split())
                    cells += [text] * self._repeat(cell, "table:number-columns-repeated", len(text))
                row = "\t".join(cells).rstrip("\t")
                if row:
                    yield from [row] * self._repeat(child, "table:number-rows-repeated", len(row))

    def _repeat(self, element: Any, attribute: str, size: int) -> int:
        """How often to write ``element``, of ``size`` characters: as often as it says, within limits."""
        wanted = min(_integer(_attribute(element, attribute), 1), _MAX_REPEAT) if size else 1
        allowed = max(min(wanted - 1, self._repeat_budget // size if size else 0), 0)
        self._repeat_budget -= allowed * size
        return 1 + allowed


def _integer(value: str | None, default: int) -> int:
    """``value`` as a whole number; ``default`` if it is absent or no number."""
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def _label(level: _Level, number: int) -> str:
    if level.number_format is None:
        return f"{level.bullet} " if level.bullet else ""
    if not level.number_format:
        return ""
    return f"{level.prefix}{_format_number(number, level.number_format)}{level.suffix} "


def _format_number(number: int, number_format: str) -> str:
    if number_format in ("a", "A") and number > 0:
        letters = ""
        while number:
            number, remainder = divmod(number - 1, 26)
            letters = chr(ord("a") + remainder) + letters
        return letters.upper() if number_format == "A" else letters
    if number_format in ("i", "I") and 0 < number < 4000:
        roman = ""
        for value, numeral in zip(
            (1000, 900, 500, 400, 100, 90, 50, 40, 10, 9, 5, 4, 1),
            ("m", "cm", "d", "cd", "c", "xc", "l", "xl", "x", "ix", "v", "iv", "i"),
            strict=True,
        ):
            count, number = divmod(number, value)
            roman += numeral * count
        return roman.upper() if number_format == "I" else roman
    return str(number)


def _page_furniture(reader: _Reader, styles: Any) -> Iterator[str]:
    """The lines of the headers and footers of every master page of styles.xml."""
    for page in styles.iterfind("office:master-styles/style:master-page", _NS):
        for part in _PAGE_PARTS:
            for element in page.iterfind(f"style:{part}", _NS):
                yield from reader.blocks(element)


def _unique(lines: Iterator[str]) -> list[str]:
    return list(dict.fromkeys(line for line in lines if line.strip()))


def _section(lines: list[str]) -> list[str]:
    """``lines`` as a block after a blank line, or nothing."""
    return ["", *lines] if lines else []


def _metadata(meta: Any) -> tuple[str | None, str | None, str | None, int | None]:
    """Title, author, creation date and page count from meta.xml (None where absent)."""
    if meta is None:
        return None, None, None, None
    properties = meta.find("office:meta", _NS)
    if properties is None:
        return None, None, None, None

    def value(path: str) -> str | None:
        found = properties.find(path, _NS)
        return "".join(found.itertext()) if found is not None else None

    author = clean_title(value("meta:initial-creator")) or clean_title(value("dc:creator"))
    statistics = properties.find("meta:document-statistic", _NS)
    pages = _integer(_attribute(statistics, "meta:page-count"), 0) if statistics is not None else 0
    return (
        clean_title(value("dc:title")),
        author,
        iso_date(value("meta:creation-date")),
        pages if pages > 0 else None,
    )


_PARTIAL_DATE = re.compile(r"(\d{4})(?:-(\d\d)(?:-(\d\d))?)?")


def iso_date(value: str | None) -> str | None:
    """An ISO 8601 date or time as ODF and EPUB write them ("2020", "2020-05",
    "2020-05-03T10:30:00.123456789Z"), as ISO 8601 UTC; None if absent or invalid.
    A time without a zone is taken to be UTC."""
    text = (value or "").strip()
    try:
        if partial := _PARTIAL_DATE.fullmatch(text):
            year, month, day = partial.groups()
            return utc_iso(dt.datetime(int(year), int(month or 1), int(day or 1)))
        return utc_iso(dt.datetime.fromisoformat(text))
    except (ValueError, OverflowError):  # month 13; year 1 with a zone east of UTC
        return None
