"""DOCX text extraction on documents written here with python-docx, with the WordprocessingML
python-docx has no API for (notes, content controls, text boxes, tracked changes, fields,
numbering) injected as raw XML; plus damaged and hostile packages and the textract corpus."""

from __future__ import annotations

import datetime as dt
import re
import time
import unicodedata
import zipfile
from collections import Counter
from pathlib import Path

import docx
import pytest
from docx.document import Document
from docx.opc.constants import CONTENT_TYPE as CT
from docx.opc.constants import RELATIONSHIP_TYPE as RT
from docx.opc.packuri import PackURI
from docx.opc.part import Part
from docx.oxml import parse_xml

from docq.errors import CorruptDocument, EncryptedDocument
from docq.processing.archive import SuspiciousArchive
from docq.processing.office import EXTRACTOR, extract_docx

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
STANDARDIZED_TEXT = "the quick brown fox jumps over the lazy dog"
NS = (
    'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships" '
    'xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006" '
    'xmlns:wp="http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing" '
    'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" '
    'xmlns:wps="http://schemas.microsoft.com/office/word/2010/wordprocessingShape" '
    'xmlns:v="urn:schemas-microsoft-com:vml"'
)


def _run(text: str) -> str:
    return f'<w:r><w:t xml:space="preserve">{text}</w:t></w:r>'


def _para(inner: str) -> str:
    return f"<w:p>{inner}</w:p>"


def _append(document: Document, xml: str) -> None:
    """Add a block written as raw XML at the end of the body (before its section properties)."""
    body = document.element.body
    body.insert(len(body) - 1, parse_xml(xml.replace(">", f" {NS}>", 1)))  # namespaces on the outer tag


def _add_part(document: Document, partname: str, content_type: str, reltype: str, xml: str) -> None:
    part = Part(PackURI(partname), content_type, xml.encode(), document.part.package)
    document.part.relate_to(part, reltype)


def _notes(kind: str, texts: list[str]) -> str:
    """A footnotes or endnotes part: Word's separator notes, then one note per text."""
    notes = [
        f'<w:{kind} w:type="separator" w:id="-1"><w:p><w:r><w:separator/></w:r></w:p></w:{kind}>',
        f'<w:{kind} w:type="continuationSeparator" w:id="0"><w:p><w:r><w:continuationSeparator/></w:r>'
        f"</w:p></w:{kind}>",
    ]
    for number, text in enumerate(texts, 1):
        reference = f'<w:r><w:{kind}Ref/></w:r><w:r><w:t xml:space="preserve"> {text}</w:t></w:r>'
        notes.append(f'<w:{kind} w:id="{number}">{_para(reference)}</w:{kind}>')
    return f"<w:{kind}s {NS}>{''.join(notes)}</w:{kind}s>"


def _extract(document: Document, tmp_path: Path, name: str = "doc.docx") -> list[str]:
    path = tmp_path / name
    document.save(str(path))
    result = extract_docx(str(path), name)
    assert result.extractor == EXTRACTOR
    assert "\r" not in result.text
    return result.text.split("\n")


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", unicodedata.normalize("NFKC", text).casefold())


def test_reading_order_body_notes_headers_footers(tmp_path: Path) -> None:
    document = docx.Document()
    first = document.sections[0]
    first.header.paragraphs[0].text = "Quarterly report header"
    first.footer.paragraphs[0].text = "Confidential footer"
    document.add_paragraph("Opening paragraph")
    _append(document, _para(_run("Noted claim") + '<w:r><w:footnoteReference w:id="1"/></w:r>'))
    table = document.add_table(rows=2, cols=2)
    for row, texts in zip(table.rows, (("North", "12"), ("South", "7")), strict=True):
        for cell, text in zip(row.cells, texts, strict=True):
            cell.text = text
    document.add_paragraph("Closing paragraph")
    # Section two repeats the first header in a part of its own, and has a footer of its own.
    second = document.add_section()
    second.header.is_linked_to_previous = False
    second.header.paragraphs[0].text = "Quarterly report header"
    second.footer.is_linked_to_previous = False
    second.footer.paragraphs[0].text = "Appendix footer"
    document.add_paragraph("Appendix paragraph")
    _add_part(
        document, "/word/footnotes.xml", CT.WML_FOOTNOTES, RT.FOOTNOTES, _notes("footnote", ["Source one"])
    )
    _add_part(
        document, "/word/endnotes.xml", CT.WML_ENDNOTES, RT.ENDNOTES, _notes("endnote", ["Final remark"])
    )

    assert _extract(document, tmp_path) == [
        "Opening paragraph",
        "Noted claim",
        "North\t12",
        "South\t7",
        "Closing paragraph",
        "",  # the paragraph python-docx adds to end the first section
        "Appendix paragraph",
        " Source one",
        " Final remark",
        "Quarterly report header",
        "Confidential footer",
        "Appendix footer",
    ]


def test_metadata_comes_from_core_properties(tmp_path: Path) -> None:
    document = docx.Document()
    document.core_properties.title = "  Harbour\nminutes "
    document.core_properties.author = "Ines Okafor"
    document.core_properties.created = dt.datetime(2024, 5, 6, 7, 8, 9)
    document.add_paragraph("Body")
    path = tmp_path / "minutes.docx"
    document.save(str(path))
    result = extract_docx(str(path), "minutes.docx")
    assert (result.title, result.author, result.created) == (
        "Harbour minutes",
        "Ines Okafor",
        "2024-05-06T07:08:09+00:00",
    )
    assert result.text == "Body"


def test_tracked_changes_keep_insertions_and_leave_out_deletions(tmp_path: Path) -> None:
    document = docx.Document()
    _append(
        document,
        _para(
            _run("Kept ")
            + f'<w:ins w:id="1" w:author="A">{_run("inserted ")}</w:ins>'
            + '<w:del w:id="2" w:author="A"><w:r><w:delText>deleted </w:delText></w:r></w:del>'
            + f'<w:moveFrom w:id="3" w:author="A">{_run("movedaway ")}</w:moveFrom>'
            + f'<w:moveTo w:id="4" w:author="A">{_run("arrived")}</w:moveTo>'
        ),
    )
    gone = "<w:tc><w:p><w:r><w:delText>gone</w:delText></w:r></w:p></w:tc>"
    deleted_row = f'<w:tr><w:trPr><w:del w:id="5" w:author="A"/></w:trPr>{gone}</w:tr>'
    kept_row = f"<w:tr><w:tc>{_para(_run('stays'))}</w:tc></w:tr>"
    _append(document, f"<w:tbl><w:tblPr/><w:tblGrid><w:gridCol/></w:tblGrid>{deleted_row}{kept_row}</w:tbl>")
    assert _extract(document, tmp_path) == ["Kept inserted arrived", "stays"]


def test_content_controls_keep_their_content_but_not_their_properties(tmp_path: Path) -> None:
    document = docx.Document()
    properties = '<w:sdtPr><w:alias w:val="AliasName"/><w:tag w:val="TagName"/></w:sdtPr>'
    _append(
        document, f"<w:sdt>{properties}<w:sdtContent>{_para(_run('Block control'))}</w:sdtContent></w:sdt>"
    )
    inline = f"<w:sdt>{properties}<w:sdtContent>{_run('inline control')}</w:sdtContent></w:sdt>"
    _append(document, _para(_run("Before ") + inline + _run(" after")))
    control_cell = f"<w:sdt><w:sdtContent><w:tc>{_para(_run('Cell control'))}</w:tc></w:sdtContent></w:sdt>"
    row = f"<w:tr>{control_cell}<w:tc>{_para(_run('Plain cell'))}</w:tc></w:tr>"
    table = f"<w:tbl><w:tblPr/><w:sdt>{properties}<w:sdtContent>{row}</w:sdtContent></w:sdt></w:tbl>"
    _append(document, table)
    # An empty control shows a prompt ("Click here to enter text."), which is not the document's text.
    prompt = "<w:sdt><w:sdtPr><w:showingPlcHdr/></w:sdtPr>"
    prompt += f"<w:sdtContent>{_run('Click here')}</w:sdtContent></w:sdt>"
    _append(document, _para(_run("Name: ") + prompt))
    assert _extract(document, tmp_path) == [
        "Block control",
        "Before inline control after",
        "Cell control\tPlain cell",
        "Name: ",
    ]


def _field(code: str, result: str) -> str:
    return (
        '<w:r><w:fldChar w:fldCharType="begin"/></w:r>'
        f'<w:r><w:instrText xml:space="preserve">{code}</w:instrText></w:r>'
        '<w:r><w:fldChar w:fldCharType="separate"/></w:r>'
        f"{_run(result)}"
        '<w:r><w:fldChar w:fldCharType="end"/></w:r>'
    )


def test_fields_show_their_results_not_their_codes(tmp_path: Path) -> None:
    document = docx.Document()
    simple = f'<w:fldSimple w:instr=" PAGE ">{_run("7")}</w:fldSimple>'
    _append(document, _para(_run("Page ") + simple + _run(", dated ") + _field(" DATE ", "12 May 2024")))
    nested = (
        '<w:r><w:fldChar w:fldCharType="begin"/></w:r><w:r><w:instrText>IF </w:instrText></w:r>'
        + _field("MERGEFIELD kind", "hiddenmerge")
        + '<w:r><w:instrText> = "x" "yes" "no"</w:instrText></w:r>'
        + '<w:r><w:fldChar w:fldCharType="separate"/></w:r>'
        + _run("yes")
        + '<w:r><w:fldChar w:fldCharType="end"/></w:r>'
    )
    _append(document, _para(_run("Answer: ") + nested))
    # A table of contents is one field whose result runs over several paragraphs.
    begin = '<w:r><w:fldChar w:fldCharType="begin"/></w:r><w:r><w:instrText> TOC \\o </w:instrText></w:r>'
    _append(document, _para(begin + '<w:r><w:fldChar w:fldCharType="separate"/></w:r>' + _run("Chapter one")))
    _append(document, _para(_run("Chapter two") + '<w:r><w:fldChar w:fldCharType="end"/></w:r>'))
    _append(document, _para(_run("After the contents")))
    assert _extract(document, tmp_path) == [
        "Page 7, dated 12 May 2024",
        "Answer: yes",
        "Chapter one",
        "Chapter two",
        "After the contents",
    ]


def _text_box(text: str) -> str:
    return f"<w:txbxContent>{_para(_run(text))}</w:txbxContent>"


def test_text_boxes_follow_their_anchor_once(tmp_path: Path) -> None:
    document = docx.Document()
    drawing = (
        '<w:drawing><wp:anchor><a:graphic><a:graphicData uri="http://schemas.microsoft.com/office/word/2010/'
        f'wordprocessingShape"><wps:wsp><wps:txbx>{_text_box("Boxed words")}</wps:txbx></wps:wsp>'
        "</a:graphicData></a:graphic></wp:anchor></w:drawing>"
    )
    fallback = f"<w:pict><v:shape><v:textbox>{_text_box('Boxed words')}</v:textbox></v:shape></w:pict>"
    alternate = (
        f'<w:r><mc:AlternateContent><mc:Choice Requires="wps">{drawing}</mc:Choice>'
        f"<mc:Fallback>{fallback}</mc:Fallback></mc:AlternateContent></w:r>"
    )
    _append(document, _para(_run("Anchor ") + alternate + _run("text")))
    vml_only = f"<w:r><w:pict><v:shape><v:textbox>{_text_box('Old box')}</v:textbox></v:shape></w:pict></w:r>"
    _append(document, _para(_run("Second anchor") + vml_only))
    document.add_paragraph("Last paragraph")
    assert _extract(document, tmp_path) == [
        "Anchor text",
        "Boxed words",
        "Second anchor",
        "Old box",
        "Last paragraph",
    ]


def _level(ilvl: int, number_format: str, text: str, start: int = 1) -> str:
    return (
        f'<w:lvl w:ilvl="{ilvl}"><w:start w:val="{start}"/><w:numFmt w:val="{number_format}"/>'
        f'<w:lvlText w:val="{text}"/></w:lvl>'
    )


def _numbered(num_id: int, ilvl: int, text: str) -> str:
    properties = f'<w:pPr><w:numPr><w:ilvl w:val="{ilvl}"/><w:numId w:val="{num_id}"/></w:numPr></w:pPr>'
    return _para(properties + _run(text))


def test_list_labels_are_counted_per_list_and_level(tmp_path: Path) -> None:
    document = docx.Document()
    numbering = document.part.numbering_part.element
    abstracts = {
        90: _level(0, "decimal", "%1.")
        + _level(1, "lowerLetter", "%2)")
        + _level(2, "lowerRoman", "%1.%2.%3"),
        91: _level(0, "bullet", "\uf0b7") + _level(1, "upperRoman", "%2."),
        92: _level(0, "upperLetter", "%1)", start=27),
    }
    first_num = numbering.find("{http://schemas.openxmlformats.org/wordprocessingml/2006/main}num")
    for abstract_id, levels in abstracts.items():
        first_num.addprevious(
            parse_xml(f'<w:abstractNum {NS} w:abstractNumId="{abstract_id}">{levels}</w:abstractNum>')
        )
    restarted = '<w:lvlOverride w:ilvl="0"><w:startOverride w:val="5"/></w:lvlOverride>'
    for num_id, abstract_id, override in ((90, 90, ""), (91, 90, restarted), (92, 91, ""), (93, 92, "")):
        numbering.append(
            parse_xml(
                f'<w:num {NS} w:numId="{num_id}"><w:abstractNumId w:val="{abstract_id}"/>{override}</w:num>'
            )
        )
    items = [(90, 0, "First"), (90, 1, "Sub one"), (90, 1, "Sub two"), (90, 2, "Deep"), (90, 0, "Second")]
    items += [(90, 1, "Sub again"), (91, 0, "Fifth"), (92, 0, "Dot"), (92, 1, "Roman"), (92, 1, "Roman")]
    items += [(93, 0, "Late")]
    for num_id, ilvl, text in items:
        _append(document, _numbered(num_id, ilvl, text))
    document.add_paragraph("Styled one", style="List Number")
    document.add_paragraph("Styled two", style="List Number")
    document.add_paragraph("Styled bullet", style="List Bullet")
    document.add_paragraph("Not a list item")
    assert _extract(document, tmp_path) == [
        "1. First",
        "a) Sub one",
        "b) Sub two",
        "1.b.i Deep",
        "2. Second",
        "a) Sub again",
        "5. Fifth",
        "• Dot",
        "I. Roman",
        "II. Roman",
        "AA) Late",
        "1. Styled one",
        "2. Styled two",
        "• Styled bullet",
        "Not a list item",
    ]


def test_merged_cells_appear_once(tmp_path: Path) -> None:
    document = docx.Document()
    table = document.add_table(rows=3, cols=3)
    table.cell(0, 0).merge(table.cell(0, 1)).text = "Wide"
    table.cell(0, 2).merge(table.cell(2, 2)).text = "Tall"
    for row, texts in ((1, ("a", "b")), (2, ("c", "d"))):
        for column, text in enumerate(texts):
            table.cell(row, column).text = text
    assert _extract(document, tmp_path) == ["Wide\tTall", "a\tb", "c\td"]


def test_damaged_packages_are_corrupt(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.docx"
    with zipfile.ZipFile(garbage, "w") as package:
        package.writestr("[Content_Types].xml", "<Types/>")
        package.writestr("word/document.xml", "this is not <xml")
    with pytest.raises(CorruptDocument, match=r"^corrupt: garbage\.docx: "):
        extract_docx(str(garbage), "garbage.docx")
    not_zip = tmp_path / "noise.docx"
    not_zip.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 4)
    with pytest.raises(CorruptDocument, match=r"^corrupt: noise\.docx: "):
        extract_docx(str(not_zip), "noise.docx")


def test_broken_footnotes_part_is_corrupt_once(tmp_path: Path) -> None:
    document = docx.Document()
    document.add_paragraph("Body")
    _add_part(document, "/word/footnotes.xml", CT.WML_FOOTNOTES, RT.FOOTNOTES, "<w:footnotes <broken")
    path = tmp_path / "notes.docx"
    document.save(str(path))
    with pytest.raises(CorruptDocument) as caught:
        extract_docx(str(path), "notes.docx")
    assert str(caught.value).count("corrupt:") == 1


def test_password_protected_docx_is_encrypted(tmp_path: Path) -> None:
    path = tmp_path / "salaries.docx"
    path.write_bytes(
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504) + "EncryptedPackage".encode("utf-16-le")
    )
    with pytest.raises(EncryptedDocument, match=r"^encrypted: salaries\.docx needs a password$"):
        extract_docx(str(path), "salaries.docx")


def test_document_part_that_is_a_zip_bomb_is_refused(tmp_path: Path) -> None:
    source, bomb = tmp_path / "plain.docx", tmp_path / "bomb.docx"
    docx.Document().save(str(source))
    zeros = bytes(1024 * 1024)
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as package:
        for info in original.infolist():
            if info.filename != "word/document.xml":
                package.writestr(info, original.read(info))
        with package.open("word/document.xml", "w", force_zip64=True) as member:
            for _ in range(300):  # 300 MB of zeros that deflate to about 300 KB
                member.write(zeros)
    started = time.monotonic()
    with pytest.raises(SuspiciousArchive, match=r"suspicious archive: bomb\.docx: word/document\.xml"):
        extract_docx(str(bomb), "bomb.docx")
    assert time.monotonic() - started < 1


def _f1(expected: str, actual: str) -> float:
    """Word-level F1 of ``actual`` against ``expected``, counting repeated words."""
    wanted, got = Counter(_words(expected)), Counter(_words(actual))
    common = sum((wanted & got).values())
    if not common:
        return 0.0
    precision, recall = common / sum(got.values()), common / sum(wanted.values())
    return 2 * precision * recall / (precision + recall)


@pytest.mark.skipif(
    not (CORPUS / "textract").is_dir(), reason=f"no document corpus at {CORPUS} (not part of docq)"
)
@pytest.mark.parametrize("name", ["paragraphs_and_tables", "raw_text", "standardized_text"])
def test_textract_corpus_text_matches(name: str) -> None:
    path = CORPUS / "textract" / f"tests_docx_{name}.docx"
    beside = path.with_suffix(".txt")
    expected = beside.read_text(encoding="utf-8") if beside.is_file() else STANDARDIZED_TEXT
    score = _f1(expected, extract_docx(str(path), path.name).text)
    print(f"{path.name}: word F1 {score:.3f}")
    assert score >= 0.95
