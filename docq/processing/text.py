"""Plain text and Markdown, and decoding bytes whose encoding nobody declared."""

from __future__ import annotations

import re

from docq.errors import CorruptDocument
from docq.processing.content import Content, clean_title
from docq.processing.detect import BOMS

EXTRACTOR = "docq"

_BOM_PREFIXES = tuple(bom for bom, _codec in BOMS)
_FALLBACK_ENCODING = "cp1252"
# An ATX heading: up to three spaces, one to six "#", text, optional closing "#"s.
_MARKDOWN_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$", re.MULTILINE)


def extract_text(data: bytes, name: str, *, markdown: bool) -> Content:
    """The text of a plain text or Markdown file, with newlines normalised to ``\\n``.

    A Markdown file's title is its first heading. Raises `CorruptDocument` when no
    encoding makes sense of the bytes.
    """
    text, encoding = decode(data, name)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    title = None
    if markdown and (heading := _MARKDOWN_HEADING.search(text)):
        title = clean_title(heading.group(1))
    return Content(text=text, extractor=EXTRACTOR, title=title, encoding=encoding)


def decode(data: bytes, name: str, declared: str | None = None) -> tuple[str, str]:
    """``data`` as text, and the name of the encoding that decoded it.

    In order: a byte order mark; the ``declared`` encoding (as HTML declares it);
    UTF-8; a guess by charset-normalizer. Only the guess is slow, and it runs only
    when the cheaper ways fail.
    """
    if data.startswith(_BOM_PREFIXES):
        for bom, codec in BOMS:
            if data.startswith(bom):
                try:
                    return data.decode(codec), codec
                except UnicodeDecodeError:
                    break  # the mark lied: guess instead
    else:
        for codec in (declared, "utf-8") if declared else ("utf-8",):
            try:
                return data.decode(codec), codec
            except UnicodeDecodeError:
                continue
    return _guess(data, name)


def _guess(data: bytes, name: str) -> tuple[str, str]:
    from charset_normalizer import from_bytes

    matches = from_bytes(data)
    best = matches.best()
    if best is None:
        raise CorruptDocument(f"corrupt: {name}: its text is in no encoding that can be recognised")
    # Single-byte Western encodings often fit a short text equally well, and the detector
    # then picks whichever it tried first (cp1250 turns "fête" into "fęte"). Among equally
    # good candidates, prefer Windows-1252, the usual legacy encoding, as browsers do.
    for match in matches:
        if (
            _FALLBACK_ENCODING in match.could_be_from_charset
            and match.percent_chaos <= best.percent_chaos
            and match.percent_coherence >= best.percent_coherence
        ):
            return str(match), _FALLBACK_ENCODING
    return str(best), best.encoding
