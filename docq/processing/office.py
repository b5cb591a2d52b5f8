"""Word documents (DOCX): every story's text in reading order, and the core properties.

python-docx opens the package and reads the core properties; the text comes from walking
the WordprocessingML itself, because python-docx's own text leaves out content controls,
text boxes, tracked insertions, field results, list labels, notes, headers and footers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any, BinaryIO

import docx
from docx.opc.constants import RELATIONSHIP_TYPE as RT
from docx.opc.part import Part

from docq.errors import CorruptDocument, EncryptedDocument, PermanentError
from docq.processing.archive import open_package, parse_xml
from docq.processing.content import Content, clean_title, describe, utc_iso
from docq.processing.detect import OLE_MAGIC

EXTRACTOR = "python-docx"

Element = Any  # an lxml element (lxml ships no type hints)

W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_MATH_TEXT = "{http://schemas.openxmlformats.org/officeDocument/2006/math}t"
_ALTERNATE = "{http://schemas.openxmlformats.org/markup-compatibility/2006}AlternateContent"
_REL_ID = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"

_CHARACTERS = {W + "tab": "\t", W + "ptab": "\t", W + "br": "\n", W + "cr": "\n", W + "noBreakHyphen": "-"}
# Properties, deleted or moved-away text, field codes and ruby guide text are not what a reader sees.
# fmt: off
_HIDDEN = frozenset(W + tag for tag in (
    "pPr", "rPr", "sdtPr", "sdtEndPr", "del", "moveFrom", "instrText", "delText", "delInstrText",
    "rt", "fldData",
))
# fmt: on
_DRAWINGS = frozenset({W + "drawing", W + "pict", W + "object"})
# Elements that only wrap blocks, rows or cells: their children belong to the enclosing container.
_WRAPPERS = frozenset({W + "customXml", W + "ins", W + "moveTo", W + "smartTag"})
_NOTE_KINDS = ("normal", None)  # separators and continuation notices are rules, not text
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def extract_docx(path: str, name: str) -> Content:
    """The text of the DOCX at ``path``, one line per paragraph, table cells tab-separated.

    Reading order: the body (paragraphs, tables, content controls; a text box's paragraphs
    follow the paragraph it is anchored in), then footnotes and endnotes, then the headers,
    then the footers, each header and footer once even when several sections repeat it.
    Headers and footers come last rather than around the body so the text starts with the
    document's own words, which is what a title fallback and a snippet should show, and
    because they repeat on every page rather than belong at one place. List paragraphs
    start with their label ("1.", "a)", "•"), counted per list (numId) and level. Deleted
    text of tracked changes is left out, inserted text kept; fields show their results.

    Raises `EncryptedDocument` for a password-protected DOCX, `SuspiciousArchive` for a
    zip bomb, and `CorruptDocument` when the package cannot be read.
    """
    with open(path, "rb") as stream:
        if stream.read(len(OLE_MAGIC)) == OLE_MAGIC:
            raise _legacy_container(stream, name)
        open_package(path, name).close()  # refuses a zip bomb before python-docx unpacks it
        stream.seek(0)
        try:
            document = docx.Document(stream)
            text = "\n".join(_lines(document, name))
            properties = document.core_properties
            title, author, created = properties.title, properties.author, properties.created
        except (OSError, MemoryError, PermanentError):
            raise
        # python-docx reports a damaged package as whatever failed underneath it (BadZipFile,
        # KeyError for a missing part, XMLSyntaxError, ValueError...): each means "corrupt".
        except Exception as error:
            raise CorruptDocument(f"corrupt: {name}: {describe(error)}") from error
    return Content(
        text=_CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n")),
        extractor=EXTRACTOR,
        title=clean_title(title),
        author=clean_title(author),
        created=utc_iso(created),
    )


def _legacy_container(stream: BinaryIO, name: str) -> PermanentError:
    """Why an OLE2 file named .docx cannot be read: a password, or it is no DOCX at all."""
    # Word stores a protected DOCX as an OLE2 stream called "EncryptedPackage".
    if "EncryptedPackage".encode("utf-16-le") in stream.read():
        return EncryptedDocument(f"encrypted: {name} needs a password")
    return CorruptDocument(f"corrupt: {name}: a legacy Word (OLE2) file, not a DOCX package")


def _lines(document: Any, name: str) -> Iterator[str]:
    """The lines of every story of ``document`` in the order `extract_docx` gives."""
    main = document.part
    related = {rel.reltype: rel.target_part for rel in main.rels.values() if not rel.is_external}
    numbering = _Numbering(
        _root(related[RT.NUMBERING], name) if RT.NUMBERING in related else None,
        _root(related[RT.STYLES], name) if RT.STYLES in related else None,
    )
    yield from _Story(numbering).blocks(document.element.body)
    for reltype, tag in ((RT.FOOTNOTES, W + "footnote"), (RT.ENDNOTES, W + "endnote")):
        if reltype in related:
            for note in _root(related[reltype], name).iterchildren(tag):
                if note.get(W + "type") in _NOTE_KINDS:
                    yield from _Story(numbering).blocks(note)
    for kind in ("headerReference", "footerReference"):
        seen: set[str] = set()
        for part in _section_parts(document, kind):
            text = "\n".join(_Story(numbering).blocks(_root(part, name)))
            if text.strip() and text not in seen:
                seen.add(text)
                yield text


def _section_parts(document: Any, kind: str) -> Iterator[Part]:
    """The header or footer parts (``kind`` is the reference's tag) that sections name, in order."""
    body = document.element.body
    seen: set[str] = set()
    for section in body.iter(W + "sectPr"):
        if section.getparent() is not body and section.getparent().tag != W + "pPr":
            continue  # the previous properties of a tracked change, not a section
        for reference in section.iterchildren(W + kind):
            rel = document.part.rels.get(reference.get(_REL_ID))
            if rel is not None and not rel.is_external and rel.target_part.partname not in seen:
                seen.add(rel.target_part.partname)
                yield rel.target_part


def _root(part: Part, name: str) -> Element:
    """The root element of an XML part: python-docx's own tree if it parsed the part."""
    element = getattr(part, "element", None)
    return element if element is not None else parse_xml(part.blob, name)


def _flat(container: Element) -> Iterator[Element]:
    """The children of ``container``, with content controls and other wrappers opened."""
    for child in container:
        if child.tag == W + "sdt":
            yield from _flat(_control_content(child))
        elif child.tag in _WRAPPERS:
            yield from _flat(child)
        elif child.tag == _ALTERNATE and len(child):
            yield from _flat(child[0])  # the first choice; the others hold the same content again
        else:
            yield child


def _control_content(control: Element) -> Element | list[Element]:
    """What a content control shows: its content, unless that is only its placeholder prompt."""
    content = control.find(W + "sdtContent")
    if content is None or _on(control.find(f"{W}sdtPr/{W}showingPlcHdr")):
        return []
    return content


def _on(flag: Element | None) -> bool:
    """Whether an on/off property is on: present, and not set to false."""
    return flag is not None and flag.get(W + "val") not in ("0", "false", "off")


def _text_boxes(element: Element) -> Iterator[Element]:
    """The text boxes drawn inside ``element``, each once (not again in its fallback picture)."""
    for child in element:
        if child.tag == W + "txbxContent":
            yield child
        elif child.tag == _ALTERNATE:
            yield from _text_boxes(child[:1])
        elif isinstance(child.tag, str):
            yield from _text_boxes(child)


class _Story:
    """A walk through one story (the body, a note, a header): blocks in, lines out.

    Complex fields span runs and even paragraphs, so the walk keeps a stack with one entry
    per open field: False while its code is being read, True once its result begins.
    """

    def __init__(self, numbering: _Numbering) -> None:
        self.numbering = numbering
        self.fields: list[bool] = []

    def blocks(self, container: Element) -> Iterator[str]:
        """Lines of the paragraphs and tables in ``container``, in order."""
        for block in _flat(container):
            if block.tag == W + "p":
                yield from self._paragraph(block)
            elif block.tag == W + "tbl":
                yield from self._table(block)

    def _paragraph(self, paragraph: Element) -> Iterator[str]:
        label = self.numbering.label(paragraph)
        pieces: list[str] = []
        boxes: list[Element] = []
        self._inline(paragraph, pieces, boxes)
        yield label + "".join(pieces)
        outer, self.fields = self.fields, []  # a text box is a story of its own
        for box in boxes:
            yield from self.blocks(box)
        self.fields = outer

    def _inline(self, element: Element, pieces: list[str], boxes: list[Element]) -> None:
        for child in element:
            tag = child.tag
            shown = all(self.fields)
            if tag in (W + "t", _MATH_TEXT):
                if shown:
                    pieces.append(child.text or "")
            elif tag in _CHARACTERS:
                if shown:
                    pieces.append(_CHARACTERS[tag])
            elif tag == W + "fldChar":
                self._field(child.get(W + "fldCharType"))
            elif tag in _DRAWINGS:
                boxes.extend(_text_boxes(child))
            elif tag == _ALTERNATE:
                self._inline(child[:1], pieces, boxes)
            elif tag == W + "sdt":
                self._inline(_control_content(child), pieces, boxes)
            elif tag not in _HIDDEN and isinstance(tag, str):  # runs, links, insertions, controls...
                self._inline(child, pieces, boxes)

    def _field(self, kind: str | None) -> None:
        if kind == "begin":
            self.fields.append(False)
        elif kind == "separate" and self.fields:
            self.fields[-1] = True
        elif kind == "end" and self.fields:
            self.fields.pop()

    def _table(self, table: Element) -> Iterator[str]:
        for row in _flat(table):
            if row.tag != W + "tr" or row.find(f"{W}trPr/{W}del") is not None:
                continue  # table properties, or a row deleted as a tracked change
            cells = [
                "\n".join(self.blocks(cell))
                for cell in _flat(row)
                if cell.tag == W + "tc" and not _continues_merge(cell)
            ]
            yield "\t".join(cells)


def _continues_merge(cell: Element) -> bool:
    """Whether ``cell`` continues a merged cell above or to its left: its text is there, once."""
    for tag in ("vMerge", "hMerge"):
        merge = cell.find(f"{W}tcPr/{W}{tag}")
        if merge is not None and merge.get(W + "val", "continue") == "continue":
            return True
    return False


# --- List labels (numbering.xml) --------------------------------------------------


@dataclass(frozen=True)
class _Level:
    """One level of a list: how its counter starts, restarts and is written."""

    start: int = 1
    format: str = "decimal"
    text: str = ""
    restart: int = -1  # restart after a use of levels 1..restart (one-based); 0 never; -1 any higher
    legal: bool = False  # every number of the label in decimal ("legal" numbering)
    suffix: str = " "  # what follows the label: Word's tab is written as a space


def _level(lvl: Element) -> _Level:
    return _Level(
        start=_int(_val(lvl, W + "start"), 1),
        format=_val(lvl, W + "numFmt") or "decimal",
        text=_val(lvl, W + "lvlText") or "",
        restart=_int(_val(lvl, W + "lvlRestart"), -1),
        legal=_on(lvl.find(W + "isLgl")),
        suffix={"nothing": "", "space": " "}.get(_val(lvl, W + "suff") or "tab", " "),
    )


class _Numbering:
    """List labels of paragraphs, counted in the order paragraphs are asked about.

    Counters are kept per list instance (numId) and level: a new numId starts again, a
    level restarts when a higher level is used (or as ``lvlRestart`` says), and a
    ``startOverride`` sets where a list instance starts. A paragraph's numbering may come
    from its style, through the style's ``basedOn`` chain.
    """

    def __init__(self, numbering: Element | None, styles: Element | None) -> None:
        self._abstracts = {a.get(W + "abstractNumId"): a for a in _children(numbering, "abstractNum")}
        self._nums = {n.get(W + "numId"): n for n in _children(numbering, "num")}
        self._styles = {s.get(W + "styleId"): s for s in _children(styles, "style")}
        defaults = [
            s
            for s in self._styles.values()
            if s.get(W + "type") == "paragraph" and _on(s.find(W + "default"))
        ]
        self._default_style = defaults[0].get(W + "styleId") if defaults else None
        self._levels: dict[str, dict[int, _Level]] = {}
        self._counters: dict[str, dict[int, int]] = {}

    def label(self, paragraph: Element) -> str:
        """The label of ``paragraph`` and its separator, or "" if it is no list item."""
        properties = paragraph.find(W + "pPr")
        num_id, ilvl = _val(properties, f"{W}numPr/{W}numId"), _val(properties, f"{W}numPr/{W}ilvl")
        style = _val(properties, W + "pStyle") or self._default_style
        for _ in range(20):  # a bound, because basedOn chains can loop
            if (num_id is not None and ilvl is not None) or style not in self._styles:
                break
            num_id = num_id or _val(self._styles[style], f"{W}pPr/{W}numPr/{W}numId")
            ilvl = ilvl or _val(self._styles[style], f"{W}pPr/{W}numPr/{W}ilvl")
            style = _val(self._styles[style], W + "basedOn")
        if not num_id or num_id == "0":
            return ""
        index, levels = _int(ilvl, 0), self._levels_of(num_id)
        if index not in levels:
            return ""
        level, counts = levels[index], self._counters.setdefault(num_id, {})
        counts[index] = counts[index] + 1 if index in counts else level.start
        for deeper in [other for other in counts if other > index]:
            restart = levels[deeper].restart if deeper in levels else -1
            if index < (deeper if restart < 0 else restart):
                del counts[deeper]
        if level.format == "bullet":
            return "•" + level.suffix  # the bullet's own character is usually a symbol-font glyph

        def number(match: re.Match[str]) -> str:
            shown = levels.get(int(match[1]) - 1, _Level())
            value = counts.get(int(match[1]) - 1, shown.start)
            return _format(value, "decimal" if level.legal else shown.format)

        text = re.sub(r"%([1-9])", number, level.text)
        return text + level.suffix if text.strip() else ""

    def _levels_of(self, num_id: str) -> dict[int, _Level]:
        if num_id not in self._levels:
            num = self._nums.get(num_id)
            abstract = self._abstracts.get(_val(num, W + "abstractNumId"))
            for _ in range(5):  # a list may take its levels from a numbering style's list
                link = self._styles.get(_val(abstract, W + "numStyleLink"))
                linked = self._nums.get(_val(link, f"{W}pPr/{W}numPr/{W}numId"))
                if linked is None:
                    break
                abstract = self._abstracts.get(_val(linked, W + "abstractNumId"))
            levels = {_int(lvl.get(W + "ilvl"), 0): _level(lvl) for lvl in _children(abstract, "lvl")}
            for override in _children(num, "lvlOverride"):
                index = _int(override.get(W + "ilvl"), 0)
                if override.find(W + "lvl") is not None:
                    levels[index] = _level(override.find(W + "lvl"))
                if _val(override, W + "startOverride") is not None:
                    start = _int(_val(override, W + "startOverride"), 1)
                    levels[index] = replace(levels.get(index, _Level()), start=start)
            self._levels[num_id] = levels
        return self._levels[num_id]


def _val(element: Element | None, path: str) -> str | None:
    found = element.find(path) if element is not None else None
    return found.get(W + "val") if found is not None else None


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def _children(element: Element | None, tag: str) -> list[Element]:
    return list(element.iterchildren(W + tag)) if element is not None else []


# fmt: off
_ROMAN = (
    (1000, "m"), (900, "cm"), (500, "d"), (400, "cd"), (100, "c"), (90, "xc"), (50, "l"), (40, "xl"),
    (10, "x"), (9, "ix"), (5, "v"), (4, "iv"), (1, "i"),
)
# fmt: on


def _format(value: int, number_format: str) -> str:
    """``value`` as a list label writes it (Word's letters go a..z, aa..zz, aaa...)."""
    if number_format in ("lowerLetter", "upperLetter") and value > 0:
        letters = chr(ord("a") + (value - 1) % 26) * ((value - 1) // 26 + 1)
        return letters.upper() if number_format == "upperLetter" else letters
    if number_format in ("lowerRoman", "upperRoman") and 0 < value < 40000:
        roman = ""
        for amount, digits in _ROMAN:
            count, value = divmod(value, amount)
            roman += digits * count
        return roman.upper() if number_format == "upperRoman" else roman
    if number_format == "decimalZero":
        return f"{value:02d}"
    return "" if number_format == "none" else str(value)
