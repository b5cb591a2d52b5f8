"""OpenDocument text and presentations, RTF, EPUB and legacy Word: text, metadata, damage, bombs.

Documents are written here, under ``tmp_path``: ODT and ODP with odfdo or as ZIPs of
hand-written XML (to reach features odfdo does not write), RTF and EPUB by hand. The
corpus tests at the end are opt-in: they run where ``../shared/corpus`` exists.
"""

from __future__ import annotations

import collections
import datetime as dt
import re
import shutil
import unicodedata
import zipfile
from pathlib import Path

import pytest
from odfdo import Document, DrawPage, Frame, Header, List, Note, Paragraph, PresentationNotes, Table

from docq.errors import CorruptDocument, EncryptedDocument, UnsupportedType
from docq.processing.archive import SuspiciousArchive
from docq.processing.content import Content
from docq.processing.epub import extract_epub
from docq.processing.legacy_doc import extract_doc
from docq.processing.opendocument import extract_odf, iso_date
from docq.processing.rtf import extract_rtf

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
TEXTRACT = CORPUS / "textract"
# textract's tests expect every *_standardized_text document to read as this.
STANDARDIZED_TEXT = "the quick brown fox jumps over the lazy dog"
MIN_F1 = 0.95
HAS_ANTIWORD = shutil.which("antiword") is not None


def words(text: str) -> list[str]:
    return re.findall(r"\w+", unicodedata.normalize("NFKC", text).casefold())


def word_f1(expected: str, actual: str) -> float:
    """The F1 score of ``actual``'s words against ``expected``'s, counted as multisets."""
    wanted, got = collections.Counter(words(expected)), collections.Counter(words(actual))
    if not wanted and not got:
        return 1.0
    common = sum((wanted & got).values())
    if not common:
        return 0.0
    precision, recall = common / sum(got.values()), common / sum(wanted.values())
    return 2 * precision * recall / (precision + recall)


def write_zip(path: Path, members: dict[str, bytes | str], mimetype: str | None = None) -> Path:
    """A ZIP package at ``path``; ``mimetype``, if given, goes first and stored, as ODF and EPUB want."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as package:
        if mimetype is not None:
            package.writestr("mimetype", mimetype, compress_type=zipfile.ZIP_STORED)
        for member, data in members.items():
            package.writestr(member, data)
    return path


def add_bomb(path: Path, member: str) -> None:
    """Add ``member`` to the package at ``path``: 300 MB of zeros that deflate to about 1 MB."""
    zeros = bytes(1 << 20)
    with (
        zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED, compresslevel=1) as package,
        package.open(member, "w", force_zip64=True) as stream,
    ):
        for _ in range(300):
            stream.write(zeros)


# --- OpenDocument ----------------------------------------------------------------

ODF_NAMESPACES = (
    'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
    'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
    'xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0" '
    'xmlns:style="urn:oasis:names:tc:opendocument:xmlns:style:1.0" '
    'xmlns:meta="urn:oasis:names:tc:opendocument:xmlns:meta:1.0" '
    'xmlns:dc="http://purl.org/dc/elements/1.1/"'
)
ODT_TYPE = "application/vnd.oasis.opendocument.text"

FEATURES_CONTENT = f"""<?xml version="1.0" encoding="UTF-8"?>
<office:document-content {ODF_NAMESPACES}>
<office:automatic-styles>
  <text:list-style style:name="L1">
    <text:list-level-style-number text:level="1" style:num-format="1" style:num-suffix="."/>
    <text:list-level-style-bullet text:level="2" text:bullet-char="•"/>
  </text:list-style>
  <text:list-style style:name="L2">
    <text:list-level-style-number text:level="1" style:num-format="a" style:num-prefix="("
      style:num-suffix=")" text:start-value="3"/>
  </text:list-style>
</office:automatic-styles>
<office:body><office:text>
  <text:tracked-changes>
    <text:changed-region text:id="c1"><text:deletion>
      <office:change-info><dc:creator>Bob</dc:creator></office:change-info>
      <text:p>removed words</text:p>
    </text:deletion></text:changed-region>
  </text:tracked-changes>
  <text:sequence-decls>
    <text:sequence-decl text:display-outline-level="0" text:name="Figure"/>
  </text:sequence-decls>
  <text:table-of-content>
    <text:table-of-content-source>
      <text:index-title-template>Contents template</text:index-title-template>
    </text:table-of-content-source>
    <text:index-body><text:p>Introduction</text:p></text:index-body>
  </text:table-of-content>
  <text:h text:outline-level="1">Introduction</text:h>
  <text:p>Three<text:s text:c="3"/>spaces<text:tab/>tabbed<text:line-break/>broken   line
     wrapped</text:p>
  <text:p>Kept<text:change text:change-id="c1"/> text<office:annotation><dc:creator>Eve</dc:creator>
    <text:p>a private remark</text:p></office:annotation> here</text:p>
  <text:p>Anchor paragraph<draw:frame draw:name="f1"><draw:text-box><text:p>Boxed words</text:p>
    </draw:text-box></draw:frame> continues</text:p>
  <text:list text:style-name="L1">
    <text:list-item><text:p>First step</text:p>
      <text:list><text:list-item><text:p>Sub point</text:p></text:list-item></text:list>
    </text:list-item>
    <text:list-item><text:p>Second step</text:p></text:list-item>
  </text:list>
  <text:p>Between lists</text:p>
  <text:list text:style-name="L1" text:continue-numbering="true">
    <text:list-item><text:p>Third step</text:p></text:list-item>
  </text:list>
  <text:list text:style-name="L2"><text:list-item><text:p>Lettered</text:p></text:list-item></text:list>
  <text:p>See note<text:note text:note-class="footnote"><text:note-citation>1</text:note-citation>
    <text:note-body><text:p>The footnote.</text:p></text:note-body></text:note> and endnote<text:note
    text:note-class="endnote"><text:note-citation>i</text:note-citation><text:note-body>
    <text:p>The endnote.</text:p></text:note-body></text:note>.</text:p>
  <table:table table:name="T1">
    <table:table-column table:number-columns-repeated="3"/>
    <table:table-header-rows><table:table-row>
      <table:table-cell><text:p>Region</text:p></table:table-cell>
      <table:table-cell table:number-columns-spanned="2"><text:p>Sales</text:p></table:table-cell>
      <table:covered-table-cell/>
    </table:table-row></table:table-header-rows>
    <table:table-row>
      <table:table-cell><text:p>North</text:p><text:p>East</text:p></table:table-cell>
      <table:table-cell><text:p>12</text:p></table:table-cell>
      <table:table-cell table:number-columns-repeated="2"/>
    </table:table-row>
    <table:table-row table:number-rows-repeated="2">
      <table:table-cell table:number-columns-repeated="2"><text:p>x</text:p></table:table-cell>
    </table:table-row>
    <table:table-row table:number-rows-repeated="1000000"><table:table-cell/></table:table-row>
  </table:table>
  <text:p>Closing</text:p>
</office:text></office:body>
</office:document-content>
"""

FEATURES_STYLES = f"""<?xml version="1.0" encoding="UTF-8"?>
<office:document-styles {ODF_NAMESPACES}>
<office:master-styles>
  <style:master-page style:name="Standard">
    <style:header><text:p>Header words</text:p></style:header>
    <style:footer><text:p>Footer words <text:page-number>1</text:page-number></text:p></style:footer>
  </style:master-page>
  <style:master-page style:name="Landscape">
    <style:header><text:p>Header words</text:p></style:header>
  </style:master-page>
</office:master-styles>
</office:document-styles>
"""

FEATURES_META = f"""<?xml version="1.0" encoding="UTF-8"?>
<office:document-meta {ODF_NAMESPACES}>
<office:meta>
  <dc:title>  Feature
    tour </dc:title>
  <dc:creator>Last Editor</dc:creator>
  <meta:creation-date>2020-05-03T10:30:00.123456789</meta:creation-date>
  <meta:document-statistic meta:page-count="4"/>
</office:meta>
</office:document-meta>
"""

FEATURES_TEXT = """Introduction
Introduction
Three   spaces\ttabbed
broken line wrapped
Kept text here
Anchor paragraph continues
Boxed words
1. First step
  • Sub point
2. Second step
Between lists
3. Third step
(c) Lettered
See note and endnote.
Region\tSales
North East\t12
x\tx
x\tx
Closing

[1] The footnote.
[i] The endnote.

Header words
Footer words 1"""


def write_features_odt(path: Path, **replaced: str) -> Path:
    members = {"content.xml": FEATURES_CONTENT, "styles.xml": FEATURES_STYLES, "meta.xml": FEATURES_META}
    return write_zip(path, {**members, **replaced}, mimetype=ODT_TYPE)


def test_odt_written_by_odfdo(tmp_path: Path) -> None:
    document = Document("text")
    document.body.clear()
    document.body.append(Header(1, "Quarterly report"))
    document.body.append(Paragraph("Revenue grew  by\tten percent"))
    costs = Paragraph("Costs fell")
    costs.append(Note(note_class="footnote", note_id="n1", citation="1", body="Audited figures only."))
    costs.append(" sharply")
    document.body.append(costs)
    document.body.append(List(["first item", "second item"]))
    table = Table("Sales", width=2, height=2)
    table.set_values([["north", "12"], ["south", "7"]])
    document.body.append(table)
    document.meta.set_title("Report Q3")
    document.meta.set_initial_creator("Ada Lovelace")
    document.meta.set_creation_date(dt.datetime(2021, 3, 4, 5, 6, 7))
    document.save(str(tmp_path / "report.odt"))

    content = extract_odf(str(tmp_path / "report.odt"), "report.odt")

    assert content.text.split("\n") == [
        "Quarterly report",
        "Revenue grew  by\tten percent",
        "Costs fell sharply",
        "first item",
        "second item",
        "north\t12",
        "south\t7",
        "",
        "[1] Audited figures only.",
    ]
    assert (content.title, content.author, content.created) == (
        "Report Q3",
        "Ada Lovelace",
        "2021-03-04T05:06:07+00:00",
    )
    assert content.extractor == "docq"


def test_odt_features_in_document_order(tmp_path: Path) -> None:
    """Spaces, tabs, breaks, list labels, text boxes, tables, notes, headers; no deleted text."""
    content = extract_odf(str(write_features_odt(tmp_path / "features.odt")), "features.odt")

    assert content.text == FEATURES_TEXT
    for hidden in ("removed", "remark", "template", "Figure"):
        assert hidden not in content.text
    # Without meta:initial-creator the author is the last editor; a time without a zone is UTC.
    assert (content.title, content.author, content.created, content.pages) == (
        "Feature tour",
        "Last Editor",
        "2020-05-03T10:30:00.123456+00:00",
        4,
    )


def test_odp_gives_one_block_per_slide_with_its_notes(tmp_path: Path) -> None:
    document = Document("presentation")
    document.body.clear()
    slides = [("Welcome aboard", "agenda first", "Say hello"), ("Budget plan", "costs down", "Mention risks")]
    for number, (title, point, notes) in enumerate(slides, start=1):
        page = DrawPage(f"page{number}", name=f"Slide {number}")
        page.append(Frame.text_frame([title, point], size=("20cm", "3cm"), position=("1cm", "1cm")))
        speaker = PresentationNotes()
        speaker.append(Frame.text_frame(notes, size=("10cm", "3cm"), position=("1cm", "1cm")))
        page.append(speaker)
        document.body.append(page)
    document.meta.set_title("Plans")
    document.save(str(tmp_path / "plans.odp"))

    content = extract_odf(str(tmp_path / "plans.odp"), "plans.odp")

    assert content.text == (
        "## Slide 1\nWelcome aboard\nagenda first\nSay hello\n\n"
        "## Slide 2\nBudget plan\ncosts down\nMention risks"
    )
    assert content.extra == {"slides": 2}
    assert content.title == "Plans"


def test_password_protected_odt_is_encrypted(tmp_path: Path) -> None:
    manifest = f"""<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0">
      <manifest:file-entry manifest:full-path="/" manifest:media-type="{ODT_TYPE}"/>
      <manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml">
        <manifest:encryption-data manifest:checksum-type="SHA1/1K" manifest:checksum="AAAA"/>
      </manifest:file-entry>
    </manifest:manifest>"""
    path = write_features_odt(tmp_path / "secret.odt", **{"content.xml": "\x8f\x01 ciphertext"})
    with zipfile.ZipFile(path, "a") as package:
        package.writestr("META-INF/manifest.xml", manifest)

    with pytest.raises(EncryptedDocument, match=r"^encrypted: secret\.odt needs a password"):
        extract_odf(str(path), "secret.odt")


def test_damaged_odt_is_corrupt(tmp_path: Path) -> None:
    whole = write_features_odt(tmp_path / "whole.odt").read_bytes()
    cut = tmp_path / "cut.odt"
    cut.write_bytes(whole[: len(whole) // 2])
    bad_xml = write_features_odt(tmp_path / "bad_xml.odt", **{"content.xml": "<office:document-content"})
    no_content = write_zip(tmp_path / "no_content.odt", {"meta.xml": FEATURES_META}, mimetype=ODT_TYPE)
    # A stored entry with one byte flipped: the ZIP opens, the entry fails its CRC when read.
    flipped = tmp_path / "flipped.odt"
    with zipfile.ZipFile(flipped, "w", zipfile.ZIP_STORED) as package:
        package.writestr("content.xml", FEATURES_CONTENT)
    data = bytearray(flipped.read_bytes())
    data[data.index(b"Closing")] ^= 0x20
    flipped.write_bytes(bytes(data))

    for path in (cut, bad_xml, no_content, flipped):
        with pytest.raises(CorruptDocument, match=rf"^corrupt: {path.name}: "):
            extract_odf(str(path), path.name)


def test_odt_zip_bomb_is_refused(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "bomb.odt", {"meta.xml": FEATURES_META}, mimetype=ODT_TYPE)
    add_bomb(path, "content.xml")

    with pytest.raises(SuspiciousArchive, match=r"bomb\.odt"):
        extract_odf(str(path), "bomb.odt")


def odt_body(inner: str) -> str:
    return (
        f"<office:document-content {ODF_NAMESPACES}><office:body><office:text>{inner}"
        "</office:text></office:body></office:document-content>"
    )


def test_hostile_odt_xml_is_bounded(tmp_path: Path) -> None:
    """Nesting past the parser's limit is corrupt; repeat counts cannot blow the text up."""
    deep = "<text:section>" * 5000 + "<text:p>deep</text:p>" + "</text:section>" * 5000
    nested = write_zip(tmp_path / "nested.odt", {"content.xml": odt_body(deep)}, mimetype=ODT_TYPE)
    with pytest.raises(CorruptDocument, match=r"^corrupt: nested\.odt: XML that cannot be read"):
        extract_odf(str(nested), "nested.odt")

    # Under 1 MB, so that the package check (which holds big entries to a ratio) lets it through.
    cell = f"<text:p>{'y' * 1000}</text:p>"
    wide_cell = f'<table:table-cell table:number-columns-repeated="16384">{cell}</table:table-cell>'
    row = f'<table:table-row table:number-rows-repeated="1048576">{wide_cell * 20}</table:table-row>'
    spaces = '<text:p>a<text:s text:c="999999999"/>b<text:s text:c="-3"/>c<text:s text:c="x"/></text:p>'
    inflated = odt_body(f"<table:table>{row * 20}</table:table>{spaces}")
    repeats = write_zip(tmp_path / "repeats.odt", {"content.xml": inflated}, mimetype=ODT_TYPE)

    content = extract_odf(str(repeats), "repeats.odt")

    assert len(content.text) < 3_000_000
    assert content.text.endswith("a" + " " * 1000 + "bc")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2013-05-24T21:02:01", "2013-05-24T21:02:01+00:00"),
        ("2013-05-24T21:02:01.5+02:00", "2013-05-24T19:02:01.500000+00:00"),
        ("2013-05-24T21:02:01Z", "2013-05-24T21:02:01+00:00"),
        ("2013-05", "2013-05-01T00:00:00+00:00"),
        ("2013", "2013-01-01T00:00:00+00:00"),
        ("2013-13-01", None),
        ("yesterday", None),
        ("", None),
        (None, None),
    ],
)
def test_iso_dates(value: str | None, expected: str | None) -> None:
    assert iso_date(value) == expected


# --- RTF --------------------------------------------------------------------------

RTF = (
    r"{\rtf1\ansi\ansicpg1252\deff0"
    r"{\fonttbl{\f0\fswiss\fcharset0 Arial;}}"
    r"{\info{\title Caf\'e9 notes}{\author Ren\'e9e Dupont}{\creatim\yr2019\mo11\dy5\hr9\min15}{\nofpages3}}"
    r"{\header\pard Page header text\par}"
    r"\pard\f0 Caf\'e9 cr\'e8me br\'fbl\'e9e\par "
    r"Price 5\u8364? only\line next line\par "
    r"Smile \u-10179?\u-8704? done\par "
    r"Soft hy\-phen and non\~breaking\par "
    r"{\*\shppict{\pict\pngblip\picw10\pich10 89504e470d0a1a0a0000000d49484452}}{\pict\bin4 {}}}}"
    r"\trowd\cellx1000\cellx2000 \intbl north\cell 12\cell\row "
    r"\trowd\cellx1000\cellx2000 \intbl south\cell 7\cell\row "
    r"\pard Literal \\cell and \{braces\}\par "
    r"{\*\generator Hand 1.0;}Last line\par"
    "}"
)


def test_rtf_text_code_page_unicode_and_info() -> None:
    content = extract_rtf(RTF.encode("ascii"), "notes.rtf")

    assert content.text.split("\n") == [
        "Café crème brûlée",
        "Price 5€ only",
        "next line",
        "Smile \U0001f600 done",  # a surrogate pair of \u escapes, joined
        "Soft hyphen and non\xa0breaking",
        "north\t12",
        "south\t7",
        "Literal \\cell and {braces}",
        "Last line",
    ]
    assert (content.title, content.author, content.created, content.pages) == (
        "Café notes",
        "Renée Dupont",
        "2019-11-05T09:15:00+00:00",
        3,
    )
    assert content.extra == {}
    assert content.extractor == "striprtf"


@pytest.mark.parametrize(
    ("header", "escaped", "expected"),
    [
        (r"\ansi\ansicpg1251", r"\'cf\'f0\'e8\'e2\'e5\'f2", "Привет"),
        (r"\ansi\ansicpg10000", r"caf\'8e", "café"),  # a Mac code page, unknown to Python as cp10000
        (r"\mac", r"caf\'8e", "café"),
        (r"\ansi\ansicpg99999", r"caf\'e9", "café"),  # an unknown code page: Windows-1252
        (r"\ansi", r"caf\'e9", "café"),
    ],
)
def test_rtf_code_pages(header: str, escaped: str, expected: str) -> None:
    content = extract_rtf(f"{{\\rtf1{header} {escaped}\\par}}".encode("ascii"), "page.rtf")

    assert content.text == expected


def test_truncated_rtf_keeps_its_text_with_a_note() -> None:
    content = extract_rtf(RTF[: RTF.index("Soft")].encode("ascii"), "cut.rtf")

    assert content.text.split("\n")[-1] == "Smile \U0001f600 done"
    assert content.extra == {"notes": ["the RTF ends inside an open group: it may be cut short"]}


@pytest.mark.parametrize(
    "data",
    [b"", b"PK\x03\x04 not rtf", b"hello {\\rtf1 later}", b"{\\rtf1 {\\pict\\bin }}", b"{\\rtf1 \\uc hello}"],
    ids=["empty", "zip", "text", "bin-without-length", "uc-without-number"],
)
def test_damaged_or_non_rtf_is_corrupt(data: bytes) -> None:
    with pytest.raises(CorruptDocument, match=r"^corrupt: bad\.rtf: "):
        extract_rtf(data, "bad.rtf")


# --- EPUB -------------------------------------------------------------------------

CONTAINER = """<?xml version="1.0"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
  <rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles>
</container>"""

OPF = """<?xml version="1.0" encoding="utf-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="id">
  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/">
    <dc:identifier id="id">urn:uuid:0a1b</dc:identifier>
    <dc:title>A Small Book</dc:title>
    <dc:creator>Ann Writer</dc:creator>
    <dc:creator>Ben Helper</dc:creator>
    <dc:date>2018-04</dc:date>
  </metadata>
  <manifest>
    <item id="three" href="Text/three.xhtml" media-type="application/xhtml+xml"/>
    <item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>
    <item id="one" href="Text/one.xhtml" media-type="application/xhtml+xml"/>
    <item id="two" href="Text/chapter%20two.xhtml#start" media-type="application/xhtml+xml"/>
    <item id="css" href="Styles/book.css" media-type="text/css"/>
    <item id="font" href="Fonts/serif.otf" media-type="font/otf"/>
  </manifest>
  <spine><itemref idref="one"/><itemref idref="two"/><itemref idref="css"/><itemref idref="three"/></spine>
</package>"""


def chapter(heading: str, paragraph: str) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?><html xmlns="http://www.w3.org/1999/xhtml">'
        f"<head><title>{heading}</title></head><body><h1>{heading}</h1><p>{paragraph}</p></body></html>"
    )


EPUB_MEMBERS: dict[str, bytes | str] = {
    "META-INF/container.xml": CONTAINER,
    "OEBPS/content.opf": OPF,
    "OEBPS/nav.xhtml": chapter("Contents", "Table of contents"),
    "OEBPS/Text/one.xhtml": chapter("Chapter One", "It was a bright cold day."),
    "OEBPS/Text/chapter two.xhtml": chapter("Chapter Two", "The clocks were striking thirteen."),
    "OEBPS/Text/three.xhtml": chapter("Chapter Three", "Nobody came."),
    "OEBPS/Styles/book.css": "h1 { color: red }",
    "OEBPS/Fonts/serif.otf": b"\x00\x01obfuscated font",
}
EPUB_TYPE = "application/epub+zip"


def encryption(*uris: str) -> str:
    data = "".join(
        "<enc:EncryptedData><enc:EncryptionMethod Algorithm='http://www.idpf.org/2008/embedding'/>"
        f"<enc:CipherData><enc:CipherReference URI='{uri}'/></enc:CipherData></enc:EncryptedData>"
        for uri in uris
    )
    return (
        "<encryption xmlns='urn:oasis:names:tc:opendocument:xmlns:container' "
        f"xmlns:enc='http://www.w3.org/2001/04/xmlenc#'>{data}</encryption>"
    )


def test_epub_chapters_in_spine_order_and_metadata(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "book.epub", EPUB_MEMBERS, mimetype=EPUB_TYPE)

    content = extract_epub(str(path), "book.epub")

    assert words(content.text) == words(
        "Chapter One It was a bright cold day. Chapter Two The clocks were striking thirteen. "
        "Chapter Three Nobody came."
    )
    assert "cold day.\n\nChapter Two" in content.text  # a blank line between chapters
    assert content.extra == {"chapters": 3}
    assert (content.title, content.author, content.created) == (
        "A Small Book",
        "Ann Writer, Ben Helper",
        "2018-04-01T00:00:00+00:00",
    )


def test_epub_with_obfuscated_fonts_only_is_read(tmp_path: Path) -> None:
    members = {**EPUB_MEMBERS, "META-INF/encryption.xml": encryption("OEBPS/Fonts/serif.otf")}
    path = write_zip(tmp_path / "fonts.epub", members, mimetype=EPUB_TYPE)

    assert "Nobody came." in extract_epub(str(path), "fonts.epub").text


def test_epub_under_drm_is_encrypted(tmp_path: Path) -> None:
    members = {
        **EPUB_MEMBERS,
        "OEBPS/Text/chapter two.xhtml": b"\x93\x11\xfe ciphertext",
        "META-INF/encryption.xml": encryption("OEBPS/Fonts/serif.otf", "OEBPS/Text/chapter%20two.xhtml"),
    }
    path = write_zip(tmp_path / "drm.epub", members, mimetype=EPUB_TYPE)

    with pytest.raises(EncryptedDocument, match=r"^encrypted: drm\.epub needs a password"):
        extract_epub(str(path), "drm.epub")


def test_epub_missing_chapter_is_left_out_with_a_note(tmp_path: Path) -> None:
    members = {key: value for key, value in EPUB_MEMBERS.items() if key != "OEBPS/Text/three.xhtml"}
    path = write_zip(tmp_path / "short.epub", members, mimetype=EPUB_TYPE)

    content = extract_epub(str(path), "short.epub")

    assert "Chapter Three" not in content.text and "thirteen" in content.text
    assert content.extra == {
        "chapters": 2,
        "notes": ["missing from the package, left out: OEBPS/Text/three.xhtml"],
    }


def test_damaged_epub_is_corrupt(tmp_path: Path) -> None:
    no_container = {key: value for key, value in EPUB_MEMBERS.items() if key != "META-INF/container.xml"}
    no_opf = {key: value for key, value in EPUB_MEMBERS.items() if key != "OEBPS/content.opf"}
    empty_container = {**EPUB_MEMBERS, "META-INF/container.xml": "<container><rootfiles/></container>"}
    bad_opf = {**EPUB_MEMBERS, "OEBPS/content.opf": "<package><manifest>"}
    for stem, members in [
        ("no_container", no_container),
        ("no_opf", no_opf),
        ("empty_container", empty_container),
        ("bad_opf", bad_opf),
    ]:
        path = write_zip(tmp_path / f"{stem}.epub", members, mimetype=EPUB_TYPE)
        with pytest.raises(CorruptDocument, match=rf"^corrupt: {stem}\.epub: "):
            extract_epub(str(path), path.name)
    not_zip = tmp_path / "not_zip.epub"
    not_zip.write_bytes(b"<html>not a book</html>")
    with pytest.raises(CorruptDocument, match=r"^corrupt: not_zip\.epub: "):
        extract_epub(str(not_zip), "not_zip.epub")


def test_epub_zip_bomb_is_refused(tmp_path: Path) -> None:
    members = {key: value for key, value in EPUB_MEMBERS.items() if key != "OEBPS/Text/three.xhtml"}
    path = write_zip(tmp_path / "bomb.epub", members, mimetype=EPUB_TYPE)
    add_bomb(path, "OEBPS/Text/three.xhtml")

    with pytest.raises(SuspiciousArchive, match=r"bomb\.epub"):
        extract_epub(str(path), "bomb.epub")


# --- Legacy Word ------------------------------------------------------------------


def test_doc_without_antiword_is_unsupported_and_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))  # no antiword to be found
    path = tmp_path / "old.doc"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504))

    with pytest.raises(UnsupportedType, match=r"^unsupported type application/msword: old\.doc: ") as raised:
        extract_doc(str(path), "old.doc")
    assert "apt-get install antiword" in str(raised.value)
    assert "--convert-to pdf --outdir {dir} {path}" in str(raised.value)


@pytest.mark.skipif(not HAS_ANTIWORD, reason="antiword is not installed (apt-get install antiword)")
def test_non_word_file_is_corrupt_for_antiword(tmp_path: Path) -> None:
    path = tmp_path / "fake.doc"
    path.write_text("just some text, not a Word document\n")

    with pytest.raises(
        CorruptDocument, match=r"^corrupt: fake\.doc: antiword cannot read it \(fake\.doc is not"
    ):
        extract_doc(str(path), "fake.doc")


@pytest.mark.skipif(not HAS_ANTIWORD, reason="antiword is not installed (apt-get install antiword)")
@pytest.mark.skipif(not TEXTRACT.is_dir(), reason=f"no document corpus at {CORPUS} (it is not part of docq)")
def test_doc_text_and_summary_with_antiword() -> None:
    path = TEXTRACT / "tests_doc_raw_text.doc"

    content = extract_doc(str(path), path.name)

    assert word_f1(path.with_suffix(".txt").read_text(encoding="utf-8"), content.text) >= MIN_F1
    assert content.text.startswith("I love word documents.")
    assert (content.author, content.created, content.extractor) == (
        "Dean Malmgren",
        "2014-07-07T20:35:00+00:00",
        "antiword",
    )


# --- Corpus (opt-in) --------------------------------------------------------------

CORPUS_FILES = sorted(TEXTRACT.glob("*.*")) if TEXTRACT.is_dir() else []
READERS = {
    ".odt": lambda path: extract_odf(str(path), path.name),
    ".rtf": lambda path: extract_rtf(path.read_bytes(), path.name),
    ".epub": lambda path: extract_epub(str(path), path.name),
    ".doc": lambda path: extract_doc(str(path), path.name),
}


def expected_text(path: Path) -> str | None:
    beside = path.with_suffix(".txt")
    if beside.is_file():
        return beside.read_text(encoding="utf-8")
    return STANDARDIZED_TEXT if "_standardized_text" in path.name else None


@pytest.mark.skipif(not TEXTRACT.is_dir(), reason=f"no document corpus at {CORPUS} (it is not part of docq)")
@pytest.mark.parametrize(
    "path", [path for path in CORPUS_FILES if path.suffix in READERS], ids=lambda path: path.name
)
def test_corpus_text_matches_expected(path: Path) -> None:
    if path.suffix == ".doc" and not HAS_ANTIWORD:
        pytest.skip("antiword is not installed (apt-get install antiword)")
    expected = expected_text(path)
    if expected is None:
        pytest.skip(f"no expected text for {path.name}")

    content: Content = READERS[path.suffix](path)

    score = word_f1(expected, content.text)
    print(f"{path.name}: word F1 {score:.3f}")
    assert score >= MIN_F1, f"{path.name}: word F1 {score:.3f}\n{content.text[:500]}"
