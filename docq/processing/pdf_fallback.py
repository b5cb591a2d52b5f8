"""pdfminer.six: the second reader, for what PDFium cannot do.

It reads PDFs that PDFium cannot open, pages PDFium reads too little of, and the XMP
metadata packet (PDFium does not give access to the document catalog).
"""

from __future__ import annotations

import io
import re
from collections.abc import Collection, Iterator
from typing import Any

from pdfminer.converter import TextConverter
from pdfminer.layout import LAParams
from pdfminer.pdfdocument import PDFDocument, PDFEncryptionError
from pdfminer.pdfinterp import PDFPageInterpreter, PDFResourceManager
from pdfminer.pdfpage import PDFPage
from pdfminer.pdfparser import PDFParser
from pdfminer.pdftypes import PDFStream, resolve1
from pdfminer.psparser import literal_name
from pdfminer.utils import decode_text

from docq.errors import CorruptDocument, EncryptedDocument
from docq.processing.archive import parse_xml
from docq.processing.content import Content, clean_title, describe, parse_pdf_date
from docq.processing.pdf_text import SHORT_PAGE, clean_text, visible_characters

EXTRACTOR = "pdfminer.six"
_PAGE_SEPARATOR = "\n\f"
_XMP_LIMIT = 1024 * 1024
"""XMP packets are a few kilobytes; a larger one is not read."""

# pdfminer writes "(cid:42)" for a glyph it cannot map: a placeholder, not text.
_UNMAPPED_GLYPH = re.compile(r"\(cid:\d+\)")
_DC = "{http://purl.org/dc/elements/1.1/}"
_RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


def extract_with_pdfminer(path: str, name: str, *, why: str) -> Content:
    """The text of the PDF at ``path`` as pdfminer.six reads it, pages separated by ``"\\n\\f"``.

    ``why`` says why PDFium did not read it, for the error message. Flags ``needs_ocr``
    and lists ``extra["ocr_pages"]`` as `extract_pdf` does. Raises `EncryptedDocument`
    when a password is needed and `CorruptDocument` when pdfminer cannot read the file
    or it has no pages.
    """
    texts: list[str] = []
    ocr_pages: list[int] = []
    try:
        with open(path, "rb") as stream:
            document = _open(stream)
            for index, text, page in _page_texts(document, None, ()):
                texts.append(text)
                if visible_characters(text) < SHORT_PAGE and _shows_image(page):
                    ocr_pages.append(index + 1)
            info = _info(document)
            title, author = clean_title(info.get("Title")), clean_title(info.get("Author"))
            if title is None:
                title, xmp_author = _xmp(document, name)
                author = author or xmp_author
    except PDFEncryptionError as error:
        raise EncryptedDocument(f"encrypted: {name} needs a password") from error
    except (OSError, MemoryError):
        raise
    # pdfminer reports damage as whatever broke inside it (PSEOF, PDFSyntaxError, KeyError,
    # TypeError, struct.error, zlib.error, RecursionError...): each means the file is corrupt.
    except Exception as error:
        raise CorruptDocument(f"corrupt: {name}: {why}; pdfminer: {describe(error)}") from error
    if not texts:
        raise CorruptDocument(f"corrupt: {name}: {why}; pdfminer: no pages")
    return Content(
        text=_PAGE_SEPARATOR.join(texts),
        extractor=EXTRACTOR,
        pages=len(texts),
        title=title,
        author=author,
        created=parse_pdf_date(info.get("CreationDate")),
        encrypted=document.encryption is not None,
        needs_ocr=bool(ocr_pages),
        extra={"ocr_pages": ocr_pages} if ocr_pages else {},
    )


def pdfminer_page_texts(
    path: str, indices: Collection[int], *, if_unmapped: Collection[int] = ()
) -> dict[int, str]:
    """pdfminer.six's text of the pages at ``indices`` (from 0), and of those at
    ``if_unmapped`` that use a font without a Unicode map; empty if it cannot read the file."""
    try:
        with open(path, "rb") as stream:
            return {index: text for index, text, _page in _page_texts(_open(stream), indices, if_unmapped)}
    except (OSError, MemoryError):
        raise
    # Any failure inside pdfminer (see extract_with_pdfminer) leaves PDFium's text standing.
    except Exception:
        return {}


def xmp_metadata(path: str, name: str) -> tuple[str | None, str | None]:
    """The title (``dc:title``) and author (``dc:creator``) in the XMP packet of the PDF at ``path``.

    Each is None where absent; both are where there is no packet or it cannot be read
    without repairing the file (PDFium has read the file, so this is no reason to fail).
    """
    try:
        with open(path, "rb") as stream:
            # Without the fallback, pdfminer does not scan a damaged file for its objects.
            return _xmp(PDFDocument(PDFParser(stream), password="", fallback=False), name)
    except (OSError, MemoryError):
        raise
    except Exception:
        return None, None


def _open(stream: io.BufferedReader) -> PDFDocument:
    return PDFDocument(PDFParser(stream), password="")


def _page_texts(
    document: PDFDocument, indices: Collection[int] | None, if_unmapped: Collection[int]
) -> Iterator[tuple[int, str, PDFPage]]:
    """(index, text, page) for the pages at ``indices`` and the pages at ``if_unmapped`` that
    use a font without a Unicode map; for every page if ``indices`` is None."""
    output = io.StringIO()
    resources = PDFResourceManager(caching=True)
    device = TextConverter(resources, output, laparams=LAParams())
    last = None if indices is None else max([*indices, *if_unmapped], default=-1)
    try:
        interpreter = PDFPageInterpreter(resources, device)
        for index, page in enumerate(PDFPage.create_pages(document)):
            if last is not None and index > last:
                break
            wanted = indices is None or index in indices
            if not wanted and (index not in if_unmapped or not _has_unmapped_font(page)):
                continue
            interpreter.process_page(page)
            # TextConverter ends each page with a form feed: the caller joins pages its own way.
            text = output.getvalue().removesuffix("\f").rstrip("\n")
            yield index, clean_text(_UNMAPPED_GLYPH.sub("", text)), page
            output.seek(0)
            output.truncate()
    finally:
        device.close()


def _has_unmapped_font(page: PDFPage) -> bool:
    """Whether ``page`` uses a composite (CID) font without a ToUnicode map.

    Such a font's characters are known only through the CMap it names; PDFium lacks
    many of them (GBK-EUC-H, V...) and drops those characters, where pdfminer has them.
    """
    fonts = resolve1((page.resources or {}).get("Font"))
    if not isinstance(fonts, dict):
        return False
    for font in fonts.values():
        font = resolve1(font)
        if isinstance(font, dict) and "ToUnicode" not in font and _name(font.get("Subtype")) == "Type0":
            return True
    return False


def _shows_image(page: PDFPage) -> bool:
    """Whether ``page`` names an image among its resources (inline images are not seen)."""
    xobjects = resolve1((page.resources or {}).get("XObject"))
    if not isinstance(xobjects, dict):
        return False
    return any(
        isinstance(item := resolve1(xobject), PDFStream) and _name(item.get("Subtype")) == "Image"
        for xobject in xobjects.values()
    )


def _name(value: object) -> str | None:
    try:
        return literal_name(value)
    except Exception:  # pdfminer raises its own error for a value that is no name
        return None


def _xmp(document: PDFDocument, name: str) -> tuple[str | None, str | None]:
    """Title and author from the XMP packet of the catalog's /Metadata stream.

    XMP asks for that stream to be left unfiltered, so that scanners find it (see
    `docq.processing.pdf`); a filtered (compressed or encrypted) one is not read.
    """
    stream = resolve1(document.catalog.get("Metadata"))
    if not isinstance(stream, PDFStream) or stream.get_filters():
        return None, None
    packet = stream.get_rawdata()
    if not isinstance(packet, bytes) or len(packet) > _XMP_LIMIT:
        return None, None
    try:
        root = parse_xml(packet.strip(), name)
    except CorruptDocument:  # a broken packet costs the metadata, not the document
        return None, None
    title = next(root.iter(f"{_DC}title"), None)
    creator = next(root.iter(f"{_DC}creator"), None)
    return _xmp_value(title), _xmp_value(creator)


def _xmp_value(element: Any) -> str | None:
    """An XMP property's text: an rdf:Alt's default (or first) item, an rdf:Seq's or rdf:Bag's
    items joined, or the element's own text."""
    if element is None:
        return None
    for container in element:
        items = [item for item in container if item.tag == f"{_RDF}li"]
        if container.tag == f"{_RDF}Alt" and items:
            default = [item for item in items if item.get(_XML_LANG) == "x-default"]
            return clean_title((default or items)[0].text)
        if container.tag in (f"{_RDF}Seq", f"{_RDF}Bag"):
            return clean_title(", ".join(item.text for item in items if item.text))
    return clean_title(element.text)


def _info(document: PDFDocument) -> dict[str, str]:
    """The document information dictionary's text values (the last trailer wins)."""
    info: dict[str, str] = {}
    for entry in document.info:
        for key, value in entry.items():
            value = resolve1(value)
            if isinstance(value, bytes):
                info[key] = decode_text(value)
            elif isinstance(value, str):
                info[key] = value
    return info
