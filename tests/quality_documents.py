"""Documents with known text, one per supported format, for the extraction quality report.

Each writer puts the same paragraphs into a file of its format, with the libraries that
write it where docq has them (python-docx, python-pptx) and by hand elsewhere (the XML
of XLSX, ODT, EPUB; the syntax of RTF and PDF). `word_f1` scores an extraction against
the known text, word by word.
"""

from __future__ import annotations

import re
import zipfile
from collections import Counter
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from xml.sax.saxutils import escape

PARAGRAPHS = [
    "The harbour committee met on Tuesday to discuss the summer festival budget.",
    "Members agreed that the village library would host the archive of old photographs.",
    "A café owner offered crème brûlée for the volunteers, and the mayor thanked everyone.",
    "Next steps: print the invoices, scan the reports, and publish the summary by Friday.",
    "Weather permitting, the river walk will start at nine and end near the old mill.",
]
TITLE = "Harbour Committee Minutes"
AUTHOR = "Ada Lovelace"

_WORD = re.compile(r"\w+", re.UNICODE)


def words(text: str) -> list[str]:
    """The words of ``text``, lower-cased, in order."""
    return [word.lower() for word in _WORD.findall(text)]


_MAIL_FIELD = re.compile(r"^(?:From|To|Cc|Date):", re.MULTILINE)


def content_of(text: str) -> str:
    """``text`` without docq's framing, which no other tool's expected text has: the lines
    naming a part (``## Slide 2``, ``## Sheet1``), a mail's From/To/Cc/Date lines and the
    ``Subject:`` label, and attachments (documents of their own)."""
    text = text.split("\n--- attachment: ", 1)[0]
    lines = [
        line.removeprefix("Subject: ")
        for line in text.split("\n")
        if not line.startswith("## ") and not _MAIL_FIELD.match(line)
    ]
    return "\n".join(lines)


def word_f1(expected: str, found: str) -> float:
    """Word-level F1 of ``found`` (docq's framing left out: see `content_of`) against
    ``expected``: both as bags of words."""
    want, got = Counter(words(expected)), Counter(words(content_of(found)))
    if not want and not got:
        return 1.0
    common = sum((want & got).values())
    if common == 0:
        return 0.0
    precision, recall = common / sum(got.values()), common / sum(want.values())
    return 2 * precision * recall / (precision + recall)


def known_text() -> str:
    return "\n".join(PARAGRAPHS)


# --- writers: each takes a folder and returns the file it wrote ------------------------


def write_txt(folder: Path) -> Path:
    path = folder / "minutes.txt"
    path.write_bytes(known_text().encode("cp1252"))
    return path


def write_markdown(folder: Path) -> Path:
    path = folder / "minutes.md"
    path.write_text("\n\n".join(PARAGRAPHS), encoding="utf-8")
    return path


def write_html(folder: Path) -> Path:
    path = folder / "minutes.html"
    body = "".join(f"<p>{escape(p)}</p>" for p in PARAGRAPHS)
    path.write_text(f"<html><head><title>{TITLE}</title></head><body>{body}</body></html>", encoding="utf-8")
    return path


def write_pdf(folder: Path) -> Path:
    from docq.bench.documents import pdf_bytes

    path = folder / "minutes.pdf"
    path.write_bytes(pdf_bytes([PARAGRAPHS[:3], PARAGRAPHS[3:]], title=TITLE))
    return path


def write_docx(folder: Path) -> Path:
    import docx

    document = docx.Document()
    document.core_properties.title = TITLE
    document.core_properties.author = AUTHOR
    for paragraph in PARAGRAPHS:
        document.add_paragraph(paragraph)
    path = folder / "minutes.docx"
    document.save(str(path))
    return path


def write_pptx(folder: Path) -> Path:
    from pptx import Presentation

    deck = Presentation()
    deck.core_properties.title = TITLE
    for paragraph in PARAGRAPHS:
        slide = deck.slides.add_slide(deck.slide_layouts[5])  # title only
        slide.shapes.title.text = paragraph
    path = folder / "minutes.pptx"
    deck.save(str(path))
    return path


def write_xlsx(folder: Path) -> Path:
    rows = "".join(
        f'<row r="{n}"><c r="A{n}" t="inlineStr"><is><t>{escape(p)}</t></is></c></row>'
        for n, p in enumerate(PARAGRAPHS, start=1)
    )
    parts = {
        "[Content_Types].xml": (
            '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
            'content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
            'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override '
            'PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.'
            'spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType='
            '"application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>'
        ),
        "_rels/.rels": (
            '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/'
            'package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/'
            'officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>'
        ),
        "xl/workbook.xml": (
            '<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/'
            'spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/'
            'relationships"><sheets><sheet name="Minutes" sheetId="1" r:id="rId1"/></sheets></workbook>'
        ),
        "xl/_rels/workbook.xml.rels": (
            '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/'
            'package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/'
            'officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>'
        ),
        "xl/worksheets/sheet1.xml": (
            '<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/'
            f'spreadsheetml/2006/main"><sheetData>{rows}</sheetData></worksheet>'
        ),
    }
    path = folder / "minutes.xlsx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as package:
        for name, xml in parts.items():
            package.writestr(name, xml)
    return path


_ODF_TEXT = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
_ODF_OFFICE = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"


def write_odt(folder: Path) -> Path:
    body = "".join(f"<text:p>{escape(p)}</text:p>" for p in PARAGRAPHS)
    content = (
        f'<?xml version="1.0" encoding="UTF-8"?><office:document-content xmlns:office="{_ODF_OFFICE}" '
        f'xmlns:text="{_ODF_TEXT}" office:version="1.2"><office:body><office:text>{body}'
        "</office:text></office:body></office:document-content>"
    )
    meta = (
        f'<?xml version="1.0" encoding="UTF-8"?><office:document-meta xmlns:office="{_ODF_OFFICE}" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" office:version="1.2"><office:meta>'
        f"<dc:title>{TITLE}</dc:title><dc:creator>{AUTHOR}</dc:creator></office:meta></office:document-meta>"
    )
    path = folder / "minutes.odt"
    with zipfile.ZipFile(path, "w") as package:
        package.writestr("mimetype", "application/vnd.oasis.opendocument.text", zipfile.ZIP_STORED)
        package.writestr("content.xml", content, zipfile.ZIP_DEFLATED)
        package.writestr("meta.xml", meta, zipfile.ZIP_DEFLATED)
    return path


def write_rtf(folder: Path) -> Path:
    def rtf_escape(text: str) -> str:
        return "".join(ch if ord(ch) < 128 else f"\\'{ord(ch.encode('cp1252')):02x}" for ch in text)

    body = "".join(f"{rtf_escape(p)}\\par\n" for p in PARAGRAPHS)
    source = (
        "{\\rtf1\\ansi\\ansicpg1252\\deff0{\\fonttbl{\\f0 Times;}}"
        f"{{\\info{{\\title {TITLE}}}{{\\author {AUTHOR}}}}}\n{body}}}"
    )
    path = folder / "minutes.rtf"
    path.write_bytes(source.encode("ascii"))
    return path


def write_eml(folder: Path) -> Path:
    message = EmailMessage()
    message["From"] = f"{AUTHOR} <ada@example.org>"
    message["To"] = "committee@example.org"
    message["Subject"] = TITLE
    message["Date"] = "Tue, 02 Jun 2026 10:00:00 +0000"
    message.set_content("\n\n".join(PARAGRAPHS), charset="utf-8", cte="quoted-printable")
    path = folder / "minutes.eml"
    path.write_bytes(bytes(message))
    return path


def write_epub(folder: Path) -> Path:
    chapters = [PARAGRAPHS[:2], PARAGRAPHS[2:]]
    manifest = "".join(
        f'<item id="c{n}" href="c{n}.xhtml" media-type="application/xhtml+xml"/>'
        for n in range(len(chapters))
    )
    spine = "".join(f'<itemref idref="c{n}"/>' for n in range(len(chapters)))
    opf = (
        '<?xml version="1.0" encoding="UTF-8"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0" '
        'unique-identifier="id"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/">'
        f'<dc:identifier id="id">minutes</dc:identifier><dc:title>{TITLE}</dc:title>'
        f"<dc:creator>{AUTHOR}</dc:creator></metadata><manifest>{manifest}</manifest>"
        f"<spine>{spine}</spine></package>"
    )
    container = (
        '<?xml version="1.0" encoding="UTF-8"?><container version="1.0" '
        'xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
        '<rootfile full-path="OEBPS/book.opf" media-type="application/oebps-package+xml"/>'
        "</rootfiles></container>"
    )
    path = folder / "minutes.epub"
    with zipfile.ZipFile(path, "w") as package:
        package.writestr("mimetype", "application/epub+zip", zipfile.ZIP_STORED)
        package.writestr("META-INF/container.xml", container, zipfile.ZIP_DEFLATED)
        package.writestr("OEBPS/book.opf", opf, zipfile.ZIP_DEFLATED)
        for n, chapter in enumerate(chapters):
            body = "".join(f"<p>{escape(p)}</p>" for p in chapter)
            xhtml = (
                '<?xml version="1.0" encoding="UTF-8"?><html xmlns="http://www.w3.org/1999/xhtml"><head>'
                f"<title>Chapter {n + 1}</title></head><body>{body}</body></html>"
            )
            package.writestr(f"OEBPS/c{n}.xhtml", xhtml, zipfile.ZIP_DEFLATED)
    return path


WRITERS: dict[str, Callable[[Path], Path]] = {
    "text": write_txt,
    "markdown": write_markdown,
    "html": write_html,
    "pdf": write_pdf,
    "docx": write_docx,
    "pptx": write_pptx,
    "xlsx": write_xlsx,
    "odt": write_odt,
    "rtf": write_rtf,
    "eml": write_eml,
    "epub": write_epub,
}
"""Every format with a writer here; titles are expected where the format carries one."""
