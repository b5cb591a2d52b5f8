"""Spreadsheets (XLSX, XLS, ODS): every sheet's cells as tab-separated rows, and the workbook's metadata.

Each sheet, in workbook order (hidden ones too; a chart sheet gives only its heading), starts
with a line ``## <sheet name>``; then comes one line per row holding a value, its cells joined
by tabs (empty cells inside a row kept so that columns line up, those at its end dropped).
Values read as people write them: ``3``, ``2.5``, ``1e+20``, ``TRUE``, ISO 8601 dates and times
(``2024-01-31``, ``2024-01-31T12:30:00``, ``13:05:00``), durations in hours (``30:00:00``);
a tab or line break inside a cell becomes a space; error values (``#DIV/0!``) read as empty.

calamine holds a sheet as a dense grid, 32 bytes a cell, up to its last used row and column, and
a grid it cannot allocate aborts the process: it raises nothing. So the grids are measured from
the file first, and a workbook needing over `MAX_GRID` cells at once (its largest sheet for XLSX,
read a sheet at a time; all sheets for XLS and ODS, read whole) is refused as `TooLarge`. The
text stops after ``max_cells`` values or ``max_characters`` characters, noted in ``extra["notes"]``.
"""

from __future__ import annotations

import datetime as dt
import io
import posixpath
import re
import struct
import zipfile
import zlib
from collections.abc import Iterator
from typing import IO

import olefile
import python_calamine

from docq.errors import CorruptDocument, EncryptedDocument, TooLarge
from docq.processing import archive
from docq.processing.content import Content, clean_title, describe, utc_iso
from docq.processing.detect import OLE_MAGIC

EXTRACTOR = "python-calamine"

MAX_CELLS = 1_000_000
"""Values written out before the text stops."""
MAX_CHARACTERS = 50_000_000
"""Characters written out before the text stops."""
MAX_GRID = 10_000_000
"""Cells (rows times columns) that calamine may hold at once: about 320 MB."""

Cell = int | float | str | bool | dt.time | dt.date | dt.datetime | dt.timedelta
Metadata = tuple[str | None, str | None, dt.datetime | None]

_BREAKS = re.compile(r"[\t\n\r\v\f]+")
_CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
_FRACTION = re.compile(r"(\.\d{1,6})\d*")

# Sheets are measured from their XML's tags with regular expressions: they can be hundreds of
# megabytes, and a parser calling Python for each of millions of cells takes longer than calamine.
# The tags follow the prefixes calamine itself matches ("table:" in ODS; any in XLSX).
_CHUNK = 4 * 1024 * 1024
_XLSX_REFERENCE = re.compile(rb"""<(?:\w+:)?c\s[^>]*?\br\s*=\s*["']([A-Z]+)(\d+)""")
_XLSX_UNREFERENCED = re.compile(rb"""<(?:\w+:)?c(?:\s(?![^>]*\br\s*=)[^>]*)?/?>""")
_XLSX_TAG = re.compile(rb"<(?:\w+:)?(row|c)(?=[\s/>])([^>]*)>")
_XLSX_R = re.compile(rb"""\br\s*=\s*["']([A-Z]*)(\d+)""")
_ODS_TAG = re.compile(rb"<table:(table|table-row|table-cell|covered-table-cell)(?=[\s/>])([^>]*)>")
_ODS_ROWS_REPEATED = re.compile(rb"""table:number-rows-repeated\s*=\s*["'](\d+)""")
_ODS_COLUMNS_REPEATED = re.compile(rb"""table:number-columns-repeated\s*=\s*["'](\d+)""")
_ODS_VALUE = re.compile(rb"office:value-type|table:formula")

_ODF_OFFICE = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
_NAMESPACES = {
    "dc": "http://purl.org/dc/elements/1.1/",
    "dcterms": "http://purl.org/dc/terms/",
    "meta": "urn:oasis:names:tc:opendocument:xmlns:meta:1.0",
    "office": _ODF_OFFICE,
}

# BIFF records (MS-XLS 2.3): those saying a legacy workbook is encrypted, where its sheets start,
# how many strings and cells to make room for, and those putting a value in a cell (their first
# four bytes are its row and column).
_FILEPASS, _BOUNDSHEET, _SST, _BOF, _EOF, _DIMENSIONS, _MULRK = 0x2F, 0x85, 0xFC, 0x809, 0xA, 0x200, 0xBD
_VALUE_RECORDS = frozenset({0x0006, 0x00D6, 0x00FD, 0x0203, 0x0204, 0x0205, 0x027E, _MULRK})


def extract_spreadsheet(
    path: str, name: str, *, max_cells: int = MAX_CELLS, max_characters: int = MAX_CHARACTERS
) -> Content:
    """The text of the workbook at ``path`` (XLSX, XLS or ODS; see the module's docstring).

    ``extra`` holds ``sheets`` (how many the workbook has) and, where text was left out,
    ``notes``. Raises `SuspiciousArchive` for a zip bomb, `TooLarge` for sheets past
    `MAX_GRID`, `EncryptedDocument` for a password-protected workbook, and `CorruptDocument`
    for one that cannot be read.
    """
    with open(path, "rb") as stream:
        if stream.read(len(OLE_MAGIC)) == OLE_MAGIC:
            # Read in full here, so that any OSError olefile raises later is damage, not I/O.
            data = OLE_MAGIC + stream.read()
            grid, metadata = _inspect_xls(data, name)
            source: IO[bytes] = io.BytesIO(data)
        else:
            with archive.open_package(path, name) as package:
                try:
                    grid, metadata = _inspect_package(package, name)
                # zipfile reports a damaged entry by what failed as it read it.
                except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as error:
                    raise CorruptDocument(f"corrupt: {name}: {describe(error)}") from error
            source = stream
        if grid > MAX_GRID:
            raise TooLarge(f"too large: {name}: its sheets span {grid:,} cells, more than {MAX_GRID:,}")
        source.seek(0)
        try:
            with python_calamine.CalamineWorkbook.from_filelike(source) as workbook:
                sheets = len(workbook.sheet_names)
                lines, notes = _read(workbook, max_cells, max_characters)
        except python_calamine.PasswordError as error:
            raise EncryptedDocument(f"encrypted: {name} needs a password") from error
        except (python_calamine.CalamineError, ValueError, OverflowError) as error:
            raise CorruptDocument(f"corrupt: {name}: {describe(error)}") from error
        except BaseException as error:  # calamine panics on some damage: pyo3 raises PanicException
            if type(error).__name__ != "PanicException":
                raise
            raise CorruptDocument(f"corrupt: {name}: {describe(error)}") from error
    title, author, created = metadata
    extra: dict[str, object] = {"sheets": sheets, "notes": notes} if notes else {"sheets": sheets}
    return Content(
        text="\n".join(lines),
        extractor=EXTRACTOR,
        title=clean_title(title),
        author=clean_title(author),
        created=utc_iso(created),
        extra=extra,
    )


def _read(
    workbook: python_calamine.CalamineWorkbook, max_cells: int, max_characters: int
) -> tuple[list[str], list[str]]:
    """The text's lines, and notes on what was left out."""
    lines: list[str] = []
    cells = characters = 0
    for index, sheet_name in enumerate(workbook.sheet_names):
        lines.append(f"## {_plain(sheet_name)}")
        characters += len(lines[-1]) + 1
        for number, row in enumerate(workbook.get_sheet_by_index(index).iter_rows(), start=1):
            values = [_value(cell) for cell in row]
            while values and not values[-1]:
                values.pop()
            if not values:
                continue
            line = "\t".join(values)
            cells += sum(1 for value in values if value)
            characters += len(line) + 1
            if cells > max_cells or characters > max_characters:
                cap = f"{max_cells:,} cells" if cells > max_cells else f"{max_characters:,} characters"
                return lines, [
                    f"text stopped at the cap of {cap}: sheet {sheet_name!r} from its row {number:,} on, "
                    "and any later sheets, left out"
                ]
            lines.append(line)
    return lines, []


def _value(cell: Cell) -> str:
    """A cell's value as people write it (see the module's docstring)."""
    if isinstance(cell, str):
        return _plain(cell)
    if isinstance(cell, bool):
        return "TRUE" if cell else "FALSE"
    if isinstance(cell, int):
        return str(cell)
    if isinstance(cell, float):
        # Whole numbers up to 2**53 are exact in a float: an account number reads in full.
        return str(int(cell)) if cell.is_integer() and abs(cell) < 2**53 else format(cell, ".15g")
    if isinstance(cell, dt.timedelta):
        seconds = round(cell.total_seconds())
        hours, rest = divmod(abs(seconds), 3600)
        return f"{'-' if seconds < 0 else ''}{hours}:{rest // 60:02}:{rest % 60:02}"
    return cell.isoformat()


def _plain(value: str) -> str:
    """``value`` on one line: tabs and line breaks as spaces, no control characters."""
    return _CONTROLS.sub("", _BREAKS.sub(" ", value)).strip()


def _inspect_xls(data: bytes, name: str) -> tuple[int, Metadata]:
    """The cells calamine needs for a legacy (BIFF) workbook, all its sheets; no metadata.

    Excel also wraps a password-protected XLSX in OLE2, as a stream called "EncryptedPackage".
    """
    try:
        with olefile.OleFileIO(data) as ole:
            if ole.exists("EncryptedPackage"):
                raise EncryptedDocument(f"encrypted: {name} needs a password")
            stream = next((stream for stream in ("Workbook", "Book") if ole.exists(stream)), None)
            if stream is None:
                raise CorruptDocument(f"corrupt: {name}: an OLE2 file that holds no Excel workbook")
            biff = ole.openstream(stream).read()
    # olefile reports damage as OSError; the file is in memory here, so it cannot be I/O.
    except (OSError, struct.error, ValueError, IndexError) as error:
        raise CorruptDocument(f"corrupt: {name}: {describe(error)}") from error
    starts = []
    for kind, position, length in _records(biff, 0):
        if kind == _FILEPASS:
            raise EncryptedDocument(f"encrypted: {name} needs a password")
        if kind == _BOUNDSHEET and length >= 4:
            starts.append(struct.unpack_from("<I", biff, position)[0])
        # calamine makes room for as many strings as the table claims: no more than its bytes.
        elif (
            kind == _SST
            and length >= 8
            and not 0 <= struct.unpack_from("<i", biff, position + 4)[0] <= len(biff)
        ):
            raise CorruptDocument(f"corrupt: {name}: its string table claims more strings than it holds")
        elif kind == _EOF:
            break
    grids = {start: _biff_grid(biff, start) for start in set(starts)}  # damage may repeat a start
    return sum(grids[start] for start in starts), (None, None, None)


def _biff_grid(biff: bytes, start: int) -> int:
    """The grid of the sheet whose substream starts at ``start``: the extent of its cell records,
    or the room its DIMENSIONS record makes calamine reserve, whichever is larger."""
    rows = columns = reserved = depth = 0
    for kind, position, length in _records(biff, start):
        if kind == _BOF:
            depth += 1
        elif kind == _EOF:
            depth -= 1
            if depth <= 0:  # the sheet's own EOF, not that of a chart inside it
                break
        elif kind == _DIMENSIONS and length in (10, 14):
            # First row, row past the last, first column, column past the last; calamine's
            # unsigned 32-bit arithmetic wraps a reversed range round.
            top, bottom, left, right = struct.unpack_from(
                "<HHHH" if length == 10 else "<IIHH", biff, position
            )
            if bottom and right:
                reserved = max(reserved, (bottom - top) % 2**32 * ((right - left) % 2**32))
        elif kind in _VALUE_RECORDS and length >= 4:
            row, column = struct.unpack_from("<HH", biff, position)
            if kind == _MULRK and length >= 6:  # several cells: the last column ends the record
                column = struct.unpack_from("<H", biff, position + length - 2)[0]
            rows, columns = max(rows, row + 1), max(columns, column + 1)
    return max(rows * columns, reserved)


def _records(biff: bytes, position: int) -> Iterator[tuple[int, int, int]]:
    """The type, body offset and body length of each BIFF record from ``position`` on."""
    while position + 4 <= len(biff):
        kind, length = struct.unpack_from("<HH", biff, position)
        yield kind, position + 4, min(length, len(biff) - position - 4)
        position += 4 + length


def _inspect_package(package: zipfile.ZipFile, name: str) -> tuple[int, Metadata]:
    """The cells calamine needs at once for an XLSX or ODS package, and its metadata."""
    members = set(package.namelist())
    if "xl/workbook.xml" in members:
        grids = (_xlsx_grid(package, part) for part in _xlsx_sheet_parts(package, name) if part in members)
        return max(grids, default=0), _metadata(package, "docProps/core.xml", "dc:creator", name)
    if "content.xml" in members:
        return _ods_grid(package), _metadata(package, "meta.xml", "meta:initial-creator", name)
    raise CorruptDocument(f"corrupt: {name}: a ZIP package that is neither XLSX nor ODS")


def _xlsx_sheet_parts(package: zipfile.ZipFile, name: str) -> list[str]:
    """The part of each sheet named in ``xl/workbook.xml``, as calamine finds them."""
    workbook = archive.parse_xml(archive.read_member(package, "xl/workbook.xml", name), name)
    rels = archive.parse_xml(archive.read_member(package, "xl/_rels/workbook.xml.rels", name), name)
    targets = {rel.get("Id"): rel.get("Target", "") for rel in rels.iter("{*}Relationship")}
    parts = []
    for sheet in workbook.iter("{*}sheet"):
        # r:id, in the transitional or the strict relationships namespace
        target = targets.get(next((v for k, v in sheet.attrib.items() if k.endswith("}id")), None), "")
        parts.append(target[1:] if target.startswith("/") else posixpath.normpath(f"xl/{target}"))
    return parts


def _xlsx_grid(package: zipfile.ZipFile, part: str) -> int:
    """Rows times columns up to the last cell holding a value in worksheet ``part``.

    Where every cell has a reference (``r="B7"``), as most do, the largest references bound the
    grid, read at the speed of a regular expression. Sheets with cells that have none, and those
    whose bound is over the cap (it counts empty cells too), are walked tag by tag.
    """
    rows = columns = 0
    with package.open(part) as stream:
        for chunk in _chunks(stream):
            if _XLSX_UNREFERENCED.search(chunk):
                return _xlsx_grid_walked(package, part)
            references = _XLSX_REFERENCE.findall(chunk)
            rows = max([rows, *map(_number, {digits for _, digits in references})])
            columns = max([columns, *map(_column_number, {letters for letters, _ in references})])
    return rows * columns if rows * columns <= MAX_GRID else _xlsx_grid_walked(package, part)


def _xlsx_grid_walked(package: zipfile.ZipFile, part: str) -> int:
    rows = columns = row = column = 0
    with package.open(part) as stream:
        for chunk in _chunks(stream):
            for tag, attributes in _XLSX_TAG.findall(chunk):
                reference = _XLSX_R.search(attributes)
                if tag == b"row":
                    row, column = (_number(reference[2]) if reference else row + 1), 0
                    continue
                # A cell without a reference follows the one before it, as calamine reads it.
                if reference and reference[1]:
                    row, column = _number(reference[2]), _column_number(reference[1])
                else:
                    column += 1
                if not attributes.endswith(b"/"):  # <c r="B7" s="1"/> is formatting, not a value
                    rows, columns = max(rows, row), max(columns, column)
    return rows * columns


def _ods_grid(package: zipfile.ZipFile) -> int:
    """Rows times columns up to the last cell holding a value, summed over the tables of content.xml.

    ODS repeats a row or a cell by a count in an attribute, and calamine writes out each repeat.
    """
    total = rows = columns = row = column = repeated_rows = 0
    with package.open("content.xml") as stream:
        for chunk in _chunks(stream):
            for tag, attributes in _ODS_TAG.findall(chunk):
                if tag == b"table":
                    total, rows, columns, row, repeated_rows = total + rows * columns, 0, 0, 0, 0
                elif tag == b"table-row":
                    repeat = _ODS_ROWS_REPEATED.search(attributes)
                    row, column = row + repeated_rows, 0
                    repeated_rows = _number(repeat[1]) if repeat else 1
                else:
                    repeat = _ODS_COLUMNS_REPEATED.search(attributes)
                    column += _number(repeat[1]) if repeat else 1
                    if not attributes.endswith(b"/") or _ODS_VALUE.search(attributes):
                        rows, columns = max(rows, row + repeated_rows), max(columns, column)
    return total + rows * columns


def _chunks(stream: IO[bytes]) -> Iterator[bytes]:
    """``stream`` in pieces of a few megabytes, each cut before a tag, never inside one."""
    rest = b""
    while piece := stream.read(_CHUNK):
        piece = rest + piece
        cut = piece.rfind(b"<")
        if cut <= 0:  # one tag longer than a chunk: read on until it ends
            rest = piece
            continue
        rest = piece[cut:]
        yield piece[:cut]
    yield rest


def _number(digits: bytes) -> int:
    # Past 18 digits no grid fits in memory; int() refuses numbers of thousands of digits.
    return int(digits) if len(digits) <= 18 else 10**18


def _column_number(letters: bytes) -> int:
    number = 0
    for letter in letters[:12]:
        number = number * 26 + letter - ord("A") + 1
    return number


def _metadata(package: zipfile.ZipFile, part: str, author: str, name: str) -> Metadata:
    """Title, author and creation time from an OOXML core.xml or an ODF meta.xml, where readable."""
    try:
        root = archive.parse_xml(archive.read_member(package, part, name), name)
    except CorruptDocument:  # calamine does not need them: the cells can still be read
        return None, None, None
    # core.xml holds the properties at its root; meta.xml inside <office:meta>.
    properties = root.find("office:meta", _NAMESPACES) if root.tag.startswith(f"{{{_ODF_OFFICE}}}") else root
    if properties is None:
        return None, None, None

    def text(*paths: str) -> str | None:
        return next(filter(None, (properties.findtext(path, None, _NAMESPACES) for path in paths)), None)

    return (
        text("dc:title"),
        text(author, "dc:creator"),
        _parse_iso(text("dcterms:created", "meta:creation-date")),
    )


def _parse_iso(value: str | None) -> dt.datetime | None:
    """A W3C date-time (``2021-03-04T05:06:07Z``, ODF's nine-digit fractions too), or None."""
    try:
        return (
            dt.datetime.fromisoformat(_FRACTION.sub(r"\1", value.strip()).replace("Z", "+00:00"))
            if value
            else None
        )
    except ValueError:
        return None
