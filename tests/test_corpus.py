"""docq.processing on a corpus of real-world documents made by other people and programs.

Opt-in: skipped where ``../shared/corpus`` (beside the repository) is absent. Every file
is extracted in a child process, so that a crash or a hang in a native library fails
this test instead of killing pytest. ``pytest -s`` shows a summary of the outcomes.
"""

from __future__ import annotations

import collections
import json
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time
import unicodedata
from pathlib import Path
from typing import IO, Any

import pytest

ROOT = Path(__file__).parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
PER_FILE_TIMEOUT = 60.0
PERMANENT_FAILURES = {"UnsupportedType", "CorruptDocument", "EncryptedDocument", "TooLarge"}
CLEAR_MESSAGE = re.compile(r"^(corrupt: |encrypted: |unsupported type |empty file: |too large: )")
# textract's tests expect every *_standardized_text document to read as this.
STANDARDIZED_TEXT = "the quick brown fox jumps over the lazy dog"
MIN_WORD_OVERLAP = 0.9

pytestmark = pytest.mark.skipif(
    not (CORPUS / "MANIFEST.md").is_file(), reason=f"no document corpus at {CORPUS} (it is not part of docq)"
)

# Reads one path a line on stdin; writes one JSON line per path. signal.alarm stops
# Python code that runs too long; the parent's timeout covers a hang inside C code.
_CHILD = r"""
import json, signal, sys, traceback
from docq.errors import ProcessingError
from docq.processing import extract

def expire(signum, frame):
    raise TimeoutError("watchdog: extraction took too long")

signal.signal(signal.SIGALRM, expire)
for line in sys.stdin:
    path = line.rstrip("\n")
    signal.alarm(int(sys.argv[1]))
    try:
        result = extract(path)
        report = {"outcome": "processed", "metadata": result.metadata, "text": result.text}
    except ProcessingError as error:
        report = {"outcome": "failed", "error": type(error).__name__, "message": str(error)}
    except BaseException as error:
        report = {"outcome": "error", "error": type(error).__name__, "message": traceback.format_exc()}
    finally:
        signal.alarm(0)
    print(json.dumps(report), flush=True)
"""


@pytest.fixture(scope="module")
def results() -> dict[Path, dict[str, Any]]:
    paths = sorted(path for path in CORPUS.rglob("*") if path.is_file() and path.name != "MANIFEST.md")
    started = time.monotonic()
    reports = _extract_all(paths)
    _print_summary(reports, time.monotonic() - started)
    return reports


def test_every_file_ends_processed_or_failed_with_a_clear_reason(results: dict[Path, dict[str, Any]]) -> None:
    unclear = {}
    for path, report in results.items():
        if report["outcome"] == "processed":
            continue
        message = report["message"]
        clear = report["outcome"] == "failed" and report["error"] in PERMANENT_FAILURES
        if not (clear and CLEAR_MESSAGE.match(message) and path.name in message):
            unclear[str(path.relative_to(CORPUS))] = f"{report['error']}: {message}"
    assert not unclear, json.dumps(unclear, indent=2)


def test_encrypted_pdfs_are_refused_or_read_and_flagged(results: dict[Path, dict[str, Any]]) -> None:
    encrypted = [path for path in results if path.suffix == ".pdf" and b"/Encrypt" in path.read_bytes()]
    assert encrypted, "the corpus should hold encrypted PDFs"
    for path in encrypted:
        report = results[path]
        if report["outcome"] == "processed":
            assert report["metadata"]["encrypted"] is True, path.name
        else:
            assert report["error"] == "EncryptedDocument", f"{path.name}: {report['message']}"


def test_pdfs_without_text_are_flagged_for_ocr(results: dict[Path, dict[str, Any]]) -> None:
    """A PDF is flagged where a page shows an image and gives no text: one without any text
    that is flagged names those pages; blank and vector-only PDFs are not flagged."""
    for path, report in results.items():
        if report["outcome"] == "processed" and report["metadata"]["mime_type"] == "application/pdf":
            metadata = report["metadata"]
            assert metadata["needs_ocr"] is bool(metadata.get("ocr_pages")), path.name
            if metadata["needs_ocr"]:
                assert all(1 <= page <= metadata["pages"] for page in metadata["ocr_pages"]), path.name
    flagged_blank = [
        path.name
        for path, report in results.items()
        if path.name in ("samples_simple2.pdf", "tests_pdfs_issue-297-example.pdf")
        and report["metadata"]["needs_ocr"]
    ]
    assert flagged_blank == []


def test_text_matches_textract_expected_text(results: dict[Path, dict[str, Any]]) -> None:
    compared = 0
    for path, report in results.items():
        expected = _expected_text(path)
        if expected is None:
            continue
        assert report["outcome"] == "processed", f"{path.name}: {report.get('message')}"
        overlap = _word_overlap(expected, report["text"])
        assert overlap >= MIN_WORD_OVERLAP, f"{path.name}: only {overlap:.0%} of the expected words"
        compared += 1
    assert compared >= 5


def _expected_text(path: Path) -> str | None:
    """textract's expected text for a document of a format docq reads, if it has one."""
    if path.parent.name != "textract" or path.suffix not in (
        ".docx",
        ".html",
        ".txt",
        ".odt",
        ".rtf",
        ".epub",
    ):
        return None
    if path.suffix == ".txt":
        # A text document is its own expected text; only those named as test documents count.
        return path.read_text(encoding="utf-8") if path.name.startswith("tests_txt_") else None
    beside = path.with_suffix(".txt")
    if beside.is_file():
        return beside.read_text(encoding="utf-8")
    return STANDARDIZED_TEXT if "_standardized_text" in path.name else None


def _word_overlap(expected: str, actual: str) -> float:
    """The share of the distinct words of ``expected`` that ``actual`` holds too."""

    def words(text: str) -> set[str]:
        return set(re.findall(r"\w+", unicodedata.normalize("NFKC", text).casefold()))

    wanted = words(expected)
    return len(wanted & words(actual)) / len(wanted) if wanted else 1.0


def _extract_all(paths: list[Path]) -> dict[Path, dict[str, Any]]:
    """Reports for ``paths`` from child processes; a child that hangs or dies is replaced."""
    reports: dict[Path, dict[str, Any]] = {}
    while len(reports) < len(paths):
        remaining = paths[len(reports) :]
        for path, report in zip(remaining, _run_child(remaining), strict=False):
            reports[path] = report
    return reports


def _run_child(paths: list[Path]) -> list[dict[str, Any]]:
    """Reports for a prefix of ``paths``: all of them, or up to the file that hung or crashed."""
    reports: list[dict[str, Any]] = []
    with tempfile.TemporaryFile() as stderr:
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(int(PER_FILE_TIMEOUT))],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        assert child.stdin is not None and child.stdout is not None
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=_pump, args=(child.stdout, lines), daemon=True).start()
        try:
            child.stdin.write("".join(f"{path}\n" for path in paths))
            child.stdin.close()
        except BrokenPipeError:
            pass  # the child died at once: reported below as a crash
        try:
            while len(reports) < len(paths):
                try:
                    line = lines.get(timeout=PER_FILE_TIMEOUT + 10)
                except queue.Empty:
                    reports.append({"outcome": "error", "error": "Hang", "message": "no answer in time"})
                    break
                if not line:  # end of output before the last report: the child died
                    stderr.seek(0)
                    tail = stderr.read().decode(errors="replace")[-2000:]
                    reports.append({"outcome": "error", "error": "Crash", "message": tail})
                    break
                reports.append(json.loads(line))
        finally:
            child.kill()
            child.wait()
    return reports


def _pump(stream: IO[str], lines: queue.Queue[str]) -> None:
    """Copy ``stream``'s lines into ``lines``, then an empty string for its end."""
    for line in stream:
        lines.put(line)
    lines.put("")


def _print_summary(reports: dict[Path, dict[str, Any]], seconds: float) -> None:
    outcomes = collections.Counter(
        "processed" if report["outcome"] == "processed" else f"failed: {report['error']}"
        for report in reports.values()
    )
    processed = [report["metadata"] for report in reports.values() if report["outcome"] == "processed"]
    print(f"\ncorpus: {len(reports)} files in {seconds:.1f}s")
    for outcome, count in sorted(outcomes.items()):
        print(f"  {outcome}: {count}")
    print(f"  processed and flagged needs_ocr: {sum(bool(meta['needs_ocr']) for meta in processed)}")
    print(f"  processed and flagged encrypted: {sum(bool(meta['encrypted']) for meta in processed)}")
    print(
        f"  processed with pdfminer.six's help: {sum('pdfminer' in meta['extractor'] for meta in processed)}"
    )
