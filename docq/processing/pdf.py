"""PDF: text and metadata by PDFium, with pdfminer.six where PDFium falls short.

PDFium is fast and robust, so it reads every PDF first. pdfminer.six reads a file
only when PDFium cannot open it, and reads a page again when PDFium finds fewer
characters on it than it has text objects (fonts whose characters PDFium cannot map).
"""

from __future__ import annotations

from itertools import islice

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from docq.errors import EncryptedDocument, TransientError
from docq.processing.content import Content, clean_title, parse_pdf_date

EXTRACTOR = "pypdfium2"

_SHORT_PAGE = 32
"""Pages with fewer visible characters than this have their text objects counted."""

_LONG_PAGE = 2048
"""Pages with at least this many characters of text are never short."""

_PAGE_SEPARATOR = "\n\f"
# PDFium marks a hyphen at a line's end as U+0002 (and ends lines with CRLF).
_PDFIUM_TEXT = str.maketrans({"\x02": "-", "\r": None})


def extract_pdf(path: str, name: str) -> Content:
    """The text of the PDF at ``path``, pages separated by ``"\\n\\f"``, and its metadata.

    A PDF that opens with the empty password is read and flagged ``encrypted``; one
    with pages but no text is read and flagged ``needs_ocr``. Raises `EncryptedDocument`
    when a password is needed, `CorruptDocument` when neither PDFium nor pdfminer.six
    can read the file.
    """
    try:
        document = pdfium.PdfDocument(path)
    except pdfium.PdfiumError as error:
        reason = pdfium.internal.ErrorToStr.get(error.err_code, str(error))
        if error.err_code == pdfium_c.FPDF_ERR_PASSWORD:
            raise EncryptedDocument(f"encrypted: {name} needs a password") from error
        if error.err_code == pdfium_c.FPDF_ERR_SECURITY:
            raise EncryptedDocument(f"encrypted: {name} uses an unsupported security handler") from error
        if error.err_code == pdfium_c.FPDF_ERR_FILE:
            raise TransientError(f"cannot read {path}: PDFium could not open it") from error
        from docq.processing.pdf_fallback import extract_with_pdfminer

        return extract_with_pdfminer(path, name, why=f"PDFium: {reason}")
    try:
        return _read(document, path)
    finally:
        document.close()


def _read(document: pdfium.PdfDocument, path: str) -> Content:
    pages = len(document)
    texts: list[str] = []
    short_pages: set[int] = set()
    for index in range(pages):
        text, short = _page_text(document, index)
        texts.append(text)
        if short:
            short_pages.add(index)
    extractor = EXTRACTOR
    if short_pages:
        from docq.processing.pdf_fallback import pdfminer_page_texts

        better = {
            index: text
            for index, text in pdfminer_page_texts(path, short_pages).items()
            if _visible(text) > _visible(texts[index])
        }
        for index, text in better.items():
            texts[index] = text
        if better:
            extractor = "pdfminer.six" if len(better) == pages else f"{EXTRACTOR}+pdfminer.six"
    text = _PAGE_SEPARATOR.join(texts)
    metadata = document.get_metadata_dict()
    return Content(
        text=text,
        extractor=extractor,
        pages=pages,
        title=clean_title(metadata.get("Title")),
        author=clean_title(metadata.get("Author")),
        created=parse_pdf_date(metadata.get("CreationDate")),
        # -1 means no security handler; any revision means the file is encrypted, and
        # opening it at all means the empty user password unlocked it.
        encrypted=pdfium_c.FPDF_GetSecurityHandlerRevision(document) != -1,
        needs_ocr=pages > 0 and not text.strip(),
    )


def _page_text(document: pdfium.PdfDocument, index: int) -> tuple[str, bool]:
    """A page's text, and whether it looks short of what its text objects hold."""
    try:
        page = document[index]
    except pdfium.PdfiumError:
        return "", True  # a damaged page: perhaps pdfminer reads it
    try:
        textpage = page.get_textpage()
        try:
            text = textpage.get_text_bounded().translate(_PDFIUM_TEXT)
        finally:
            textpage.close()
        # Counting objects walks the whole page, so it is done only when the text is short;
        # a page with thousands of characters is not, so its text is not even counted.
        visible = _visible(text) if len(text) < _LONG_PAGE else _SHORT_PAGE
        short = visible < _SHORT_PAGE and _has_more_text_objects(page, visible)
    except pdfium.PdfiumError:
        return "", True
    finally:
        page.close()
    return text, short


def _has_more_text_objects(page: pdfium.PdfPage, count: int) -> bool:
    """Whether ``page`` holds more than ``count`` text objects (each shows one glyph or more)."""
    text_objects = page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_TEXT])
    return next(islice(text_objects, count, None), None) is not None


def _visible(text: str) -> int:
    """The number of characters in ``text`` that are not whitespace."""
    return len("".join(text.split()))
