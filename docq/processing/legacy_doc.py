"""Legacy Word documents (Word 97-2003 .doc): text from the antiword program, metadata from olefile.

antiword (GPL) runs as a separate program, never imported, and only where it is
installed; without it, a .doc is an unsupported type whose message says how to install
it or how to convert the document instead.
"""

from __future__ import annotations

import codecs
import io
import os
import re
import shutil
import subprocess

import olefile

from docq.errors import CorruptDocument, EncryptedDocument, PermanentError, TransientError, UnsupportedType
from docq.processing.content import Content, clean_title, utc_iso

EXTRACTOR = "antiword"

ANTIWORD_TIMEOUT = 120.0
"""Seconds antiword may take on one document (it reads a large one in well under a second)."""

_MIME_TYPE = "application/msword"
# antiword's own mapping file for UTF-8 output; an install without it gets Latin-1.
_OUTPUTS: tuple[tuple[tuple[str, ...], str], ...] = ((("-m", "UTF-8.txt"), "utf-8"), ((), "latin-1"))
_UNWANTED = re.compile("[\x00-\x08\x0b-\x1f\x7f]")
_TRAILING = re.compile(r"[ \t]+$", re.MULTILINE)
_GAPS = re.compile(r"\n{3,}")
# What antiword says on stderr, and what it means.
_UNSUPPORTED = ("before Word 6", "version of Word is not supported", "fast saved documents")
_NOISE = ("HOME directory", "locale")


def extract_doc(path: str, name: str) -> Content:
    """The text of the Word 97-2003 document at ``path``, as antiword renders it with no
    line wrapping; title, author, creation date and saved page count from its summary
    information.

    Raises `UnsupportedType` where antiword is not installed or the document is older than
    Word 6, `EncryptedDocument` for a password-protected document, `CorruptDocument` for
    one antiword cannot read, and `TransientError` if antiword runs past `ANTIWORD_TIMEOUT`.
    """
    antiword = shutil.which("antiword")
    if antiword is None:
        # {dir} and {path} are the placeholders of docq's custom operations, kept as they are.
        raise UnsupportedType(
            f"unsupported type {_MIME_TYPE}: {name}: legacy .doc needs antiword (apt-get install antiword), "
            "or convert it with a custom operation: docq work --operation topdf -- libreoffice --headless "
            "--convert-to pdf --outdir {dir} {path}"
        )
    with open(path, "rb") as stream:
        data = stream.read()
    text = _run(antiword, os.path.abspath(path), name)
    title, author, created, pages = _summary(data)
    return Content(text=text, extractor=EXTRACTOR, title=title, author=author, created=created, pages=pages)


def _run(antiword: str, path: str, name: str) -> str:
    """antiword's text of ``path``, tidied; the first output encoding it supports is used."""
    # A UTF-8 locale lets antiword write UTF-8; with another it refuses the mapping file.
    environment = dict(os.environ, LC_ALL="C.UTF-8")
    message = ""
    for arguments, encoding in _OUTPUTS:
        try:
            completed = subprocess.run(
                [antiword, "-w", "0", *arguments, path],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                env=environment,
                timeout=ANTIWORD_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as error:
            raise TransientError(f"antiword took over {ANTIWORD_TIMEOUT:.0f} s on {name}") from error
        if completed.returncode == 0:
            return _tidy(completed.stdout.decode(encoding, "replace"))
        message = _message(completed.stderr.decode("utf-8", "replace"), path, name)
        if "mapping file" not in message:
            break
    raise _failure(message, name)


def _message(stderr: str, path: str, name: str) -> str:
    """antiword's complaint in one line, naming the document as the user knows it."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return " ".join(line for line in lines if not any(noise in line for noise in _NOISE)).replace(path, name)


def _failure(message: str, name: str) -> PermanentError:
    if "Encrypted" in message:
        return EncryptedDocument(f"encrypted: {name} needs a password")
    if any(reason in message for reason in _UNSUPPORTED):
        return UnsupportedType(f"unsupported type {_MIME_TYPE}: {name}: {message}")
    return CorruptDocument(f"corrupt: {name}: antiword cannot read it ({message or 'no reason given'})")


def _tidy(text: str) -> str:
    text = _UNWANTED.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    return _GAPS.sub("\n\n", _TRAILING.sub("", text)).strip("\n")


def _summary(data: bytes) -> tuple[str | None, str | None, str | None, int | None]:
    """Title, author, creation date and page count from the OLE SummaryInformation stream
    of ``data``; Nones where it is missing or unreadable (the text matters more)."""
    try:
        with olefile.OleFileIO(io.BytesIO(data)) as storage:
            metadata = storage.get_metadata()
    except MemoryError:
        raise
    # The file is in memory, so no error here is an I/O error; olefile reports damage as
    # OSError, ValueError, struct.error and more, and a damaged summary costs only metadata.
    except Exception:
        return None, None, None, None
    encoding = _codec(metadata.codepage)
    created = metadata.create_time
    pages = metadata.num_pages
    return (
        clean_title(_string(metadata.title, encoding)),
        clean_title(_string(metadata.author, encoding)),
        # An unset FILETIME reads as 1601-01-01.
        utc_iso(created) if created is not None and created.year > 1601 else None,
        pages if isinstance(pages, int) and pages > 0 else None,
    )


def _codec(codepage: object) -> str:
    """The Python codec for an OLE property set's code page (Windows numbering)."""
    names = {1200: "utf-16-le", 10000: "mac_roman", 65001: "utf-8"}
    if not isinstance(codepage, int):
        return "cp1252"
    name = names.get(codepage, f"cp{codepage}")
    try:
        return codecs.lookup(name).name
    except LookupError:
        return "cp1252"


def _string(value: object, encoding: str) -> str | None:
    if isinstance(value, bytes):
        return value.decode(encoding, "replace")
    return value if isinstance(value, str) else None
