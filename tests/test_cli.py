"""docq's command line, in-process through Typer's CliRunner, on real SQLite files.

Every command runs with ``--db`` pointing under ``tmp_path``, so no test touches the
user's default queue. CliRunner calls ``app`` the way the console script does, through
the error boundary in ``DocqGroup.main``. With the Click that Typer vendors, the runner
keeps stderr apart from stdout (``result.stdout`` / ``result.stderr``; ``result.output``
has both): data must be on stdout, diagnostics on stderr.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from clirunner import BUSY, DATABASE, NOT_FOUND, OK, PARTIAL, USAGE, Cli, describe, runner, zeros
from conftest import PG_URL, docq_env, run_in_terminal
from typer.testing import Result

from docq.cli import app
from docq.db import Database

# A command for custom operations that always fails (exit code 1: a transient error).
FAILING_COMMAND = (sys.executable, "-c", "raise SystemExit(1)")

pytestmark = pytest.mark.usefixtures("plain_environment")


@pytest.fixture
def no_queue(tmp_path: Path) -> Path:
    """A --db path where no queue exists yet (to check that bad input creates none)."""
    return tmp_path / "no-queue.db"


@pytest.fixture
def cli(db_path: str) -> Cli:
    """The CLI on a new, empty queue (only enqueue and work create one themselves)."""
    Database(db_path).close()
    return Cli(db_path)


@pytest.fixture
def make_file(tmp_path: Path) -> Callable[..., Path]:
    """``make_file(name, text)``: a small text file under tmp_path/files (distinct content)."""

    def make(name: str, text: str | None = None) -> Path:
        path = tmp_path / "files" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text if text is not None else f"the content of {name}\n", encoding="utf-8")
        return path

    return make


@pytest.fixture
def broken_pdf(tmp_path: Path, sample_docs: Path) -> Path:
    """A copy of sample_docs/broken.pdf, which fails for good (CorruptDocument)."""
    target = tmp_path / "files" / "broken.pdf"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(sample_docs / "broken.pdf", target)
    return target


def assert_error(result: Result, code: int, *fragments: str, diagnostics: int = 0) -> str:
    """A failure: exit ``code``, nothing on stdout, and one line ``docq: error: ...`` on
    stderr (after ``diagnostics`` other lines), never a traceback. Returns the line."""
    assert result.exit_code == code, describe(result)
    assert "Traceback" not in result.output
    assert result.stdout == "", describe(result)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 + diagnostics, describe(result)
    line = lines[-1]
    assert line.startswith("docq: error: "), line
    for fragment in fragments:
        assert fragment in line, line
    return line


def parse_utc(text: str, *, within: timedelta = timedelta(minutes=10)) -> datetime:
    """An ISO 8601 time in UTC, ``within`` of now."""
    moment = datetime.fromisoformat(text)
    assert moment.utcoffset() == timedelta(0), text
    assert abs(moment - datetime.now(UTC)) < within, text
    return moment


def queued(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The queued entries of an enqueue report, by path."""
    return {entry["path"]: entry for entry in report["queued"]}


# --- a queue with an item in every status ----------------------------------------------------


@dataclass
class Mixed:
    completed: int
    failed: int
    retrying: int
    pending: int
    cancelled: int
    paths: dict[str, str]  # status -> document path


@pytest.fixture(scope="module")
def mixed_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Mixed]:
    """A queue with items 1-5: completed (process), failed (flaky), retrying (flaky),
    pending (process), cancelled (process). Built once per module; tests get a copy."""
    directory = tmp_path_factory.mktemp("mixed")
    files = {}
    for status in ("completed", "failed", "retrying", "pending", "cancelled"):
        files[status] = directory / f"{status}.txt"
        files[status].write_text(f"the {status} document\n", encoding="utf-8")
    cli = Cli(str(directory / "template.db"))
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("DOCQ_"):
                patch.delenv(name)

        def enqueue(status: str, *options: str) -> int:
            return int(cli.json("enqueue", *options, str(files[status]))["queued"][0]["item_id"])

        ids = {"completed": enqueue("completed")}
        ids["failed"] = enqueue("failed", "-o", "flaky", "--max-attempts", "1")
        ids["retrying"] = enqueue("retrying", "-o", "flaky", "--max-attempts", "3")
        cli.ok("work")
        cli.ok("work", "-o", "flaky", "--retry-delay", "1h", "--", *FAILING_COMMAND, code=PARTIAL)
        ids["pending"] = enqueue("pending")
        ids["cancelled"] = enqueue("cancelled")
        cli.ok("cancel", str(ids["cancelled"]))
    return cli.db, Mixed(**ids, paths={status: str(path) for status, path in files.items()})


@pytest.fixture
def mixed(mixed_template: tuple[str, Mixed], db_path: str) -> Mixed:
    """This test's own copy of the mixed queue, at ``db_path``."""
    template, layout = mixed_template
    source, target = sqlite3.connect(template), sqlite3.connect(db_path)
    with target:
        source.backup(target)
    source.close()
    target.close()
    return layout


def test_mixed_fixture_has_every_status(cli: Cli, mixed: Mixed) -> None:
    rows = {row["id"]: row for row in cli.json("list")}
    assert rows[mixed.completed]["status"] == "completed"
    assert rows[mixed.failed]["status"] == "failed"
    assert rows[mixed.retrying]["status"] == "pending"
    assert rows[mixed.retrying]["attempts"] == 1
    assert rows[mixed.pending]["status"] == "pending"
    assert rows[mixed.pending]["attempts"] == 0
    assert rows[mixed.cancelled]["status"] == "cancelled"


# --- enqueue ---------------------------------------------------------------------------------


def test_enqueue_files_json_shape(cli: Cli, make_file: Callable[..., Path]) -> None:
    a, b = make_file("a.txt"), make_file("b.md", "# B\n")
    report = cli.json("enqueue", str(a), str(b))
    assert set(report) == {"queued", "skipped", "rejected"}
    assert report["skipped"] == [] and report["rejected"] == []
    assert [entry["path"] for entry in report["queued"]] == [str(a), str(b)]
    for entry in report["queued"]:
        assert set(entry) == {"document_id", "item_id", "path"}
        assert isinstance(entry["document_id"], int) and isinstance(entry["item_id"], int)
    rows = {row["id"]: row for row in cli.json("list")}
    for entry in report["queued"]:
        row = rows[entry["item_id"]]
        assert (row["document_id"], row["path"], row["status"], row["operation"], row["priority"]) == (
            entry["document_id"],
            entry["path"],
            "pending",
            "process",
            0,
        )


def test_enqueue_prints_a_summary_on_stdout(cli: Cli, make_file: Callable[..., Path]) -> None:
    result = cli.ok("enqueue", str(make_file("a.txt")), str(make_file("b.txt")))
    assert result.stdout.strip() == "Queued 2 documents."
    assert result.stderr == ""


def test_enqueue_stores_resolved_paths(
    cli: Cli, make_file: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = make_file("sub/a.txt")
    monkeypatch.chdir(tmp_path / "files")
    report = cli.json("enqueue", "sub/../sub/a.txt")
    assert [entry["path"] for entry in report["queued"]] == [str(path)]


def test_enqueue_directory_without_recursive_is_rejected_and_the_rest_queued(
    cli: Cli, make_file: Callable[..., Path], tmp_path: Path
) -> None:
    make_file("dir/inner.txt")
    loose = make_file("loose.txt")
    directory = tmp_path / "files" / "dir"
    report = cli.json("enqueue", str(directory), str(loose), code=PARTIAL)
    assert [entry["path"] for entry in report["queued"]] == [str(loose)]
    assert len(report["rejected"]) == 1
    rejected = report["rejected"][0]
    assert set(rejected) == {"path", "error"}
    assert rejected["path"] == str(directory)
    assert "directory" in rejected["error"] and "-r" in rejected["error"]
    assert cli.json("stats")["pending"] == 1


def test_enqueue_recursive_queues_the_files_under_directories(
    cli: Cli, make_file: Callable[..., Path], tmp_path: Path
) -> None:
    expected = [make_file("dir/b.txt"), make_file("dir/a.txt"), make_file("dir/sub/c.txt")]
    report = cli.json("enqueue", "-r", str(tmp_path / "files" / "dir"))
    assert sorted(entry["path"] for entry in report["queued"]) == sorted(map(str, expected))
    assert report["rejected"] == []


def test_enqueue_rejections_are_listed_on_stderr(
    cli: Cli, make_file: Callable[..., Path], tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-file.pdf"
    result = cli.ok("enqueue", str(missing), str(make_file("a.txt")), code=PARTIAL)
    assert "Queued 1 document" in result.stdout and "rejected 1" in result.stdout
    assert str(missing) not in result.stdout
    assert str(missing) in result.stderr and "no such file" in result.stderr
    assert cli.json("stats")["total"] == 1


def test_enqueue_rejects_missing_file_and_queues_the_rest(
    cli: Cli, make_file: Callable[..., Path], tmp_path: Path
) -> None:
    good = make_file("good.txt")
    report = cli.json("enqueue", str(tmp_path / "missing.txt"), str(good), code=PARTIAL)
    assert report["rejected"] == [{"path": str(tmp_path / "missing.txt"), "error": "no such file"}]
    assert list(queued(report)) == [str(good)]


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read a file whatever its mode")
def test_enqueue_rejects_unreadable_file(cli: Cli, make_file: Callable[..., Path]) -> None:
    secret, good = make_file("secret.txt"), make_file("good.txt")
    secret.chmod(0)
    try:
        report = cli.json("enqueue", str(secret), str(good), code=PARTIAL)
    finally:
        secret.chmod(0o600)
    assert [entry["path"] for entry in report["rejected"]] == [str(secret)]
    assert "permission denied" in report["rejected"][0]["error"]
    assert list(queued(report)) == [str(good)]


def test_enqueue_rejects_a_fifo_without_hanging(
    cli: Cli, make_file: Callable[..., Path], tmp_path: Path
) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    good = make_file("good.txt")
    rescued = threading.Event()

    def rescue() -> None:
        # Were docq stuck opening or reading the FIFO, it would wait for a writer forever:
        # become that writer, so that the test fails instead of hanging.
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # nobody is reading: docq did not block on it
            return
        rescued.set()
        os.close(fd)

    watchdog = threading.Timer(15, rescue)
    watchdog.start()
    try:
        report = cli.json("enqueue", str(fifo), str(good), code=PARTIAL)
    finally:
        watchdog.cancel()
    assert not rescued.is_set(), "docq blocked on the FIFO"
    assert [entry["path"] for entry in report["rejected"]] == [str(fifo)]
    assert "not a regular file" in report["rejected"][0]["error"]
    assert list(queued(report)) == [str(good)]


def test_enqueue_from_file(cli: Cli, make_file: Callable[..., Path], tmp_path: Path) -> None:
    a, b = make_file("a.txt"), make_file("with space.txt")
    listing = tmp_path / "list.txt"
    listing.write_bytes(f"{a}\r\n\n{b}\n".encode())  # CRLF and blank lines are tolerated
    report = cli.json("enqueue", "--from", str(listing))
    assert list(queued(report)) == [str(a), str(b)]


def test_enqueue_from_stdin_with_arguments(cli: Cli, make_file: Callable[..., Path]) -> None:
    a, b, c = make_file("a.txt"), make_file("b.txt"), make_file("c.txt")
    report = cli.json("enqueue", str(a), "--from", "-", input=f"{b}\n{c}\n".encode())
    assert sorted(queued(report)) == sorted([str(a), str(b), str(c)])


def test_enqueue_null_separated_stdin_keeps_newlines_in_names(
    cli: Cli, make_file: Callable[..., Path]
) -> None:
    odd, plain = make_file("odd\nname with space.txt"), make_file("plain.txt")
    data = os.fsencode(odd) + b"\0" + os.fsencode(plain) + b"\0"
    report = cli.json("enqueue", "-0", "--from", "-", input=data)
    assert list(queued(report)) == [str(odd), str(plain)]
    assert report["rejected"] == []


def test_enqueue_priority_is_stored(cli: Cli, make_file: Callable[..., Path]) -> None:
    report = cli.json("enqueue", "--priority", "7", str(make_file("a.txt")))
    item_id = report["queued"][0]["item_id"]
    assert cli.item(item_id)["priority"] == 7
    assert cli.json("list")[0]["priority"] == 7


def test_enqueue_the_same_file_under_several_names_queues_it_once(
    cli: Cli, make_file: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = make_file("a.txt")
    (tmp_path / "files" / "link.txt").symlink_to(a)
    monkeypatch.chdir(tmp_path / "files")
    report = cli.json("enqueue", "a.txt", "./a.txt", str(a), "link.txt")
    assert [q["path"] for q in report["queued"]] == [str(a)]
    assert [s["reason"] for s in report["skipped"]] == ["already queued"] * 3
    assert cli.json("stats")["total"] == 1


def test_enqueue_skips_already_queued(cli: Cli, make_file: Callable[..., Path]) -> None:
    a = make_file("a.txt")
    first = cli.json("enqueue", str(a))
    second = cli.json("enqueue", str(a))
    assert second["queued"] == []
    assert second["skipped"] == [
        {"path": str(a), "reason": "already queued", "document_id": first["queued"][0]["document_id"]}
    ]
    assert cli.json("stats")["pending"] == 1


def test_enqueue_skips_unchanged_after_work_force_and_changes_queue_again(
    cli: Cli, make_file: Callable[..., Path]
) -> None:
    a = make_file("a.txt")
    document_id = cli.json("enqueue", str(a))["queued"][0]["document_id"]
    cli.ok("work")
    again = cli.json("enqueue", str(a))
    assert again["queued"] == []
    assert again["skipped"] == [{"path": str(a), "reason": "unchanged", "document_id": document_id}]
    assert "unchanged: 1" in cli.ok("enqueue", str(a)).stdout

    forced = cli.json("enqueue", "--force", str(a))
    assert [(q["path"], q["document_id"]) for q in forced["queued"]] == [(str(a), document_id)]
    cli.ok("work")

    a.write_text("new content\n", encoding="utf-8")
    changed = cli.json("enqueue", str(a))
    assert [(q["path"], q["document_id"]) for q in changed["queued"]] == [(str(a), document_id)]
    assert cli.json("stats")["pending"] == 1


def test_enqueue_skips_an_unchanged_file_that_failed_until_it_changes_or_is_forced(
    cli: Cli, make_file: Callable[..., Path]
) -> None:
    """A cron job queueing a folder every few minutes must not run a corrupt file again
    each time: unchanged since it failed for good, it is skipped as "failed"."""
    broken = make_file("broken.pdf", "%PDF-1.4 truncated")
    document_id = cli.json("enqueue", str(broken))["queued"][0]["document_id"]
    assert cli("work").exit_code == PARTIAL  # it failed for good

    again = cli.json("enqueue", str(broken))
    assert again["queued"] == []
    assert again["skipped"] == [{"path": str(broken), "reason": "failed", "document_id": document_id}]
    said = cli.ok("enqueue", str(broken))
    assert "failed: 1" in said.stdout
    assert "docq retry" in said.stderr
    assert cli.json("stats")["pending"] == 0

    forced = cli.json("enqueue", "--force", str(broken))
    assert [q["document_id"] for q in forced["queued"]] == [document_id]
    assert cli("work").exit_code == PARTIAL
    broken.write_text("%PDF-1.4 truncated differently")
    changed = cli.json("enqueue", str(broken))
    assert [q["document_id"] for q in changed["queued"]] == [document_id]


def test_enqueue_without_arguments_is_a_usage_error(no_queue: Path) -> None:
    assert_error(Cli(str(no_queue))("enqueue"), USAGE, "nothing to enqueue")
    assert not no_queue.exists()


def test_enqueue_null_needs_from(no_queue: Path, make_file: Callable[..., Path]) -> None:
    assert_error(Cli(str(no_queue))("enqueue", "-0", str(make_file("a.txt"))), USAGE, "--from")
    assert not no_queue.exists()


def test_enqueue_from_a_missing_list_is_a_usage_error(cli: Cli, tmp_path: Path) -> None:
    before = cli.snapshot()
    assert_error(cli("enqueue", "--from", str(tmp_path / "nope.lst")), USAGE, "nope.lst")
    assert cli.snapshot() == before


def test_enqueue_json_with_a_name_that_is_not_utf8(cli: Cli, tmp_path: Path) -> None:
    raw = os.fsencode(tmp_path) + b"/caf\xe9.txt"
    with open(raw, "wb") as handle:
        handle.write(b"latin-1 name\n")
    result = cli("enqueue", "--json", os.fsdecode(raw))
    assert result.exit_code == OK, describe(result)
    report = json.loads(result.stdout_bytes.decode("utf-8"))
    assert report["queued"][0]["path"] == cli.json("list")[0]["path"]


# --- work ------------------------------------------------------------------------------------


def test_work_drains_the_queue_and_exits(cli: Cli, make_file: Callable[..., Path]) -> None:
    for name in ("a.txt", "b.md", "c.html"):
        cli.ok("enqueue", str(make_file(name)))
    summary = cli.json("work")
    assert {"processed", "completed", "failed", "retried"} <= set(summary)
    assert (summary["processed"], summary["completed"], summary["failed"], summary["retried"]) == (3, 3, 0, 0)
    stats = cli.json("stats")
    assert (stats["pending"], stats["completed"], stats["total"]) == (0, 3, 3)
    assert cli.json("work")["processed"] == 0  # nothing left to do


def test_work_text_summary_on_stdout_and_a_line_per_item_on_stderr(
    cli: Cli, make_file: Callable[..., Path]
) -> None:
    a, b = make_file("a.txt"), make_file("b.txt")
    cli.ok("enqueue", str(a), str(b))
    result = cli.ok("work")
    assert result.stdout.strip() == "Processed 2 items: 2 completed, 0 failed, 0 to retry later."
    start, *lines, stop = [line.split(" ", 1)[1] for line in result.stderr.splitlines()]  # less the time
    assert " started: " in start and stop.startswith("docq: stopped (nothing more due): Processed 2 items")
    assert len(lines) == 2, result.stderr
    assert all(line.startswith("docq: completed item ") for line in lines)
    assert str(a) in result.stderr and str(b) in result.stderr


def test_work_exits_3_when_an_item_fails(cli: Cli, make_file: Callable[..., Path], broken_pdf: Path) -> None:
    good = make_file("good.md", "# Good\n\nFine.\n")
    cli.ok("enqueue", str(broken_pdf), str(good))
    summary = cli.json("work", code=PARTIAL)
    assert (summary["processed"], summary["completed"], summary["failed"]) == (2, 1, 1)
    failed = cli.json("list", "--status", "failed")
    assert [row["path"] for row in failed] == [str(broken_pdf)]
    assert "corrupt" in failed[0]["last_error"]
    assert cli.document(broken_pdf)["status"] == "failed"
    assert cli.document(good)["status"] == "processed"


def test_work_max_items_takes_the_highest_priority_first(cli: Cli, make_file: Callable[..., Path]) -> None:
    low, high, middle = make_file("low.txt"), make_file("high.txt"), make_file("middle.txt")
    cli.ok("enqueue", str(low))
    cli.ok("enqueue", "--priority", "9", str(high))
    cli.ok("enqueue", "--priority", "5", str(middle))
    assert cli.json("work", "--max-items", "2")["processed"] == 2
    assert [row["path"] for row in cli.json("list", "--status", "completed")] == [str(middle), str(high)]
    assert [row["path"] for row in cli.json("list", "--status", "pending")] == [str(low)]


def test_work_counts_retries(cli: Cli, make_file: Callable[..., Path]) -> None:
    cli.ok("enqueue", "-o", "flaky", str(make_file("a.txt")))
    summary = cli.json("work", "-o", "flaky", "--retry-delay", "1h", "--", *FAILING_COMMAND)
    assert (summary["processed"], summary["retried"], summary["failed"], summary["completed"]) == (1, 1, 0, 0)
    stats = cli.json("stats")
    assert (stats["pending"], stats["retrying"]) == (1, 1)
    assert parse_utc(stats["next_retry_at"], within=timedelta(hours=2)) > datetime.now(UTC) + timedelta(
        minutes=30
    )


def test_work_runs_a_custom_command_with_placeholders(cli: Cli, make_file: Callable[..., Path]) -> None:
    a = make_file("a.txt")
    item_id = cli.json("enqueue", "-o", "echo", str(a))["queued"][0]["item_id"]
    script = "import sys; print('got', sys.argv[1], sys.argv[2])"
    cli.ok("work", "-o", "echo", "--", sys.executable, "-c", script, "{name}", "{path}")
    shown = cli.item(item_id)
    assert shown["status"] == "completed"
    assert shown["output"]["text"].strip() == f"got a.txt {a}"


def test_work_unknown_operation_without_command_is_a_usage_error(
    cli: Cli, make_file: Callable[..., Path]
) -> None:
    cli.ok("enqueue", "-o", "ocr", str(make_file("a.txt")))
    before = cli.snapshot()
    assert_error(cli("work", "--operation", "ocr"), USAGE, "ocr")
    assert cli.snapshot() == before


def test_work_unknown_placeholder_is_a_usage_error(cli: Cli, make_file: Callable[..., Path]) -> None:
    cli.ok("enqueue", "-o", "x", str(make_file("a.txt")))
    before = cli.snapshot()
    assert_error(cli("work", "--operation", "x", "--", "echo", "{badplaceholder}"), USAGE, "badplaceholder")
    assert cli.snapshot() == before


def test_work_handler_that_cannot_be_imported_is_a_usage_error(
    cli: Cli, make_file: Callable[..., Path]
) -> None:
    cli.ok("enqueue", "-o", "x", str(make_file("a.txt")))
    before = cli.snapshot()
    result = cli("work", "-o", "x", "--handler", "docq_no_such_module_xyz:run", "--max-attempts", "1")
    assert_error(result, USAGE, "docq_no_such_module_xyz")
    assert cli.snapshot() == before


# --- stats -----------------------------------------------------------------------------------

STATS_KEYS = {
    "pending",
    "in_progress",
    "completed",
    "failed",
    "cancelled",
    "total",
    "retrying",
    "next_retry_at",
    "oldest_pending_at",
    "finished_last_hour",
    "mean_processing_seconds",
    "by_operation",
    "in_progress_items",
}


def test_stats_of_an_empty_queue(cli: Cli) -> None:
    stats = cli.json("stats")
    assert set(stats) >= STATS_KEYS
    for key in ("pending", "in_progress", "completed", "failed", "cancelled", "total", "retrying"):
        assert stats[key] == 0, key
    assert stats["next_retry_at"] is None and stats["oldest_pending_at"] is None
    assert stats["mean_processing_seconds"] is None
    assert stats["in_progress_items"] == []


def test_stats_counts_after_enqueue_and_after_work(
    cli: Cli, make_file: Callable[..., Path], broken_pdf: Path
) -> None:
    cli.ok("enqueue", str(make_file("a.txt")), str(make_file("b.txt")), str(broken_pdf))
    stats = cli.json("stats")
    assert set(stats) >= STATS_KEYS
    assert (stats["pending"], stats["in_progress"], stats["completed"], stats["failed"], stats["total"]) == (
        3,
        0,
        0,
        0,
        3,
    )
    parse_utc(stats["oldest_pending_at"])
    assert stats["by_operation"] == {"process": zeros(pending=3)}

    cli.ok("work", code=PARTIAL)
    stats = cli.json("stats")
    assert (stats["pending"], stats["completed"], stats["failed"], stats["cancelled"], stats["total"]) == (
        0,
        2,
        1,
        0,
        3,
    )
    assert stats["oldest_pending_at"] is None and stats["next_retry_at"] is None
    assert stats["finished_last_hour"] == 3
    assert stats["mean_processing_seconds"] > 0
    assert stats["by_operation"] == {"process": zeros(completed=2, failed=1)}


def test_stats_counts_every_status(cli: Cli, mixed: Mixed) -> None:
    stats = cli.json("stats")
    assert (stats["completed"], stats["failed"], stats["cancelled"], stats["total"]) == (1, 1, 1, 5)
    assert (stats["pending"], stats["retrying"]) == (2, 1)  # pending includes the item waiting to retry
    assert stats["by_operation"]["flaky"] == zeros(failed=1, pending=1)


def test_stats_and_list_show_items_claimed_ahead_apart_from_running_ones(
    cli: Cli, db_path: str, make_file: Callable[..., Path]
) -> None:
    from docq.queue import DocumentQueueService

    cli.ok("enqueue", *(str(make_file(name)) for name in ("a.txt", "b.txt", "c.txt")))
    service = DocumentQueueService(db_path)
    try:  # a worker claims two ahead and hands the first to a child
        _, leased = service.exchange([], limit=2, worker="w1", lease_seconds=60, started=False)
        service.start(leased[:1])
    finally:
        service.close()

    stats = cli.json("stats")
    assert (stats["pending"], stats["in_progress"], stats["claimed_ahead"]) == (1, 2, 1)
    started = {entry["item_id"]: entry["started"] for entry in stats["in_progress_items"]}
    assert started == {leased[0].item_id: True, leased[1].item_id: False}
    table = cli.ok("stats").stdout
    assert "in_progress\t1" in table and "claimed ahead\t1" in table
    listed = {row["id"]: row["claimed_ahead"] for row in cli.json("list")}
    assert listed == {leased[0].item_id: False, leased[1].item_id: True, 3: False}
    lines = cli.ok("list").stdout.splitlines()
    assert any(line.startswith(f"{leased[1].item_id}\t") and "claimed ahead" in line for line in lines)


def test_stats_table_is_plain_off_a_terminal(cli: Cli, make_file: Callable[..., Path]) -> None:
    cli.ok("enqueue", str(make_file("a.txt")), str(make_file("b.txt")))
    result = cli.ok("stats")
    lines = result.stdout.splitlines()
    assert "pending\t2" in lines and "total\t2" in lines and "completed\t0" in lines
    assert "\x1b[" not in result.stdout
    assert result.stderr == ""


# --- show ------------------------------------------------------------------------------------


@pytest.fixture
def notes(cli: Cli, tmp_path: Path, sample_docs: Path) -> tuple[Path, int]:
    """sample_docs/notes.md, queued and processed: (path, document id)."""
    path = tmp_path / "files" / "notes.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(sample_docs / "notes.md", path)
    document_id = cli.json("enqueue", str(path))["queued"][0]["document_id"]
    cli.ok("work")
    return path, document_id


def test_show_by_id_and_by_path(cli: Cli, notes: tuple[Path, int]) -> None:
    path, document_id = notes
    by_id = cli.ok("show", str(document_id))
    by_path = cli.ok("show", str(path))
    for result in (by_id, by_path):
        assert str(path) in result.stdout
        assert "processed" in result.stdout
        assert "Notes from the Zürich study trip" in result.stdout
        assert result.stderr == ""
    assert cli.document(document_id) == cli.document(path)


def test_show_json_shape(cli: Cli, notes: tuple[Path, int]) -> None:
    path, document_id = notes
    shown = cli.document(document_id)
    assert set(shown) >= {"id", "path", "status", "sha256", "mime_type", "metadata", "text", "queue_items"}
    assert (shown["id"], shown["path"], shown["status"]) == (document_id, str(path), "processed")
    assert shown["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert shown["mime_type"] == "text/markdown"
    assert isinstance(shown["metadata"], dict)
    assert shown["metadata"]["title"] == "Notes from the Zürich study trip"
    assert "Zürich" in shown["text"] and "naïve" in shown["text"]
    for key in ("created_at", "processed_at"):
        parse_utc(shown[key])
    [item] = shown["queue_items"]
    assert set(item) >= {"id", "operation", "priority", "status", "attempts", "last_error", "history"}
    assert (item["operation"], item["status"], item["attempts"], item["last_error"]) == (
        "process",
        "completed",
        1,
        None,
    )
    [attempt] = item["history"]
    assert set(attempt) >= {"attempt", "worker", "started_at", "finished_at", "outcome", "error"}
    assert (attempt["attempt"], attempt["outcome"], attempt["error"]) == (1, "completed", None)
    assert attempt["worker"]
    assert parse_utc(attempt["started_at"]) <= parse_utc(attempt["finished_at"])


def test_show_text_prints_the_whole_text(cli: Cli, notes: tuple[Path, int]) -> None:
    path, _ = notes
    text = cli.document(path)["text"]
    result = cli.ok("show", str(path), "--text")
    assert result.stdout.rstrip("\n") == text.rstrip("\n")
    # without --text only the first lines are shown
    assert text.strip().splitlines()[-1] not in cli.ok("show", str(path)).stdout


def test_show_text_is_verbatim(cli: Cli, make_file: Callable[..., Path]) -> None:
    text = "status :warning: done :smile:\ncol1\tcol2\n[bold]not markup[/bold]\n"
    path = make_file("odd.txt", text)
    cli.ok("enqueue", str(path))
    cli.ok("work")
    assert cli.document(path)["text"] == text
    assert cli.ok("show", str(path), "--text").stdout in (text, text + "\n")


def test_list_prints_paths_verbatim(cli: Cli, make_file: Callable[..., Path]) -> None:
    path = make_file("report:smile:.txt")
    cli.ok("enqueue", str(path))
    rows = [line.split("\t") for line in cli.ok("list").stdout.splitlines()]
    assert rows[1][rows[0].index("Path")] == str(path)


def test_show_item(cli: Cli, make_file: Callable[..., Path], broken_pdf: Path) -> None:
    item_id = cli.json("enqueue", str(broken_pdf))["queued"][0]["item_id"]
    cli.ok("work", code=PARTIAL)
    shown = cli.item(item_id)
    assert (shown["id"], shown["status"], shown["attempts"]) == (item_id, "failed", 1)
    assert "corrupt" in shown["last_error"]
    assert shown["document"]["path"] == str(broken_pdf)
    assert shown["document"]["status"] == "failed"
    [attempt] = shown["history"]
    assert attempt["outcome"] == "failed" and "corrupt" in attempt["error"]
    text = cli.ok("show", "--item", str(item_id)).stdout
    assert f"Item {item_id}" in text and "corrupt" in text


def test_show_unknown_document_is_not_found(cli: Cli, notes: tuple[Path, int], tmp_path: Path) -> None:
    assert_error(cli("show", "999"), NOT_FOUND, "999")
    assert_error(cli("show", str(tmp_path / "never-queued.txt")), NOT_FOUND, "never-queued.txt")
    assert_error(cli("show", "--item", "999"), NOT_FOUND, "999")
    assert_error(cli("show", str(tmp_path / "two\nlines.txt")), NOT_FOUND, "lines.txt")


def test_an_item_id_given_as_a_document_id_and_the_reverse_get_a_hint(
    cli: Cli, make_file: Callable[..., Path]
) -> None:
    """Item and document ids part ways as soon as a document is reprocessed or purged:
    an id of the other kind is named as such, with the command that shows it."""
    a, b = make_file("a.txt"), make_file("b.txt")
    cli.ok("enqueue", str(a), str(b))  # documents 1 and 2, items 1 and 2
    cli.ok("work")
    cli.ok("reprocess", str(a))  # item 3, of document 1
    cli.ok("purge", "--older-than", "0s", "--status", "completed", "--yes")  # items 1, 2 and document 2 go
    before = cli.snapshot()

    result = cli("show", "3")
    assert_error(result, NOT_FOUND, "no document 3")
    assert "3 is a queue item (of document 1)" in result.stderr
    assert "`docq show --item 3`" in result.stderr and "`docq show 1`" in result.stderr

    result = cli("show", "--item", "1")
    assert_error(result, NOT_FOUND, "no queue item 1")
    assert "1 is a document: `docq show 1`" in result.stderr

    for action in ("retry", "cancel"):
        result = cli(action, "1")
        assert_error(result, NOT_FOUND, "no queue item 1: nothing was changed")
        assert "1 is a document id; `docq show 1` lists its items" in result.stderr
    result = cli("cancel", "2")  # neither: no hint
    assert_error(result, NOT_FOUND, "no queue item 2: nothing was changed")
    assert "document" not in result.stderr
    assert "is a queue item" not in cli("show", "2").stderr
    assert cli.snapshot() == before


def test_show_document_and_item_together_is_a_usage_error(cli: Cli, notes: tuple[Path, int]) -> None:
    _, document_id = notes
    assert_error(cli("show", str(document_id), "--item", "1"), USAGE)
    assert_error(cli("show"), USAGE)


# --- reprocess -------------------------------------------------------------------------------


def test_reprocess_by_id_and_path(cli: Cli, make_file: Callable[..., Path]) -> None:
    a, b = make_file("a.txt"), make_file("b.txt")
    report = cli.json("enqueue", str(a), str(b))
    cli.ok("work")
    a_id = queued(report)[str(a)]["document_id"]
    changes = cli.json("reprocess", str(a_id), str(b))
    assert changes["dry_run"] is False
    assert [(c["path"], c["operation"], c["action"]) for c in changes["changes"]] == [
        (str(a), "reprocess", "queued"),
        (str(b), "reprocess", "queued"),
    ]
    for change in changes["changes"]:
        assert set(change) == {"item_id", "document_id", "path", "operation", "action"}
        shown = cli.document(change["document_id"])
        assert shown["status"] == "pending"
        assert (shown["queue_items"][-1]["id"], shown["queue_items"][-1]["operation"]) == (
            change["item_id"],
            "reprocess",
        )
    assert cli.json("work")["completed"] == 2
    assert cli.document(a)["status"] == "processed"


def test_reprocess_does_not_queue_an_active_document_twice(cli: Cli, make_file: Callable[..., Path]) -> None:
    a = make_file("a.txt")
    item_id = cli.json("enqueue", str(a))["queued"][0]["item_id"]
    before = cli.snapshot()
    changes = cli.json("reprocess", str(a))["changes"]
    assert [(c["item_id"], c["action"]) for c in changes] == [(item_id, "already queued")]
    assert cli.snapshot() == before

    cli.ok("work")
    first = cli.json("reprocess", str(a))["changes"][0]
    second = cli.json("reprocess", str(a))["changes"][0]
    assert (second["item_id"], second["action"]) == (first["item_id"], "already queued")
    assert cli.json("stats")["pending"] == 1


def test_reprocess_failed(cli: Cli, make_file: Callable[..., Path], broken_pdf: Path) -> None:
    cli.ok("enqueue", str(make_file("good.txt")), str(broken_pdf))
    cli.ok("work", code=PARTIAL)
    changes = cli.json("reprocess", "--failed")["changes"]
    assert [(c["path"], c["action"]) for c in changes] == [(str(broken_pdf), "queued")]
    assert cli.document(broken_pdf)["status"] == "pending"
    assert [row["path"] for row in cli.json("list", "--status", "pending")] == [str(broken_pdf)]


def test_reprocess_dry_run_changes_nothing(cli: Cli, make_file: Callable[..., Path]) -> None:
    a = make_file("a.txt")
    cli.ok("enqueue", str(a))
    cli.ok("work")
    before = cli.snapshot()
    changes = cli.json("reprocess", "--dry-run", str(a))
    assert changes["dry_run"] is True
    assert [(c["path"], c["action"]) for c in changes["changes"]] == [(str(a), "queued")]
    assert cli.snapshot() == before


def test_reprocess_unknown_document_is_not_found_and_queues_nothing(
    cli: Cli, make_file: Callable[..., Path]
) -> None:
    a = make_file("a.txt")
    cli.ok("enqueue", str(a))
    cli.ok("work")
    before = cli.snapshot()
    assert_error(cli("reprocess", str(a), "999"), NOT_FOUND, "999")
    assert cli.snapshot() == before


def test_reprocess_without_documents_is_a_usage_error(no_queue: Path) -> None:
    assert_error(Cli(str(no_queue))("reprocess"), USAGE)
    assert not no_queue.exists()


# --- list ------------------------------------------------------------------------------------

LIST_KEYS = {
    "id",
    "document_id",
    "path",
    "operation",
    "status",
    "priority",
    "attempts",
    "claimed_ahead",
    "last_error",
    "next_run_at",
    "created_at",
    "finished_at",
}


def ids(rows: list[dict[str, Any]]) -> list[int]:
    return [row["id"] for row in rows]


def test_list_newest_first_json_shape(cli: Cli, mixed: Mixed) -> None:
    rows = cli.json("list")
    assert ids(rows) == [5, 4, 3, 2, 1]
    for row in rows:
        assert set(row) == LIST_KEYS
        parse_utc(row["created_at"])
    by_id = {row["id"]: row for row in rows}
    assert by_id[mixed.completed]["finished_at"] is not None
    assert by_id[mixed.pending]["finished_at"] is None
    parse_utc(by_id[mixed.pending]["next_run_at"])
    assert parse_utc(by_id[mixed.retrying]["next_run_at"], within=timedelta(hours=2)) > datetime.now(
        UTC
    ) + timedelta(minutes=30)
    assert by_id[mixed.failed]["path"] == mixed.paths["failed"]
    assert "code 1" in by_id[mixed.failed]["last_error"]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--status", "pending"], ["pending", "retrying"]),
        (["--status", "retrying"], ["retrying"]),
        (["--status", "completed"], ["completed"]),
        (["--status", "failed"], ["failed"]),
        (["--status", "cancelled"], ["cancelled"]),
        (["--status", "in_progress"], []),
        (["--status", "failed,completed"], ["failed", "completed"]),
        (["-s", "cancelled", "-s", "retrying"], ["cancelled", "retrying"]),
        (["--operation", "flaky"], ["failed", "retrying"]),
        (["--operation", "process", "--status", "pending"], ["pending"]),
        (["--error", "code 1"], ["failed", "retrying"]),
        (["--error", "no such error"], []),
        (["--since", "1h"], ["completed", "failed", "retrying", "pending", "cancelled"]),
        (["--since", "0s"], []),
        (["--limit", "2"], ["cancelled", "pending"]),
    ],
)
def test_list_filters(cli: Cli, mixed: Mixed, options: list[str], expected: list[str]) -> None:
    rows = cli.json("list", *options)
    assert sorted(ids(rows), reverse=True) == ids(rows)
    assert sorted(ids(rows)) == sorted(getattr(mixed, name) for name in expected)


def test_list_says_on_stderr_when_it_stopped_at_its_limit(cli: Cli, mixed: Mixed) -> None:
    """Five items: a listing cut short says how many match, one that shows all says nothing."""
    for args in (["list", "--limit", "2"], ["list", "--limit", "2", "--json"]):
        result = cli.ok(*args)
        assert result.stderr == "docq: showing 2 of 5: --limit N or --all for more\n", args
    result = cli.ok("list", "--limit", "2", "--status", "failed,completed")  # the filter's count
    assert result.stderr == "", result.stderr
    result = cli.ok("list", "--limit", "1", "--status", "failed,completed")
    assert result.stderr == "docq: showing 1 of 2: --limit N or --all for more\n"
    for args in (["list", "--limit", "5"], ["list", "--all", "--limit", "1"], ["list"]):
        assert cli.ok(*args).stderr == "", args
    assert ids(cli.json("list", "--all", "--limit", "1")) == [5, 4, 3, 2, 1]


def test_list_table_off_a_terminal(cli: Cli, mixed: Mixed) -> None:
    result = cli.ok("list")
    lines = result.stdout.splitlines()
    assert lines[0].split("\t") == [
        "Item",
        "Doc",
        "Operation",
        "Status",
        "Try",
        "Queued",
        "Path",
        "Last error",
    ]
    statuses = {int(line.split("\t")[0]): line.split("\t")[3] for line in lines[1:]}
    assert statuses[mixed.retrying] == "retrying"
    assert statuses[mixed.failed] == "failed"
    assert "\x1b[" not in result.stdout


def test_list_of_an_empty_queue(cli: Cli) -> None:
    assert cli.json("list") == []
    assert cli.ok("list").stdout.strip() == "No matching items."


def test_list_unknown_status_is_a_usage_error(no_queue: Path) -> None:
    assert_error(Cli(str(no_queue))("list", "--status", "done"), USAGE, "done")
    assert_error(Cli(str(no_queue))("list", "--status", "pending,done"), USAGE, "done")
    assert not no_queue.exists()


# --- retry -----------------------------------------------------------------------------------


def test_retry_item_gets_a_fresh_budget_and_keeps_its_history(cli: Cli, mixed: Mixed) -> None:
    changes = cli.json("retry", str(mixed.failed))
    assert changes["dry_run"] is False
    assert [(c["item_id"], c["action"]) for c in changes["changes"]] == [(mixed.failed, "retried")]
    item = cli.item(mixed.failed)
    assert (item["status"], item["attempts"]) == ("pending", 0)
    assert len(item["history"]) == 1 and item["history"][0]["outcome"] == "failed"
    assert item["document"]["status"] == "pending"
    assert cli.json("stats")["failed"] == 0


def test_retry_all_failed(cli: Cli, mixed: Mixed) -> None:
    changes = cli.json("retry", "--all-failed")["changes"]
    assert [c["item_id"] for c in changes] == [mixed.failed]
    assert cli.json("list", "--status", "failed") == []


def test_retry_by_error_text(cli: Cli, mixed: Mixed) -> None:
    before = cli.snapshot()
    assert cli.json("retry", "--error", "no such error")["changes"] == []
    assert cli.ok("retry", "--error", "no such error").stdout.strip().startswith("Nothing to do")
    assert cli.snapshot() == before
    changes = cli.json("retry", "--error", "code 1")["changes"]  # the retrying item is not failed
    assert [c["item_id"] for c in changes] == [mixed.failed]


def test_retry_dry_run_changes_nothing(cli: Cli, mixed: Mixed) -> None:
    before = cli.snapshot()
    changes = cli.json("retry", "--all-failed", "--dry-run")
    assert changes["dry_run"] is True
    assert [(c["item_id"], c["action"]) for c in changes["changes"]] == [(mixed.failed, "retried")]
    result = cli.ok("retry", str(mixed.failed), "--dry-run")
    assert "would be retried" in result.stdout and "dry run" in result.stderr
    assert cli.snapshot() == before


def test_retry_does_not_queue_a_document_twice(cli: Cli, make_file: Callable[..., Path]) -> None:
    a = make_file("a.txt")
    first = cli.json("enqueue", "-o", "flaky", "--max-attempts", "1", str(a))["queued"][0]
    cli.ok("work", "-o", "flaky", "--", *FAILING_COMMAND, code=PARTIAL)
    again = cli.json("enqueue", "-o", "flaky", "--force", str(a))  # a failed document goes in again
    assert [q["document_id"] for q in again["queued"]] == [first["document_id"]]
    result = cli("retry", str(first["item_id"]))
    assert "Traceback" not in result.output
    active = [row for row in cli.json("list", "--status", "pending,in_progress") if row["path"] == str(a)]
    assert len(active) == 1, active


def test_retry_puts_a_cancelled_item_back(cli: Cli, mixed: Mixed) -> None:
    """A cancelled item is retried by its id, as `docq top`'s r does (not by --all-failed)."""
    assert cli.json("retry", "--all-failed", "--dry-run")["changes"][0]["item_id"] == mixed.failed
    [change] = cli.json("retry", str(mixed.cancelled))["changes"]
    assert (change["item_id"], change["action"]) == (mixed.cancelled, "retried")
    item = cli.item(mixed.cancelled)
    assert (item["status"], item["attempts"], item["finished_at"]) == ("pending", 0, None)


@pytest.mark.parametrize("status", ["completed", "pending", "retrying"])
def test_retry_an_item_that_did_not_fail_changes_nothing(cli: Cli, mixed: Mixed, status: str) -> None:
    before = cli.snapshot()
    other = getattr(mixed, status)
    assert_error(cli("retry", str(mixed.failed), str(other)), USAGE, str(other))
    assert cli.snapshot() == before


def test_retry_unknown_item_is_not_found(cli: Cli, mixed: Mixed) -> None:
    before = cli.snapshot()
    assert_error(cli("retry", str(mixed.failed), "999"), NOT_FOUND, "999")
    assert cli.snapshot() == before


def test_retry_without_items_is_a_usage_error(cli: Cli, mixed: Mixed) -> None:
    assert_error(cli("retry"), USAGE)


# --- cancel ----------------------------------------------------------------------------------


def test_cancel_pending_item_of_a_new_document(cli: Cli, make_file: Callable[..., Path]) -> None:
    a = make_file("a.txt")
    item_id = cli.json("enqueue", str(a))["queued"][0]["item_id"]
    changes = cli.json("cancel", str(item_id))
    assert [(c["item_id"], c["path"], c["action"]) for c in changes["changes"]] == [
        (item_id, str(a), "cancelled")
    ]
    item = cli.item(item_id)
    assert item["status"] == "cancelled"
    parse_utc(item["finished_at"])
    assert cli.json("stats")["cancelled"] == 1
    assert cli.json("work")["processed"] == 0


def test_cancel_puts_the_document_back_to_its_previous_state(
    cli: Cli, make_file: Callable[..., Path]
) -> None:
    a = make_file("a.txt")
    cli.ok("enqueue", str(a))
    cli.ok("work")
    item_id = cli.json("reprocess", str(a))["changes"][0]["item_id"]
    assert cli.document(a)["status"] == "pending"
    cli.ok("cancel", str(item_id))
    assert cli.document(a)["status"] == "processed"


def test_cancel_dry_run_changes_nothing(cli: Cli, mixed: Mixed) -> None:
    before = cli.snapshot()
    changes = cli.json("cancel", "--dry-run", str(mixed.pending), str(mixed.retrying))
    assert changes["dry_run"] is True
    assert sorted(c["item_id"] for c in changes["changes"]) == sorted([mixed.pending, mixed.retrying])
    assert cli.snapshot() == before


def test_cancel_unknown_item_is_not_found(cli: Cli, mixed: Mixed) -> None:
    before = cli.snapshot()
    assert_error(cli("cancel", str(mixed.pending), "999"), NOT_FOUND, "999")
    assert cli.snapshot() == before


@pytest.mark.parametrize("status", ["completed", "failed", "cancelled"])
def test_cancel_a_finished_item_is_a_usage_error(cli: Cli, mixed: Mixed, status: str) -> None:
    before = cli.snapshot()
    assert_error(cli("cancel", str(mixed.pending), str(getattr(mixed, status))), USAGE, status)
    assert cli.snapshot() == before


# --- purge -----------------------------------------------------------------------------------


def test_purge_dry_run_changes_nothing(cli: Cli, mixed: Mixed) -> None:
    before = cli.snapshot()
    plan = cli.json("purge", "--older-than", "0s", "--dry-run")
    assert plan == {"dry_run": True, "items": 3, "attempts": 2, "documents": 3}
    assert "Would delete 3 items" in cli.ok("purge", "--older-than", "0s", "--dry-run").stdout
    assert cli.snapshot() == before


def test_purge_needs_yes_off_a_terminal(cli: Cli, mixed: Mixed) -> None:
    before = cli.snapshot()
    result = cli("purge", "--older-than", "0s")
    assert_error(result, USAGE, "--yes", diagnostics=1)
    assert result.stderr.startswith("docq: Would delete 3 items")  # what --yes would do
    assert cli.snapshot() == before


def test_purge_with_yes_deletes_finished_items(cli: Cli, mixed: Mixed) -> None:
    removed = cli.json("purge", "--older-than", "0s", "--yes")
    assert removed == {"dry_run": False, "items": 3, "attempts": 2, "documents": 3}
    assert sorted(ids(cli.json("list"))) == sorted([mixed.retrying, mixed.pending])
    stats = cli.json("stats")
    assert (stats["completed"], stats["failed"], stats["cancelled"], stats["total"]) == (0, 0, 0, 2)
    nothing = cli.json("purge", "--older-than", "0s", "--yes")
    assert (nothing["items"], nothing["attempts"], nothing["documents"]) == (0, 0, 0)


def test_purge_only_old_items_and_given_statuses(cli: Cli, mixed: Mixed) -> None:
    before = cli.snapshot()
    assert cli.ok("purge", "--older-than", "1d", "--yes").stdout.strip() == "Nothing to purge."
    assert cli.snapshot() == before
    removed = cli.json("purge", "--older-than", "0s", "--status", "completed", "--yes")
    assert removed["items"] == 1
    assert mixed.completed not in ids(cli.json("list"))
    assert len(cli.json("list")) == 4


@pytest.mark.parametrize("duration", ["abc", "-1d", "7 days", ""])
def test_purge_invalid_duration_is_a_usage_error(cli: Cli, mixed: Mixed, duration: str) -> None:
    before = cli.snapshot()
    assert_error(cli("purge", "--older-than", duration, "--yes"), USAGE, "--older-than")
    assert cli.snapshot() == before


def test_purge_a_document_with_an_awkward_path(cli: Cli, tmp_path: Path) -> None:
    real = tmp_path / "sub dir" / "naïve\nnäme ü.txt"
    real.parent.mkdir()
    (tmp_path / "other").mkdir()
    real.write_text("awkward\n", encoding="utf-8")
    given = str(tmp_path / "other" / ".." / "sub dir" / "naïve\nnäme ü.txt")
    report = cli.json("enqueue", given)
    assert [q["path"] for q in report["queued"]] == [str(real)]
    cli.ok("work")
    assert cli.document(given)["status"] == "processed"
    assert cli.json("list")[0]["path"] == str(real)
    removed = cli.json("purge", "--older-than", "0s", "--yes")
    assert (removed["items"], removed["documents"]) == (1, 1)
    assert cli.json("list") == []
    assert cli("show", given).exit_code != OK
    assert real.read_text(encoding="utf-8") == "awkward\n"  # the file itself is left alone


# --- bad input everywhere --------------------------------------------------------------------

USAGE_ERRORS_FROM_CLICK = [
    ["--synchronous", "weird", "stats"],
    ["--lock-timeout", "abc", "stats"],
    ["work", "--lease", "abc"],
    ["work", "--timeout", "soon"],
    ["work", "--memory-limit", "lots"],
    ["work", "--max-size", "1X"],
    ["work", "--max-items", "0"],
    ["work", "--concurrency", "0"],
    ["work", "--grace", "-5s"],
    ["list", "--limit", "0"],
    ["list", "--since", "yesterday"],
    ["list", "--bogus"],
    ["enqueue", "--priority", "high", "x"],
    ["enqueue", "--max-attempts", "0", "x"],
    ["show", "--item", "abc"],
    ["retry", "abc"],
    ["cancel"],
    ["cancel", "one"],
    ["purge"],
    ["stats", "--interval", "x"],
    ["no-such-command"],
]

USAGE_ERRORS_FROM_DOCQ = [
    ["enqueue"],
    ["enqueue", "-o", "bad name!", "x"],
    ["reprocess", "-o", "bad name!", "1"],
    ["work", "--timeout", "0"],
    ["work", "--lease", "0s"],
    ["work", "--permanent-exit-codes", "75"],
    ["work", "--permanent-exit-codes", "two"],
    ["work", "--operation", "process", "--", "echo", "{path}"],
    ["purge", "--older-than", "1d", "--status", "pending", "--yes"],
    ["list", "--status", "bogus"],
    ["show"],
]


@pytest.mark.parametrize(
    "args",
    [*USAGE_ERRORS_FROM_CLICK, *USAGE_ERRORS_FROM_DOCQ],
    ids=lambda args: " ".join(args),
)
def test_usage_errors_are_one_line_and_change_nothing(cli: Cli, mixed: Mixed, args: list[str]) -> None:
    before = cli.snapshot()
    assert_error(cli(*args), USAGE)
    assert cli.snapshot() == before


def test_invalid_duration_in_an_environment_variable(cli: Cli, mixed: Mixed) -> None:
    before = cli.snapshot()
    line = assert_error(cli("work", env={"DOCQ_LEASE": "abc"}), USAGE, "DOCQ_LEASE", "abc")
    assert "--lease" in line
    assert cli.snapshot() == before


@pytest.fixture
def hold_write_lock(db_path: str, cli: Cli) -> Iterator[None]:
    """Another process's write transaction on the queue, held for the test."""
    cli.ok("stats")  # create the queue
    connection = sqlite3.connect(db_path, isolation_level=None)
    connection.execute("BEGIN IMMEDIATE")
    yield
    connection.execute("ROLLBACK")
    connection.close()


@pytest.mark.parametrize("args", [["enqueue", "{file}"], ["cancel", "1"], ["work"]])
def test_busy_database_exits_6(
    cli: Cli, make_file: Callable[..., Path], args: list[str], hold_write_lock: None
) -> None:
    path = str(make_file("a.txt"))
    result = cli("--lock-timeout", "0.3s", *(arg.format(file=path) for arg in args))
    assert_error(result, BUSY, "busy")


def test_database_in_a_missing_directory(tmp_path: Path) -> None:
    """The error names the missing folder, and does not send the user to an enqueue that
    would fail the same way."""
    target = tmp_path / "missing" / "queue.db"
    for args in (["stats"], ["list"], ["enqueue", str(tmp_path)]):
        result = Cli(str(target))(*args)
        assert_error(result, DATABASE, f"{target.parent} does not exist")
        assert "docq enqueue" not in result.stderr, result.stderr
    assert not target.parent.exists()


def _same_directory(path: Path) -> dict[str, bytes]:
    return {entry.name: entry.read_bytes() for entry in path.parent.iterdir() if entry.is_file()}


@pytest.mark.parametrize(
    "args", [["stats"], ["list"], ["enqueue", "{file}"], ["work"], ["purge", "--older-than", "0s", "--yes"]]
)
def test_file_of_random_bytes_is_not_a_queue(
    tmp_path: Path, make_file: Callable[..., Path], args: list[str]
) -> None:
    path = str(make_file("a.txt"))
    target = tmp_path / "db" / "random.db"
    target.parent.mkdir()
    target.write_bytes(os.urandom(8192))
    before = _same_directory(target)
    result = Cli(str(target))(*(arg.format(file=path) for arg in args))
    assert_error(result, DATABASE, str(target))
    assert _same_directory(target) == before


@pytest.mark.parametrize("args", [["stats"], ["enqueue", "{file}"], ["work"]])
def test_another_programs_sqlite_file_is_left_alone(
    tmp_path: Path, make_file: Callable[..., Path], args: list[str]
) -> None:
    path = str(make_file("a.txt"))
    target = tmp_path / "db" / "other.db"
    target.parent.mkdir()
    with sqlite3.connect(target) as connection:
        connection.execute("CREATE TABLE contacts (name TEXT, phone TEXT)")
        connection.execute("INSERT INTO contacts VALUES ('Ada', '555')")
    connection.close()
    before = _same_directory(target)
    result = Cli(str(target))(*(arg.format(file=path) for arg in args))
    assert_error(result, DATABASE, str(target))
    assert _same_directory(target) == before


@pytest.mark.parametrize("url", ["mysql://user@localhost/docq", "redis://localhost/0", "ftp://x/y"])
def test_unsupported_database_url(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert_error(Cli(url)("stats"), DATABASE)
    assert list(tmp_path.iterdir()) == []


def test_database_from_the_environment(tmp_path: Path) -> None:
    target = tmp_path / "missing" / "env.db"
    result = runner.invoke(app, ["stats"], env={"DOCQ_DB": str(target)})
    assert_error(result, DATABASE, str(target.parent))


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    target = str(tmp_path / "missing" / "queue.db")
    result = runner.invoke(app, ["--debug", "--db", target, "stats"])
    # With --debug the traceback is printed, and the exit code is the error's all the same.
    assert result.exit_code == DATABASE, describe(result)
    assert "Traceback (most recent call last)" in result.stderr and "DatabaseError" in result.stderr
    assert_error(runner.invoke(app, ["--db", target, "stats"]), DATABASE)


def test_commands_that_read_never_create_a_queue(tmp_path: Path) -> None:
    """A mistyped --db is an error, not a new empty database; enqueue creates the queue."""
    db = tmp_path / "typo.db"
    for args in (["stats"], ["list"], ["show", "1"], ["export"], ["workers"], ["retry", "--all-failed"]):
        result = runner.invoke(app, ["--db", str(db), *args])
        assert_error(result, DATABASE, "no docq queue", "docq enqueue")
        assert not db.exists(), args
    document = tmp_path / "a.txt"
    document.write_text("a\n")
    assert runner.invoke(app, ["--db", str(db), "enqueue", str(document)]).exit_code == OK
    assert db.exists()


def test_a_retry_max_delay_shorter_than_the_delay_is_refused(cli: Cli) -> None:
    result = cli("work", "--retry-delay", "10s", "--retry-max-delay", "1s")
    assert_error(result, USAGE, "retry max delay")


def test_a_postgresql_database_that_does_not_exist_fails_at_once(tmp_path: Path) -> None:
    """A wrong database name is not a server that is restarting: no waiting out the lock
    budget, just the server's reason."""
    base = os.environ.get("DOCQ_TEST_PG_URL") or PG_URL
    if not base:
        pytest.skip("DOCQ_TEST_PG_URL is not set: PostgreSQL tests need a server (see .ci/run)")
    url = base.rsplit("/", 1)[0] + "/docq_no_such_database"
    result = runner.invoke(app, ["--db", url, "--lock-timeout", "10m", "stats"])
    line = assert_error(result, DATABASE, "does not exist")
    assert "cannot reach" not in line


@pytest.fixture
def corrupt_queue(tmp_path: Path) -> str:
    """A queue whose pages after the first (the schema's) were overwritten."""
    path = tmp_path / "queue.db"
    cli = Cli(str(path))
    for n in range(40):
        (tmp_path / f"d{n}.txt").write_text(f"document {n} " * 50, encoding="utf-8")
    cli.ok("enqueue", *(str(tmp_path / f"d{n}.txt") for n in range(40)))
    cli.ok("work")
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    data = bytearray(path.read_bytes())
    for offset in range(page_size, len(data), 97):
        data[offset] = (data[offset] + 101) % 256
    path.write_bytes(bytes(data))
    return str(path)


@pytest.mark.parametrize(
    "args",
    [["stats"], ["list"], ["show", "1"], ["export"], ["workers"], ["work"], ["retry", "--all-failed"]],
)
def test_every_command_on_a_corrupt_queue_exits_5_in_one_line(corrupt_queue: str, args: list[str]) -> None:
    result = Cli(corrupt_queue)(*args)
    assert result.exit_code == DATABASE, describe(result)
    line = result.stderr.strip()
    assert "\n" not in line and "internal error" not in line, line
    assert f"{corrupt_queue} is corrupt" in line and ".recover" in line and "docq copy" in line, line


def test_doctor_on_a_corrupt_queue_names_the_failed_check(corrupt_queue: str) -> None:
    result = Cli(corrupt_queue)("doctor", "--json")
    assert result.exit_code == 1, describe(result)
    failed = {check["check"] for check in json.loads(result.stdout) if check["level"] == "fail"}
    assert "integrity" in failed


def test_a_stopped_enqueue_keeps_its_finished_batches_and_says_how_many(tmp_path: Path) -> None:
    """SIGTERM in the middle of a large enqueue: the batches before it are queued (each batch
    is one transaction), the command says how many and that running it again queues the
    rest; running it again does."""
    import signal as signals
    import subprocess
    import time

    from conftest import docq_command, docq_env

    folder = tmp_path / "many"
    folder.mkdir()
    total = 48_000  # more than two batches of 20,000
    for n in range(total):
        (folder / f"{n:05}.txt").write_bytes(b"x")
    db = str(tmp_path / "queue.db")
    process = subprocess.Popen(
        [*docq_command(), "enqueue", "-r", str(folder)],
        env=docq_env(db),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    queued = 0
    while time.monotonic() < deadline and process.poll() is None:
        try:
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.1)
            queued = conn.execute("SELECT count(*) FROM queue_items").fetchone()[0]
            conn.close()
        except sqlite3.Error:
            queued = 0
        if queued >= 20_000:
            process.send_signal(signals.SIGTERM)
            break
        time.sleep(0.02)
    _stdout, stderr = process.communicate(timeout=120)
    if queued < 20_000:
        pytest.skip("the enqueue finished before the test could stop it (a very fast machine)")
    assert process.returncode == 128 + signals.SIGTERM, stderr
    conn = sqlite3.connect(db)
    stored = conn.execute("SELECT count(*) FROM queue_items").fetchone()[0]
    conn.close()
    assert stored % 20_000 == 0 and 0 < stored < total  # whole batches only
    assert f"stopped by SIGTERM after queuing {stored} documents" in stderr
    assert "run the same command again" in stderr and "Traceback" not in stderr
    again = subprocess.run(
        [*docq_command(), "enqueue", "-r", "--json", str(folder)],
        env=docq_env(db),
        capture_output=True,
        text=True,
    )
    report = json.loads(again.stdout)
    assert (len(report["queued"]), len(report["skipped"])) == (total - stored, stored)


def test_stats_says_a_retry_whose_time_has_come_is_due_now(cli: Cli, mixed: Mixed) -> None:
    """Not "(2m 35s ago)", which reads as overdue: it waits for the next docq work."""
    import sqlite3
    import time

    with sqlite3.connect(cli.db) as conn:
        conn.execute(
            "UPDATE queue_items SET next_run_at = ? WHERE id = ?", (time.time() - 155, mixed.retrying)
        )
    conn.close()
    code, screen = run_in_terminal(["--db", cli.db, "stats"], docq_env(cli.db, COLUMNS="120", LINES="40"))
    assert code == 0, screen
    [line] = [line for line in screen.splitlines() if "next retry due" in line]
    assert "now (for 2m 3" in line and "the next `docq work` runs it" in line, line
    assert "ago" not in line
    # off a terminal, a time and nothing relative, which would go stale in a file
    [line] = [line for line in cli.ok("stats").stdout.splitlines() if "next retry due" in line]
    assert re.fullmatch(r"next retry due\t\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line), line


def test_times_are_iso_8601_utc_off_a_terminal_and_relative_on_one(
    cli: Cli, make_file: Callable[..., Path]
) -> None:
    """Piped listings carry times that stay true in a file and sort as text."""
    cli.ok("enqueue", str(make_file("a.txt")))
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
    header, row = cli.ok("list").stdout.splitlines()
    queued = row.split("\t")[header.split("\t").index("Queued")]
    assert re.fullmatch(stamp, queued), row
    [oldest] = [line for line in cli.ok("stats").stdout.splitlines() if line.startswith("oldest pending")]
    assert re.fullmatch(rf"oldest pending item\t{stamp}", oldest), oldest
    env = docq_env(cli.db, COLUMNS="160", LINES="40")
    for command, fragment in (("list", " ago "), ("stats", " old")):
        code, screen = run_in_terminal(["--db", cli.db, command], env)
        assert code == 0, screen
        assert fragment in screen and not re.search(stamp, screen), screen


def test_long_paths_lose_their_start_on_a_terminal_not_their_name(cli: Cli, tmp_path: Path) -> None:
    """A path too long for its column is shortened from the left on one line
    (``…ber-1.txt``), never folded mid-name over several; piped, it is written whole."""
    folder = tmp_path / "a-rather-long-folder-name" / "with" / "several" / "levels" / "of" / "nesting"
    folder.mkdir(parents=True)
    for number in (1, 2):
        (folder / f"quarterly-report-number-{number}.txt").write_text(f"report {number}\n", encoding="utf-8")
    cli.ok("enqueue", "-r", str(tmp_path / "a-rather-long-folder-name"))
    code, screen = run_in_terminal(
        ["--db", cli.db, "list"], docq_env(cli.db, COLUMNS="80", LINES="30", NO_COLOR="1")
    )
    assert code == 0, screen
    rows = [line for line in screen.splitlines() if "pending" in line]
    assert len(rows) == 2, screen  # one line each: nothing folded onto a second line
    for number, row in zip((2, 1), rows, strict=True):
        assert len(row) <= 80, row
        cell = row.split("│")[6].strip()
        assert cell.startswith("…") and f"quarterly-report-number-{number}.txt".endswith(cell[1:]), row
    piped = cli.ok("list").stdout
    assert str(folder / "quarterly-report-number-1.txt") in piped.splitlines()[-1].split("\t")


def test_a_wide_path_keeps_its_name_within_its_cells() -> None:
    """CJK characters take two terminal cells: shortening counts cells, not characters."""
    from rich.cells import cell_len

    from docq.render.output import left_truncated

    path = "/tmp/日本語のディレクトリ名前/請求書の長いファイル名です.txt"
    for width in (12, 20, 30, 45):
        shown = left_truncated(path, width)
        assert cell_len(shown) <= width and shown.startswith("…") and shown.endswith(".txt"), shown
        assert path.endswith(shown[1:])
    assert left_truncated(path, 200) == path
    assert left_truncated("/a/b.txt", 8) == "/a/b.txt"


@pytest.mark.parametrize(
    "args",
    [
        ["show", "99999999999999999999999"],
        ["show", "--item", "99999999999999999999999"],
        ["retry", "99999999999999999999999"],
        ["cancel", "99999999999999999999999"],
        ["reprocess", "99999999999999999999999"],
        ["show", "²"],  # a digit to str.isdigit, not to int()
    ],
)
def test_numbers_no_queue_can_hold_are_not_found_not_internal_errors(
    cli: Cli, notes: tuple[Path, int], args: list[str]
) -> None:
    before = cli.snapshot()
    assert_error(cli(*args), NOT_FOUND)
    assert cli.snapshot() == before


def test_a_limit_larger_than_any_queue_lists_everything(cli: Cli, notes: tuple[Path, int]) -> None:
    rows = cli.json("list", "--limit", "99999999999999999999999")
    assert len(rows) == 1


def test_stats_json_of_an_empty_queue_has_the_default_operation_with_zeros(cli: Cli) -> None:
    assert cli.json("stats")["by_operation"] == {"process": zeros()}
