"""PDF: text and metadata by PDFium, with pdfminer.six where PDFium falls short.

PDFium is fast and robust, so it reads every PDF first. pdfminer.six reads a file only
when PDFium cannot open it, and reads a page again when PDFium seems to have dropped
text: a short page with more text objects than characters, or one where many text objects
show no character and a font has no Unicode map (PDFium drops the characters of a CJK
font that is neither embedded nor mapped). Form field values and the contents of text
annotations follow the text of the page they sit on. The checks cost an ordinary page
a few integer comparisons; only unusual pages have their objects walked.
"""

from __future__ import annotations

import ctypes
import mmap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from docq.errors import EncryptedDocument, TransientError
from docq.processing.content import Content, clean_title, parse_pdf_date
from docq.processing.pdf_text import SHORT_PAGE, clean_text, visible_characters

EXTRACTOR = "pypdfium2"

_LONG_PAGE = 2048
"""Pages with at least this many characters of text are never short."""

_SAMPLE = 32
"""Pages with more objects than this have a sample of this many looked at for silent text."""

_XMP_TITLE = b"<dc:title"
"""How an XMP packet holds a title (XMP writers use the "dc" prefix for Dublin Core)."""

_PAGE_SEPARATOR = "\n\f"

_NOTE_ANNOTATIONS = frozenset({pdfium_c.FPDF_ANNOT_TEXT, pdfium_c.FPDF_ANNOT_FREETEXT})
# Fields whose value is text; a check box's value is an export name such as "Off".
_TEXT_FIELDS = frozenset(
    {pdfium_c.FPDF_FORMFIELD_TEXTFIELD, pdfium_c.FPDF_FORMFIELD_COMBOBOX, pdfium_c.FPDF_FORMFIELD_LISTBOX}
)


@dataclass(frozen=True)
class _Page:
    """What PDFium read of one page."""

    text: str
    reread: bool = False
    """pdfminer should read the page: it is damaged, or holds more text objects than characters."""
    reread_if_unmapped: bool = False
    """pdfminer should read the page if a font on it has no Unicode map: many text objects show nothing."""
    image: bool = False
    """The page shows an image; looked for only on pages with almost no text."""


def extract_pdf(path: str, name: str) -> Content:
    """The text of the PDF at ``path``, pages separated by ``"\\n\\f"``, and its metadata.

    A page's form field values and text annotations follow its text. A PDF that opens
    with the empty password is read and flagged ``encrypted``; one with a page that shows
    an image but has (almost) no text is flagged ``needs_ocr``, and ``extra["ocr_pages"]``
    lists such pages (from 1). Raises `EncryptedDocument` when a password is needed,
    `CorruptDocument` when neither PDFium nor pdfminer.six can read the file.
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
        return _read(document, path, name)
    finally:
        document.close()


def _read(document: pdfium.PdfDocument, path: str, name: str) -> Content:
    with _form_environment(document) as form:
        pages = [_read_page(document, index, form) for index in range(len(document))]
    texts = [page.text for page in pages]
    extractor = EXTRACTOR
    reread = {index for index, page in enumerate(pages) if page.reread}
    reread_if_unmapped = {index for index, page in enumerate(pages) if page.reread_if_unmapped}
    if reread or reread_if_unmapped:
        from docq.processing.pdf_fallback import pdfminer_page_texts

        better = {
            index: text
            for index, text in pdfminer_page_texts(path, reread, if_unmapped=reread_if_unmapped).items()
            if visible_characters(text) > visible_characters(texts[index])
        }
        for index, text in better.items():
            texts[index] = text
        if better:
            extractor = "pdfminer.six" if len(better) == len(pages) else f"{EXTRACTOR}+pdfminer.six"
    ocr_pages = [
        index + 1
        for index, page in enumerate(pages)
        if page.image and visible_characters(texts[index]) < SHORT_PAGE
    ]
    metadata = document.get_metadata_dict()
    title, author = clean_title(metadata.get("Title")), clean_title(metadata.get("Author"))
    if title is None and _may_have_xmp(path):  # some producers write the title only there
        from docq.processing.pdf_fallback import xmp_metadata

        title, xmp_author = xmp_metadata(path, name)
        author = author or xmp_author
    return Content(
        text=_PAGE_SEPARATOR.join(texts),
        extractor=extractor,
        pages=len(pages),
        title=title,
        author=author,
        created=parse_pdf_date(metadata.get("CreationDate")),
        # -1 means no security handler; any revision means the file is encrypted, and
        # opening it at all means the empty user password unlocked it.
        encrypted=pdfium_c.FPDF_GetSecurityHandlerRevision(document) != -1,
        needs_ocr=bool(ocr_pages),
        extra={"ocr_pages": ocr_pages} if ocr_pages else {},
    )


@contextmanager
def _form_environment(document: pdfium.PdfDocument) -> Iterator[object | None]:
    """A handle to read form field values through, for a document with AcroForm fields; else None.

    It is PDFium's raw form environment: pypdfium2's own would also prepare every page
    for interaction as it loads, which reading values does not need and which costs.
    """
    if pdfium_c.FPDF_GetFormType(document) != pdfium_c.FORMTYPE_ACRO_FORM:
        yield None
        return
    callbacks = pdfium_c.FPDF_FORMFILLINFO(version=2)  # PDFium keeps a pointer: it must outlive the handle
    handle = pdfium_c.FPDFDOC_InitFormFillEnvironment(document, callbacks)
    try:
        yield handle or None
    finally:
        if handle:
            pdfium_c.FPDFDOC_ExitFormFillEnvironment(handle)


def _may_have_xmp(path: str) -> bool:
    """Whether the file holds an XMP title in plain sight: XMP asks for a PDF's packet to be
    left uncompressed, so that a scan like this one finds it without parsing the file."""
    with open(path, "rb") as stream:
        try:
            with mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ) as view:
                return view.find(_XMP_TITLE) != -1
        except ValueError:  # an empty file cannot be mapped, and holds nothing
            return False


def _read_page(document: pdfium.PdfDocument, index: int, form: object | None) -> _Page:
    try:
        page = document[index]
    except pdfium.PdfiumError:
        return _Page("", reread=True)  # a damaged page: perhaps pdfminer reads it
    try:
        textpage = page.get_textpage()
        try:
            text = clean_text(textpage.get_text_bounded())
            silent = _shows_too_little(page, textpage, text)
            if pdfium_c.FPDFPage_GetAnnotCount(page) > 0:
                text = "\n".join([text, *_annotation_texts(page, form)])
            visible = visible_characters(text) if len(text) < _LONG_PAGE else _LONG_PAGE
            if visible < SHORT_PAGE:
                text_objects, image = _inventory(page)
                return _Page(text, reread=text_objects > visible, reread_if_unmapped=silent, image=image)
            return _Page(text, reread_if_unmapped=silent)
        finally:
            textpage.close()
    except pdfium.PdfiumError:
        return _Page("", reread=True)
    finally:
        page.close()


def _inventory(page: pdfium.PdfPage) -> tuple[int, bool]:
    """The number of text objects on ``page`` (form XObjects included), and whether it shows an image."""
    text_objects, image = 0, False
    for item in page.get_objects(
        filter=[pdfium_c.FPDF_PAGEOBJ_TEXT, pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=4
    ):
        if item.type == pdfium_c.FPDF_PAGEOBJ_TEXT:
            text_objects += 1
        else:
            image = True
    return text_objects, image


def _shows_too_little(page: pdfium.PdfPage, textpage: pdfium.PdfTextPage, text: str) -> bool:
    """Whether many of the page's text objects, a quarter and two at least, show no character,
    and fonts PDFium cannot map could account for half of them.

    PDFium gives each run of characters from one text object its own rectangle, so text
    objects outnumbering rectangles show nothing: spaces, overprinted duplicates, or the
    characters of a font PDFium cannot map. A page with too few objects for that (counted
    against its lines first, as rectangles cost more to count) is not walked; on a page
    with many objects (a drawing), a sample of them is.
    """
    objects = int(pdfium_c.FPDFPage_CountObjects(page))
    if 3 * objects < 4 * (text.count("\n") + 1):  # a line holds one rectangle or more
        return False
    rectangles = int(pdfium_c.FPDFText_CountRects(textpage, 0, -1))
    needed = max(rectangles + 2, 4 * rectangles / 3)  # silent >= 2 and silent >= text objects / 4
    if objects < needed:
        return False
    step = max(1, objects // _SAMPLE)
    text_objects = [
        item
        for item in (pdfium_c.FPDFPage_GetObject(page, index) for index in range(0, objects, step))
        if pdfium_c.FPDFPageObj_GetType(item) == pdfium_c.FPDF_PAGEOBJ_TEXT
    ]
    scale = objects / -(-objects // step)  # objects per object looked at
    if len(text_objects) * scale < needed:
        return False
    unmapped = sum(_unmapped(pdfium_c.FPDFTextObj_GetFont(item)) for item in text_objects) * scale
    return unmapped >= max(2, (len(text_objects) * scale - rectangles) / 2)


def _unmapped(font: object) -> bool:
    """Whether PDFium seems unable to map characters to and from ``font``: it is not embedded
    and gets no proper width for "a" (a CID font whose CMap PDFium lacks gets the default
    width, 1 em, or none at all; a Latin "a" is narrower than 1 em)."""
    if pdfium_c.FPDFFont_GetIsEmbedded(font):
        return False
    width = ctypes.c_float(-1.0)
    if not pdfium_c.FPDFFont_GetGlyphWidth(font, ord("a"), 1.0, ctypes.byref(width)):
        return True
    return not 0.0 < width.value < 1.0


def _annotation_texts(page: pdfium.PdfPage, form: object | None) -> list[str]:
    """The contents of the page's text notes and free text, and its text fields' values, in order."""
    texts = []
    for index in range(pdfium_c.FPDFPage_GetAnnotCount(page)):
        annotation = pdfium_c.FPDFPage_GetAnnot(page, index)
        if not annotation:
            continue
        try:
            subtype = pdfium_c.FPDFAnnot_GetSubtype(annotation)
            if subtype in _NOTE_ANNOTATIONS:
                value = _utf16(pdfium_c.FPDFAnnot_GetStringValue, annotation, b"Contents")
            elif (
                subtype == pdfium_c.FPDF_ANNOT_WIDGET
                and form is not None
                and pdfium_c.FPDFAnnot_GetFormFieldType(form, annotation) in _TEXT_FIELDS
            ):
                value = _utf16(pdfium_c.FPDFAnnot_GetFormFieldValue, form, annotation)
            else:
                continue
        finally:
            pdfium_c.FPDFPage_CloseAnnot(annotation)
        value = clean_text(value).strip()
        if value:
            texts.append(value)
    return texts


def _utf16(function: Callable[..., int], *args: object) -> str:
    """The string a PDFium function writes as UTF-16 into a buffer whose size in bytes it tells first."""
    size = int(function(*args, None, 0))
    if size <= 2:  # nothing but the terminating NUL
        return ""
    buffer = (pdfium_c.FPDF_WCHAR * (size // 2))()
    function(*args, buffer, size)
    return bytes(ctypes.string_at(buffer, size)).decode("utf-16-le", errors="ignore").rstrip("\x00")
