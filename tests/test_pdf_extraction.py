"""PDF extraction: text PDFium drops or mangles, form values and notes, OCR flags, XMP titles.

Every PDF is written here by hand, byte by byte, so that each test says exactly what a page
holds. The corpus tests at the end are opt-in: they run where ``../shared/corpus`` exists.
"""

from __future__ import annotations

import re
import subprocess
import sys
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from docq.bench.documents import pdf_bytes, pdf_file
from docq.errors import CorruptDocument
from docq.processing.pdf import extract_pdf

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
HELVETICA = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
# What docq's page text must never hold: controls but tab and line feed, and private use.
NOT_TEXT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ue000-\uf8ff]")


def _stream(data: bytes, entries: bytes = b"") -> bytes:
    return b"<< /Length %d %s>>\nstream\n" % (len(data), entries) + data + b"\nendstream"


def _pdf(objects: list[bytes], *, info: int | None = None) -> bytes:
    """A PDF of ``objects`` (object n is ``objects[n - 1]``; object 1 is the catalog)."""
    return pdf_file(objects, info=info, version="1.7")


def _document(
    contents: list[bytes],
    *,
    fonts: bytes = b"/F1 3 0 R",
    extra: tuple[bytes, ...] = (),
    catalog: bytes = b"",
    page_entries: tuple[bytes, ...] = (),
    info: bytes | None = None,
) -> bytes:
    """Objects 1 catalog, 2 page tree, 3 Helvetica, 4... ``extra``, then each page and its
    content stream, then the info dictionary if given."""
    first_page = 4 + len(extra)
    kids = b" ".join(b"%d 0 R" % (first_page + 2 * index) for index in range(len(contents)))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R " + catalog + b">>",
        b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % len(contents),
        HELVETICA,
        *extra,
    ]
    for index, content in enumerate(contents):
        entries = page_entries[index] if index < len(page_entries) else b""
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << "
            + fonts
            + b" >> >> /Contents %d 0 R " % (first_page + 2 * index + 1)
            + entries
            + b">>"
        )
        objects.append(_stream(content))
    if info is not None:
        objects.append(info)
    return _pdf(objects, info=len(objects) if info is not None else None)


def _lines(*lines: bytes, font: bytes = b"/F1", top: int = 720) -> bytes:
    """A text object per line, 16 points apart."""
    return b"".join(
        b"BT %s 12 Tf 72 %d Td (%s) Tj ET\n" % (font, top - 16 * index, line)
        for index, line in enumerate(lines)
    )


def _write(tmp_path: Path, data: bytes, name: str = "doc.pdf") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def _visible(text: str) -> str:
    return "".join(text.split())


def _pages(text: str) -> list[str]:
    return text.split("\n\f")


# --- 1. Characters PDFium drops: a CJK font neither embedded nor mapped ----------------------

# SimSun, as a Chinese OCR layer names it: a TrueType CID font, not embedded, no ToUnicode,
# characters coded in GBK. PDFium drops them when each sits in a text object of its own.
SIMSUN = (
    b"<< /Type /Font /Subtype /Type0 /BaseFont /SimSun-GBK-EUC-H /Encoding /GBK-EUC-H /DescendantFonts [<<"
    b" /Type /Font /Subtype /CIDFontType2 /BaseFont /SimSun /DW 1000"
    b" /CIDSystemInfo << /Registry (Adobe) /Ordering (GB1) /Supplement 2 >>"
    b" /FontDescriptor << /Type /FontDescriptor /FontName /SimSun /Flags 32 /FontBBox [-8 -145 1000 859]"
    b" /ItalicAngle 0 /Ascent 859 /Descent -141 /CapHeight 684 /StemV 88 >> >>] >>"
)
# Ryumin in vertical writing (the "V" CMap, JIS X 0208 codes), as in pdfminer's samples.
RYUMIN_VERTICAL = (
    b"<< /Type /Font /Subtype /Type0 /BaseFont /Ryumin-Light-V /Encoding /V /DescendantFonts [<<"
    b" /Type /Font /Subtype /CIDFontType0 /BaseFont /Ryumin-Light"
    b" /CIDSystemInfo << /Registry (Adobe) /Ordering (Japan1) /Supplement 2 >>"
    b" /FontDescriptor << /Type /FontDescriptor /FontName /Ryumin-Light /Flags 4 /FontBBox [0 -200 1000 900]"
    b" /ItalicAngle 0 /Ascent 880 /Descent -120 /CapHeight 700 /StemV 80 >> >>] >>"
)
LATIN_ABOVE = b"The report lists the quarterly figures below."
LATIN_BELOW = b"More text in the ordinary font follows here."


def _chinese_page(chinese: str) -> bytes:
    characters = b"".join(
        b"BT 3 Tr /F2 12 Tf %d 700 Td <%s> Tj ET\n"
        % (72 + 12 * index, character.encode("gbk").hex().encode())
        for index, character in enumerate(chinese)
    )
    return _lines(LATIN_ABOVE) + characters + _lines(LATIN_BELOW, top=660)


def _japanese_page(japanese: str) -> bytes:
    # One column written downwards, in two text objects: the second goes on where the first stops.
    half = len(japanese) // 2
    columns = b"".join(
        b"BT /F2 12 Tf 300 %d Td (%s) Tj ET\n" % (600 - 12 * start, _jis(japanese[start:end]))
        for start, end in ((0, half), (half, len(japanese)))
    )
    return _lines(LATIN_ABOVE) + columns + _lines(LATIN_BELOW, top=300)


def _jis(text: str) -> bytes:
    """``text`` in JIS X 0208 codes (ISO-2022-JP without its escapes), escaped for a PDF string."""
    codes = text.encode("iso2022_jp")[3:-3]
    return codes.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


@pytest.mark.parametrize(
    ("font", "page", "cjk"),
    [
        (SIMSUN, _chinese_page, "关于公司年度报告的说明"),
        (RYUMIN_VERTICAL, _japanese_page, "あいうえお日本語の文章"),
    ],
    ids=["chinese-gbk", "japanese-vertical"],
)
def test_cjk_text_pdfium_drops_is_read_by_pdfminer(
    tmp_path: Path, font: bytes, page: Callable[[str], bytes], cjk: str
) -> None:
    path = _write(tmp_path, _document([page(cjk)], fonts=b"/F1 3 0 R /F2 4 0 R", extra=(font,)))
    content = extract_pdf(path, "doc.pdf")
    visible = _visible(content.text)
    assert cjk in visible
    assert _visible(LATIN_ABOVE.decode()) in visible
    assert _visible(LATIN_BELOW.decode()) in visible
    assert content.extractor == "pdfminer.six"


def test_cjk_font_pdfium_maps_stays_with_pdfium(tmp_path: Path) -> None:
    horizontal = RYUMIN_VERTICAL.replace(b"/Encoding /V", b"/Encoding /H")
    content_stream = _lines(LATIN_ABOVE) + b"BT /F2 12 Tf 72 690 Td (%s) Tj ET\n" % _jis("日本語の文章")
    path = _write(tmp_path, _document([content_stream], fonts=b"/F1 3 0 R /F2 4 0 R", extra=(horizontal,)))
    content = extract_pdf(path, "doc.pdf")
    assert content.text == f"{LATIN_ABOVE.decode()}\n日本語の文章"
    assert content.extractor == "pypdfium2"


def test_an_ordinary_pdf_is_read_without_pdfminer(tmp_path: Path) -> None:
    lines = [f"line {number} of an ordinary report with a title" for number in range(40)]
    path = _write(tmp_path, pdf_bytes([lines, lines], title="Quarterly report"))
    program = (
        "import sys\n"
        "from docq.processing.pdf import extract_pdf\n"
        f"content = extract_pdf({path!r}, 'doc.pdf')\n"
        "assert not [name for name in sys.modules if name.startswith('pdfminer')], 'pdfminer was imported'\n"
        "print(content.extractor, content.title)\n"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["pypdfium2", "Quarterly", "report"]


# --- 2. Words hyphenated across a line end ----------------------------------------------------


def test_a_hyphenated_word_comes_out_whole_or_with_its_hyphen_at_a_line_end(tmp_path: Path) -> None:
    content_stream = b"BT /F1 12 Tf 72 720 Td 14 TL\n" + b"".join(
        b"(%s) '\n" % line
        for line in (
            b"Mentorship is a matter of import-",
            b"ance to academic and business life, and",
            b"to governmental organizations in the Mid-",
            b"Atlantic region and elsewhere.",
        )
    )
    content = extract_pdf(_write(tmp_path, _document([content_stream + b"ET"])), "doc.pdf")
    assert "importance" in content.text.split()
    assert not re.search(r"\w-\w", content.text), content.text  # no hyphen inside a line
    expected = (
        "Mentorship is a matter of importance to academic and business life, and "
        "to governmental organizations in the Mid-Atlantic region and elsewhere."
    )
    assert content.text.replace("-\n", "-").split() == expected.split()


# --- 3. Control and private use characters ---------------------------------------------------

# A font whose ToUnicode map turns B into a form feed, C into a private use character and D into BEL.
TO_UNICODE = b"""/CIDInit /ProcSet findresource begin 12 dict begin begincmap /CMapName /Test def
1 begincodespacerange <00> <FF> endcodespacerange
4 beginbfchar <41> <0041> <42> <000C> <43> <E000> <44> <0007> endbfchar
endcmap CMapName currentdict /CMap defineresource pop end end"""


def test_control_and_private_use_characters_are_not_text(tmp_path: Path) -> None:
    mapped = (
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding /ToUnicode 5 0 R >>"
    )
    first = _lines(b"Open \x0cinterval \x01here") + _lines(b"xBy xCy xDy", font=b"/F2", top=690)
    path = _write(
        tmp_path,
        _document(
            [first, _lines(b"Second page")],
            fonts=b"/F1 3 0 R /F2 4 0 R",
            extra=(mapped, _stream(TO_UNICODE)),
        ),
    )
    content = extract_pdf(path, "doc.pdf")
    assert _pages(content.text) == ["Open interval here\nx y x y x y", "Second page"]
    assert content.text.count("\f") == 1  # the page separator, and nothing else
    assert not any(NOT_TEXT.search(page) for page in _pages(content.text))


# --- 4. Which pages need OCR -------------------------------------------------------------------

IMAGE = b"q 400 0 0 500 100 150 cm BI /W 2 /H 2 /BPC 8 /CS /G ID \x00\xff\xff\x00 EI Q\n"
DRAWING = b"0.5 w 72 72 m 540 720 l S 100 100 300 200 re f\n"


def test_only_pages_showing_an_image_without_text_need_ocr(tmp_path: Path) -> None:
    pages = [
        _lines(b"An introduction of ordinary text, long enough to be a page."),
        IMAGE,  # a scanned page
        DRAWING,  # a chart without labels
        b"",  # a blank page
        IMAGE + _lines(b"12"),  # a scan with a page number stamped on it
        IMAGE + _lines(b"A photograph with a caption long enough to be real text."),
    ]
    content = extract_pdf(_write(tmp_path, _document(pages)), "doc.pdf")
    assert content.needs_ocr
    assert content.extra == {"ocr_pages": [2, 5]}
    assert content.pages == 6


@pytest.mark.parametrize("page", [b"", DRAWING], ids=["blank", "vector-only"])
def test_blank_and_vector_pdfs_do_not_need_ocr(tmp_path: Path, page: bytes) -> None:
    content = extract_pdf(_write(tmp_path, _document([page, page])), "doc.pdf")
    assert content.text.strip() == ""
    assert not content.needs_ocr
    assert content.extra == {}


# --- 5. Form field values and text annotations -------------------------------------------------


def test_form_values_and_notes_follow_the_text_of_their_page(tmp_path: Path) -> None:
    # Objects 4-9: the fields and annotations of page 1 (object 10); page 2 is object 12.
    annotations = (
        b"<< /Type /Annot /Subtype /Widget /FT /Tx /T (customer) /V (Jane Doe) /Rect [72 600 300 620] >>",
        b"<< /Type /Annot /Subtype /Widget /FT /Btn /T (agree) /V /Off /AS /Off /Rect [72 560 90 578] >>",
        # A field whose value its parent holds, shown by a widget that is its kid.
        b"<< /FT /Tx /T (city) /V (Lisbon) /Kids [7 0 R] >>",
        b"<< /Type /Annot /Subtype /Widget /Parent 6 0 R /Rect [72 520 300 540] >>",
        b"<< /Type /Annot /Subtype /FreeText /Rect [300 700 500 720] /Contents (Approved by the board)"
        b" /DA (/Helv 12 Tf 0 g) >>",
        b"<< /Type /Annot /Subtype /Text /Rect [500 700 520 720] /Contents (Check the totals) >>",
    )
    data = _document(
        [_lines(b"Invoice for March"), _lines(b"Terms and conditions")],
        extra=annotations,
        catalog=b"/AcroForm << /Fields [4 0 R 5 0 R 6 0 R] >> ",
        page_entries=(b"/Annots [4 0 R 5 0 R 7 0 R 8 0 R 9 0 R] ",),
    )
    content = extract_pdf(_write(tmp_path, data), "doc.pdf")
    assert _pages(content.text) == [
        "Invoice for March\nJane Doe\nLisbon\nApproved by the board\nCheck the totals",
        "Terms and conditions",
    ]


# --- 6. Titles from XMP ------------------------------------------------------------------------

XMP = b"""<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">
   <dc:title><rdf:Alt>
    <rdf:li xml:lang="de">Jahresbericht</rdf:li>
    <rdf:li xml:lang="x-default">Annual   report</rdf:li>
   </rdf:Alt></dc:title>
   <dc:creator><rdf:Seq><rdf:li>Ana Lima</rdf:li><rdf:li>Bo Chen</rdf:li></rdf:Seq></dc:creator>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>"""


def _with_metadata(metadata: bytes, info: bytes | None) -> bytes:
    return _document(
        [_lines(b"First line of the body")],
        extra=(_stream(metadata, b"/Type /Metadata /Subtype /XML "),),
        catalog=b"/Metadata 4 0 R ",
        info=info,
    )


@pytest.mark.parametrize(
    "info", [None, b"<< /Title () /Producer (a scanner) >>"], ids=["no-info", "empty-title"]
)
def test_the_xmp_title_stands_in_for_a_missing_info_title(tmp_path: Path, info: bytes | None) -> None:
    content = extract_pdf(_write(tmp_path, _with_metadata(XMP, info)), "doc.pdf")
    assert content.title == "Annual report"
    assert content.author == "Ana Lima, Bo Chen"


def test_the_info_title_comes_before_the_xmp_title(tmp_path: Path) -> None:
    info = b"<< /Title (Annual report 2024) /Author (Finance team) >>"
    content = extract_pdf(_write(tmp_path, _with_metadata(XMP, info)), "doc.pdf")
    assert (content.title, content.author) == ("Annual report 2024", "Finance team")


def test_a_broken_xmp_packet_costs_the_title_only(tmp_path: Path) -> None:
    content = extract_pdf(_write(tmp_path, _with_metadata(XMP[:-60], None)), "doc.pdf")
    assert content.title is None
    assert content.text == "First line of the body"


def test_an_xmp_title_outside_the_catalog_is_not_the_documents(tmp_path: Path) -> None:
    # An image's own packet, as a photograph placed in the page brings along.
    data = _document(
        [_lines(b"First line of the body")],
        extra=(
            _stream(
                XMP + b"\x00" * 4,
                b"/Type /XObject /Subtype /Image /Width 1 /Height 1 /BitsPerComponent 8 "
                b"/ColorSpace /DeviceGray /Metadata 5 0 R ",
            ),
            _stream(XMP, b"/Type /Metadata /Subtype /XML "),
        ),
    )
    assert extract_pdf(_write(tmp_path, data), "doc.pdf").title is None


def test_a_compressed_xmp_packet_is_not_looked_for(tmp_path: Path) -> None:
    packed = _stream(zlib.compress(XMP), b"/Type /Metadata /Subtype /XML /Filter /FlateDecode ")
    data = _document([_lines(b"First line of the body")], extra=(packed,), catalog=b"/Metadata 4 0 R ")
    assert extract_pdf(_write(tmp_path, data), "doc.pdf").title is None


# --- Damage ------------------------------------------------------------------------------------


def test_a_damaged_pdf_is_corrupt(tmp_path: Path) -> None:
    path = _write(tmp_path, b"%PDF-1.7\n" + bytes(range(256)) * 8, "broken.pdf")
    with pytest.raises(CorruptDocument, match=r"^corrupt: broken\.pdf: "):
        extract_pdf(path, "broken.pdf")


# --- The corpus (opt-in) -----------------------------------------------------------------------

corpus = pytest.mark.skipif(
    not (CORPUS / "MANIFEST.md").is_file(), reason=f"no document corpus at {CORPUS} (it is not part of docq)"
)


def _corpus(name: str) -> str:
    matches = sorted(CORPUS.glob(name))
    assert matches, f"{name} is not in the corpus"
    return str(matches[0])


def _pdfminer_text(path: str) -> str:
    from pdfminer.high_level import extract_text

    return re.sub(r"\(cid:\d+\)", "", extract_text(path))  # placeholders for unmapped glyphs


def _f1(expected: str, got: str) -> float:
    """Word-level F1 of ``got`` against ``expected`` (multisets of lower-cased words)."""
    want, have = Counter(expected.lower().split()), Counter(got.lower().split())
    overlap = sum((want & have).values())
    if not overlap:
        return 0.0
    precision, recall = overlap / sum(have.values()), overlap / sum(want.values())
    return 2 * precision * recall / (precision + recall)


@corpus
@pytest.mark.parametrize(
    "name",
    ["pdfplumber/tests_pdfs_pr-136-example.pdf", "pdfminer/samples_jo.pdf", "pdfminer/samples_simple3.pdf"],
)
def test_corpus_cjk_text_is_kept(name: str) -> None:
    path = _corpus(name)
    ours, theirs = len(_visible(extract_pdf(path, name).text)), len(_visible(_pdfminer_text(path)))
    print(f"{name}: {ours} visible characters, pdfminer.six {theirs}")
    assert ours >= 0.9 * theirs


@corpus
def test_corpus_japanese_is_kept() -> None:
    assert "あいうえお" in _visible(extract_pdf(_corpus("pdfminer/samples_simple3.pdf"), "simple3").text)
    assert "発見するかもしれません" in _visible(extract_pdf(_corpus("pdfminer/samples_jo.pdf"), "jo").text)


@corpus
def test_corpus_hyphenated_words_are_whole() -> None:
    text = extract_pdf(_corpus("textract/tests_pdf_two_column.pdf"), "two_column").text
    assert "importance" in text
    assert "import-ance" not in text
    assert "\x02" not in text


@corpus
def test_corpus_math_delimiters_are_no_page_breaks() -> None:
    content = extract_pdf(_corpus("sample-files/009-*GeoTopo*.pdf"), "GeoTopo")
    assert content.text.count("\f") == (content.pages or 0) - 1
    assert not any(NOT_TEXT.search(page) for page in _pages(content.text))


@corpus
@pytest.mark.parametrize(
    "name", ["pdfminer/samples_simple2.pdf", "pdfplumber/tests_pdfs_issue-297-example.pdf"]
)
def test_corpus_blank_and_vector_pdfs_need_no_ocr(name: str) -> None:
    assert not extract_pdf(_corpus(name), name).needs_ocr


@corpus
def test_corpus_scans_need_ocr() -> None:
    content = extract_pdf(_corpus("textract/tests_pdf_ocr_text.pdf"), "ocr_text")
    assert content.needs_ocr
    assert content.extra == {"ocr_pages": list(range(1, (content.pages or 0) + 1))}


@corpus
def test_corpus_form_values_and_notes() -> None:
    form = extract_pdf(_corpus("pdfminer/samples_acroform_AcroForm_TEST.pdf"), "acroform").text
    assert form.split()[-3:] == ["111", "fff", "mm11"]
    notes = extract_pdf(_corpus("pdfplumber/tests_pdfs_annotations.pdf"), "annotations").text
    assert notes == "Dummy PDF file\nA popup note"


@corpus
def test_corpus_xmp_title() -> None:
    content = extract_pdf(_corpus("sample-files/020-xmp*.pdf"), "xmp")
    assert (content.title, content.author) == ("Sample PDF with XMP Metadata", "John Doe")


@corpus
@pytest.mark.parametrize(
    "name", ["tests_pdf_raw_text", "tests_pdf_two_column", "tests_pdf_standardized_text"]
)
def test_corpus_text_matches_textracts_expectation(name: str) -> None:
    expected_file = CORPUS / "textract" / f"{name}.txt"
    # textract expects every *_standardized_text document to read as this sentence.
    expected = (
        expected_file.read_text(encoding="utf-8")
        if expected_file.is_file()
        else "the quick brown fox jumps over the lazy dog"
    )
    score = _f1(expected, extract_pdf(str(CORPUS / "textract" / f"{name}.pdf"), name).text)
    print(f"{name}: word F1 {score:.3f}")
    assert score >= 0.95
