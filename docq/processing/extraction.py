"""`extract`: one file to text and metadata, whatever its format; and the extractor versions."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

from docq.errors import CorruptDocument, ProcessingError, TransientError, UnsupportedType
from docq.processing import detect
from docq.processing.content import Content, first_meaningful_line
from docq.processing.files import FileFacts, NotARegularFile, scan
from docq.processing.text import extract_text

DEFAULT_MAX_SIZE = 256 * 1024 * 1024

SUPPORTED_TYPES = frozenset({detect.PDF, detect.DOCX, detect.HTML, detect.TEXT, detect.MARKDOWN})

EXTRACTOR_REVISION = 1
"""The revision of docq's own extraction code: raise it whenever its output changes."""

# The libraries whose upgrade can change what `extract` gives for a type.
_LIBRARIES = {
    detect.PDF: ("pypdfium2", "pdfminer.six"),
    detect.DOCX: ("python-docx",),
    detect.HTML: ("selectolax", "charset-normalizer"),
    detect.TEXT: ("charset-normalizer",),
    detect.MARKDOWN: ("charset-normalizer",),
}

# Types decoded in Python from bytes already read; the others are read by their library.
_READ_IN_MEMORY = frozenset({detect.HTML, detect.TEXT, detect.MARKDOWN})


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
    ``needs_ocr`` and ``encoding`` (None where unknown or meaningless).

    Raises `TooLarge` (checked before reading), `UnsupportedType`, `CorruptDocument`,
    `EncryptedDocument`, `FileMissing`, and `TransientError` for other I/O failures.
    Every message names the file and the cause.
    """
    name = os.path.basename(path)
    try:
        scanned = scan(path, max_size=max_size, keep=_READ_IN_MEMORY)
        content = _extract_content(path, name, scanned.facts.mime_type, scanned.content)
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
    text = content.text
    if "\x00" in text:  # NUL is no text, and PostgreSQL's text columns refuse it
        text = text.replace("\x00", "")
    return Extraction(text, _metadata(scanned.facts, content, text, name))


@functools.cache
def extractor_version(mime_type: str) -> str | None:
    """What ``metadata["extractor_version"]`` would say if `extract` read a file of this type now.

    For example ``"pypdfium2 5.15.2; pdfminer.six 20260107; docq-extract 1"``; None for
    an unsupported type. Reads installed package metadata only, never the libraries.
    """
    libraries = _LIBRARIES.get(mime_type)
    if libraries is None:
        return None
    from importlib import metadata

    parts = []
    for library in libraries:
        try:
            parts.append(f"{library} {metadata.version(library)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{library} missing")
    parts.append(f"docq-extract {EXTRACTOR_REVISION}")
    return "; ".join(parts)


def _extract_content(path: str, name: str, mime_type: str, data: bytes | None) -> Content:
    # Each format's module imports its library, so it is imported here, when needed:
    # importing docq.processing stays cheap and a child process loads only one library.
    if mime_type in (detect.TEXT, detect.MARKDOWN) and data is not None:
        return extract_text(data, name, markdown=mime_type == detect.MARKDOWN)
    if mime_type == detect.HTML and data is not None:
        from docq.processing.html import extract_html

        return extract_html(data, name)
    if mime_type == detect.PDF:
        from docq.processing.pdf import extract_pdf

        return extract_pdf(path, name)
    if mime_type == detect.DOCX:
        from docq.processing.office import extract_docx

        return extract_docx(path, name)
    if mime_type == detect.EMPTY:
        raise CorruptDocument(f"empty file: {name}")
    raise UnsupportedType(f"unsupported type {mime_type}: {name}")


def _metadata(facts: FileFacts, content: Content, text: str, name: str) -> dict[str, object]:
    title = content.title or first_meaningful_line(text) or os.path.splitext(name)[0] or name
    return {
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
