"""The administration commands: export, workers, doctor, top, purge under load, reprocess
--stale, and bad input across them.

Commands run in-process through Typer's CliRunner (text and ``--json``) on real SQLite
files under ``tmp_path``; queues are filled through the library where the test is about
the command, not the worker. Real ``docq work`` processes run only where a worker must
(``docq workers``, purge while a worker runs, purge --vacuum after real processing).
`test_cli` already covers list, retry, cancel and the purge basics.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import signal
import socket
import sqlite3
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from clirunner import DATABASE, ERROR, NOT_FOUND, OK, PARTIAL, USAGE, Cli, describe, json_lines
from conftest import SAMPLE_DOCS
from rich.console import Console
from typer.testing import Result
from workload import Processes, open_queue, rows, wait_until

from docq import stats as queue_stats
from docq.config import Settings
from docq.db import Database
from docq.items import Lease
from docq.items import Result as Outcome
from docq.processing import FileFacts, extractor_version
from docq.queue import DocumentQueueService, Queued
from docq.render import dashboard

# A worker that runs the test handler `workload:ledger` (fast, stores its result as output).
LEDGER = ("--operation", "ledger", "--handler", "workload:ledger")
WORKER_ID = "host:4242:9c1e"


pytestmark = pytest.mark.usefixtures("plain_environment")


@pytest.fixture
def cli(db_path: str) -> Cli:
    """The CLI on a new, empty queue (only enqueue and work create one themselves)."""
    Database(db_path).close()
    return Cli(db_path)


def assert_error(result: Result, code: int, *fragments: str) -> str:
    """A failure: exit ``code``, nothing on stdout, one line ``docq: error: ...`` on
    stderr, never a traceback. Returns the line."""
    assert result.exit_code == code, describe(result)
    assert "Traceback" not in result.output
    assert result.stdout == "", describe(result)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, describe(result)
    assert lines[0].startswith("docq: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def dump(db: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of a SQLite queue, read without touching the file."""
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {
            table: sorted(connection.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
            for table in tables
        }
    finally:
        connection.close()


def copy_database(source: str, target: str) -> None:
    """A consistent copy of a SQLite queue (its WAL included)."""
    origin, copy = sqlite3.connect(source), sqlite3.connect(target)
    with copy:
        origin.backup(copy)
    origin.close()
    copy.close()


def text_facts(path: Path, content: str) -> FileFacts:
    """Facts about a text file as enqueue records them (the file need not exist)."""
    data = content.encode()
    return FileFacts(str(path), len(data), hashlib.sha256(data).hexdigest(), "text/plain")


def claim_all(service: DocumentQueueService, operation: str = "process", lease: float = 60) -> list[Lease]:
    """Every due item of ``operation``'s lane, claimed by WORKER_ID."""
    return service.claim(operation=operation, limit=100_000, worker=WORKER_ID, lease_seconds=lease)


def extraction(lease: Lease, text: str, version: str | None = None) -> tuple[Lease, Outcome]:
    """A successful extraction of a text file by ``version`` (default: today's extractor)."""
    metadata = {"extractor_version": version or extractor_version("text/plain"), "mime_type": "text/plain"}
    return (lease, Outcome(ok=True, text=text, metadata=metadata))


# --- export ----------------------------------------------------------------------------------


@dataclass
class Exported:
    """The export queue: file name -> document id and path."""

    ids: dict[str, int]
    paths: dict[str, str]

    def names(self, documents: list[dict[str, Any]]) -> list[str]:
        by_id = {document_id: name for name, document_id in self.ids.items()}
        return [by_id[document["id"]] for document in documents]


SAMPLES = [
    "README.md",
    "broken.pdf",
    "legacy-latin1.txt",
    "letter.docx",
    "notes.md",
    "page.html",
    "report.pdf",
]
PROCESSED = [name for name in SAMPLES if name != "broken.pdf"]


@pytest.fixture(scope="module")
def export_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Exported]:
    """The sample documents processed (broken.pdf failed), plus scan.txt queued for the
    operation ocr and old.txt queued two hours ago. Built once; tests get a copy."""
    directory = tmp_path_factory.mktemp("export")
    cli = Cli(str(directory / "template.db"))
    queued = cli.json("enqueue", "-r", str(SAMPLE_DOCS))["queued"]
    cli.ok("work", code=PARTIAL)
    scan = directory / "scan.txt"
    scan.write_text("a scanned page\n", encoding="utf-8")
    queued += cli.json("enqueue", "-o", "ocr", str(scan))["queued"]
    old = directory / "old.txt"
    service = DocumentQueueService(
        cli.db, settings=Settings(db=cli.db), clock=lambda: time.time() - 7200
    )  # queued two hours ago
    [outcome] = service.add_documents([text_facts(old, "old\n")])
    service.close()
    assert isinstance(outcome, Queued)
    queued.append({"document_id": outcome.document_id, "path": outcome.path})
    layout = Exported(
        ids={os.path.basename(q["path"]): q["document_id"] for q in queued},
        paths={os.path.basename(q["path"]): q["path"] for q in queued},
    )
    assert sorted(layout.ids) == sorted([*SAMPLES, "scan.txt", "old.txt"])
    return cli.db, layout


@pytest.fixture
def exported(export_template: tuple[str, Exported], db_path: str) -> Exported:
    """This test's own copy of the export queue, at ``db_path``."""
    template, layout = export_template
    copy_database(template, db_path)
    return layout


DOCUMENT_KEYS = {
    "id",
    "path",
    "status",
    "mime_type",
    "size",
    "sha256",
    "processed_at",
    "metadata",
    "text",
    "items",
}


def test_export_jsonl_one_object_per_document(cli: Cli, exported: Exported) -> None:
    result = cli.ok("export")
    assert result.stderr == ""  # nothing to say when the data goes to stdout
    documents = json_lines(result.stdout)
    assert [d["id"] for d in documents] == sorted(exported.ids.values())
    by_name = dict(zip(exported.names(documents), documents, strict=True))
    for name, document in by_name.items():
        assert set(document) == DOCUMENT_KEYS, name
        assert document["path"] == exported.paths[name]
        assert isinstance(document["metadata"], dict)
        for item in document["items"]:
            assert set(item) == {"id", "operation", "status", "last_error", "output"}
    report = by_name["report.pdf"]
    assert report["status"] == "processed"
    assert report["metadata"]["pages"] == 3
    assert report["metadata"]["title"] == "Riverside Community Library: Annual Report 2023"
    assert "Riverside" in report["text"]
    assert report["items"] == [
        {
            "id": report["items"][0]["id"],
            "operation": "process",
            "status": "completed",
            "last_error": None,
            "output": None,
        }
    ]
    assert cli.json("show", str(report["id"]))["text"] == report["text"]
    assert "réunion" in by_name["legacy-latin1.txt"]["text"]  # decoded, not escaped
    broken = by_name["broken.pdf"]
    assert (broken["status"], broken["metadata"], broken["text"]) == ("failed", {}, None)
    assert broken["items"][0]["status"] == "failed"
    assert "corrupt" in broken["items"][0]["last_error"]
    scan = by_name["scan.txt"]
    assert (scan["status"], scan["text"]) == ("pending", None)
    assert [(i["operation"], i["status"]) for i in scan["items"]] == [("ocr", "pending")]
    assert cli.ok("export", "--format", "jsonl").stdout == result.stdout


def test_export_to_an_output_file(cli: Cli, exported: Exported, tmp_path: Path) -> None:
    target = tmp_path / "out" / "results.jsonl"
    target.parent.mkdir()
    result = cli.ok("export", "--output", str(target))
    assert result.stdout == ""
    assert result.stderr == f"docq: exported {len(exported.ids)} documents to {target}\n"
    assert target.read_text(encoding="utf-8") == cli.ok("export").stdout
    cli.ok("export", "--output", str(target), "--status", "failed")  # replaces, not appends
    assert [d["id"] for d in json_lines(target.read_text(encoding="utf-8"))] == [exported.ids["broken.pdf"]]


def test_export_csv_has_a_header_and_metadata_columns(cli: Cli, exported: Exported, tmp_path: Path) -> None:
    text = cli.ok("export", "--format", "csv").stdout
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    assert header[:3] == ["id", "path", "status"]
    for column in ("mime_type", "size", "sha256", "pages", "title", "author", "words", "extractor_version"):
        assert column in header
    records = {row["path"]: row for row in reader}
    assert sorted(records) == sorted(exported.paths.values())
    report = records[exported.paths["report.pdf"]]
    assert (report["id"], report["status"], report["pages"]) == (
        str(exported.ids["report.pdf"]),
        "processed",
        "3",
    )
    assert report["title"] == "Riverside Community Library: Annual Report 2023"
    assert report["author"] == "Margaret Ellison"
    assert int(report["words"]) > 100
    broken = records[exported.paths["broken.pdf"]]
    assert broken["status"] == "failed"
    assert (broken["title"], broken["pages"], broken["extractor_version"]) == ("", "", "")
    assert broken["last_error"].startswith("permanent: corrupt: broken.pdf")  # why it failed
    assert report["last_error"] == ""
    output = tmp_path / "metadata.csv"
    cli.ok("export", "-f", "csv", "--output", str(output))
    assert output.read_text(encoding="utf-8") == text


FILTERS = [
    (["--status", "completed"], PROCESSED),
    (["--status", "failed"], ["broken.pdf"]),
    (["--status", "pending"], ["scan.txt", "old.txt"]),
    (["-s", "failed,pending"], ["broken.pdf", "scan.txt", "old.txt"]),
    (["--status", "cancelled"], []),
    (["--operation", "ocr"], ["scan.txt"]),
    (["--operation", "process", "--status", "pending"], ["old.txt"]),
    (["--error", "corrupt"], ["broken.pdf"]),
    (["--error", "no such error"], []),
    (["--since", "1h"], [*SAMPLES, "scan.txt"]),
    (["--since", "3h"], [*SAMPLES, "scan.txt", "old.txt"]),
    (["--since", "1h", "--status", "pending"], ["scan.txt"]),
]


@pytest.mark.parametrize(("options", "expected"), FILTERS, ids=[" ".join(options) for options, _ in FILTERS])
def test_export_filters_pick_documents_with_matching_items(
    cli: Cli, exported: Exported, options: list[str], expected: list[str]
) -> None:
    documents = cli.export(*options)
    assert sorted(exported.names(documents)) == sorted(expected)
    assert [d["id"] for d in documents] == sorted(d["id"] for d in documents)
    for document in documents:
        assert document["items"], document  # each has a matching item
    csv_rows = list(csv.DictReader(io.StringIO(cli.ok("export", "-f", "csv", *options).stdout)))
    assert sorted(int(row["id"]) for row in csv_rows) == sorted(d["id"] for d in documents)


def test_export_unknown_format_is_a_usage_error(cli: Cli, exported: Exported, tmp_path: Path) -> None:
    output = tmp_path / "out.xml"
    assert_error(cli("export", "--format", "xml", "--output", str(output)), USAGE, "xml")
    assert not output.exists()


# --- export --text-dir: names that cannot escape the folder ----------------------------------

AWKWARD = {
    "a..b.txt": "dots inside",
    "..sneaky.txt": "leading dots",
    ".hidden": "a dot file",
    "...": "only dots",
    "with space.txt": "a space",
    "new\nline.txt": "a newline",
    "naïve ü.txt": "non-ASCII",
    'quote"comma,.txt': "quote and comma",
    "L" * 240 + ".txt": "a very long name",
    "x/same.txt": "same name, folder x",
    "y/same.txt": "same name, folder y",
}


@pytest.fixture(scope="module")
def awkward_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, int]]:
    """Text files with awkward names (AWKWARD), processed. Built once; tests get a copy."""
    directory = tmp_path_factory.mktemp("awkward")
    files = directory / "files"
    for name, text in AWKWARD.items():
        (files / name).parent.mkdir(parents=True, exist_ok=True)
        (files / name).write_text(f"{text}\n", encoding="utf-8")
    cli = Cli(str(directory / "template.db"))
    queued = cli.json("enqueue", "-r", str(files))["queued"]
    assert len(queued) == len(AWKWARD)
    cli.ok("work")
    ids = {os.path.relpath(q["path"], files): q["document_id"] for q in queued}
    return cli.db, ids


@pytest.fixture
def awkward(awkward_template: tuple[str, dict[str, int]], db_path: str) -> dict[str, int]:
    """This test's copy of the awkward queue: relative file name -> document id."""
    template, ids = awkward_template
    copy_database(template, db_path)
    return ids


def written(directory: Path) -> dict[str, str]:
    """The files under ``directory`` (recursively): relative path -> content."""
    return {
        str(path.relative_to(directory)): path.read_text(encoding="utf-8")
        for path in directory.rglob("*")
        if path.is_file()
    }


def test_export_text_dir_names_never_leave_the_folder(
    cli: Cli, awkward: dict[str, int], tmp_path: Path
) -> None:
    texts = tmp_path / "texts"
    result = cli.ok("export", "--text-dir", str(texts))
    assert (
        result.stderr == f"docq: exported {len(AWKWARD)} documents and {len(AWKWARD)} text files in {texts}\n"
    )
    files = written(texts)
    assert len(files) == len(AWKWARD)  # both same.txt files exist: neither overwrote the other
    for name in os.listdir(texts):
        assert (texts / name).is_file() and not (texts / name).is_symlink(), name
        real = os.path.realpath(texts / name)
        assert os.path.dirname(real) == os.path.realpath(texts), name
        assert not name.startswith("."), name
        assert name.endswith(".txt") and len(name.encode()) <= 255, name
        assert not any(ch in name for ch in "/\n\0 "), repr(name)
    by_id = {int(name.split("-", 1)[0]): text for name, text in files.items()}
    assert by_id == {document_id: f"{AWKWARD[name]}\n" for name, document_id in awkward.items()}
    beside = [name for name in os.listdir(tmp_path) if not name.startswith("queue.db")]
    assert beside == ["texts"]  # nothing written next to the folder


def test_export_csv_quotes_awkward_paths(cli: Cli, awkward: dict[str, int]) -> None:
    records = list(csv.DictReader(io.StringIO(cli.ok("export", "--format", "csv").stdout)))
    paths = {int(row["id"]): row["path"] for row in records}
    stored = {d["id"]: d["path"] for d in cli.export()}
    assert paths == stored
    assert {os.path.basename(path) for path in paths.values()} >= {"new\nline.txt", 'quote"comma,.txt'}


def test_export_text_dir_only_writes_processed_documents(
    cli: Cli, exported: Exported, tmp_path: Path
) -> None:
    texts = tmp_path / "texts"
    documents = cli.export("--text-dir", str(texts))  # off a terminal the records still go to stdout
    assert len(documents) == len(exported.ids)
    files = written(texts)
    assert sorted(files) == sorted(f"{exported.ids[name]}-{name}.txt" for name in PROCESSED)
    for document in documents:
        if document["status"] == "processed":
            assert files[f"{document['id']}-{os.path.basename(document['path'])}.txt"] == document["text"]


def test_export_text_dir_replaces_a_symlink_without_following_it(
    cli: Cli, awkward: dict[str, int], tmp_path: Path
) -> None:
    texts = tmp_path / "texts"
    texts.mkdir()
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me\n", encoding="utf-8")
    link = texts / f"{awkward['x/same.txt']}-same.txt.txt"
    link.symlink_to(outside)
    result = cli("export", "--text-dir", str(texts), "--output", str(tmp_path / "out.jsonl"))
    assert result.exit_code == OK, describe(result)
    assert outside.read_text(encoding="utf-8") == "keep me\n"  # the link was never followed
    assert not link.is_symlink() and link.is_file()  # it was replaced by the document's text
    assert not [name for name in os.listdir(texts) if name.startswith(".docq-")]  # no scratch left


def test_export_text_dir_long_non_ascii_name(cli: Cli, tmp_path: Path) -> None:
    name = "文" * 83 + ".txt"  # 253 bytes: as long as the file system allows
    (tmp_path / name).write_text("long name\n", encoding="utf-8")
    cli.ok("enqueue", str(tmp_path / name))
    cli.ok("work")
    texts = tmp_path / "texts"
    result = cli("export", "--text-dir", str(texts))
    assert result.exit_code == OK, describe(result)
    [written_name] = os.listdir(texts)
    assert len(written_name.encode()) <= 255
    assert (texts / written_name).read_text(encoding="utf-8") == "long name\n"


def test_export_of_a_large_queue_is_complete(cli: Cli, tmp_path: Path) -> None:
    total = 1200
    service = open_queue(cli.db)
    facts = [text_facts(tmp_path / "docs" / f"doc{n:04}.txt", f"text {n}\n") for n in range(total)]
    service.add_documents(facts)
    service.finish(
        [extraction(lease, f"text of {os.path.basename(lease.path)}") for lease in claim_all(service)]
    )
    service.close()
    output = tmp_path / "all.jsonl"
    cli.ok("export", "--output", str(output))
    text = output.read_text(encoding="utf-8")
    assert text.count("\n") == total
    documents = json_lines(text)
    assert [d["id"] for d in documents] == list(range(1, total + 1))
    assert all(d["text"] == f"text of {os.path.basename(d['path'])}" for d in documents)
    assert len(cli.ok("export", "--status", "completed", "-f", "csv").stdout.splitlines()) == total + 1
    texts = tmp_path / "texts"
    cli.ok("export", "--text-dir", str(texts), "--output", str(tmp_path / "again.jsonl"))
    assert len(os.listdir(texts)) == total


# --- workers ---------------------------------------------------------------------------------


def worker_rows(cli: Cli, *options: str) -> dict[int, dict[str, Any]]:
    """``docq workers --json`` by pid."""
    return {row["pid"]: row for row in cli.json("workers", *options)}


@pytest.mark.slow
def test_workers_lists_a_running_worker_then_a_stopped_one(
    cli: Cli, procs: Processes, tmp_path: Path
) -> None:
    slow = ("--operation", "slowop", "--handler", "workload:slow")
    worker = procs.worker(
        cli.db, "--loop", *slow, "--lease", "3s", "--poll-interval", "0.2s", DOCQ_TEST_SLOW="2"
    )
    row = wait_until(
        lambda: worker_rows(cli).get(worker.pid), timeout=30, what="the worker to register", watch=[worker]
    )
    assert (row["state"], row["host"], row["pid"], row["operation"]) == (
        "alive",
        socket.gethostname(),
        worker.pid,
        "slowop",
    )
    assert (row["current_items"], row["items_done"], row["stopped_at"]) == ([], 0, None)
    assert row["id"].startswith(f"{socket.gethostname()}:{worker.pid}:")
    document = tmp_path / "slow.txt"  # the handler takes DOCQ_TEST_SLOW seconds on it
    document.write_text("slow\n", encoding="utf-8")
    [queued] = cli.json("enqueue", "-o", "slowop", str(document))["queued"]
    wait_until(
        lambda: worker_rows(cli)[worker.pid]["current_items"] == [queued["item_id"]],
        timeout=30,
        what="the worker to show its current item",
        watch=[worker],
    )
    table = cli.ok("workers").stdout.splitlines()
    assert table[0].split("\t") == [
        "Worker",
        "Host",
        "PID",
        "Operation",
        "Started",
        "Heartbeat",
        "Running items",
        "Items ahead",
        "Done",
        "State",
    ]
    [line] = table[1:]
    assert line.split("\t")[2:4] == [str(worker.pid), "slowop"]
    assert line.split("\t")[-4:] == [str(queued["item_id"]), "0", "0", "alive"]
    done = wait_until(
        lambda: (r := worker_rows(cli)[worker.pid])["items_done"] == 1 and r,
        timeout=30,
        what="items_done to reach 1",
        watch=[worker],
    )
    assert done["current_items"] == []
    worker.send(signal.SIGTERM)
    assert worker.wait(timeout=60) == OK
    assert cli.json("workers") == []
    assert "No workers running" in cli.ok("workers").stdout
    stopped = worker_rows(cli, "--all")[worker.pid]
    assert stopped["state"] == "stopped" and stopped["stopped_at"] is not None
    assert stopped["items_done"] == 1


@pytest.mark.slow
def test_a_worker_row_shows_an_item_start_and_end_when_they_happen_not_at_the_heartbeat(
    cli: Cli, procs: Processes, tmp_path: Path
) -> None:
    """With a 60 s lease the heartbeat comes every 20 s: the row must change well before."""
    slow = ("--operation", "slowop", "--handler", "workload:slow")
    worker = procs.worker(
        cli.db, "--loop", *slow, "--lease", "60s", "--poll-interval", "0.2s", DOCQ_TEST_SLOW="2"
    )
    wait_until(
        lambda: worker.pid in worker_rows(cli), timeout=30, what="the worker to register", watch=[worker]
    )
    document = tmp_path / "slow.txt"
    document.write_text("slow\n", encoding="utf-8")
    [queued] = cli.json("enqueue", "-o", "slowop", str(document))["queued"]
    enqueued = time.monotonic()
    wait_until(
        lambda: worker_rows(cli)[worker.pid]["current_items"] == [queued["item_id"]],
        timeout=15,
        what="the row to show the running item",
        watch=[worker],
    )
    shown = time.monotonic()
    row = wait_until(
        lambda: (r := worker_rows(cli)[worker.pid])["items_done"] == 1 and r,
        timeout=15,
        what="the row to count the item done",
        watch=[worker],
    )
    finished = time.monotonic()
    assert row["current_items"] == []
    assert shown - enqueued < 15 and finished - enqueued < 15  # the first heartbeat is 20 s away
    worker.send(signal.SIGTERM)
    assert worker.wait(timeout=60) == OK


@pytest.mark.slow
def test_workers_marks_a_killed_worker_dead_once_its_lease_passes(cli: Cli, procs: Processes) -> None:
    worker = procs.worker(cli.db, "--loop", "--lease", "1s", "--poll-interval", "0.2s")
    wait_until(
        lambda: worker_rows(cli).get(worker.pid, {}).get("state") == "alive",
        timeout=30,
        what="the worker to register",
        watch=[worker],
    )
    worker.kill_group()
    worker.wait(timeout=30)
    row = wait_until(
        lambda: (r := worker_rows(cli)[worker.pid])["state"] == "dead" and r,
        timeout=30,
        what="the worker to be shown dead",
    )
    assert row["stopped_at"] is None  # it never signed off
    assert worker_rows(cli, "--all")[worker.pid]["state"] == "dead"
    assert cli.ok("workers").stdout.splitlines()[1].split("\t")[-1] == "dead"
    checks = {check["check"]: check for check in cli.json("doctor")}
    assert checks["dead workers"]["level"] == "warn"
    assert row["id"] in checks["dead workers"]["detail"]


# --- doctor ----------------------------------------------------------------------------------


def test_doctor_passes_on_a_healthy_database(cli: Cli, exported: Exported) -> None:
    result = cli.ok("doctor")
    lines = result.stdout.splitlines()
    assert lines, describe(result)
    for line in lines:
        assert line.startswith("pass  "), line
    checks = cli.json("doctor")
    assert isinstance(checks, list)
    for check in checks:
        assert set(check) == {"check", "level", "detail"}
        assert check["level"] == "pass", check
    names = [check["check"] for check in checks]
    for name in ("integrity", "schema", "journal mode", "expired leases", "dead workers", "counters"):
        assert name in names
    assert [f"pass  {c['check']}: {c['detail']}" for c in checks] == lines


def test_doctor_warns_about_expired_leases(cli: Cli, tmp_path: Path) -> None:
    service = open_queue(cli.db)
    service.add_documents([text_facts(tmp_path / "a.txt", "a\n")])
    [lease] = service.claim(worker=WORKER_ID, lease_seconds=0.1)
    service.close()
    time.sleep(0.3)
    checks = {check["check"]: check for check in cli.json("doctor")}
    assert checks["expired leases"]["level"] == "warn"
    assert f"item {lease.item_id}" in checks["expired leases"]["detail"]
    assert all(check["level"] == "pass" for name, check in checks.items() if name != "expired leases")
    lines = cli.ok("doctor").stdout.splitlines()
    [warning] = [line for line in lines if not line.startswith("pass  ")]
    assert warning.startswith("warn  expired leases: 1 in-progress item past their lease (oldest ")


def garbage_page(path: Path) -> None:
    """Overwrite a page in the middle of a SQLite file (not its header) with garbage."""
    size = path.stat().st_size
    page = 4096
    offset = (size // 2) // page * page
    with path.open("r+b") as handle:
        handle.seek(offset)
        handle.write(b"\xff" * page)


def _overwrite_index_root(path: Path, header: Callable[[int], bytes]) -> None:
    """Overwrite the root page of the index on document paths (the UNIQUE constraint's)
    with ``header(page_size)`` and zeros."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    page = connection.execute("PRAGMA page_size").fetchone()[0]
    [(root,)] = connection.execute(
        "SELECT rootpage FROM sqlite_master WHERE type = 'index' AND tbl_name = 'documents' AND sql IS NULL"
    ).fetchall()
    connection.close()
    with path.open("r+b") as handle:
        handle.seek((root - 1) * page)
        handle.write(header(page).ljust(page, b"\0"))


def emptied_index(path: Path) -> None:
    """An index emptied: a valid leaf page without cells (integrity_check: rows missing)."""
    _overwrite_index_root(path, lambda page: bytes([0x0A, 0, 0, 0, 0]) + (page % 65536).to_bytes(2, "big"))


def broken_page(path: Path) -> None:
    """An index page whose header is impossible (integrity_check: a damaged b-tree page)."""
    _overwrite_index_root(path, lambda page: bytes([0x0A]))  # cells would start at 65536: past the end


@pytest.mark.parametrize("corrupt", [garbage_page, emptied_index, broken_page])
def test_doctor_fails_on_a_corrupted_database(
    cli: Cli, exported: Exported, tmp_path: Path, corrupt: Callable[[Path], None]
) -> None:
    broken = tmp_path / "broken.db"
    copy_database(cli.db, str(broken))
    corrupt(broken)
    damaged = Cli(str(broken))
    checks = damaged.json("doctor", code=ERROR)
    levels = {check["check"]: check["level"] for check in checks}
    assert levels["integrity"] == "fail", checks
    assert levels["database file"] == "pass"
    result = damaged.ok("doctor", code=ERROR)
    assert any(line.startswith("fail  integrity: ") for line in result.stdout.splitlines())
    assert result.stderr == ""


def test_doctor_prints_one_line_per_check_on_a_corrupted_database(
    cli: Cli, exported: Exported, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.db"
    copy_database(cli.db, str(broken))
    broken_page(broken)
    damaged = Cli(str(broken))
    lines = damaged.ok("doctor", code=ERROR).stdout.splitlines()
    assert len(lines) == len(damaged.json("doctor", code=ERROR))
    for line in lines:
        assert line[:6] in ("pass  ", "warn  ", "fail  "), line


def test_doctor_fails_on_a_file_of_random_bytes(tmp_path: Path) -> None:
    target = tmp_path / "random.db"
    target.write_bytes(os.urandom(16384))
    before = target.read_bytes()
    damaged = Cli(str(target))
    checks = damaged.json("doctor", code=ERROR)
    failed = {check["check"] for check in checks if check["level"] == "fail"}
    assert {"integrity", "database"} <= failed
    result = damaged.ok("doctor", code=ERROR)
    assert "fail  database: " in result.stdout
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["random.db"]


def test_doctor_warns_about_a_missing_database_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    checks = Cli(str(missing)).json("doctor")
    assert checks[0]["check"] == "database file"
    assert checks[0]["level"] == "warn" and "does not exist" in checks[0]["detail"]
    assert not any(check["level"] == "fail" for check in checks)


def test_doctor_fails_on_a_database_in_a_missing_directory(tmp_path: Path) -> None:
    target = tmp_path / "nowhere" / "queue.db"
    checks = Cli(str(target)).json("doctor", code=ERROR)
    failed = [check for check in checks if check["level"] == "fail"]
    assert [check["check"] for check in failed] == ["database"]
    assert "does not exist" in failed[0]["detail"]
    assert not target.parent.exists()


def test_doctor_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    service = open_queue(pg_url)
    service.add_documents([text_facts(tmp_path / "a.txt", "a\n")])
    service.close()
    pg = Cli(pg_url)
    checks = pg.json("doctor")
    assert all(check["level"] == "pass" for check in checks), checks
    names = [check["check"] for check in checks]
    for name in ("schema", "expired leases", "dead workers"):
        assert name in names
    assert "integrity" not in names  # a SQLite file check
    assert pg.ok("doctor").stdout.count("\n") == len(checks)


# --- top and stats --watch -------------------------------------------------------------------


@pytest.mark.parametrize("args", [["top"], ["stats", "--watch"], ["stats", "-w", "--interval", "1s"]])
def test_live_dashboard_needs_a_terminal(cli: Cli, args: list[str]) -> None:
    assert_error(cli(*args), USAGE, "terminal")


def test_dashboard_snapshot_and_frame(tmp_path: Path) -> None:
    service = open_queue(str(tmp_path / "queue.db"))
    names = ["done1.txt", "done2.txt", "broken.txt", "flaky.txt", "running.txt", "waiting.txt"]
    scans = Path("/srv/scans")  # short paths, so that the table does not fold them (the files need not exist)
    service.add_documents([text_facts(scans / name, f"{name}\n") for name in names])
    service.register_worker(WORKER_ID, operation="process", lease_seconds=60)
    done1, done2, broken, flaky, running = service.claim(limit=5, worker=WORKER_ID, lease_seconds=60)
    service.finish(
        [
            extraction(done1, "one"),
            extraction(done2, "two"),
            (broken, Outcome(ok=False, error="scanner on fire", permanent=True)),
            (flaky, Outcome(ok=False, error="network hiccup")),
        ]
    )
    service.heartbeat(WORKER_ID, [running.token], lease_seconds=60, current=[running.item_id], done=4)
    shot = queue_stats.snapshot(service.db)
    service.close()
    stats = shot.stats
    assert (stats.completed, stats.failed, stats.retrying, stats.in_progress) == (2, 1, 1, 1)
    assert (stats.pending, stats.total) == (2, 6)  # pending counts the retrying item
    assert shot.per_minute[-1] == 2 and sum(shot.per_minute) == 2
    assert [(w.id, w.running, w.done) for w in shot.workers] == [(WORKER_ID, [running.path], 4)]
    assert shot.workers[0].heartbeat_at == pytest.approx(time.time(), abs=60)
    assert [(f.item_id, f.outcome, f.path) for f in shot.failures] == [
        (flaky.item_id, "failed", flaky.path),
        (broken.item_id, "failed", broken.path),
    ]
    console = Console(record=True, width=120)
    console.print(dashboard.frame(shot))
    text = console.export_text()
    for fragment in (
        "completed",
        "retrying",
        "in_progress",
        "now 2/min",
        WORKER_ID,
        running.path,
        "scanner on fire",
        broken.path,
        "network hiccup",
    ):
        assert fragment in text, fragment
    counts = {
        line.split()[0]: line.split()[-1] for line in text.splitlines() if line.split()[:1] and "│" in line
    }
    assert (counts["completed"], counts["failed"], counts["retrying"], counts["in_progress"]) == (
        "2",
        "1",
        "1",
        "1",
    )


def test_dashboard_frame_of_an_empty_queue(tmp_path: Path) -> None:
    service = open_queue(str(tmp_path / "queue.db"))
    shot = queue_stats.snapshot(service.db)
    service.close()
    console = Console(record=True, width=120)
    console.print(dashboard.frame(shot))
    text = console.export_text()
    assert "No live workers." in text
    assert "total" in text and "now 0/min" in text


# --- purge while a worker runs, and --vacuum -------------------------------------------------


def orphans(service: DocumentQueueService) -> dict[str, int]:
    """Rows whose parent is gone, and documents left with no items."""
    checks = {
        "attempts": "SELECT count(*) AS n FROM attempts a "
        "WHERE NOT EXISTS (SELECT 1 FROM queue_items i WHERE i.id = a.item_id)",
        "outputs": "SELECT count(*) AS n FROM item_outputs o "
        "WHERE NOT EXISTS (SELECT 1 FROM queue_items i WHERE i.id = o.item_id)",
        "items": "SELECT count(*) AS n FROM queue_items i "
        "WHERE NOT EXISTS (SELECT 1 FROM documents d WHERE d.id = i.document_id)",
        "documents": "SELECT count(*) AS n FROM documents d "
        "WHERE NOT EXISTS (SELECT 1 FROM queue_items i WHERE i.document_id = d.id)",
    }
    return {name: int(rows(service, sql)[0]["n"]) for name, sql in checks.items()}


def add_ledger_files(service: DocumentQueueService, directory: Path, names: list[str]) -> list[int]:
    """Small files queued for the ledger operation; their item ids."""
    directory.mkdir(parents=True, exist_ok=True)
    facts = []
    for name in names:
        (directory / name).write_text(f"{name}\n", encoding="utf-8")
        facts.append(text_facts(Path(os.path.realpath(directory / name)), f"{name}\n"))
    outcomes = service.add_documents(facts, operation="ledger")
    return [outcome.item_id for outcome in outcomes if isinstance(outcome, Queued)]


@pytest.mark.slow
def test_purge_while_a_worker_runs_leaves_a_consistent_queue(
    cli: Cli, procs: Processes, tmp_path: Path
) -> None:
    service = open_queue(cli.db)
    files = tmp_path / "files"
    added = add_ledger_files(service, files, [f"first{n}.txt" for n in range(30)])
    worker = procs.worker(cli.db, "--loop", *LEDGER, "--concurrency", "2", "--poll-interval", "0.1s")
    purged = []
    for batch in range(8):
        added += add_ledger_files(service, files, [f"batch{batch}-{n}.txt" for n in range(25)])
        purged.append(cli.json("purge", "--older-than", "0s", "--yes"))
        time.sleep(0.15)
    assert len(added) == 230

    def drained() -> bool:
        return not rows(service, "SELECT id FROM queue_items WHERE status IN ('pending', 'in_progress')")

    wait_until(drained, timeout=60, what="the worker to drain the queue", watch=[worker])
    purged.append(cli.json("purge", "--older-than", "0s", "--yes"))
    worker.send(signal.SIGTERM)
    assert worker.wait(timeout=60) == OK, worker.stderr()
    err = worker.stderr()
    assert "Traceback" not in err and "error" not in err.lower() and "locked" not in err.lower(), err
    assert sum(p["items"] for p in purged[:-1]) > 0  # some purges ran while items were processed
    assert sum(p["items"] for p in purged) == len(added)
    assert sorted(path for _label, path, _pid in procs.ledger()) == sorted(
        os.path.realpath(files / name) for name in os.listdir(files)
    )
    assert orphans(service) == {"attempts": 0, "outputs": 0, "items": 0, "documents": 0}
    assert rows(service, "SELECT count(*) AS n FROM queue_items")[0]["n"] == 0
    service.close()
    checks = {check["check"]: check["level"] for check in cli.json("doctor")}
    assert checks["counters"] == "pass"
    assert all(level == "pass" for level in checks.values()), checks
    assert cli.json("stats")["total"] == 0


def on_disk(db: str) -> int:
    """Bytes a SQLite queue takes: its file and its WAL file."""
    return sum(os.path.getsize(path) for path in (db, f"{db}-wal") if os.path.exists(path))


@pytest.mark.slow
def test_purge_vacuum_gives_the_space_back(cli: Cli, tmp_path: Path) -> None:
    files = tmp_path / "files"
    files.mkdir()
    line = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor\n"
    for n in range(300):
        (files / f"doc{n:03}.txt").write_text(f"{n}\n" + line * 640, encoding="utf-8")  # 50 KB
    cli.ok("enqueue", "-r", str(files))
    assert cli.json("work", "--concurrency", "2")["completed"] == 300
    before = on_disk(cli.db)
    assert before > 300 * 50_000
    removed = cli.json("purge", "--older-than", "0s", "--yes", "--vacuum")
    assert (removed["items"], removed["documents"]) == (300, 300)
    after = on_disk(cli.db)
    assert after < before / 4, (before, after)


def test_purge_vacuum_on_an_empty_purge_changes_nothing(cli: Cli, exported: Exported) -> None:
    before = dump(cli.db)
    assert cli.ok("purge", "--older-than", "1d", "--yes", "--vacuum").stdout == "Nothing to purge.\n"
    assert dump(cli.db) == before


# --- reprocess --stale -----------------------------------------------------------------------


def test_reprocess_stale_queues_documents_of_an_older_extractor(cli: Cli, tmp_path: Path) -> None:
    service = open_queue(cli.db)
    names = ["old1.txt", "current.txt", "old2.txt", "failed.txt"]
    service.add_documents([text_facts(tmp_path / name, f"{name}\n") for name in names])
    old1, current, old2, failed = claim_all(service)
    service.finish(
        [
            extraction(old1, "x", version="old"),
            extraction(current, "x"),
            extraction(old2, "x", version="old"),
            (failed, Outcome(ok=False, error="bad", permanent=True)),
        ]
    )
    service.close()
    stale = sorted([old1.document_id, old2.document_id])
    before = dump(cli.db)
    plan = cli.json("reprocess", "--stale", "--dry-run")
    assert plan["dry_run"] is True
    assert sorted(c["document_id"] for c in plan["changes"]) == stale
    assert {c["action"] for c in plan["changes"]} == {"queued"}
    assert dump(cli.db) == before
    changes = cli.json("reprocess", "--stale")["changes"]
    assert sorted(c["document_id"] for c in changes) == stale
    pending = cli.json("list", "--status", "pending")
    assert sorted(row["document_id"] for row in pending) == stale
    assert {row["operation"] for row in pending} == {"reprocess"}
    assert cli.json("show", str(current.document_id))["status"] == "processed"
    assert cli.json("reprocess", "--stale")["changes"] == []  # queued: no longer processed, not stale
    assert len(cli.json("list", "--status", "pending")) == 2


# --- bad input across admin commands ---------------------------------------------------------

BAD_INPUT = [
    (["purge", "--older-than", "x", "--yes"], USAGE, "--older-than"),
    (["export", "--since", "yesterday"], USAGE, "--since"),
    (["export", "--status", "done"], USAGE, "done"),
    (["export", "--format", "xml"], USAGE, "xml"),
    (["export", "--output", "/nonexistent/dir/f.jsonl"], USAGE, "/nonexistent/dir/f.jsonl"),
    (["export", "--text-dir", "/dev/null/texts"], USAGE, "--text-dir"),
    (["show", "1", "--item", "2"], USAGE, "--item"),
    (["show", "999"], NOT_FOUND, "999"),
    (["show", "--item", "999"], NOT_FOUND, "999"),
    (["reprocess", "1", "999"], NOT_FOUND, "999"),
    (["reprocess", "--stale", "--operation", "bad name!"], USAGE, "bad name!"),
    (["workers", "--bogus"], USAGE, "--bogus"),
    (["doctor", "extra"], USAGE, "extra"),
    (["top", "--interval", "soon"], USAGE, "--interval"),
    (["copy"], USAGE, "--to"),
    (["copy", "--to", "mysql://user@localhost/docq"], DATABASE, "mysql"),
]


@pytest.mark.parametrize(
    ("args", "code", "fragment"), BAD_INPUT, ids=[" ".join(args) for args, _code, _fragment in BAD_INPUT]
)
def test_bad_input_is_one_line_and_changes_nothing(
    cli: Cli, exported: Exported, args: list[str], code: int, fragment: str
) -> None:
    before = dump(cli.db)
    assert_error(cli(*args), code, fragment)
    assert dump(cli.db) == before
    assert not os.path.exists("/nonexistent")


def test_export_carries_the_output_of_custom_operations(cli: Cli, tmp_path: Path) -> None:
    """What a command printed is part of the export, beside its item."""
    document = tmp_path / "a.txt"
    document.write_text("three little words\n")
    cli.ok("enqueue", str(document), "--operation", "count")
    cli.ok("work", "--operation", "count", "--", "wc", "-w", "{path}")
    [record] = cli.export()
    [item] = record["items"]
    assert item["operation"] == "count" and item["status"] == "completed"
    assert item["output"]["text"].split()[0] == "3"


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o027, 0o640)])
def test_export_text_files_honour_the_umask(cli: Cli, tmp_path: Path, umask: int, mode: int) -> None:
    (tmp_path / "a.txt").write_text("private\n", encoding="utf-8")
    cli.ok("enqueue", str(tmp_path / "a.txt"))
    cli.ok("work")
    texts = tmp_path / "texts"
    previous = os.umask(umask)
    try:
        cli.ok("export", "--text-dir", str(texts), "--output", str(tmp_path / "out.jsonl"))
    finally:
        os.umask(previous)
    [written] = texts.iterdir()
    assert stat.S_IMODE(written.stat().st_mode) == mode


def test_export_with_a_directory_at_a_text_files_name_is_one_line(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("text\n", encoding="utf-8")
    cli.ok("enqueue", str(tmp_path / "a.txt"))
    cli.ok("work")
    texts = tmp_path / "texts"
    (texts / "1-a.txt.txt").mkdir(parents=True)
    result = cli("export", "--text-dir", str(texts), "--output", str(tmp_path / "out.jsonl"))
    assert result.exit_code == USAGE, describe(result)
    assert result.stderr.count("\n") == 1 and "a directory stands at that name" in result.stderr
    assert "internal error" not in result.stderr
