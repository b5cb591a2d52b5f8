"""pdfminer.six: the second reader, for PDFs that PDFium cannot open or pages it reads too little of."""

from __future__ import annotations

import io
from collections.abc import Collection, Iterator

from pdfminer.converter import TextConverter
from pdfminer.layout import LAParams
from pdfminer.pdfdocument import PDFDocument, PDFEncryptionError
from pdfminer.pdfinterp import PDFPageInterpreter, PDFResourceManager
from pdfminer.pdfpage import PDFPage
from pdfminer.pdfparser import PDFParser
from pdfminer.pdftypes import resolve1
from pdfminer.utils import decode_text

from docq.errors import CorruptDocument, EncryptedDocument
from docq.processing.content import Content, clean_title, describe, parse_pdf_date

EXTRACTOR = "pdfminer.six"
_PAGE_SEPARATOR = "\n\f"


def extract_with_pdfminer(path: str, name: str, *, why: str) -> Content:
    """The text of the PDF at ``path`` as pdfminer.six reads it, pages separated by ``"\\n\\f"``.

    ``why`` says why PDFium did not read it, for the error message. Raises
    `EncryptedDocument` when a password is needed and `CorruptDocument` when pdfminer
    cannot read the file or it has no pages.
    """
    try:
        with open(path, "rb") as stream:
            document = _open(stream)
            texts = [text for _index, text in _page_texts(document, None)]
            info = _info(document)
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
    text = _PAGE_SEPARATOR.join(texts)
    return Content(
        text=text,
        extractor=EXTRACTOR,
        pages=len(texts),
        title=clean_title(info.get("Title")),
        author=clean_title(info.get("Author")),
        created=parse_pdf_date(info.get("CreationDate")),
        encrypted=document.encryption is not None,
        needs_ocr=not text.strip(),
    )


def pdfminer_page_texts(path: str, indices: Collection[int]) -> dict[int, str]:
    """pdfminer.six's text of the pages at ``indices`` (from 0); empty if it cannot read the file."""
    try:
        with open(path, "rb") as stream:
            return dict(_page_texts(_open(stream), indices))
    except (OSError, MemoryError):
        raise
    # Any failure inside pdfminer (see extract_with_pdfminer) leaves PDFium's text standing.
    except Exception:
        return {}


def _open(stream: io.BufferedReader) -> PDFDocument:
    return PDFDocument(PDFParser(stream), password="")


def _page_texts(document: PDFDocument, indices: Collection[int] | None) -> Iterator[tuple[int, str]]:
    """(index, text) for the pages at ``indices``, or for every page if it is None."""
    output = io.StringIO()
    resources = PDFResourceManager(caching=True)
    device = TextConverter(resources, output, laparams=LAParams())
    last = max(indices, default=-1) if indices is not None else None
    try:
        interpreter = PDFPageInterpreter(resources, device)
        for index, page in enumerate(PDFPage.create_pages(document)):
            if last is not None and index > last:
                break
            if indices is not None and index not in indices:
                continue
            interpreter.process_page(page)
            # TextConverter ends each page with a form feed: the caller joins pages its own way.
            yield index, output.getvalue().removesuffix("\f").rstrip("\n")
            output.seek(0)
            output.truncate()
    finally:
        device.close()


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
