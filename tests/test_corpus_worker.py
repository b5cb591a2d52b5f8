"""The whole real-world corpus through the real worker, as a user would run it.

Opt-in: skipped where ``../shared/corpus`` (beside the repository) is absent. Every
document must end processed, or failed with a clear reason, within its time limit; none
may hang or kill the worker. ``pytest -s`` prints the counts.
"""

from __future__ import annotations

import collections
import json
import re
from pathlib import Path

import pytest
from conftest import run_docq

CORPUS = Path(__file__).parents[1].parent / "shared" / "corpus"
CLEAR_REASON = re.compile(r"^permanent: (corrupt: |encrypted: |unsupported type |empty file: |too large: )")

pytestmark = pytest.mark.skipif(
    not (CORPUS / "MANIFEST.md").is_file(), reason=f"no document corpus at {CORPUS} (it is not part of docq)"
)


def test_every_corpus_document_ends_processed_or_failed_with_a_reason(db_path: str) -> None:
    queued = run_docq("enqueue", "-r", "--json", str(CORPUS), db=db_path)
    assert queued.returncode == 0, queued.stderr
    total = len(json.loads(queued.stdout)["queued"])
    assert total > 150

    work = run_docq("work", "--concurrency", "2", "--timeout", "60s", "--json", db=db_path, timeout=600)
    assert work.returncode in (0, 3), work.stderr
    assert "Traceback" not in work.stderr
    summary = json.loads(work.stdout)
    assert summary["completed"] + summary["failed"] == total, summary
    assert summary["retried"] == 0, "a corpus document failed for a passing reason: " + work.stderr

    listed = run_docq("list", "--limit", str(total + 10), "--json", db=db_path)
    items = json.loads(listed.stdout)
    assert {item["status"] for item in items} <= {"completed", "failed"}
    reasons: collections.Counter[str] = collections.Counter()
    for item in items:
        if item["status"] == "failed":
            assert CLEAR_REASON.match(item["last_error"]), item
            reasons[item["last_error"].split(":")[1].strip().split(" ")[0]] += 1

    exported = run_docq("export", db=db_path)
    documents = [json.loads(line) for line in exported.stdout.splitlines()]
    flagged = collections.Counter(
        flag
        for document in documents
        for flag in ("needs_ocr", "encrypted")
        if document["metadata"].get(flag)
    )
    print(
        f"\ncorpus through docq work: {total} documents, {summary['completed']} processed "
        f"({flagged['needs_ocr']} flagged needs_ocr, {flagged['encrypted']} flagged encrypted), "
        f"{summary['failed']} failed: {dict(reasons)}"
    )
