"""How right the extracted text is: word-level F1 per format, on documents with known
text that the tests write, and (opt-in, where ``../shared/corpus`` exists) on real files
that ship their expected text beside them. Run with ``-s`` to see the tables."""

from __future__ import annotations

import os
import re
from collections import defaultdict
from pathlib import Path

import pytest
from quality_documents import AUTHOR, TITLE, WRITERS, known_text, word_f1

from docq.processing import extract

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
TEXTRACT = CORPUS / "textract"
GOAL = 0.95
# Formats whose expected texts in the corpus follow another tool's conventions, where docq
# differs on purpose: spreadsheets' FALSE left out and error cells written as codes ("15",
# "Err:508"; docq writes them empty); HTML's <title> and hidden notices kept (docq reads
# the page's body, and takes the title as metadata).
TOOL_CONVENTIONS = {"xls": 0.90, "ods": 0.85, "html": 0.94}

# Formats whose files carry a title (and an author) of their own.
TITLED = {"html", "pdf", "docx", "pptx", "odt", "rtf", "eml", "epub"}
AUTHORED = {"docx", "odt", "rtf", "eml", "epub"}


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_known_text_comes_out_right(kind: str, tmp_path: Path) -> None:
    path = WRITERS[kind](tmp_path)
    extraction = extract(str(path))
    score = word_f1(known_text(), extraction.text)
    print(f"\n{kind:9} {extraction.metadata['mime_type']:75} F1 {score:.3f}")
    assert score >= GOAL, extraction.text
    if kind in TITLED:
        assert extraction.metadata["title"] == TITLE
    if kind in AUTHORED:
        assert AUTHOR in str(extraction.metadata["author"])
    assert "\r" not in extraction.text


def _expected_text(document: Path) -> Path | None:
    """The expected text beside a textract test document: same stem, ``.txt``."""
    candidate = document.with_suffix(".txt")
    return candidate if candidate.exists() and candidate != document else None


@pytest.mark.skipif(not TEXTRACT.is_dir(), reason="../shared/corpus is absent: the corpus run is opt-in")
def test_corpus_files_with_expected_text() -> None:
    """Every supported file of textract's tests that ships its expected text: F1 per file
    and per format. Formats docq does not read (images, sound) are left out, as are
    expected texts of another tool's OCR."""
    scores: dict[str, list[tuple[str, float]]] = defaultdict(list)
    failures = []
    for document in sorted(TEXTRACT.iterdir()):
        if document.suffix in (".txt",) or "-m=" in document.name or "ocr" in document.name:
            continue
        expected = _expected_text(document)
        if expected is None:
            continue
        try:
            extraction = extract(str(document))
        except Exception as error:  # reported in the table, then asserted below
            failures.append(f"{document.name}: {error}")
            continue
        score = word_f1(expected.read_text(encoding="utf-8", errors="replace"), extraction.text)
        scores[document.suffix.lstrip(".")].append((document.name, score))
    print("\nformat  files  mean F1  worst")
    for kind, results in sorted(scores.items()):
        mean = sum(score for _name, score in results) / len(results)
        worst = min(results, key=lambda result: result[1])
        print(f"{kind:7} {len(results):5}  {mean:7.3f}  {worst[1]:.3f} {worst[0]}")
    if failures:
        print("failed:", *failures, sep="\n  ")
    assert not failures
    low = {
        kind: results
        for kind, results in scores.items()
        if min(score for _n, score in results) < TOOL_CONVENTIONS.get(kind, GOAL)
    }
    assert not low, low


@pytest.mark.slow
@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus is absent: the corpus run is opt-in")
def test_no_corpus_pdf_gives_much_less_text_than_pdfminer() -> None:
    """On every corpus PDF that both read, docq finds at least 90% of the visible characters
    pdfminer.six finds (its "(cid:N)" placeholders for unmapped glyphs are no text), unless
    pdfminer counts more only because it writes overprinted text (faux bold, shadows) once
    per stroke: then docq has every character pdfminer has, just not as often."""
    from concurrent.futures import ProcessPoolExecutor

    paths = sorted(CORPUS.rglob("*.pdf"))
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:  # pdfminer takes minutes
        counts = list(pool.map(_characters_of_both, paths))
    short = set()
    for path, both in zip(paths, counts, strict=True):
        if both is None:  # unreadable, encrypted: judged in test_corpus
            continue
        ours, theirs = both
        overprinted = not (set(theirs) - set(ours))
        if len(theirs) >= 200 and len(ours) < 0.9 * len(theirs) and not overprinted:
            short.add(os.path.relpath(path, CORPUS))
    assert sorted(short) == []


def _characters_of_both(path: Path) -> tuple[str, str] | None:
    """The visible characters docq and pdfminer.six find in ``path`` (None if either fails)."""
    from pdfminer.high_level import extract_text

    try:
        ours = "".join(extract(str(path)).text.split())
        theirs = "".join(re.sub(r"\(cid:\d+\)", "", extract_text(str(path))).split())
    except Exception:
        return None
    return ours, theirs
