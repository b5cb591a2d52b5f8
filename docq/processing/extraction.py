"""`extract`: one file to text and metadata, whatever its format; and the extractor versions.

Each supported type names the module and function that read it (`FORMATS`); the module
is imported only when a file of that type is read, so importing docq.processing stays
cheap and a worker's child loads only the libraries of the documents it meets.
"""

from __future__ import annotations

import functools
import importlib
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from docq.errors import CorruptDocument, ProcessingError, TransientError, UnsupportedType
from docq.processing import detect
from docq.processing.content import Content, first_meaningful_line
from docq.processing.files import FileFacts, NotARegularFile, scan

DEFAULT_MAX_SIZE = 256 * 1024 * 1024

EXTRACTOR_REVISION = 2
"""The revision of docq's own extraction code: raise it whenever its output changes."""


@dataclass(frozen=True)
class Format:
    """How docq reads one type: ``function`` of ``module`` takes the file's path, or its
    bytes (``reads="bytes"``: small text-like formats, read once with the hash), and its
    name, and returns a `Content`. ``libraries`` are the packages whose upgrade can change
    what it gives (they make up the extractor version)."""

    module: str
    function: str
    libraries: tuple[str, ...] = ()
    reads: Literal["path", "bytes"] = "path"
    nested: bool = False  # takes documents inside it (e-mail attachments): gets `nested=`
    markdown: bool | None = None  # for the text extractor: which kind of text


_SELECTOLAX, _DECODER = "selectolax", "charset-normalizer"

FORMATS: dict[str, Format] = {
    detect.PDF: Format("docq.processing.pdf", "extract_pdf", ("pypdfium2", "pdfminer.six")),
    detect.DOCX: Format("docq.processing.office", "extract_docx", ("python-docx",)),
    detect.XLSX: Format("docq.processing.spreadsheet", "extract_spreadsheet", ("python-calamine",)),
    detect.XLS: Format("docq.processing.spreadsheet", "extract_spreadsheet", ("python-calamine",)),
    detect.ODS: Format("docq.processing.spreadsheet", "extract_spreadsheet", ("python-calamine",)),
    detect.PPTX: Format("docq.processing.presentation", "extract_pptx", ("python-pptx",)),
    detect.ODT: Format("docq.processing.opendocument", "extract_odf", ("lxml",)),
    detect.ODP: Format("docq.processing.opendocument", "extract_odf", ("lxml",)),
    detect.EPUB: Format("docq.processing.epub", "extract_epub", ("selectolax", "lxml")),
    detect.RTF: Format("docq.processing.rtf", "extract_rtf", ("striprtf",), reads="bytes"),
    detect.EML: Format("docq.processing.mail", "extract_email", ("selectolax",), reads="bytes", nested=True),
    detect.MSG: Format("docq.processing.outlook", "extract_msg", ("olefile", "selectolax"), nested=True),
    detect.DOC: Format("docq.processing.legacy_doc", "extract_doc", ("olefile",)),
    detect.HTML: Format(
        "docq.processing.html", "extract_html", ("selectolax", "charset-normalizer"), "bytes"
    ),
    detect.TEXT: Format(
        "docq.processing.text", "extract_text", ("charset-normalizer",), "bytes", markdown=False
    ),
    detect.MARKDOWN: Format(
        "docq.processing.text", "extract_text", ("charset-normalizer",), "bytes", markdown=True
    ),
}

SUPPORTED_TYPES = frozenset(FORMATS)

NESTED_DEPTH = 3
"""Documents inside documents (an attachment of a forwarded mail...) are read this deep."""

# What text keeps: every character but C0 controls other than \t and \n, DEL, and Unicode's
# private-use area (glyphs of a font with no meaning anyone else can read). A form feed
# survives only as docq's page separator, "\n\f".
_UNWANTED = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f\ue000-\uf8ff]|(?<!\n)\f")
_ASCII_UNWANTED = bytes([*range(0x00, 0x09), 0x0B, *range(0x0E, 0x20), 0x7F])


@dataclass(frozen=True)
class Extraction:
    """A document's text, and its metadata (JSON-serialisable; see `extract` for the keys)."""

    text: str
    metadata: dict[str, object]


class FileMissing(TransientError, FileNotFoundError):
    """The file to extract is gone; it may come back (a remounted disk), so it is transient."""


def extract(path: str, *, max_size: int = DEFAULT_MAX_SIZE) -> Extraction:
    """Turn the file at ``path`` into text and metadata.

    ``metadata`` always holds ``size``, ``sha256``, ``mime_type``, ``pages`` (None for
    formats without pages), ``title`` (never empty), ``author``, ``created`` (ISO 8601
    UTC), ``characters``, ``words``, ``extractor``, ``extractor_version``, ``encrypted``,
    ``needs_ocr`` and ``encoding`` (None where unknown or meaningless), and what the
    format adds (``sheets``, ``slides``, ``attachments``...). The text keeps only ``\\n``,
    ``\\t`` and the page separator ``\\n\\f`` of the control characters.

    Raises `TooLarge` (checked before reading), `UnsupportedType`, `CorruptDocument`,
    `EncryptedDocument`, `SuspiciousArchive`, `FileMissing`, and `TransientError` for
    other I/O failures. Every message names the file and the cause.
    """
    name = os.path.basename(path)
    try:
        scanned = scan(path, max_size=max_size, keep=_read_in_memory())
        content = _extract_content(path, name, scanned.facts.mime_type, scanned.content, depth=0)
    except ProcessingError:
        raise
    except NotARegularFile as error:
        raise UnsupportedType(f"unsupported type {error.kind}: {name}") from error
    except IsADirectoryError as error:
        raise UnsupportedType(f"unsupported type inode/directory: {name}") from error
    except FileNotFoundError as error:
        raise FileMissing(f"file missing: {path}") from error
    except OSError as error:
        raise TransientError(f"cannot read {path}: {error.strerror or error}") from error
    text = clean_text(content.text)
    return Extraction(text, _metadata(scanned.facts, content, text, name))


def clean_text(text: str) -> str:
    """``text`` without the control characters no reader wants (see ``_UNWANTED``), with
    line ends as ``\\n``."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    # Most text has nothing to remove: checked in C first, the expression runs only if needed.
    plain = text.isascii() and len(text.encode().translate(None, _ASCII_UNWANTED)) == len(text)
    if plain and text.count("\f") == text.count("\n\f"):
        return text
    return _UNWANTED.sub("", text)


def extract_bytes(data: bytes, name: str, depth: int) -> Content | None:
    """The content of a document held in memory (an e-mail's attachment, say), or None
    when its type is not supported, it cannot be read, or it lies ``NESTED_DEPTH`` deep."""
    if depth > NESTED_DEPTH:
        return None
    with tempfile.TemporaryDirectory(prefix="docq-nested-") as scratch:
        path = os.path.join(scratch, os.path.basename(name) or "attachment")
        with open(path, "wb") as stream:
            stream.write(data)
        mime_type = detect.detect_type(data[:65536], path)
        try:
            content = _extract_content(path, name, mime_type, data, depth=depth)
        except (ProcessingError, OSError, ValueError):
            return None
    return content


@functools.cache
def extractor_version(mime_type: str) -> str | None:
    """What ``metadata["extractor_version"]`` would say if `extract` read a file of this type now.

    For example ``"pypdfium2 5.15.2; pdfminer.six 20260107; docq-extract 2"``; None for
    an unsupported type. Reads installed package metadata only, never the libraries.
    """
    found = FORMATS.get(mime_type)
    if found is None:
        return None
    from importlib import metadata

    parts = []
    for library in found.libraries:
        try:
            parts.append(f"{library} {metadata.version(library)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{library} missing")
    parts.append(f"docq-extract {EXTRACTOR_REVISION}")
    return "; ".join(parts)


@functools.cache
def _read_in_memory() -> frozenset[str]:
    return frozenset(mime for mime, found in FORMATS.items() if found.reads == "bytes")


def _extract_content(path: str, name: str, mime_type: str, data: bytes | None, *, depth: int) -> Content:
    found = FORMATS.get(mime_type)
    if found is None:
        if mime_type == detect.EMPTY:
            raise CorruptDocument(f"empty file: {name}")
        raise UnsupportedType(f"unsupported type {mime_type}: {name}")
    function: Callable[..., Content] = getattr(importlib.import_module(found.module), found.function)
    if found.reads == "bytes":
        if data is None:
            with open(path, "rb") as stream:
                data = stream.read()
        source: Any = data
    else:
        source = path
    if found.nested:
        return function(source, name, nested=extract_bytes, depth=depth)
    if found.markdown is not None:
        return function(source, name, markdown=found.markdown)
    return function(source, name)


def _metadata(facts: FileFacts, content: Content, text: str, name: str) -> dict[str, object]:
    title = content.title or first_meaningful_line(text) or os.path.splitext(name)[0] or name
    return {
        **content.extra,
        "size": facts.size,
        "sha256": facts.sha256,
        "mime_type": facts.mime_type,
        "pages": content.pages,
        "title": title,
        "author": content.author,
        "created": content.created,
        "characters": len(text),
        "words": len(text.split()),
        "extractor": content.extractor,
        "extractor_version": extractor_version(facts.mime_type),
        "encrypted": content.encrypted,
        "needs_ocr": content.needs_ocr,
        "encoding": content.encoding,
    }
