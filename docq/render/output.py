"""The pieces every renderer uses: the two consoles, JSON, one-line diagnostics, times,
tables, and status colours.

Data goes to stdout, progress and diagnostics to stderr. Colour, tables that fit the
screen and progress bars only where the stream is a terminal (Rich honours
``NO_COLOR``); elsewhere plain lines that ``grep`` and ``cut`` can read.
"""

from __future__ import annotations

import json
import logging
import sys
from functools import cache
from typing import TYPE_CHECKING, Any

from docq.config import format_duration, iso
from docq.config import plural as plural  # the one wording of counts, for every renderer
from docq.paths import to_db

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table


@cache
def out() -> Console:
    """The console for data (stdout)."""
    from rich.console import Console

    return Console(highlight=False, emoji=False, soft_wrap=not sys.stdout.isatty())


@cache
def err() -> Console:
    """The console for progress and diagnostics (stderr)."""
    from rich.console import Console

    return Console(stderr=True, highlight=False, emoji=False, soft_wrap=True)


def stderr_is_terminal() -> bool:
    """Whether progress displays may be drawn."""
    return err().is_terminal


def print_json(data: Any) -> None:
    """Write ``data`` as one JSON document on stdout."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    sys.stdout.flush()


def error(message: str) -> None:
    """The one-line failure message: ``docq: error: WHAT: WHY``."""
    _line(f"docq: error: {message}")


def warn(message: str) -> None:
    """A one-line diagnostic on stderr."""
    _line(f"docq: {message}")


def _line(text: str) -> None:
    sys.stderr.write(text.replace("\n", " ") + "\n")
    sys.stderr.flush()


def when(timestamp: float | None, now: float) -> str:
    """A time for people: ``2026-11-28T21:17:48Z (3m ago)`` or ``... (in 25s)`` on a
    terminal; off one (a pipe, a file) the ISO 8601 UTC time alone, which stays true
    when read later and sorts as text."""
    if timestamp is None:
        return "-"
    if not out().is_terminal:
        return iso(timestamp) or "-"
    delta = float(timestamp) - now
    stamp = iso(timestamp, precise=False) or "-"
    relative = f"in {format_duration(delta)}" if delta > 0 else f"{format_duration(-delta)} ago"
    return f"{stamp} ({relative})"


def ago(timestamp: float | None, now: float) -> str:
    """How long ago, for people: ``3m 20s ago`` on a terminal; off one the ISO 8601 UTC
    time (see `when`)."""
    if timestamp is None:
        return "-"
    if not out().is_terminal:
        return iso(timestamp) or "-"
    return f"{format_duration(max(0.0, now - float(timestamp)))} ago"


def shown_path(path: str) -> str:
    """A path as stored, so that names which are not UTF-8 print safely."""
    return to_db(path)


class PathCell:
    """A path in a table cell. On a terminal a path too long for its column loses its
    start, not its name (``…/2024/invoices/march-0042.pdf``) and stays on one line,
    where Rich would fold it mid-name; off a terminal `print_table` writes it whole."""

    MIN_WIDTH = 16  # the width it asks for at least (a table too narrow for every column's
    # minimum may still squeeze it)

    def __init__(self, path: str) -> None:
        self.plain = shown_path(path)

    def __rich_measure__(self, console: Any, options: Any) -> Any:
        from rich.cells import cell_len
        from rich.measure import Measurement

        width = cell_len(self.plain)
        return Measurement(min(width, self.MIN_WIDTH), width)

    def __rich_console__(self, console: Any, options: Any) -> Any:
        from rich.text import Text

        yield Text(left_truncated(self.plain, options.max_width), no_wrap=True, overflow="crop")


def left_truncated(text: str, width: int) -> str:
    """``text`` in at most ``width`` terminal cells, losing its start behind ``…``: a wide
    (CJK) character counts two cells, so a name of them keeps its end too."""
    from rich.cells import cell_len, get_character_cell_size

    if cell_len(text) <= width:
        return text
    kept, used = [], 1  # the ellipsis takes one cell
    for character in reversed(text):
        size = get_character_cell_size(character)
        if used + size > width:
            break
        kept.append(character)
        used += size
    return "…" + "".join(reversed(kept))


def table(*columns: str, title: str | None = None) -> Table:
    """A Rich table in docq's style."""
    from rich.table import Table

    grid = Table(title=title, title_justify="left", header_style="bold", show_edge=False, pad_edge=False)
    for column in columns:
        grid.add_column(column, overflow="fold")
    return grid


def print_table(grid: Table, *, to_stderr: bool = False) -> None:
    """Print a table; off a terminal, as tab-separated lines with a header."""
    console = err() if to_stderr else out()
    if console.is_terminal:
        console.print(grid)
        return
    from rich.text import Text

    def plain(cell: Any) -> str:
        whole = isinstance(cell, Text | PathCell)
        text = cell.plain if whole else Text.from_markup(str(cell), emoji=False).plain
        return text.replace("\t", " ").replace("\n", " ")

    stream = sys.stderr if to_stderr else sys.stdout
    if any(str(c.header) for c in grid.columns):
        stream.write("\t".join(str(c.header) for c in grid.columns) + "\n")
    cells = [list(column.cells) for column in grid.columns]
    for row in zip(*cells, strict=True):
        stream.write("\t".join(plain(cell) for cell in row) + "\n")


def status_style(status: str) -> str:
    """Rich style for a status word."""
    return {
        "completed": "green",
        "processed": "green",
        "failed": "red",
        "pending": "yellow",
        "retrying": "yellow",
        "in_progress": "cyan",
        "claimed ahead": "dim cyan",
        "processing": "cyan",
        "cancelled": "dim",
    }.get(status, "")


def styled(status: str) -> str:
    """A status word with its colour (as Rich markup)."""
    style = status_style(status)
    return f"[{style}]{status}[/]" if style else status


def escape(text: str) -> str:
    """Data shown through Rich, with its markup characters escaped."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


class _Diagnostics(logging.Handler):
    """The library's warnings (the ``docq`` logger) as ``docq: ...`` lines on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        warn(record.getMessage())


_DIAGNOSTICS = _Diagnostics()


def replace_diagnostics(handler: logging.Handler) -> logging.Handler:
    """Send the ``docq`` logger's messages to ``handler`` instead of plain stderr lines
    (a worker's own log); `restore_diagnostics` undoes it."""
    logger = logging.getLogger("docq")
    logger.removeHandler(_DIAGNOSTICS)
    logger.addHandler(handler)
    return handler


def restore_diagnostics(handler: logging.Handler) -> None:
    """Back to plain stderr lines after `replace_diagnostics`."""
    logger = logging.getLogger("docq")
    logger.removeHandler(handler)
    if _DIAGNOSTICS not in logger.handlers:
        logger.addHandler(_DIAGNOSTICS)


def log_to_stderr(*, debug: bool) -> None:
    """Show what the library logs (an upgraded schema, a worker's lost lease...) as one
    line each on stderr; its debug messages too with ``debug``. Safe to call again."""
    logger = logging.getLogger("docq")
    if _DIAGNOSTICS not in logger.handlers:
        logger.addHandler(_DIAGNOSTICS)
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
