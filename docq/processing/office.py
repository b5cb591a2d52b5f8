"""Word documents (DOCX): paragraphs and table cells in document order, and core properties."""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

import docx
from docx.document import Document
from docx.oxml.table import CT_Tc
from docx.table import Table, _Cell
from docx.text.paragraph import Paragraph

from docq.errors import CorruptDocument, EncryptedDocument, PermanentError
from docq.processing.content import Content, clean_title, describe, utc_iso
from docq.processing.detect import OLE_MAGIC

EXTRACTOR = "python-docx"


def extract_docx(path: str, name: str) -> Content:
    """The text of the DOCX at ``path``: one line per paragraph, table cells tab-separated.

    Raises `EncryptedDocument` for a password-protected DOCX, and `CorruptDocument` when
    python-docx cannot read the package.
    """
    with open(path, "rb") as stream:
        if stream.read(len(OLE_MAGIC)) == OLE_MAGIC:
            raise _legacy_container(stream, name)
        stream.seek(0)
        try:
            document = docx.Document(stream)
            text = "\n".join(_blocks(document))
            properties = document.core_properties
            title, author, created = properties.title, properties.author, properties.created
        except (OSError, MemoryError):
            raise
        # python-docx reports a damaged package as whatever failed underneath it (BadZipFile,
        # KeyError for a missing part, XMLSyntaxError, ValueError...): each means "corrupt".
        except Exception as error:
            raise CorruptDocument(f"corrupt: {name}: {describe(error)}") from error
    return Content(
        text=text,
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


def _blocks(container: Document | _Cell) -> Iterator[str]:
    """Paragraph texts and table rows of ``container``, in document order."""
    for item in container.iter_inner_content():
        if isinstance(item, Paragraph):
            yield item.text
        elif isinstance(item, Table):
            yield from _rows(item)


def _rows(table: Table) -> Iterator[str]:
    # A merged cell appears once per grid column (and row) it spans; its text belongs once.
    seen: set[CT_Tc] = set()
    for row in table.rows:
        cells = []
        for cell in row.cells:
            if cell._tc not in seen:
                seen.add(cell._tc)
                cells.append("\n".join(_blocks(cell)))
        yield "\t".join(cells)
