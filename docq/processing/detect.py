"""Type detection from a file's first bytes; the extension only breaks ties.

Detection must stay cheap because enqueue runs it on every file: it looks at bytes
already read, and opens the file again only for ZIP containers, whose type is inside.
"""

from __future__ import annotations

import codecs
import os
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import zipfile

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
ODT = "application/vnd.oasis.opendocument.text"
ODS = "application/vnd.oasis.opendocument.spreadsheet"
ODP = "application/vnd.oasis.opendocument.presentation"
EPUB = "application/epub+zip"
RTF = "application/rtf"
EML = "message/rfc822"
HTML = "text/html"
TEXT = "text/plain"
MARKDOWN = "text/markdown"
EMPTY = "application/x-empty"
ZIP = "application/zip"
BINARY = "application/octet-stream"
OLE = "application/x-ole-storage"
DOC = "application/msword"
XLS = "application/vnd.ms-excel"
PPT = "application/vnd.ms-powerpoint"
MSG = "application/vnd.ms-outlook"
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"

_SAMPLE = 8192
"""Bytes of a file's start that decide whether it is text."""

BOMS = (  # UTF-32 first: its little-endian BOM starts with UTF-16's.
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)

_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"\x1f\x8b", "application/gzip"),
    (b"\xfd7zXZ\x00", "application/x-xz"),
    (b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
    (b"Rar!\x1a\x07", "application/vnd.rar"),
    (b"\x7fELF", "application/x-executable"),
    (b"SQLite format 3\x00", "application/vnd.sqlite3"),
    (b"{\\rtf", "application/rtf"),
    (b"%!PS", "application/postscript"),
    (OLE_MAGIC, OLE),
)

# OLE2 is a container for all of Microsoft's legacy formats: the streams inside name the
# kind (read from the container's directory, near its start); the extension breaks ties.
# Office also wraps a password-protected DOCX, XLSX or PPTX in OLE2; their extractors say so.
_OLE_STREAMS = (  # a message's own property streams come first: it may carry Office files
    ("__substg1.0_", MSG),
    ("WordDocument", DOC),
    ("Workbook", XLS),
    ("PowerPoint Document", PPT),
)
_OLE_BY_EXTENSION = {
    ".doc": DOC,
    ".docx": DOCX,
    ".xls": XLS,
    ".xlsx": XLSX,
    ".ppt": PPT,
    ".pptx": PPTX,
    ".msg": MSG,
}

# Main parts of Office Open XML packages, and what each makes the package.
_OOXML_PARTS = (
    ("word/document.xml", DOCX),
    ("xl/workbook.xml", XLSX),
    ("ppt/presentation.xml", PPTX),
)

_MIME_TYPE = re.compile(r"^[a-z]+/[a-z0-9.+-]+$")

# Bytes that text holds: printable ASCII, the usual whitespace, backspace, escape, and every
# byte >= 0x80 (UTF-8 sequences and legacy 8-bit encodings). Other control bytes mark binaries.
_TEXT_BYTES = bytes([8, 9, 10, 11, 12, 13, 27, *range(32, 127), *range(128, 256)])
_MAX_CONTROL_RATIO = 0.02

_HTML_STARTS = ("<!doctype html", "<html", "<head", "<body")
_HTML_EXTENSIONS = (".html", ".htm", ".xhtml")
_MARKDOWN_EXTENSIONS = (".md", ".markdown")
_LEADING_MARKUP = re.compile(r"\s*(?:<\?xml[^>]*>|<!--.*?-->)", re.DOTALL)
# Markup that only HTML has, looked for in the first kilobytes of an .html file whose
# text does not start with a tag (a page saved after some stray text, say).
_HTML_MARKUP = re.compile(
    r"<(?:!doctype\s+html|html|head|body|title|meta|p|div|br|table|span|a\s+href|h[1-6]|ul|ol|li)[\s>/]",
    re.IGNORECASE,
)
_HTML_SNIFF = 4096

# An e-mail (RFC 5322): a header block of "Name: value" lines (continuation lines start
# with white space) ended by a blank line, naming at least two of these fields. An mbox
# "From " line may come first.
_HEADER_LINE = re.compile(r"^[A-Za-z][A-Za-z0-9-]*:[ \t]?")
_MAIL_FIELDS = frozenset(
    {"from", "to", "cc", "date", "subject", "received", "return-path", "message-id", "mime-version"}
)
_MAIL_EXTENSIONS = (".eml", ".mbox", ".msg")


def _pdf_header(head: bytes) -> bool:
    """Whether ``head`` starts a PDF: ``%PDF-`` at the start of a line within the first
    1 KiB (readers accept some junk before it, such as a mail header or a BOM). A text
    that merely mentions ``%PDF-`` in a sentence is not a PDF."""
    position = head.find(b"%PDF-", 0, 1024)
    while position != -1:
        if position == 0 or head[position - 1 : position] in (b"\n", b"\r"):
            return True
        position = head.find(b"%PDF-", position + 1, 1024)
    return False


def detect_type(head: bytes, path: str) -> str:
    """The MIME type of the file at ``path`` whose first bytes are ``head``.

    ``head`` should hold at least the first 8 KiB (or the whole file, if smaller).
    Unknown binaries are ``application/octet-stream``; an empty file is
    ``application/x-empty``.
    """
    if not head:
        return EMPTY
    extension = os.path.splitext(path)[1].lower()
    for bom, encoding in BOMS:
        if head.startswith(bom):
            return _text_type(head[:_SAMPLE].decode(encoding, errors="replace"), extension)
    if _pdf_header(head):
        return PDF
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _zip_type(path, extension)
    for magic, mime_type in _MAGIC:
        if head.startswith(magic):
            return _ole_type(head, extension) if mime_type == OLE else mime_type
    sample = head[:_SAMPLE]
    if b"\x00" in sample or len(sample.translate(None, _TEXT_BYTES)) > len(sample) * _MAX_CONTROL_RATIO:
        return BINARY
    # Latin-1 maps every byte, and tags are ASCII: enough to sniff markup in any 8-bit text.
    return _text_type(sample[:_HTML_SNIFF].decode("latin-1"), extension)


def _text_type(start: str, extension: str) -> str:
    """HTML, e-mail, Markdown or plain text, for text beginning with ``start``."""
    position = 0
    while match := _LEADING_MARKUP.match(start, position):
        position = match.end()
    lead = start[position:].lstrip()
    if lead[:16].lower().startswith(_HTML_STARTS):
        return HTML
    if extension in _HTML_EXTENSIONS and (lead.startswith("<") or _HTML_MARKUP.search(start, 0, _HTML_SNIFF)):
        return HTML
    if _looks_like_mail(start, extension):
        return EML
    if extension in _MARKDOWN_EXTENSIONS:
        return MARKDOWN
    return TEXT


def _looks_like_mail(start: str, extension: str) -> bool:
    """Whether ``start`` opens an e-mail: a header block naming known fields, ended by a
    blank line (or running past the sample). One known field is enough for a .eml file."""
    lines = start.splitlines()
    if lines and lines[0].startswith("From "):  # an mbox separator line
        lines = lines[1:]
    fields: set[str] = set()
    for line in lines:
        if not line.strip():
            break
        if line[0] in " \t" and fields:
            continue  # a folded continuation of the previous field
        if not _HEADER_LINE.match(line):
            return False
        fields.add(line.split(":", 1)[0].lower())
    known = len(fields & _MAIL_FIELDS)
    return known >= 2 or (known >= 1 and extension in _MAIL_EXTENSIONS)


def _ole_type(head: bytes, extension: str) -> str:
    """The kind of an OLE2 container: Word, Excel, PowerPoint, Outlook, by the names of its
    streams in the directory (UTF-16 names, usually within the first sectors); else by the
    extension; else a plain OLE2 container."""
    for stream, mime_type in _OLE_STREAMS:
        if stream.encode("utf-16-le") in head:
            return mime_type
    return _OLE_BY_EXTENSION.get(extension, OLE)


def _zip_type(path: str, extension: str) -> str:
    """The type of the ZIP container at ``path``: DOCX and its siblings, ODF, EPUB, or plain ZIP."""
    import zipfile
    import zlib

    # Each of these means a damaged or unreadable archive (RuntimeError: an encrypted entry).
    damaged = (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        NotImplementedError,
        RuntimeError,
        EOFError,
        zlib.error,
    )
    try:
        with zipfile.ZipFile(path) as archive:
            return _package_type(archive)
    except damaged:
        # Trust the name only for the format we read, so that a broken report.docx is
        # reported as a corrupt document rather than as an unsupported ZIP.
        return DOCX if extension == ".docx" else ZIP


def _package_type(archive: zipfile.ZipFile) -> str:
    names = set(archive.namelist())
    for part, mime_type in _OOXML_PARTS:
        if part in names:
            return mime_type
    if "mimetype" in names:
        # ODF and EPUB name their type in a small first entry called "mimetype".
        with archive.open("mimetype") as entry:
            declared = entry.read(100).decode("ascii", errors="replace").strip()
        if _MIME_TYPE.match(declared):
            return declared
    return ZIP
