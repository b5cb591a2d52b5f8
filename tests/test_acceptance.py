"""docq as the installed program, run as a user or a cron job runs it: every step is a new
process, the queue is a real SQLite file under tmp_path, and output is read as bytes
from pipes (not a terminal), except where a pseudo-terminal is the point."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import docq_command, docq_env, run_docq, run_in_terminal

import docq

ROW = re.compile(r"^\|\s*`(?P<file>[^`]+)`\s*\|(?P<what>[^|]*)\|(?P<outcome>[^|]*)\|\s*$")


def plain_env(db: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of a program whose output goes to pipes: nothing forces colour,
    although the terminal type would allow it."""
    env = docq_env(db)
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "NO_COLOR", "DOCQ_DEBUG"):
        env.pop(name, None)
    env.update(TERM="xterm-256color", COLORTERM="truecolor", **extra)
    return env


def docq_run(*args: str, db: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    """Run docq with its output on pipes. Off a terminal there is never an escape code,
    and never a traceback without --debug: checked on every run of this module."""
    result = run_docq(*args, env=plain_env(db, **extra_env))
    assert "\x1b" not in result.stdout, (args, result.stdout)
    assert "\x1b" not in result.stderr, (args, result.stderr)
    if "--debug" not in args and "DOCQ_DEBUG" not in extra_env:
        assert "Traceback" not in result.stderr, (args, result.stderr)
    return result


def docq_json(*args: str, db: str, code: int = 0) -> Any:
    result = docq_run(*args, "--json", db=db)
    assert result.returncode == code, result.stderr
    return json.loads(result.stdout)


def expected_outcomes(sample_docs: Path) -> dict[str, str]:
    """sample_docs/README.md's table: file name -> its expected outcome."""
    rows = {}
    for line in (sample_docs / "README.md").read_text(encoding="utf-8").splitlines():
        if match := ROW.match(line):
            rows[match["file"]] = match["outcome"].strip()
    assert len(rows) >= 5, "the sample_docs/README.md table was not found"
    return rows


@pytest.fixture
def docs(tmp_path: Path, sample_docs: Path) -> Path:
    """A copy of the sample documents listed in sample_docs/README.md."""
    target = tmp_path / "docs"
    target.mkdir()
    for name in expected_outcomes(sample_docs):
        shutil.copy(sample_docs / name, target / name)
    return target


def test_version() -> None:
    for args in (["--version"], ["--db", "unused.db", "--version"]):
        result = run_docq(*args, env=plain_env())
        assert result.returncode == 0, result.stderr
        assert result.stdout == f"docq {docq.__version__}\n"
        assert re.fullmatch(r"docq \d+\.\d+\.\d+\S*\n", result.stdout)
        assert result.stderr == ""


def test_help() -> None:
    result = run_docq("--help", env=plain_env())
    assert result.returncode == 0, result.stderr
    assert "Usage: docq" in result.stdout
    for name in ("enqueue", "work", "stats", "show", "list", "retry", "cancel", "purge"):
        assert name in result.stdout


def test_quickstart(tmp_path: Path, docs: Path, sample_docs: Path) -> None:
    db = str(tmp_path / "queue.db")
    outcomes = expected_outcomes(sample_docs)
    processed = {name for name, outcome in outcomes.items() if outcome.startswith("processed")}
    failed = {name for name, outcome in outcomes.items() if outcome.startswith("failed")}
    assert processed | failed == set(outcomes) and failed

    enqueued = docq_run("enqueue", "-r", str(docs), db=db)
    assert enqueued.returncode == 0, enqueued.stderr
    assert f"Queued {len(outcomes)} documents" in enqueued.stdout

    stats = docq_json("stats", db=db)  # a new process sees what the last one queued
    assert (stats["pending"], stats["total"], stats["completed"]) == (len(outcomes), len(outcomes), 0)

    worked = docq_run("work", db=db)
    assert worked.returncode == 3, worked.stderr  # broken.pdf fails
    assert f"{len(processed)} completed, {len(failed)} failed" in worked.stdout

    stats = docq_json("stats", db=db)
    assert (stats["pending"], stats["in_progress"]) == (0, 0)
    assert (stats["completed"], stats["failed"], stats["total"]) == (
        len(processed),
        len(failed),
        len(outcomes),
    )

    rows = {Path(row["path"]).name: row for row in docq_json("list", db=db)}
    assert set(rows) == set(outcomes)
    for name in processed:
        assert rows[name]["status"] == "completed", (name, rows[name]["last_error"])
    for name in failed:
        assert rows[name]["status"] == "failed"
        if quoted := re.search(r'\("([^";]+)', outcomes[name]):  # the start of the expected message
            assert quoted.group(1) in rows[name]["last_error"]

    report = docq_json("show", str(docs / "report.pdf"), db=db)
    assert report["status"] == "processed"
    assert report["metadata"]["pages"] == 3
    for key in ("title", "author"):  # as the README gives them
        expected = re.search(rf'{key} "([^"]+)"', outcomes["report.pdf"])
        assert expected and report["metadata"][key] == expected.group(1), key
    assert report["metadata"]["title"] == "Riverside Community Library: Annual Report 2023"
    shown = docq_run("show", str(docs / "report.pdf"), db=db)
    assert shown.returncode == 0
    assert re.search(r"^pages\t3$", shown.stdout, re.M), shown.stdout
    assert re.search(r"^title\tRiverside Community Library: Annual Report 2023$", shown.stdout, re.M)

    # Unchanged documents are skipped, as processed or as failed for good.
    again = docq_json("enqueue", "-r", str(docs), db=db)
    assert again["queued"] == []
    reasons = {Path(entry["path"]).name: entry["reason"] for entry in again["skipped"]}
    assert reasons == {**dict.fromkeys(processed, "unchanged"), **dict.fromkeys(failed, "failed")}


def test_find_print0_pipeline(tmp_path: Path) -> None:
    db = str(tmp_path / "queue.db")
    tree = tmp_path / "tree"
    names = ["plain.txt", "with space.md", "new\nline.txt", "ünïcode.txt", "sub/deeper.txt"]
    for name in names:
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text(f"content of {name}\n", encoding="utf-8")
    if shutil.which("find"):
        listing = subprocess.run(
            ["find", str(tree), "-type", "f", "-print0"], capture_output=True, check=True
        ).stdout
    else:
        listing = b"".join(os.fsencode(tree / name) + b"\0" for name in names)
    assert b"new\nline.txt\0" in listing

    result = subprocess.run(
        [*docq_command(), "enqueue", "-0", "--from", "-", "--json"],
        input=listing,
        env=plain_env(db),
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    expected = {str(tree / name) for name in names}
    assert {entry["path"] for entry in report["queued"]} == expected
    assert report["rejected"] == []
    assert {row["path"] for row in docq_json("list", db=db)} == expected


def test_work_logs_one_line_per_item_on_stderr(tmp_path: Path, docs: Path) -> None:
    db = str(tmp_path / "queue.db")
    chosen = [docs / "notes.md", docs / "page.html", docs / "broken.pdf"]
    assert docq_run("enqueue", *map(str, chosen), db=db).returncode == 0
    worked = docq_run("work", db=db)
    assert worked.returncode == 3
    assert worked.stdout.strip() == "Processed 3 items: 2 completed, 1 failed, 0 to retry later."
    # Off a terminal: timestamped lines, the items' between a start and a stop line.
    stamped = worked.stderr.splitlines()
    assert all(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z docq", line) for line in stamped), stamped
    start, *lines, stop = [line.split(" ", 1)[1] for line in stamped]
    assert start.startswith("docq ") and " started: " in start, start
    assert stop == "docq: stopped (nothing more due): " + worked.stdout.strip(), stop
    assert len(lines) == 3, worked.stderr
    for path in chosen:
        [line] = [line for line in lines if str(path) in line]
        verdict = "failed" if path.name == "broken.pdf" else "completed"
        assert line.startswith(f"docq: {verdict} item "), line
    assert "corrupt" in next(line for line in lines if "broken.pdf" in line)


def test_no_escape_codes_off_a_terminal(tmp_path: Path, docs: Path) -> None:
    # docq_run checks every run for escape codes; these are the outputs the other tests
    # of this module do not produce.
    db = str(tmp_path / "queue.db")
    notes = str(docs / "notes.md")
    commands = [
        (["--help"], 0),
        (["enqueue", "--help"], 0),
        (["enqueue", notes, str(tmp_path / "missing.pdf")], 3),  # a table of rejections on stderr
        (["list"], 0),
        (["show", notes], 0),
        (["reprocess", notes, "--dry-run"], 0),
        (["show", "999"], 4),
        (["list", "--status", "nonsense"], 2),
    ]
    for args, code in commands:
        assert docq_run(*args, db=db).returncode == code, args


def test_errors_are_one_line_and_debug_shows_the_traceback(tmp_path: Path) -> None:
    db = str(tmp_path / "missing" / "queue.db")
    plain = docq_run("stats", db=db)
    assert plain.returncode == 5
    assert plain.stdout == ""
    assert plain.stderr.count("\n") == 1 and plain.stderr.startswith("docq: error: ")
    for debug in (docq_run("--debug", "stats", db=db), docq_run("stats", db=db, DOCQ_DEBUG="1")):
        assert debug.returncode == 5  # the documented code, traceback or not
        assert "Traceback (most recent call last)" in debug.stderr
        assert "DatabaseError" in debug.stderr


# --- colour on a terminal -----------------------------------------------------------------

COLOUR_SGR = re.compile(r"\x1b\[([0-9;]*)m")


def colour_codes(output: str) -> list[str]:
    """The SGR sequences in ``output`` that set a foreground or background colour."""
    found = []
    for match in COLOUR_SGR.finditer(output):
        params = [int(p) for p in match.group(1).split(";") if p]
        if any(30 <= p <= 38 or 40 <= p <= 48 or 90 <= p <= 97 or 100 <= p <= 107 for p in params):
            found.append(match.group(0))
    return found


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs pseudo-terminals")
def test_no_color_is_respected_on_a_terminal(tmp_path: Path, docs: Path) -> None:
    db = str(tmp_path / "queue.db")
    assert docq_run("enqueue", str(docs / "notes.md"), db=db).returncode == 0
    env = plain_env(db, COLUMNS="120", LINES="40")
    code, coloured = run_in_terminal(["stats"], env)
    assert code == 0, coloured
    assert colour_codes(coloured), "no colour on a terminal: this test would prove nothing"
    code, monochrome = run_in_terminal(["stats"], {**env, "NO_COLOR": "1"})
    assert code == 0, monochrome
    assert colour_codes(monochrome) == []
    assert "pending" in monochrome


def test_a_postgresql_url_without_the_driver_names_the_install_command() -> None:
    """Without psycopg, a PostgreSQL URL fails in one line that says what to install."""
    code = (
        "import sys; sys.modules['psycopg'] = None; "
        "sys.argv = ['docq', '--db', 'postgresql+psycopg://nobody@127.0.0.1:1/none', 'stats']; "
        "from docq.__main__ import main; main()"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 5, result.stderr
    assert result.stderr == 'docq: error: PostgreSQL support is not installed: pip install "docq[postgres]"\n'


def test_a_closed_pipe_is_not_an_error(tmp_path: Path) -> None:
    """``docq list | head -1`` exits 0, so `set -o pipefail` scripts do not fail."""
    db = str(tmp_path / "q.db")
    for n in range(200):
        (tmp_path / f"{n}.txt").write_text(f"{n}\n")
    assert run_docq("enqueue", "-r", str(tmp_path), db=db).returncode == 0
    process = subprocess.Popen(
        [*docq_command(), "list", "--limit", "200"],
        env=docq_env(db),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.readline()
    process.stdout.close()
    assert process.wait(60) == 0
    assert process.stderr.read() == b""


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs pseudo-terminals")
def test_work_on_a_terminal_shows_done_out_of_due_the_rate_and_the_time_left(tmp_path: Path) -> None:
    db = str(tmp_path / "queue.db")
    for number in range(8):
        (tmp_path / f"f{number}.txt").write_text(f"document {number}\n", encoding="utf-8")
    files = [str(tmp_path / f"f{number}.txt") for number in range(8)]
    assert docq_run("enqueue", "-o", "slow", *files, db=db).returncode == 0
    env = plain_env(db, COLUMNS="140", LINES="40", NO_COLOR="1")
    code, screen = run_in_terminal(["work", "-o", "slow", "--", "sleep", "0.3"], env)
    assert code == 0, screen
    frames = {frame.strip() for frame in re.split(r"\r|\x1b\[[0-9;]*[A-Za-z]", screen)}
    middle = [f for f in frames if re.search(r"\b[1-7]/8 done · [\d.]+ items/s · about \S+ left · ", f)]
    assert middle, sorted(frames)
    assert any("8/8 done" in frame for frame in frames), sorted(frames)
    assert "Processed 8 items: 8 completed" in screen


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs pseudo-terminals")
def test_the_progress_total_stops_at_max_items(tmp_path: Path) -> None:
    db = str(tmp_path / "queue.db")
    files = []
    for number in range(8):
        files.append(tmp_path / f"f{number}.txt")
        files[-1].write_text(f"document {number}\n", encoding="utf-8")
    assert docq_run("enqueue", "-o", "slow", *map(str, files), db=db).returncode == 0
    env = plain_env(db, COLUMNS="140", LINES="40", NO_COLOR="1")
    code, screen = run_in_terminal(["work", "-o", "slow", "--max-items", "3", "--", "sleep", "0.3"], env)
    assert code == 0, screen
    assert re.search(r"\b[0-3]/3 done", screen) and "/8 done" not in screen, screen


def test_a_progress_line_whose_count_fails_goes_on_without_a_total() -> None:
    """The work left is counted on a connection of its own; if a count fails (a busy
    database), the line drops its total rather than show more done than there is."""
    from docq.render.work import WorkDisplay

    answers = iter([3])
    display = WorkDisplay(enabled=True, due=lambda: next(answers))
    display._due = lambda: next(answers)  # off a terminal a display counts nothing: count anyway
    display._recount()
    assert display.total == 3
    display.done = 5
    display._recount()  # the second count fails
    assert display.total is None and " done" not in display._describe()
