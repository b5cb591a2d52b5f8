"""PDF text as docq stores it, whichever reader found it: line ends, hyphens, stray controls.

Shared by `docq.processing.pdf` (PDFium) and `docq.processing.pdf_fallback` (pdfminer.six).
"""

from __future__ import annotations

import re

SHORT_PAGE = 32
"""Pages with fewer visible characters than this are looked at closely (text objects, images);
such a page that shows an image needs OCR."""

# PDFium marks a hyphen that ends a line inside a word as U+0002, and usually drops the line
# break after it. See `_join_hyphenated`.
_MARKED_HYPHEN = re.compile(r"(?<=\w)\x02(\n?)")

# Controls other than tab and line feed (a form feed would pass for a page break), and the
# private use area, where symbol fonts put glyphs that are no text. PDFium gives a glyph it
# cannot map its character code, and code 3 is a space in many fonts: so a run of them
# between two visible characters becomes a space, and disappears elsewhere.
_NOT_TEXT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ue000-\uf8ff\ufffe\uffff]+")
_NOT_TEXT_BETWEEN = re.compile(f"(?<=\\S){_NOT_TEXT.pattern}(?=\\S)")
_ASCII_CONTROLS = bytes([*range(0x00, 0x09), *range(0x0B, 0x20), 0x7F])


def clean_text(text: str) -> str:
    """PDF text as docq stores it: ``"\\n"`` line ends, words split by a line end joined,
    and no control or private use characters (tab and line feed aside)."""
    text = text.replace("\r\n", "\n")
    if "\x02" in text:
        text = _MARKED_HYPHEN.sub(_join_hyphenated, text)
    if _plain(text):
        return text
    return _NOT_TEXT.sub("", _NOT_TEXT_BETWEEN.sub(" ", text))


def _plain(text: str) -> bool:
    """Whether ``text`` surely holds nothing `_NOT_TEXT` matches: a quicker test than the
    regular expression's, which a few characters that are text (no-break spaces) fail."""
    if text.isascii():
        return len(text.encode().translate(None, _ASCII_CONTROLS)) == len(text)
    return text.replace("\n", " ").replace("\t", " ").isprintable()


def _join_hyphenated(match: re.Match[str]) -> str:
    """A marked hyphen's replacement: nothing when a lower-case letter goes on with the word,
    a hyphen ending a line when a capital or digit does (a compound such as "Mid-Atlantic")
    or the line ends; nothing elsewhere, where U+0002 is a glyph PDFium could not map."""
    following = match.string[match.end() : match.end() + 1]
    if following.islower():
        return ""
    if following.isalnum() or match.group(1):
        return "-\n"
    return "-" if following in ("", "\n") else ""


def visible_characters(text: str) -> int:
    """The number of characters in ``text`` that are not whitespace."""
    return len("".join(text.split()))
