"""HTML: decoded bytes to readable text, one line per block, a blank line between paragraphs."""

from __future__ import annotations

import re

from selectolax.lexbor import LexborHTMLParser, LexborNode, SelectolaxError

from docq.errors import CorruptDocument, TooLarge
from docq.processing.content import Content, clean_title, describe
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

# What parsing costs, measured with lexbor: about 4 bytes of memory per byte of HTML
# and 220 per tag; with the page's bytes, its text and the parser's UTF-8 copy of it,
# some 7 bytes per byte in all. A parse may take three quarters of the memory limit
# (the rest is the process's own), and 2 GiB where there is no limit.
_MEMORY_PER_BYTE = 7
_MEMORY_PER_TAG = 220
_MEMORY_CEILING = 2 * 1024**3
# lexbor takes time in proportion to nesting depth for each tag (quadratic in all: 100,000
# nested <div>s take 13 s). Browsers flatten a tree deeper than 512 (Chromium), so no
# real page needs more; 1,024 leaves room for the tags left unclosed by sloppy pages.
MAX_DEPTH = 1024
# Elements that never nest deeper: void elements, those a sibling closes (<p>, <li>,
# <td>, <a>...), and the page's frame.
# fmt: off
_FLAT = frozenset({
    "area", "base", "basefont", "bgsound", "br", "col", "embed", "frame", "hr", "img", "input",
    "keygen", "link", "meta", "param", "source", "track", "wbr",
    "html", "head", "body", "p", "li", "dt", "dd", "option", "optgroup", "tr", "td", "th",
    "thead", "tbody", "tfoot", "colgroup", "caption", "rb", "rt", "rtc", "rp",
    "a", "button", "form", "nobr", "h1", "h2", "h3", "h4", "h5", "h6",
})
# fmt: on
# Start and end tags (name, and "/" if self-closing), skipping comments, scripts and
# styles, whose text is no markup. An unclosed comment or script runs to the end of the
# page as in a browser, and a tag ends before the next "<": each keeps the scan linear.
_TAG = re.compile(
    r"<!--(?:.*?-->|.*)|<(?:script|style)\b(?:.*?</(?:script|style)\s*>|.*)|<(/?[a-z][^\s/<>]*)[^<>]*?(/?)>",
    re.IGNORECASE | re.DOTALL,
)
_FOREIGN = ("svg", "math")  # where "<x/>" closes itself, as it does not in HTML


def extract_html(data: bytes, name: str) -> Content:
    """The readable text of an HTML page: scripts, styles and templates left out.

    The title comes from ``<title>``, the author from ``<meta name="author">``. Raises
    `TooLarge` for a page whose parse would not fit in memory (or that the parser gives
    up on), and `CorruptDocument` for one whose elements nest deeper than `MAX_DEPTH`.
    """
    _check_size(data, name)
    text, encoding = decode(data, name, _declared_charset(data))
    parser = _parse(text, name)
    title_node = parser.css_first("title")
    return Content(
        text=_readable_text(parser.body or parser.root),
        extractor=EXTRACTOR,
        title=clean_title(title_node.text()) if title_node else None,
        author=_author(parser),
        encoding=encoding,
    )


def _parse(text: str, name: str) -> LexborHTMLParser:
    """``text`` parsed; `CorruptDocument` if too deeply nested, `TooLarge` if the parser
    runs out of memory."""
    # A page with fewer tags than MAX_DEPTH cannot nest deeper: skip the scan.
    if text.count("<") > MAX_DEPTH and (depth := _nesting_depth(text)) > MAX_DEPTH:
        raise CorruptDocument(
            f"corrupt: {name}: too deeply nested to parse (elements {depth:,} deep, more than {MAX_DEPTH:,})"
        )
    try:
        return LexborHTMLParser(text)
    except SelectolaxError as error:
        # lexbor gives no cause, and fails this way when an allocation fails.
        raise TooLarge(
            f"too large: {name}: too large to parse: the HTML parser ran out of memory ({describe(error)})"
        ) from error


def _check_size(data: bytes, name: str) -> None:
    """Raise `TooLarge` when parsing ``data`` would take more memory than a parse may."""
    tags = data.count(b"<")
    needed = _MEMORY_PER_BYTE * len(data) + _MEMORY_PER_TAG * tags
    if needed > (budget := _parse_budget()):
        raise TooLarge(
            f"too large: {name}: too large to parse: {len(data) / 2**20:,.1f} MiB of HTML with {tags:,} tags "
            f"would take some {needed / 2**20:,.0f} MiB of memory, over the {budget / 2**20:,.0f} MiB allowed"
        )


def _parse_budget() -> int:
    """Three quarters of this process's address-space limit, at most `_MEMORY_CEILING`."""
    try:
        import resource
    except ImportError:  # no such limits on Windows
        return _MEMORY_CEILING
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    return _MEMORY_CEILING if limit == resource.RLIM_INFINITY else min(limit * 3 // 4, _MEMORY_CEILING)


def _nesting_depth(text: str) -> int:
    """How deep the elements of ``text`` nest, as an HTML parser would nest them.

    An end tag closes the innermost open element of its name and all inside it, and
    one with no such element open is ignored; elements in `_FLAT` are not counted. An
    approximation of the HTML parsing algorithm: enough to bound what lexbor builds.
    """
    stack: list[str] = []
    open_names: dict[str, int] = {}
    deepest = 0
    for tag, self_closing in _TAG.findall(text):
        if not tag:
            continue  # a comment, script or style
        name = tag.lower()
        if name[0] == "/":
            name = name[1:]
            if open_names.get(name):
                while (closed := stack.pop()) != name:
                    open_names[closed] -= 1
                open_names[name] -= 1
        elif name not in _FLAT and not (self_closing and any(open_names.get(root) for root in _FOREIGN)):
            stack.append(name)
            open_names[name] = open_names.get(name, 0) + 1
            deepest = max(deepest, len(stack))
    return deepest


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
