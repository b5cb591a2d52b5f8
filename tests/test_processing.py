"""docq.processing on real files: the sample documents, and bad input made under tmp_path."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest

from docq.errors import CorruptDocument, EncryptedDocument, TooLarge, TransientError, UnsupportedType
from docq.processing import (
    SUPPORTED_TYPES,
    FileMissing,
    NotARegularFile,
    extract,
    extractor_version,
    inspect_file,
)
from docq.processing.content import parse_pdf_date
from docq.processing.extraction import EXTRACTOR_REVISION

SAMPLES = Path(__file__).parents[1] / "sample_docs"
PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
METADATA_KEYS = {
    "size", "sha256", "mime_type", "pages", "title", "author", "created", "characters", "words",
    "extractor", "extractor_version", "encrypted", "needs_ocr", "encoding",
}  # fmt: skip


# --- The sample documents ----------------------------------------------------------


def test_report_pdf() -> None:
    result = extract(str(SAMPLES / "report.pdf"))
    meta = result.metadata
    assert meta["mime_type"] == PDF
    assert meta["pages"] == 3
    assert result.text.count("\f") == 2  # pages are separated by form feeds
    assert meta["title"] == "Riverside Community Library: Annual Report 2023"
    assert meta["author"] == "Margaret Ellison"
    assert meta["created"] == "2024-01-15T08:30:00+00:00"  # written as 09:30 at UTC+1
    assert meta["extractor"] == "pypdfium2"
    assert meta["encrypted"] is False
    assert meta["needs_ocr"] is False
    for phrase in ("kept its doors open on 302 days", "Thirty-one volunteers", "leaking roof", "Page 3 of 3"):
        assert phrase in result.text


def test_letter_docx_keeps_document_order_and_table_cells() -> None:
    result = extract(str(SAMPLES / "letter.docx"))
    meta = result.metadata
    assert meta["mime_type"] == DOCX
    assert meta["pages"] is None
    assert meta["title"] == "Invitation to the Harbour Street Clean-up Day"
    assert meta["author"] == "Tomas Lindqvist"
    assert meta["created"] == "2024-03-04T14:00:00+00:00"
    assert meta["extractor"] == "python-docx"
    assert "09:00\tSweeping the pavements\tCorner bakery" in result.text.splitlines()
    order = ["Dear neighbours", "The plan for the day", "Weeding the flower beds", "Children are welcome"]
    positions = [result.text.index(phrase) for phrase in order]
    assert positions == sorted(positions)


def test_page_html_leaves_out_script_and_style() -> None:
    result = extract(str(SAMPLES / "page.html"))
    meta = result.metadata
    assert meta["mime_type"] == "text/html"
    assert meta["title"] == "Composting at Home: A Beginner's Guide"
    assert meta["author"] == "Priya Raman"
    assert meta["encoding"] == "utf-8"
    lines = result.text.splitlines()
    assert "Coffee grounds and tea leaves" in lines  # each list item on its own line
    assert "Summer\t8 weeks" in lines
    assert "Turn the heap every two weeks" in result.text
    for hidden in ("visitCounter", "trackVisit", "font-family", "darkgreen", "Enable JavaScript"):
        assert hidden not in result.text


def test_notes_md_is_markdown_titled_by_its_first_heading() -> None:
    result = extract(str(SAMPLES / "notes.md"))
    meta = result.metadata
    assert meta["mime_type"] == "text/markdown"
    assert meta["title"] == "Notes from the Zürich study trip"
    assert meta["encoding"] == "utf-8"
    assert meta["pages"] is None
    for word in ("café", "naïve", "Zürich", "Renée"):
        assert word in result.text


def test_latin1_text_is_decoded_right() -> None:
    path = SAMPLES / "legacy-latin1.txt"
    with pytest.raises(UnicodeDecodeError):
        path.read_bytes().decode("utf-8")
    result = extract(str(path))
    assert result.metadata["mime_type"] == "text/plain"
    assert result.metadata["encoding"] == "cp1252"
    assert result.metadata["title"] == "Compte rendu de la réunion du comité des fêtes"
    for word in ("fêtes", "élèves", "crêpes", "zwölf", "Müller", "große", "März"):
        assert word in result.text
    assert "\ufffd" not in result.text


def test_broken_pdf_is_corrupt() -> None:
    with pytest.raises(CorruptDocument, match=r"^corrupt: broken\.pdf: "):
        extract(str(SAMPLES / "broken.pdf"))


@pytest.mark.parametrize("name", ["report.pdf", "letter.docx", "page.html", "notes.md", "legacy-latin1.txt"])
def test_metadata_has_every_key_with_the_right_type(name: str) -> None:
    path = SAMPLES / name
    result = extract(str(path))
    meta = result.metadata
    assert set(meta) == METADATA_KEYS
    json.dumps(meta)
    assert meta["size"] == path.stat().st_size
    assert meta["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert meta["characters"] == len(result.text)
    assert meta["words"] == len(result.text.split()) > 50
    assert isinstance(meta["title"], str) and meta["title"]
    assert meta["extractor_version"] == extractor_version(str(meta["mime_type"]))
    assert meta["encrypted"] is False and meta["needs_ocr"] is False


# --- Bad input ---------------------------------------------------------------------


def test_empty_file_is_detected_and_fails_as_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "x.pdf"
    path.write_bytes(b"")
    assert inspect_file(str(path)).mime_type == "application/x-empty"
    with pytest.raises(CorruptDocument, match=r"^empty file: x\.pdf$"):
        extract(str(path))


def test_truncated_pdf_is_corrupt(tmp_path: Path) -> None:
    data = (SAMPLES / "report.pdf").read_bytes()
    path = tmp_path / "cut.pdf"
    path.write_bytes(data[: len(data) * 2 // 3])
    assert inspect_file(str(path)).mime_type == PDF
    with pytest.raises(CorruptDocument, match=r"cut\.pdf"):
        extract(str(path))


def test_text_named_pdf_is_processed_as_text(tmp_path: Path) -> None:
    path = tmp_path / "minutes.pdf"
    path.write_text("Minutes of the meeting\nThe budget was approved.\n")
    result = extract(str(path))
    assert result.metadata["mime_type"] == "text/plain"
    assert result.metadata["title"] == "Minutes of the meeting"
    assert "budget was approved" in result.text


def test_zip_that_is_not_docx_is_unsupported(tmp_path: Path) -> None:
    path = tmp_path / "archive.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.txt", "hello")
    assert inspect_file(str(path)).mime_type == "application/zip"
    with pytest.raises(UnsupportedType, match=r"^unsupported type application/zip: archive\.zip$"):
        extract(str(path))


def test_png_is_unsupported(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(17))
    with pytest.raises(UnsupportedType, match=r"^unsupported type image/png: photo\.png$"):
        extract(str(path))


def test_docx_holding_garbage_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "garbage.docx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "this is not <xml")
    assert inspect_file(str(path)).mime_type == DOCX
    with pytest.raises(CorruptDocument, match=r"^corrupt: garbage\.docx: "):
        extract(str(path))


def test_truncated_docx_is_corrupt_not_unsupported(tmp_path: Path) -> None:
    data = (SAMPLES / "letter.docx").read_bytes()
    path = tmp_path / "cut.docx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptDocument, match=r"cut\.docx"):
        extract(str(path))


def test_password_protected_docx_is_encrypted(tmp_path: Path) -> None:
    # Word wraps a protected DOCX in an OLE2 file holding a stream named "EncryptedPackage".
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504)
    protected = tmp_path / "salaries.docx"
    protected.write_bytes(ole + "EncryptedPackage".encode("utf-16-le") + bytes(64))
    with pytest.raises(EncryptedDocument, match=r"^encrypted: salaries\.docx needs a password$"):
        extract(str(protected))
    # A Word 97 file named .docx is read as what it is (by antiword, where installed).
    renamed = tmp_path / "old.docx"
    renamed.write_bytes(ole + "WordDocument".encode("utf-16-le") + bytes(64))
    with pytest.raises((CorruptDocument, UnsupportedType), match=r"old\.docx: (antiword|legacy \.doc)"):
        extract(str(renamed))


def test_file_over_the_size_cap_is_too_large(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    path.write_text("x" * 100)
    with pytest.raises(TooLarge, match=r"^too large: big\.txt is 100 bytes"):
        extract(str(path), max_size=99)
    assert extract(str(path), max_size=100).metadata["size"] == 100


def test_missing_file_is_transient(tmp_path: Path) -> None:
    path = tmp_path / "gone.pdf"
    with pytest.raises(FileMissing, match=rf"^file missing: {path}$") as caught:
        extract(str(path))
    assert isinstance(caught.value, TransientError)
    assert isinstance(caught.value, FileNotFoundError)
    with pytest.raises(FileNotFoundError):
        inspect_file(str(path))


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    path = tmp_path / "pipe"
    os.mkfifo(path)
    outcome: list[BaseException] = []

    def inspect() -> None:
        try:
            inspect_file(str(path))
        except OSError as error:
            outcome.append(error)

    # Opening a FIFO for reading blocks until a writer comes: run it where a hang shows.
    thread = threading.Thread(target=inspect, daemon=True)
    thread.start()
    thread.join(timeout=5)
    assert not thread.is_alive(), "inspect_file blocked on a FIFO"
    assert isinstance(outcome[0], NotARegularFile)
    assert "inode/fifo" in str(outcome[0])
    with pytest.raises(UnsupportedType, match=r"^unsupported type inode/fifo: pipe$"):
        extract(str(path))


def test_errors_survive_pickling(tmp_path: Path) -> None:
    # Extraction runs in child processes, whose errors may travel back pickled.
    missing = FileMissing(f"file missing: {tmp_path}/gone.pdf")
    fifo = NotARegularFile(f"{tmp_path}/pipe", "inode/fifo")
    for error in (missing, fifo):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert str(copy) == str(error)


def test_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError):
        inspect_file(str(tmp_path))
    with pytest.raises(UnsupportedType, match=r"inode/directory"):
        extract(str(tmp_path))


# --- Encodings and PDFs made here ---------------------------------------------------


def test_utf16_text_with_bom(tmp_path: Path) -> None:
    path = tmp_path / "greeting.txt"
    path.write_bytes("Grüße aus Köln\r\nDer Dom ist schön.\r\n".encode("utf-16"))
    result = extract(str(path))
    assert result.metadata["mime_type"] == "text/plain"
    assert result.metadata["encoding"] == "utf-16"
    assert result.text == "Grüße aus Köln\nDer Dom ist schön.\n"


def test_html_declaring_latin1_is_decoded_as_declared(tmp_path: Path) -> None:
    path = tmp_path / "old.html"
    page = '<html><head><meta charset="iso-8859-1"><title>Café</title></head><body><p>Crème brûlée</p>'
    path.write_bytes(page.encode("latin-1"))
    result = extract(str(path))
    assert result.metadata["title"] == "Café"
    assert result.text == "Crème brûlée"


def test_title_falls_back_to_file_stem(tmp_path: Path) -> None:
    path = tmp_path / "separator.txt"
    path.write_text("-----\n* * *\n")
    assert extract(str(path)).metadata["title"] == "separator"


def test_image_only_pdf_is_processed_and_needs_ocr(tmp_path: Path) -> None:
    # One page showing a 2x2 grey image inline: pixels, no text.
    path = tmp_path / "scan.pdf"
    path.write_bytes(_pdf(b"q 100 0 0 100 72 600 cm BI /W 2 /H 2 /BPC 8 /CS /G ID \x00\xff\xff\x00 EI Q"))
    result = extract(str(path))
    assert result.metadata["pages"] == 1
    assert result.metadata["needs_ocr"] is True
    assert result.metadata["title"] == "scan"
    assert result.text.strip() == ""


def test_pdf_encrypted_with_empty_password_is_read_and_flagged(tmp_path: Path) -> None:
    path = tmp_path / "locked.pdf"
    path.write_bytes(_pdf(b"BT /F1 24 Tf 72 700 Td (Quarterly figures) Tj ET", user_password=b""))
    result = extract(str(path))
    assert result.metadata["encrypted"] is True
    assert "Quarterly figures" in result.text


def test_pdf_needing_a_password_is_encrypted(tmp_path: Path) -> None:
    path = tmp_path / "locked.pdf"
    path.write_bytes(_pdf(b"BT /F1 24 Tf 72 700 Td (Quarterly figures) Tj ET", user_password=b"secret"))
    with pytest.raises(EncryptedDocument, match=r"^encrypted: locked\.pdf needs a password$"):
        extract(str(path))


# --- inspect_file, extractor_version, the package ------------------------------------


def test_inspect_file_facts(tmp_path: Path) -> None:
    target = tmp_path / "notes.md"
    target.write_text("# Groceries\n\n- bread\n- apples\n")
    link = tmp_path / "link.md"
    link.symlink_to(target)
    facts = inspect_file(str(link))
    assert facts.path == os.path.realpath(link) == str(target.resolve())
    assert facts.size == target.stat().st_size
    assert facts.sha256 == hashlib.sha256(target.read_bytes()).hexdigest()
    assert facts.mime_type == "text/markdown"


def test_inspect_file_hashes_a_large_file_in_chunks(tmp_path: Path) -> None:
    path = tmp_path / "large.txt"
    data = b"".join(b"line %d of a long log file\n" % n for n in range(200_000))  # about 5 MiB
    path.write_bytes(data)
    facts = inspect_file(str(path))
    assert facts.size == len(data)
    assert facts.sha256 == hashlib.sha256(data).hexdigest()
    assert facts.mime_type == "text/plain"


@pytest.mark.parametrize(
    ("name", "content", "mime_type"),
    [
        ("a.html", b"\xef\xbb\xbf  <!DOCTYPE html><p>hi</p>", "text/html"),
        ("a.txt", b"<!-- note -->\n<html><body>hi</body></html>", "text/html"),
        ("fragment.htm", b"<div>hi</div>", "text/html"),
        ("a.txt", b"<div>hi</div>", "text/plain"),
        ("a.markdown", b"# Title\n", "text/markdown"),
        ("a.bin", b"\x7fELF\x02\x01\x01" + bytes(40), "application/x-executable"),
        ("a.doc", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(40), "application/msword"),
        ("a.gz", b"\x1f\x8b\x08\x00" + bytes(20), "application/gzip"),
        ("a.pdf", b"junk before the header\n%PDF-1.7\n", "application/pdf"),
        ("a.dat", bytes(range(256)) * 4, "application/octet-stream"),
    ],
)
def test_detection_from_content(tmp_path: Path, name: str, content: bytes, mime_type: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    assert inspect_file(str(path)).mime_type == mime_type


def test_extractor_version_names_library_versions() -> None:
    from importlib.metadata import version

    pdf_version = extractor_version(PDF)
    assert pdf_version == extractor_version(PDF)
    assert pdf_version is not None
    assert f"pypdfium2 {version('pypdfium2')}" in pdf_version
    assert pdf_version.endswith(f"docq-extract {EXTRACTOR_REVISION}")
    assert f"python-docx {version('python-docx')}" in (extractor_version(DOCX) or "")
    assert extractor_version("image/png") is None
    assert all(extractor_version(mime_type) for mime_type in SUPPORTED_TYPES)


def test_importing_the_package_loads_no_extraction_library() -> None:
    code = (
        "import sys, docq.processing\n"
        "heavy = ('pypdfium2', 'pdfminer', 'docx', 'selectolax', 'charset_normalizer')\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] in heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("raw", "iso"),
    [
        ("D:20200101120000+01'00'", "2020-01-01T11:00:00+00:00"),
        ("D:20200101120000Z", "2020-01-01T12:00:00+00:00"),
        ("D:19991231235959-05'30", "2000-01-01T05:29:59+00:00"),
        ("D:2021", "2021-01-01T00:00:00+00:00"),
        ("20200229", "2020-02-29T00:00:00+00:00"),
        ("D:20201301", None),
        ("yesterday", None),
        ("", None),
    ],
)
def test_parse_pdf_date(raw: str, iso: str | None) -> None:
    assert parse_pdf_date(raw) == iso


# --- A minimal PDF writer, for PDFs no sample has -----------------------------------

_PASSWORD_PAD = bytes.fromhex("28bf4e5e4e758a4164004e56fffa01082e2e00b6d0683e802f0ca9fe6453697a")


def _pdf(content: bytes, user_password: bytes | None = None) -> bytes:
    """A one-page PDF drawing ``content``; RC4-encrypted (revision 2) if a password is given."""
    file_id = hashlib.md5(content).digest()
    encrypt = b""
    if user_password is not None:
        owner = hashlib.md5(b"owner").digest() * 2
        permissions = -44
        padded = (user_password + _PASSWORD_PAD)[:32]
        key = hashlib.md5(padded + owner + struct.pack("<i", permissions) + file_id).digest()[:5]
        object_key = hashlib.md5(key + (4).to_bytes(3, "little") + b"\x00\x00").digest()[:10]
        content = _rc4(object_key, content)
        encrypt = b"/Encrypt 6 0 R "
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    if user_password is not None:
        objects.append(
            b"<< /Filter /Standard /V 1 /R 2 /O <%s> /U <%s> /P %d >>"
            % (owner.hex().encode(), _rc4(key, _PASSWORD_PAD).hex().encode(), permissions)
        )
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    out.write(b"".join(b"%010d 00000 n \n" % offset for offset in offsets))
    out.write(b"trailer\n<< /Size %d /Root 1 0 R %s" % (len(objects) + 1, encrypt))
    out.write(b"/ID [<%s> <%s>] >>\n" % (file_id.hex().encode(), file_id.hex().encode()))
    out.write(b"startxref\n%d\n%%%%EOF\n" % xref)
    return out.getvalue()


def _rc4(key: bytes, data: bytes) -> bytes:
    state = list(range(256))
    j = 0
    for i in range(256):
        j = (j + state[i] + key[i % len(key)]) % 256
        state[i], state[j] = state[j], state[i]
    out = bytearray()
    i = j = 0
    for byte in data:
        i = (i + 1) % 256
        j = (j + state[i]) % 256
        state[i], state[j] = state[j], state[i]
        out.append(byte ^ state[(state[i] + state[j]) % 256])
    return bytes(out)


def test_a_text_that_mentions_the_pdf_header_is_text(tmp_path: Path) -> None:
    """Only ``%PDF-`` at the start of a line makes a PDF; a sentence about it does not."""
    notes = tmp_path / "pdf-notes.md"
    notes.write_text("# PDF notes\n\nEvery PDF starts with %PDF-1.7 and ends with %%EOF.\n", encoding="utf-8")
    assert inspect_file(str(notes)).mime_type == "text/markdown"
    assert "%PDF-1.7" in extract(str(notes)).text
