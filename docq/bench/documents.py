"""Documents for ``docq bench``: small text files and multi-page PDFs, made on the spot.

The PDFs are written directly (a few objects, the standard Helvetica font, one content
stream per page), so the benchmark needs no PDF library beyond the one it measures.
Content is deterministic for a given seed, so two runs read the same documents.
"""

from __future__ import annotations

import os
import random

WORDS = (  # noqa: SIM905 - a sentence is easier to read than a list of 60 strings
    "queue document worker lease heartbeat durable batch process extract metadata page text "
    "report invoice archive scan library river harbour village committee budget summary table "
    "the of and to in for with on at by from is was are be this that it as an or"
).split()


def sentence(rng: random.Random, words: int) -> str:
    """A line of ``words`` words."""
    return " ".join(rng.choice(WORDS) for _ in range(words))


def write_text_files(directory: str, count: int, *, seed: int = 7) -> list[str]:
    """``count`` small text files (a few hundred bytes each); returns their paths."""
    rng = random.Random(seed)
    os.makedirs(directory, exist_ok=True)
    paths = []
    for index in range(count):
        path = os.path.join(directory, f"note-{index:06d}.txt")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write("\n".join(sentence(rng, 12) for _ in range(rng.randint(3, 8))) + "\n")
        paths.append(path)
    return paths


def write_pdfs(directory: str, count: int, *, pages: int = 10, seed: int = 11) -> list[str]:
    """``count`` PDFs of ``pages`` pages of text each; returns their paths."""
    rng = random.Random(seed)
    os.makedirs(directory, exist_ok=True)
    paths = []
    for index in range(count):
        path = os.path.join(directory, f"report-{index:05d}.pdf")
        page_lines = [[sentence(rng, 11) for _ in range(40)] for _ in range(pages)]
        with open(path, "wb") as handle:
            handle.write(pdf_bytes(page_lines, title=f"Benchmark report {index}"))
        paths.append(path)
    return paths


def pdf_bytes(pages: list[list[str]], *, title: str) -> bytes:
    """A valid PDF with one page per entry of ``pages``, each a list of text lines."""
    objects: list[bytes] = []  # object number n is objects[n - 1]
    page_count = len(pages)
    first_page = 5  # 1 catalog, 2 pages, 3 font, 4 info, then (page, content) pairs
    kids = " ".join(f"{first_page + 2 * i} 0 R" for i in range(page_count))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {page_count} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    objects.append(b"<< /Title (" + _escape(title) + b") /Producer (docq bench) >>")
    for number, lines in enumerate(pages):
        content_ref = first_page + 2 * number + 1
        objects.append(
            (
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                f"/Resources << /Font << /F1 3 0 R >> >> /Contents {content_ref} 0 R >>"
            ).encode()
        )
        stream = (
            b"BT /F1 10 Tf 56 740 Td 16 TL\n"
            + b"".join(b"(" + _escape(line) + b") '\n" for line in lines)
            + b"ET"
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    return pdf_file(objects, info=4)


def pdf_file(objects: list[bytes], *, info: int | None = None, version: str = "1.4") -> bytes:
    """A PDF file of ``objects`` (object n is ``objects[n - 1]``; object 1 is the
    catalog; object ``info``, if given, the document information), with its cross-reference
    table and trailer."""
    out = bytearray(b"%%PDF-%s\n%%\xe2\xe3\xcf\xd3\n" % version.encode())
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    info_entry = b" /Info %d 0 R" % info if info else b""
    out += b"trailer\n<< /Size %d /Root 1 0 R%s >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        info_entry,
        xref,
    )
    return bytes(out)


def _escape(text: str) -> bytes:
    return (
        text.encode("latin-1", "replace").replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
    )
