"""``docq copy --to TARGET`` (and its hidden alias ``docq migrate``): the queue, history
included, moved into another database with every row and id kept.

The source is a SQLite file under ``tmp_path`` holding items in every state, built through
the library; the target is another SQLite file or, with DOCQ_TEST_PG_URL, a private
PostgreSQL schema (the ``db_target`` fixture). Every row of every copied table is
compared, ignoring only the computed lane column.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from clirunner import DATABASE, OK, USAGE, describe, runner
from typer.testing import Result
from workload import open_queue

from docq.cli import app
from docq.items import Result as Outcome
from docq.processing import FileFacts, extractor_version, inspect_file

TABLES = {
    "documents": "id",
    "queue_items": "id",
    "attempts": "id",
    "item_outputs": "item_id",
    "workers": "id",
}
WORKER_ID = "host:4242:9c1e"


pytestmark = pytest.mark.usefixtures("plain_environment")


def docq(db: str, *args: str) -> Result:
    """``docq --db DB ARGS`` in-process."""
    return runner.invoke(app, ["--db", db, *args])


def ok(result: Result) -> Result:
    """A run that succeeded without a traceback."""
    assert result.exit_code == OK, describe(result)
    assert "Traceback" not in result.output
    return result


def assert_error(result: Result, code: int, *fragments: str) -> str:
    """Exit ``code``, nothing on stdout, one line ``docq: error: ...`` on stderr."""
    assert result.exit_code == code, describe(result)
    assert "Traceback" not in result.output
    assert result.stdout == "", describe(result)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("docq: error: "), describe(result)
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def table_rows(db: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table that copy moves, read through the library, in key order;
    booleans as 0/1 (SQLite's form) and without the items' computed lane column."""

    def normal(table: str, row: dict[str, Any]) -> dict[str, Any]:
        computed = "lane" if table == "queue_items" else None
        return {k: int(v) if isinstance(v, bool) else v for k, v in row.items() if k != computed}

    service = open_queue(db)
    try:
        found = {
            table: service.db.read(lambda tx, table=table: tx.dicts(f"SELECT * FROM {table}"))
            for table in TABLES
        }
    finally:
        service.close()
    return {
        table: sorted((normal(table, row) for row in found[table]), key=lambda row, key=key: row[key])  # type: ignore[misc]
        for table, key in TABLES.items()
    }


def highest_ids(db: str) -> dict[str, int]:
    """The largest id in documents, queue_items and attempts."""
    copied = table_rows(db)
    return {
        table: max(row["id"] for row in copied[table]) for table in ("documents", "queue_items", "attempts")
    }


@dataclass
class Source:
    """The source queue and its items by state."""

    db: str
    items: dict[str, int]
    files: Path


def write_file(directory: Path, name: str, text: str) -> FileFacts:
    """A real text file, and its facts as enqueue records them."""
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return inspect_file(str(path))


@pytest.fixture
def source(tmp_path: Path) -> Source:
    """A SQLite queue with an item in every state: completed (with text and metadata),
    failed, retrying, cancelled, pending (priority 5), in progress (its cancel requested),
    and a custom operation's item with output; two workers, one stopped."""
    files = tmp_path / "files"
    files.mkdir()
    db = str(tmp_path / "source.db")
    service = open_queue(db)
    first = ["done.txt", "failed.txt", "retrying.txt", "running.txt"]
    service.add_documents([write_file(files, name, f"the {name} document, naïve ü\n") for name in first])
    service.register_worker(WORKER_ID, operation="process", lease_seconds=60)
    done, failed, retrying, running = service.claim(limit=4, worker=WORKER_ID, lease_seconds=60)
    metadata = {
        "extractor_version": extractor_version("text/plain"),
        "mime_type": "text/plain",
        "title": "Dön",
    }
    service.finish(
        [
            (done, Outcome(ok=True, text="the text, naïve ü\nline 2", metadata=metadata, seconds=0.25)),
            (failed, Outcome(ok=False, error="corrupt: no way", permanent=True, seconds=0.5)),
            (retrying, Outcome(ok=False, error="file missing", seconds=0.125)),
        ]
    )
    later = [write_file(files, name, f"the {name} document\n") for name in ("cancelled.txt", "waiting.txt")]
    service.add_documents(later[:1])
    service.add_documents(later[1:], priority=5)
    items = {"done": done.item_id, "failed": failed.item_id, "retrying": retrying.item_id}
    items["running"] = running.item_id
    items["cancelled"], items["waiting"] = (
        row["id"]
        for row in service.db.read(lambda tx: tx.dicts("SELECT id FROM queue_items ORDER BY id"))[-2:]
    )
    service.cancel([items["cancelled"], items["running"]])  # the running one: cancel requested
    service.add_documents([inspect_file(done.path)], operation="ocr")
    [ocr] = service.claim(operation="ocr", worker=WORKER_ID, lease_seconds=60)
    service.finish([(ocr, Outcome(ok=True, text="ocr output", note="warning: low contrast"))])
    items["ocr"] = ocr.item_id
    service.heartbeat(WORKER_ID, [running.token], lease_seconds=60, current=[running.item_id], done=4)
    service.register_worker("host:4343:aaaa", operation="ocr", lease_seconds=30)
    service.worker_stopped("host:4343:aaaa", done=0)
    service.close()
    return Source(db, items, files)


def test_source_has_every_state(source: Source) -> None:
    statuses = {row["id"]: (row["status"], row["attempts"]) for row in table_rows(source.db)["queue_items"]}
    assert statuses[source.items["done"]] == ("completed", 1)
    assert statuses[source.items["failed"]] == ("failed", 1)
    assert statuses[source.items["retrying"]] == ("pending", 1)
    assert statuses[source.items["running"]] == ("in_progress", 1)
    assert statuses[source.items["cancelled"]] == ("cancelled", 0)
    assert statuses[source.items["waiting"]] == ("pending", 0)
    assert statuses[source.items["ocr"]] == ("completed", 1)
    rows = table_rows(source.db)
    assert [
        row["cancel_requested"] for row in rows["queue_items"] if row["id"] == source.items["running"]
    ] == [1]
    assert len(rows["item_outputs"]) == 1 and len(rows["workers"]) == 2


def test_copy_preserves_every_row(source: Source, db_target: str) -> None:
    before = table_rows(source.db)
    result = ok(docq(source.db, "copy", "--to", db_target))
    counts = {table: len(rows) for table, rows in before.items()}
    shown = ", ".join(f"{n} {table}" for table, n in counts.items())
    assert result.stdout.startswith(f"Copied {shown} to ")
    assert table_rows(db_target) == before
    assert table_rows(source.db) == before  # the source is left as it was
    source_stats = json.loads(ok(docq(source.db, "stats", "--json")).stdout)
    target_stats = json.loads(ok(docq(db_target, "stats", "--json")).stdout)
    for key in ("pending", "retrying", "in_progress", "completed", "failed", "cancelled", "total"):
        assert target_stats[key] == source_stats[key], key
    checks = json.loads(docq(db_target, "doctor", "--json").stdout)
    assert [c for c in checks if c["level"] == "fail"] == []
    if not db_target.startswith("postgresql"):
        assert {c["check"]: c["level"] for c in checks}["counters"] == "pass"


def test_copy_reports_items_in_progress(source: Source, tmp_path: Path) -> None:
    result = ok(docq(source.db, "copy", "--to", str(tmp_path / "text.db")))
    [line] = result.stderr.splitlines()
    assert line.startswith("docq: 1 item was in progress"), line
    report = json.loads(ok(docq(source.db, "copy", "--to", str(tmp_path / "json.db"), "--json")).stdout)
    assert report == {
        "rows": {"documents": 6, "queue_items": 7, "attempts": 4, "item_outputs": 1, "workers": 2},
        "in_progress": 1,
    }


def test_the_copied_queue_works_and_new_ids_come_after_the_copied_ones(
    source: Source, db_target: str
) -> None:
    ok(docq(source.db, "copy", "--to", db_target))
    copied = highest_ids(db_target)
    new_file = source.files / "new.txt"
    new_file.write_text("a new document\n", encoding="utf-8")
    [queued] = json.loads(ok(docq(db_target, "enqueue", "--priority", "10", "--json", str(new_file))).stdout)[
        "queued"
    ]
    assert queued["document_id"] > copied["documents"]
    assert queued["item_id"] > copied["queue_items"]
    summary = json.loads(ok(docq(db_target, "work", "--max-items", "1", "--json")).stdout)
    assert (summary["processed"], summary["completed"]) == (1, 1)
    item = json.loads(ok(docq(db_target, "show", "--item", str(queued["item_id"]), "--json")).stdout)
    assert item["status"] == "completed"
    [attempt] = [row for row in table_rows(db_target)["attempts"] if row["item_id"] == queued["item_id"]]
    assert attempt["id"] > copied["attempts"]
    document = json.loads(ok(docq(db_target, "show", str(queued["document_id"]), "--json")).stdout)
    assert (document["status"], document["text"]) == ("processed", "a new document\n")


def test_copy_into_a_non_empty_target_is_refused(source: Source, db_target: str, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    ok(docq(db_target, "enqueue", str(write_file(other, "mine.txt", "mine\n").path)))
    before = table_rows(db_target)
    assert_error(docq(source.db, "copy", "--to", db_target), USAGE, "already holds a queue")
    assert table_rows(db_target) == before


def test_copy_to_the_same_database_is_refused(
    source: Source, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = table_rows(source.db)
    link = tmp_path / "link.db"
    link.symlink_to(source.db)
    monkeypatch.chdir(tmp_path)
    for spelling in (source.db, "source.db", "./source.db", str(link)):
        assert_error(docq(source.db, "copy", "--to", spelling), USAGE, "--to")
    assert table_rows(source.db) == before


def test_copy_a_postgresql_queue_onto_itself_is_refused(pg_url: str, tmp_path: Path) -> None:
    ok(docq(pg_url, "enqueue", str(write_file(tmp_path, "a.txt", "a\n").path)))
    before = table_rows(pg_url)
    assert_error(docq(pg_url, "copy", "--to", pg_url), USAGE, "--to")
    assert table_rows(pg_url) == before


def test_round_trip_through_postgresql(source: Source, pg_url: str, tmp_path: Path) -> None:
    before = table_rows(source.db)
    ok(docq(source.db, "copy", "--to", pg_url))
    back = str(tmp_path / "back.db")
    ok(docq(pg_url, "copy", "--to", back))
    assert table_rows(back) == before


def test_migrate_with_to_points_at_copy(source: Source, tmp_path: Path) -> None:
    """``docq migrate`` upgrades a schema in place; ``--to`` belongs to ``docq copy``."""
    target = tmp_path / "migrated.db"
    result = docq(source.db, "migrate", "--to", str(target))
    assert result.exit_code == 2, result.output
    assert "docq copy --to" in result.stderr
    assert not target.exists()


def test_copy_of_a_queue_larger_than_a_batch(db_target: str, tmp_path: Path) -> None:
    db = str(tmp_path / "big.db")
    service = open_queue(db)
    facts = [FileFacts(f"/srv/docs/{n:05}.txt", n, f"{n:064x}", "text/plain") for n in range(4500)]
    service.add_documents(facts)
    service.finish(
        [(lease, Outcome(ok=True)) for lease in service.claim(limit=2100, worker=WORKER_ID, lease_seconds=60)]
    )
    service.close()
    before = table_rows(db)
    report = json.loads(ok(docq(db, "copy", "--to", db_target, "--json")).stdout)
    assert report["rows"] == {
        "documents": 4500,
        "queue_items": 4500,
        "attempts": 2100,
        "item_outputs": 0,
        "workers": 0,
    }
    assert table_rows(db_target) == before


def test_copy_into_a_missing_directory_is_refused(source: Source, tmp_path: Path) -> None:
    target = tmp_path / "missing" / "queue.db"
    assert_error(docq(source.db, "copy", "--to", str(target)), DATABASE, str(target.parent))
    assert not target.parent.exists()


def test_ids_of_purged_items_are_not_reused_after_a_copy(tmp_path: Path) -> None:
    db = str(tmp_path / "source.db")
    files = tmp_path / "files"
    files.mkdir()
    service = open_queue(db)
    service.add_documents([write_file(files, "kept.txt", "kept\n")], operation="ocr")  # item 1 stays
    service.add_documents([write_file(files, f"{n}.txt", f"{n}\n") for n in range(3)])  # items 2-4
    service.finish(
        [(lease, Outcome(ok=True)) for lease in service.claim(limit=3, worker=WORKER_ID, lease_seconds=60)]
    )
    service.close()
    ok(docq(db, "purge", "--older-than", "0s", "--yes"))
    target = str(tmp_path / "target.db")
    ok(docq(db, "copy", "--to", target))
    new = str(write_file(files, "new.txt", "new\n").path)
    from_source = json.loads(ok(docq(db, "enqueue", "--json", new)).stdout)["queued"][0]
    from_copy = json.loads(ok(docq(target, "enqueue", "--json", new)).stdout)["queued"][0]
    assert from_copy["item_id"] == from_source["item_id"] == 5
    assert from_copy["document_id"] == from_source["document_id"]
