"""Spreadsheets (XLSX, XLS, ODS) and presentations (PPTX): real files written in each test.

XLSX and XLS are built by hand here (a minimal OOXML package; a BIFF8 workbook inside a
compound file), ODS with odfdo and PPTX with python-pptx. The opt-in corpus test compares
with textract's expected text and prints the word-level F1 per file (``pytest -s``).
"""

from __future__ import annotations

import collections
import datetime as dt
import re
import struct
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

import pptx
import pytest
from odfdo import Cell, Document, Row, Table
from pptx.util import Inches

from docq.errors import CorruptDocument, EncryptedDocument, TooLarge
from docq.processing.archive import SuspiciousArchive
from docq.processing.presentation import extract_pptx
from docq.processing.spreadsheet import extract_spreadsheet

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
# textract's tests expect every *_standardized_text document to read as this.
STANDARDIZED_TEXT = "the quick brown fox jumps over the lazy dog"
MIN_F1 = 0.95
# textract's expected text for these shows error cells as what its reader printed (BIFF's error
# code "15", LibreOffice's "Err:508") and leaves FALSE out, where docq writes FALSE and reads an
# error as an empty cell (calamine gives no error text); ODS cell comments are not read either.
MIN_F1_BY_FILE = {"tests_xls_raw_text.xls": 0.9, "tests_ods_raw_text.ods": 0.85}

# --- XLSX, by hand ----------------------------------------------------------------

_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
_DOC_RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_DATE = object()  # marks a cell written as an Excel date serial with a date format


def _column_letters(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def _sheet_xml(rows: dict[int, list[object]], strings: list[str]) -> str:
    """``rows`` maps a row number (1-based) to its cells: str, int, float, bool, None, or (_DATE, serial)."""
    out = []
    for number, cells in sorted(rows.items()):
        parts = []
        for index, value in enumerate(cells):
            ref = f"{_column_letters(index)}{number}"
            if value is None:
                continue
            if isinstance(value, tuple):
                parts.append(f'<c r="{ref}" s="1"><v>{value[1]}</v></c>')
            elif isinstance(value, bool):
                parts.append(f'<c r="{ref}" t="b"><v>{int(value)}</v></c>')
            elif isinstance(value, str):
                strings.append(value)
                parts.append(f'<c r="{ref}" t="s"><v>{len(strings) - 1}</v></c>')
            else:
                parts.append(f'<c r="{ref}"><v>{value}</v></c>')
        out.append(f'<row r="{number}">{"".join(parts)}</row>')
    rows_xml = "".join(out)
    return f'<?xml version="1.0"?><worksheet xmlns="{_MAIN}"><sheetData>{rows_xml}</sheetData></worksheet>'


def _xlsx(
    path: Path,
    sheets: dict[str, dict[int, list[object]]],
    *,
    title: str = "",
    author: str = "",
    created: str = "",
    raw_sheets: dict[int, str] | None = None,
) -> Path:
    """A minimal valid XLSX: content types, workbook and its relationships, one part per sheet,
    shared strings, a date style and core properties. ``raw_sheets`` replaces a sheet's XML."""
    strings: list[str] = []
    parts = {}
    for index, rows in enumerate(sheets.values(), start=1):
        parts[f"xl/worksheets/sheet{index}.xml"] = (raw_sheets or {}).get(index) or _sheet_xml(rows, strings)
    overrides = "".join(
        f'<Override PartName="/{part}" ContentType="application/vnd.openxmlformats-officedocument.'
        f'spreadsheetml.worksheet+xml"/>'
        for part in parts
    )
    sheet_list = "".join(
        f'<sheet name="{escape(name)}" sheetId="{index}" r:id="rId{index}"/>'
        for index, name in enumerate(sheets, start=1)
    )
    sheet_rels = "".join(
        f'<Relationship Id="rId{index}" Type="{_DOC_RELS}/worksheet" Target="worksheets/sheet{index}.xml"/>'
        for index in range(1, len(sheets) + 1)
    )
    shared = "".join(f'<si><t xml:space="preserve">{escape(text)}</t></si>' for text in strings)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as package:
        package.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" '
            'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/xl/workbook.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
            f"{overrides}"
            '<Override PartName="/docProps/core.xml" ContentType="application/vnd.openxmlformats-package.'
            'core-properties+xml"/></Types>',
        )
        package.writestr(
            "_rels/.rels",
            f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{_RELS}">'
            f'<Relationship Id="rId1" Type="{_DOC_RELS}/officeDocument" Target="xl/workbook.xml"/>'
            f'<Relationship Id="rId2" Type="{_RELS}/metadata/core-properties" Target="docProps/core.xml"/>'
            "</Relationships>",
        )
        package.writestr(
            "xl/workbook.xml",
            f'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="{_MAIN}" xmlns:r="{_DOC_RELS}">'
            f"<sheets>{sheet_list}</sheets></workbook>",
        )
        package.writestr(
            "xl/_rels/workbook.xml.rels",
            f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{_RELS}">{sheet_rels}'
            f'<Relationship Id="rIdS" Type="{_DOC_RELS}/sharedStrings" Target="sharedStrings.xml"/>'
            f'<Relationship Id="rIdT" Type="{_DOC_RELS}/styles" Target="styles.xml"/></Relationships>',
        )
        package.writestr(
            "xl/styles.xml",  # style 1 is the built-in date format 14 (m/d/yyyy)
            f'<?xml version="1.0" encoding="UTF-8"?><styleSheet xmlns="{_MAIN}"><cellXfs count="2">'
            '<xf numFmtId="0"/><xf numFmtId="14" applyNumberFormat="1"/></cellXfs></styleSheet>',
        )
        package.writestr(
            "xl/sharedStrings.xml",
            f'<?xml version="1.0" encoding="UTF-8"?><sst xmlns="{_MAIN}" count="{len(strings)}" '
            f'uniqueCount="{len(strings)}">{shared}</sst>',
        )
        for part, xml in parts.items():
            package.writestr(part, xml)
        package.writestr(
            "docProps/core.xml",
            '<?xml version="1.0" encoding="UTF-8"?><cp:coreProperties '
            'xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/terms/" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
            f"<dc:title>{escape(title)}</dc:title><dc:creator>{escape(author)}</dc:creator>"
            f'<dcterms:created xsi:type="dcterms:W3CDTF">{created}</dcterms:created></cp:coreProperties>',
        )
    return path


# --- XLS, by hand: a BIFF8 workbook in a compound file (MS-XLS, MS-CFB) --------------

_END, _FREE, _FAT, _NONE = 0xFFFFFFFE, 0xFFFFFFFF, 0xFFFFFFFD, 0xFFFFFFFF


def _compound_file(streams: dict[str, bytes]) -> bytes:
    """A version 3 compound file holding ``streams``: sector 0 is the FAT, sector 1 the
    directory, then each stream, padded to 4096 bytes so that none goes to the mini stream."""
    data, fat, entries = b"", [_FAT, _END], []
    for name, body in streams.items():
        body = body.ljust(4096, b"\0")
        body += b"\0" * (-len(body) % 512)
        first, sectors = len(fat), len(body) // 512
        entries.append((name, first, len(body)))
        fat += [*range(first + 1, first + sectors), _END]
        data += body
    assert len(fat) <= 128 and len(entries) <= 3

    def entry(name: str, kind: int, child: int, right: int, first: int, size: int) -> bytes:
        encoded = (name + "\0").encode("utf-16-le")
        fields = struct.pack("<HBBIII", len(encoded), kind, 1, _NONE, right, child)
        return encoded.ljust(64, b"\0") + fields + bytes(36) + struct.pack("<III", first, size, 0)

    directory = entry("Root Entry", 5, 1, _NONE, _END, 0)
    for index, (name, first, size) in enumerate(entries, start=1):
        directory += entry(name, 2, _NONE, index + 1 if index < len(entries) else _NONE, first, size)
    header = (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
        + bytes(16)
        + struct.pack("<HHHHH6sIIIIIIIII", 0x3E, 3, 0xFFFE, 9, 6, b"", 0, 1, 1, 0, 4096, _END, 0, _END, 0)
        + struct.pack("<109I", 0, *[_FREE] * 108)
    )
    fat_sector = struct.pack("<128I", *fat, *[_FREE] * (128 - len(fat)))
    return header + fat_sector + directory.ljust(512, b"\0") + data


def _record(kind: int, body: bytes = b"") -> bytes:
    return struct.pack("<HH", kind, len(body)) + body


def _xls(
    cells: dict[tuple[int, int], str | float],
    *,
    sheet: str = "Data",
    password: bool = False,
    dimensions: tuple[int, int] | None = None,
    claimed_strings: int | None = None,
    extra_globals: bytes = b"",
) -> bytes:
    """A BIFF8 workbook of one sheet; ``cells`` maps (row, column), from 0, to a value.

    ``dimensions`` (rows, columns) replaces the DIMENSIONS record's true values,
    ``claimed_strings`` the number of strings the SST record claims, and ``extra_globals``
    is appended to the workbook globals, as damaged or hostile files do."""
    strings = [value for value in cells.values() if isinstance(value, str)]

    def bof(kind: int) -> bytes:
        return _record(0x0809, struct.pack("<HHHHII", 0x0600, kind, 0, 1997, 0, 6))

    xfs = b"".join(
        _record(
            0x00E0, struct.pack("<HHHHHHIIH", 0, 0, 0xFFF5 if index < 15 else 1, 0x20, 0, 0, 0, 0, 0x20C0)
        )
        for index in range(16)
    )
    sst = _record(
        0x00FC,
        struct.pack("<Ii", len(strings), len(strings) if claimed_strings is None else claimed_strings)
        + b"".join(struct.pack("<HB", len(text), 0) + text.encode("latin-1") for text in strings),
    )
    encoded = sheet.encode("latin-1")

    def workbook_globals(sheet_offset: int) -> bytes:
        filepass = _record(0x002F, bytes(6)) if password else b""
        boundsheet = _record(0x0085, struct.pack("<IBBBB", sheet_offset, 0, 0, len(encoded), 0) + encoded)
        return (
            bof(0x0005)
            + filepass
            + _record(0x0042, struct.pack("<H", 1200))
            + xfs
            + boundsheet
            + sst
            + extra_globals
            + _record(0x000A)
        )

    body = b""
    for (row, column), value in sorted(cells.items()):
        if isinstance(value, str):
            body += _record(0x00FD, struct.pack("<HHHI", row, column, 15, strings.index(value)))
        else:
            body += _record(0x0203, struct.pack("<HHHd", row, column, 15, float(value)))
    rows, columns = dimensions or (max(row for row, _ in cells) + 1, max(column for _, column in cells) + 1)
    worksheet = (
        bof(0x0010) + _record(0x0200, struct.pack("<IIHHH", 0, rows, 0, columns, 0)) + body + _record(0x000A)
    )
    offset = len(workbook_globals(0))
    return _compound_file({"Workbook": workbook_globals(offset) + worksheet})


# --- Helpers ---------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def _f1(expected: str, actual: str) -> float:
    """Word-level F1 of ``actual`` against ``expected``: order-free, counting repeats."""
    want, got = collections.Counter(_words(expected)), collections.Counter(_words(actual))
    overlap = sum((want & got).values())
    if not overlap:
        return 0.0
    precision, recall = overlap / sum(got.values()), overlap / sum(want.values())
    return 2 * precision * recall / (precision + recall)


def _bomb(path: Path, member: str, base: Path | None = None) -> Path:
    """``base`` (or an empty package) with ``member`` holding 300 MB of zeros, deflated to 300 kB."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as package:
        if base is not None:
            with zipfile.ZipFile(base) as source:
                for info in source.infolist():
                    package.writestr(info, source.read(info))
        with package.open(member, "w") as stream:
            zeros = bytes(1 << 20)
            for _ in range(300):
                stream.write(zeros)
    return path


# --- Spreadsheets --------------------------------------------------------------------


def test_xlsx_sheets_in_order_with_their_rows_and_metadata(tmp_path: Path) -> None:
    path = _xlsx(
        tmp_path / "figures.xlsx",
        {
            "Figures": {
                1: ["Fruit", "Count", "Price", "Sold on", "Organic"],
                2: ["apple", 3, 2.5, (_DATE, 45322), True],
                3: [],  # an empty row: dropped
                4: ["pear", 12, 0.75, None, False, ""],  # an empty trailing cell: dropped
                6: [None, None, "gap before"],
            },
            "Notes & sums": {1: ["Total", 15]},
        },
        title="Fruit  sales\n2024",
        author="Ada Lovelace",
        created="2024-02-01T09:30:00Z",
    )

    content = extract_spreadsheet(str(path), path.name)

    assert content.text.split("\n") == [
        "## Figures",
        "Fruit\tCount\tPrice\tSold on\tOrganic",
        "apple\t3\t2.5\t2024-01-31\tTRUE",
        "pear\t12\t0.75\t\tFALSE",
        "\t\tgap before",
        "## Notes & sums",
        "Total\t15",
    ]
    assert content.extra == {"sheets": 2}
    assert content.extractor == "python-calamine"
    assert (content.title, content.author, content.created) == (
        "Fruit sales 2024",
        "Ada Lovelace",
        "2024-02-01T09:30:00+00:00",
    )


def test_values_read_as_people_write_them(tmp_path: Path) -> None:
    path = _xlsx(
        tmp_path / "values.xlsx",
        {"Values": {1: [3.0, -7, 1e20, 123456789012, 0.1, "tab\there\nand a\r\nbreak", "_x0007_bell"]}},
    )

    content = extract_spreadsheet(str(path), path.name)

    assert content.text.split("\n")[1].split("\t") == [
        "3",
        "-7",
        "1e+20",
        "123456789012",
        "0.1",
        "tab here and a break",
        "bell",
    ]
    assert (content.title, content.author, content.created) == (None, None, None)


def test_ods_written_by_odfdo(tmp_path: Path) -> None:
    document = Document("spreadsheet")
    document.body.clear()
    for name, rows in (
        (
            "Inventory",
            [["Item", "Stock", "Updated"], ["bolts", 40, dt.date(2023, 5, 6)], ["nuts", 2.5, None]],
        ),
        ("Second", [["only", "words"]]),
    ):
        table = Table(name)
        for values in rows:
            row = Row()
            row.set_values(values)
            table.append(row)
        document.body.append(table)
    document.meta.set_title("Stock list")
    document.meta.set_initial_creator("Grace Hopper")
    document.meta.set_creation_date(dt.datetime(2023, 5, 6, 7, 8, 9))
    path = tmp_path / "stock.ods"
    document.save(path)

    content = extract_spreadsheet(str(path), path.name)

    assert content.text.split("\n") == [
        "## Inventory",
        "Item\tStock\tUpdated",
        "bolts\t40\t2023-05-06",
        "nuts\t2.5",
        "## Second",
        "only\twords",
    ]
    assert content.extra == {"sheets": 2}
    assert (content.title, content.author, content.created) == (
        "Stock list",
        "Grace Hopper",
        "2023-05-06T07:08:09+00:00",
    )


def test_xls_built_from_biff_records(tmp_path: Path) -> None:
    path = tmp_path / "legacy.xls"
    path.write_bytes(_xls({(0, 0): "Name", (0, 1): "Count", (1, 0): "apple", (1, 1): 3, (3, 2): 2.5}))

    content = extract_spreadsheet(str(path), path.name)

    assert content.text.split("\n") == ["## Data", "Name\tCount", "apple\t3", "\t\t2.5"]
    assert content.extra == {"sheets": 1}
    assert (content.title, content.author, content.created) == (None, None, None)


@pytest.mark.parametrize("cap", ["cells", "characters"])
def test_text_stops_at_a_cap_with_a_note(tmp_path: Path, cap: str) -> None:
    rows = {number: [f"r{number}c{column}" for column in range(4)] for number in range(1, 11)}
    path = _xlsx(tmp_path / "big.xlsx", {"Big": rows, "Later": {1: ["never read"]}})
    limits = {"max_cells": 10} if cap == "cells" else {"max_characters": 70}

    content = extract_spreadsheet(str(path), path.name, **limits)

    lines = content.text.split("\n")
    assert lines[0] == "## Big"
    assert lines[1:] == ["\t".join(rows[number]) for number in range(1, len(lines))]
    assert len(lines) - 1 == (2 if cap == "cells" else 3)
    assert "never read" not in content.text
    assert content.extra["sheets"] == 2
    notes = content.extra["notes"]
    expected_cap = "10 cells" if cap == "cells" else "70 characters"
    assert isinstance(notes, list) and len(notes) == 1
    assert notes[0].startswith(
        f"text stopped at the cap of {expected_cap}: sheet 'Big' from its row {len(lines)} on"
    )


def test_a_sheet_whose_grid_would_exhaust_memory_is_refused(tmp_path: Path) -> None:
    # Two cells, A1 and XFD1048576: calamine would allocate 17 billion cells and abort.
    far = _xlsx(tmp_path / "far.xlsx", {"Far": {1: ["here"], 1048576: [None] * 16383 + [1]}})
    with pytest.raises(TooLarge, match=r"^too large: far\.xlsx: its sheets span 17,179,869,184 cells"):
        extract_spreadsheet(str(far), far.name)

    far_xls = tmp_path / "far.xls"
    far_xls.write_bytes(_xls({(0, 0): "here", (65000, 60000): 1}))
    # Two cells, but a DIMENSIONS record for which calamine would reserve 4 billion cells.
    lying_xls = tmp_path / "lying.xls"
    lying_xls.write_bytes(_xls({(0, 0): "here", (1, 1): 2}, dimensions=(65536, 65535)))
    for path in (far_xls, lying_xls):
        with pytest.raises(TooLarge, match=rf"^too large: {re.escape(path.name)}: "):
            extract_spreadsheet(str(path), path.name)

    # One ODS cell holding a value, repeated a million times across and a million down.
    repeated = tmp_path / "repeated.ods"
    document = Document("spreadsheet")
    document.body.clear()
    table = Table("Repeated")
    row = Row(repeated=1_000_000)
    row.append(Cell(1, repeated=1_000_000))
    table.append(row)
    document.body.append(table)
    document.save(repeated)
    with pytest.raises(TooLarge, match=r"^too large: repeated\.ods: "):
        extract_spreadsheet(str(repeated), repeated.name)


def test_cells_without_references_are_measured_too(tmp_path: Path) -> None:
    sheet = (
        f'<worksheet xmlns="{_MAIN}"><sheetData>'
        '<row><c t="inlineStr"><is><t>first</t></is></c><c><v>2</v></c></row>'
        '<row r="4"><c/><c><v>3</v></c></row>'
        "</sheetData></worksheet>"
    )
    path = _xlsx(tmp_path / "plain.xlsx", {"Plain": {}}, raw_sheets={1: sheet})

    assert extract_spreadsheet(str(path), path.name).text.split("\n") == ["## Plain", "first\t2", "\t3"]


def test_damaged_spreadsheets_are_corrupt(tmp_path: Path) -> None:
    good = _xlsx(tmp_path / "good.xlsx", {"Data": {1: ["words", 1]}})
    truncated = tmp_path / "truncated.xlsx"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    broken_xml = _xlsx(
        tmp_path / "broken.xlsx", {"Data": {}}, raw_sheets={1: f'<worksheet xmlns="{_MAIN}"><sheetData><row'}
    )
    no_workbook = tmp_path / "other.xlsx"
    with zipfile.ZipFile(no_workbook, "w") as package:
        package.writestr("word/document.xml", "<document/>")
    not_a_workbook = tmp_path / "ole.xls"
    not_a_workbook.write_bytes(_compound_file({"WordDocument": b"text"}))
    garbage_ole = tmp_path / "garbage.xls"
    garbage_ole.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(range(256)) * 4)
    # An SST claiming a billion strings (calamine would make room for them all), and a name
    # record too short to hold one (calamine panics on it).
    string_claim = tmp_path / "strings.xls"
    string_claim.write_bytes(_xls({(0, 0): "words"}, claimed_strings=1_000_000_000))
    panic = tmp_path / "panic.xls"
    panic.write_bytes(_xls({(0, 0): "words"}, extra_globals=_record(0x0018, b"\x00\x00")))

    for path in (truncated, broken_xml, no_workbook, not_a_workbook, garbage_ole, string_claim, panic):
        with pytest.raises(CorruptDocument, match=rf"^corrupt: {re.escape(path.name)}: "):
            extract_spreadsheet(str(path), path.name)


def test_password_protected_workbooks_are_encrypted(tmp_path: Path) -> None:
    protected_xlsx = tmp_path / "protected.xlsx"  # Excel's wrapping of an encrypted OOXML package
    protected_xlsx.write_bytes(
        _compound_file({"EncryptionInfo": b"\x04\x00", "EncryptedPackage": b"\x01" * 64})
    )
    protected_xls = tmp_path / "protected.xls"  # a FILEPASS record: the rest of the stream is encrypted
    protected_xls.write_bytes(_xls({(0, 0): "secret"}, password=True))

    for path in (protected_xlsx, protected_xls):
        with pytest.raises(EncryptedDocument, match=rf"^encrypted: {re.escape(path.name)} needs a password$"):
            extract_spreadsheet(str(path), path.name)


def test_a_zip_bomb_spreadsheet_is_suspicious(tmp_path: Path) -> None:
    base = _xlsx(tmp_path / "base.xlsx", {"Data": {1: ["words"]}})
    bomb = _bomb(tmp_path / "bomb.xlsx", "xl/worksheets/sheet2.xml", base)

    with pytest.raises(SuspiciousArchive, match=r"suspicious archive: bomb\.xlsx: xl/worksheets/sheet2\.xml"):
        extract_spreadsheet(str(bomb), bomb.name)


# --- Presentations ------------------------------------------------------------------


def _presentation(path: Path) -> Path:
    deck = pptx.Presentation()
    deck.core_properties.title = "Quarterly\nreview"
    deck.core_properties.author = "Ada Lovelace"
    deck.core_properties.created = dt.datetime(2024, 3, 1, 12, 0, 0)

    first = deck.slides.add_slide(deck.slide_layouts[0])  # title and subtitle
    first.shapes.title.text = "Quarterly review"
    first.placeholders[1].text = "Prepared by the\vfinance team"

    second = deck.slides.add_slide(deck.slide_layouts[5])  # title only
    # Added in an order unlike reading order: the text must come out top to bottom, left to right.
    footer = second.shapes.add_textbox(Inches(0.5), Inches(6.5), Inches(4), Inches(0.5))
    footer.text_frame.text = "Footer comes last"
    right = second.shapes.add_textbox(Inches(5), Inches(2), Inches(4), Inches(1))
    right.text_frame.text = "Right column"
    left = second.shapes.add_textbox(Inches(0.5), Inches(2), Inches(4), Inches(1))
    left.text_frame.text = "Left column"
    left.text_frame.add_paragraph().text = "   "  # a blank paragraph: dropped
    left.text_frame.add_paragraph().text = "second bullet"
    table = second.shapes.add_table(2, 3, Inches(0.5), Inches(3.5), Inches(8), Inches(1)).table
    for row, values in enumerate((("Region", "Q1", "Q2"), ("North", "10", ""))):
        for column, value in enumerate(values):
            table.cell(row, column).text = value
    group = second.shapes.add_group_shape()
    lower = group.shapes.add_textbox(Inches(1), Inches(5.5), Inches(2), Inches(0.5))
    lower.text_frame.text = "grouped lower"
    upper = group.shapes.add_textbox(Inches(1), Inches(5), Inches(2), Inches(0.5))
    upper.text_frame.text = "grouped upper"
    second.shapes.title.text = "Results"
    second.notes_slide.notes_text_frame.text = "Say the numbers slowly.\nThen pause."

    deck.slides.add_slide(deck.slide_layouts[6])  # blank
    deck.save(path)
    return path


def test_pptx_slides_in_reading_order_with_tables_groups_and_notes(tmp_path: Path) -> None:
    path = _presentation(tmp_path / "deck.pptx")

    content = extract_pptx(str(path), path.name)

    assert content.text.split("\n") == [
        "## Slide 1",
        "Quarterly review",
        "Prepared by the",
        "finance team",
        "## Slide 2",
        "Results",
        "Left column",
        "second bullet",
        "Right column",
        "Region\tQ1\tQ2",
        "North\t10",
        "grouped upper",
        "grouped lower",
        "Footer comes last",
        "Notes:",
        "Say the numbers slowly.",
        "Then pause.",
        "## Slide 3",
    ]
    assert content.extra == {"slides": 3}
    assert content.extractor == "python-pptx"
    assert (content.title, content.author, content.created) == (
        "Quarterly review",
        "Ada Lovelace",
        "2024-03-01T12:00:00+00:00",
    )


def test_damaged_and_protected_presentations(tmp_path: Path) -> None:
    good = _presentation(tmp_path / "good.pptx")
    truncated = tmp_path / "truncated.pptx"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    no_presentation = tmp_path / "empty.pptx"
    with zipfile.ZipFile(no_presentation, "w") as package:
        package.writestr("[Content_Types].xml", "<Types/>")
    legacy = tmp_path / "legacy.pptx"
    legacy.write_bytes(_compound_file({"PowerPoint Document": b"slides"}))
    for path in (truncated, no_presentation, legacy):
        with pytest.raises(CorruptDocument, match=rf"^corrupt: {re.escape(path.name)}: "):
            extract_pptx(str(path), path.name)

    protected = tmp_path / "protected.pptx"
    protected.write_bytes(_compound_file({"EncryptionInfo": b"\x04\x00", "EncryptedPackage": b"\x01" * 64}))
    with pytest.raises(EncryptedDocument, match=r"^encrypted: protected\.pptx needs a password$"):
        extract_pptx(str(protected), protected.name)


def test_a_zip_bomb_presentation_is_suspicious(tmp_path: Path) -> None:
    bomb = _bomb(tmp_path / "bomb.pptx", "ppt/media/image1.png", _presentation(tmp_path / "deck.pptx"))

    with pytest.raises(SuspiciousArchive, match=r"suspicious archive: bomb\.pptx: ppt/media/image1\.png"):
        extract_pptx(str(bomb), bomb.name)


# --- Real documents (opt-in) -----------------------------------------------------------


def _corpus_cases() -> list[tuple[str, str]]:
    folder = CORPUS / "textract"
    cases = []
    for kind in ("xlsx", "xls", "ods", "pptx"):
        cases.append((f"tests_{kind}_raw_text.{kind}", f"tests_{kind}_raw_text.txt"))
        cases.append((f"tests_{kind}_standardized_text.{kind}", ""))
    return [(document, expected) for document, expected in cases if (folder / document).is_file()] or [
        ("(none)", "")
    ]


@pytest.mark.skipif(not (CORPUS / "textract").is_dir(), reason=f"no document corpus at {CORPUS}")
@pytest.mark.parametrize(("document", "expected"), _corpus_cases())
def test_corpus_text_matches_the_expected_text(document: str, expected: str) -> None:
    path = CORPUS / "textract" / document
    if not path.is_file():
        pytest.skip(f"{document} is not in the corpus")
    extract = extract_pptx if path.suffix == ".pptx" else extract_spreadsheet
    want = (CORPUS / "textract" / expected).read_text(encoding="utf-8") if expected else STANDARDIZED_TEXT

    content = extract(str(path), path.name)

    # Headings ("## Sheet1", "## Slide 2") are docq's, not the document's: leave them out.
    text = "\n".join(line for line in content.text.split("\n") if not line.startswith("## "))
    score = _f1(want, text)
    print(f"\n{document}: word F1 {score:.3f}")
    assert score >= MIN_F1_BY_FILE.get(document, MIN_F1), f"{document}: word F1 {score:.3f}"
