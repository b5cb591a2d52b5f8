"""HTML: decoded bytes to readable text, one line per block, a blank line between paragraphs."""

from __future__ import annotations

import re

from selectolax.lexbor import LexborHTMLParser, LexborNode

from docq.processing.content import Content, clean_title
from docq.processing.text import decode

EXTRACTOR = "selectolax"

_DROPPED = frozenset({"script", "style", "noscript", "template", "head"})
_PARAGRAPH, _LINE = 2, 1
# Blocks after which a blank line reads well, and blocks that only start a new line.
# fmt: off
_PARAGRAPH_BLOCKS = (
    "p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "table", "ul", "ol", "dl", "figure",
)
_LINE_BLOCKS = (
    "address", "article", "aside", "caption", "dd", "details", "dialog", "div", "dt", "fieldset",
    "figcaption", "footer", "form", "header", "hgroup", "hr", "legend", "li", "main", "nav",
    "option", "section", "summary", "tr",
)
# fmt: on
_GAPS = {**dict.fromkeys(_LINE_BLOCKS, _LINE), **dict.fromkeys(_PARAGRAPH_BLOCKS, _PARAGRAPH)}
_CELLS = frozenset({"td", "th"})

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([\w.:-]+)""", re.IGNORECASE)
# Labels that browsers read as Windows-1252 (WHATWG Encoding Standard), and a UTF-16
# label without a byte order mark, which browsers read as UTF-8.
_CHARSET_ALIASES = {"iso-8859-1": "cp1252", "latin1": "cp1252", "us-ascii": "cp1252", "ascii": "cp1252"}
_UTF16_LABELS = frozenset({"utf-16", "utf-16le", "utf-16be"})
_HTML_SPACE = re.compile(r"[ \t\n\r\f]+")
_CELL_GAP = re.compile(r" ?\t ?")


def extract_html(data: bytes, name: str) -> Content:
    """The readable text of an HTML page: scripts, styles and templates left out.

    The title comes from ``<title>``, the author from ``<meta name="author">``.
    """
    text, encoding = decode(data, name, _declared_charset(data))
    parser = LexborHTMLParser(text)
    title_node = parser.css_first("title")
    return Content(
        text=_readable_text(parser.body or parser.root),
        extractor=EXTRACTOR,
        title=clean_title(title_node.text()) if title_node else None,
        author=_author(parser),
        encoding=encoding,
    )


def _declared_charset(data: bytes) -> str | None:
    """The encoding a ``<meta>`` near the start declares, if Python can use it."""
    match = _META_CHARSET.search(data, 0, 4096)
    if not match:
        return None
    label = match.group(1).decode("ascii").lower()
    if label in _UTF16_LABELS:
        return "utf-8"
    # A meta tag is only readable in an encoding where ASCII is ASCII; unknown labels and
    # codecs that are no text encoding (rot13) fail too.
    try:
        usable = b"<meta>".decode(label) == "<meta>"
    except (LookupError, UnicodeError):
        usable = False
    return _CHARSET_ALIASES.get(label, label) if usable else None


def _author(parser: LexborHTMLParser) -> str | None:
    for meta in parser.css("meta[name]"):
        if (meta.attributes.get("name") or "").strip().lower() == "author":
            return clean_title(meta.attributes.get("content"))
    return None


class _Lines:
    """Collects inline text into lines, and lines into paragraphs."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._inline: list[str] = []
        self._gap = 0

    def text(self, value: str) -> None:
        self._inline.append(_HTML_SPACE.sub(" ", value))

    def cell(self) -> None:
        self._inline.append("\t")

    def preformatted(self, value: str) -> None:
        self.end_block(_PARAGRAPH)
        for line in value.strip("\n").splitlines():
            self._add(line.rstrip())
        self.end_block(_PARAGRAPH)

    def end_block(self, gap: int) -> None:
        """Finish the current line; ``gap`` asks for a blank line before the next one."""
        line = _CELL_GAP.sub("\t", "".join(self._inline)).strip(" \t")
        self._inline.clear()
        if line:
            self._add(line)
        self._gap = max(self._gap, gap)

    def _add(self, line: str) -> None:
        if self.lines and self._gap == _PARAGRAPH:
            self.lines.append("")
        self.lines.append(line)
        self._gap = 0


def _readable_text(root: LexborNode | None) -> str:
    if root is None:
        return ""
    out = _Lines()
    # An explicit stack rather than recursion: hostile pages nest elements thousands deep.
    # An int on the stack marks the end of a block element.
    stack: list[LexborNode | int] = [root]
    while stack:
        item = stack.pop()
        if isinstance(item, int):
            out.end_block(item)
        elif item.is_text_node:
            out.text(item.text_content or "")
        elif item.is_element_node and (tag := item.tag) and tag not in _DROPPED:
            if tag == "br":
                out.end_block(_LINE)
            elif tag == "pre":
                out.preformatted(item.text())
            else:
                if tag in _CELLS:
                    out.cell()
                if gap := _GAPS.get(tag, 0):
                    out.end_block(gap)
                    stack.append(gap)
                stack.extend(reversed(list(item.iter(include_text=True))))
    out.end_block(0)
    return "\n".join(out.lines)
