"""PowerPoint presentations (PPTX): each slide's text in reading order, its tables and speaker notes.

The text holds each slide in order (hidden slides too), starting with a line ``## Slide <n>``
(``n`` counts from 1); then the slide's title; then the text of its other shapes, top to
bottom and, at the same height, left to right (a group's shapes are read in their own order
where the group stands), one line per paragraph or soft line break; a table as one line per
row, its cells separated by tabs; then, where the slide has speaker notes, a line ``Notes:`` and the notes.
Blank paragraphs are dropped. Charts, SmartArt and pictures give no text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import BinaryIO

import pptx
from pptx.shapes.autoshape import Shape
from pptx.shapes.base import BaseShape
from pptx.shapes.graphfrm import GraphicFrame
from pptx.shapes.group import GroupShape
from pptx.slide import Slide
from pptx.table import Table
from pptx.text.text import TextFrame

from docq.errors import CorruptDocument, EncryptedDocument, PermanentError
from docq.processing import archive
from docq.processing.content import Content, clean_title, describe, utc_iso
from docq.processing.detect import OLE_MAGIC

EXTRACTOR = "python-pptx"

# python-pptx gives a line break inside a paragraph as a vertical tab.
_BREAKS = re.compile(r"[\v\r\n\f]")
_CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
_CELL_BREAKS = re.compile(r"\s*[\n\t\v\r\f]\s*")


def extract_pptx(path: str, name: str) -> Content:
    """The text of the PPTX at ``path`` (see the module's docstring); ``extra`` holds ``slides``.

    Raises `SuspiciousArchive` for a zip bomb, `EncryptedDocument` for a password-protected
    PPTX, and `CorruptDocument` when python-pptx cannot read the package.
    """
    with open(path, "rb") as stream:
        if stream.read(len(OLE_MAGIC)) == OLE_MAGIC:
            raise _legacy_container(stream, name)
        archive.open_package(path, name).close()
        stream.seek(0)
        try:
            presentation = pptx.Presentation(stream)
            slides = list(presentation.slides)
            lines = [line for number, slide in enumerate(slides, start=1) for line in _slide(slide, number)]
            properties = presentation.core_properties
            title, author, created = properties.title, properties.author, properties.created
        except (OSError, MemoryError):
            raise
        # python-pptx reports a damaged package as whatever failed underneath it (KeyError for
        # a missing part, XMLSyntaxError, ValueError, PackageNotFoundError...): each is "corrupt".
        except Exception as error:
            raise CorruptDocument(f"corrupt: {name}: {describe(error)}") from error
    return Content(
        text="\n".join(lines),
        extractor=EXTRACTOR,
        title=clean_title(title),
        author=clean_title(author),
        created=utc_iso(created),
        extra={"slides": len(slides)},
    )


def _legacy_container(stream: BinaryIO, name: str) -> PermanentError:
    """Why an OLE2 file cannot be read as PPTX: a password, or it is no PPTX at all."""
    # PowerPoint stores a protected PPTX as an OLE2 stream called "EncryptedPackage".
    if "EncryptedPackage".encode("utf-16-le") in stream.read():
        return EncryptedDocument(f"encrypted: {name} needs a password")
    return CorruptDocument(f"corrupt: {name}: a legacy (OLE2) file, not a PPTX package")


def _slide(slide: Slide, number: int) -> Iterator[str]:
    yield f"## Slide {number}"
    title = slide.shapes.title
    if title is not None:
        yield from _paragraphs(title.text_frame)
    yield from _shapes(shape for shape in slide.shapes if title is None or shape.shape_id != title.shape_id)
    notes = slide.notes_slide.notes_text_frame if slide.has_notes_slide else None
    lines = list(_paragraphs(notes)) if notes is not None else []
    if lines:
        yield "Notes:"
        yield from lines


def _shapes(shapes: Iterable[BaseShape]) -> Iterator[str]:
    """The text of ``shapes``, top to bottom, then left to right."""
    # A placeholder without a position of its own takes its layout's; failing that, it goes first.
    for shape in sorted(shapes, key=lambda shape: (shape.top or 0, shape.left or 0)):
        if isinstance(shape, GroupShape):
            yield from _shapes(shape.shapes)
        elif isinstance(shape, GraphicFrame) and shape.has_table:
            yield from _rows(shape.table)
        elif isinstance(shape, Shape) and shape.has_text_frame:
            yield from _paragraphs(shape.text_frame)


def _paragraphs(frame: TextFrame) -> Iterator[str]:
    """The lines of ``frame``'s paragraphs (a soft line break starts a line too), blank ones dropped."""
    for paragraph in frame.paragraphs:
        for line in _BREAKS.split(paragraph.text):
            line = _CONTROLS.sub("", line).rstrip()
            if line.strip():
                yield line


def _rows(table: Table) -> Iterator[str]:
    """One line per row with a value, cells tab-separated (a merged cell's text is in its first)."""
    for row in table.rows:
        cells = [_CONTROLS.sub("", _CELL_BREAKS.sub(" ", cell.text)).strip() for cell in row.cells]
        while cells and not cells[-1]:
            cells.pop()
        if cells:
            yield "\t".join(cells)
