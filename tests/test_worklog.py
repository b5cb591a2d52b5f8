"""``docq work`` off a terminal, as cron and systemd run it: timestamped lines framed by a
start and a stop line, JSON lines for log shippers, quiet and verbose, and silence when
nothing is due. Each run is the installed program with its output in files."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from conftest import docq_command, docq_env, run_docq

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ")
ITEM_KEYS = {"ts", "level", "event", "message", "item", "document", "path", "outcome", "duration_ms", "error"}


def queue_two(db: str, tmp_path: Path) -> None:
    """A text file that completes and a broken PDF that fails for good."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "good.txt").write_text("hello\n")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 truncated")
    assert run_docq("enqueue", "-r", str(docs), db=db).returncode == 0


def work_into_log(db: str, tmp_path: Path, *args: str) -> tuple[int, str]:
    """``docq work ARGS >> work.log 2>&1``; returns the exit code and the log."""
    log = tmp_path / "work.log"
    with log.open("ab") as sink:
        code = subprocess.call(
            [*docq_command(), "work", *args], env=docq_env(db), stdout=sink, stderr=sink, timeout=120
        )
    return code, log.read_text()


def test_a_log_file_gets_timestamped_lines_between_a_start_and_a_stop_line(
    db_path: str, tmp_path: Path
) -> None:
    queue_two(db_path, tmp_path)

    code, log = work_into_log(db_path, tmp_path)

    assert code == 3  # one item failed
    lines = log.splitlines()
    assert lines and all(STAMP.match(line) for line in lines), log
    first, *items, last = [STAMP.sub("", line) for line in lines]
    assert first.startswith("docq ") and " started: database " + db_path in first, first
    assert "operation process" in first and "concurrency 1" in first and re.search(r"pid \d+", first), first
    assert sorted(line.split(" item ")[0] for line in items) == ["docq: completed", "docq: failed"], items
    assert last == (
        "docq: stopped (nothing more due): Processed 2 items: 1 completed, 1 failed, 0 to retry later."
    ), last  # the summary once: the stop line says it, in the same file as stdout


def test_a_cron_run_with_nothing_due_prints_nothing(db_path: str, tmp_path: Path) -> None:
    queue_two(db_path, tmp_path)
    work_into_log(db_path, tmp_path)
    (tmp_path / "work.log").unlink()

    code, log = work_into_log(db_path, tmp_path)

    assert (code, log) == (0, "")
    separate = run_docq("work", db=db_path)  # stdout and stderr apart: silent too
    assert (separate.returncode, separate.stdout, separate.stderr) == (0, "", "")


def test_json_log_lines_for_log_shippers(db_path: str, tmp_path: Path) -> None:
    queue_two(db_path, tmp_path)

    result = run_docq("work", "--log-format", "json", db=db_path)

    records = [json.loads(line) for line in result.stderr.splitlines()]
    assert [r["event"] for r in records] == ["start", "item", "item", "stop"], records
    items = [r for r in records if r["event"] == "item"]
    assert all(set(r) == ITEM_KEYS for r in items), items
    failed = next(r for r in items if r["outcome"] == "failed")
    assert failed["level"] == "error" and failed["error"].startswith("permanent: corrupt")
    assert failed["path"].endswith("broken.pdf") and isinstance(failed["duration_ms"], int)
    completed = next(r for r in items if r["outcome"] == "completed")
    assert (completed["level"], completed["error"]) == ("info", None)
    assert records[-1]["reason"] == "nothing more due" and records[-1]["items"] == 2
    assert result.stdout.startswith("Processed 2 items")  # stdout is not the log's file here


def test_quiet_logs_errors_only(db_path: str, tmp_path: Path) -> None:
    queue_two(db_path, tmp_path)

    result = run_docq("work", "-q", db=db_path)

    lines = [STAMP.sub("", line) for line in result.stderr.splitlines()]
    assert len(lines) == 1 and lines[0].startswith("docq: failed item"), lines
    assert result.returncode == 3


def test_bad_log_options_are_usage_errors(db_path: str) -> None:
    for args in (["--log-format", "xml"], ["-q", "-v"]):
        result = run_docq("work", *args, db=db_path)
        assert result.returncode == 2 and result.stderr.startswith("docq: error:"), result.stderr
        assert len(result.stderr.splitlines()) == 1
    assert not os.path.exists(db_path)


def test_a_loop_worker_announces_itself_with_the_password_hidden(pg_url: str, tmp_path: Path) -> None:
    url = pg_url.replace("postgresql+psycopg://postgres@", "postgresql+psycopg://postgres:s3cret@")
    assert url != pg_url
    assert run_docq("enqueue", str(tmp_path), db=url).returncode in (0, 3)  # creates the queue
    process = subprocess.Popen(
        [*docq_command(), "work", "--loop", "--log-format", "json"],
        env=docq_env(url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        start = json.loads(process.stderr.readline())
    finally:
        process.terminate()
        process.wait(timeout=60)
    assert start["event"] == "start" and "s3cret" not in start["message"]
    assert "postgres:***@" in start["database"], start


@pytest.mark.parametrize("flag", ["-v", "--verbose"])
def test_verbose_is_accepted(db_path: str, tmp_path: Path, flag: str) -> None:
    queue_two(db_path, tmp_path)
    result = run_docq("work", flag, db=db_path)
    assert result.returncode == 3 and "Traceback" not in result.stderr
    assert all(STAMP.match(line) for line in result.stderr.splitlines()), result.stderr
