"""Every command's ``--json`` output against the README's JSON reference.

One queue is driven through every state a script may meet (queued, skipped, rejected,
completed, failed, retrying, cancelled, leased, a custom operation's output, stopped
workers), and each command's output on it is checked against the shape the README
documents for that command: every documented key present, no undocumented one, each
value of the documented type, times in ISO 8601 UTC. ``bench --json`` is checked in
tests/test_bench.py, where the bench runs anyway.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from clirunner import OK, PARTIAL, Cli, json_lines
from jsonref import check, problems, shape_of

from docq.config import Settings
from docq.db import Database
from docq.queue import DocumentQueueService

pytestmark = pytest.mark.usefixtures("plain_environment")

PRINT_COMMAND = (sys.executable, "-c", "import sys; print('converted', sys.argv[1])", "{name}")


@pytest.fixture
def queue(tmp_path: Path, sample_docs: Path) -> tuple[Cli, dict[str, Path]]:
    files = {}
    for name in ("a.txt", "b.txt", "c.txt", "d.txt"):
        files[name] = tmp_path / "files" / name
        files[name].parent.mkdir(parents=True, exist_ok=True)
        files[name].write_text(f"the content of {name}\n", encoding="utf-8")
    files["broken.pdf"] = tmp_path / "files" / "broken.pdf"
    shutil.copy(sample_docs / "broken.pdf", files["broken.pdf"])
    return Cli(str(tmp_path / "q.db")), files


def run_json(cli: Cli, command: str, *args: str, code: int = OK) -> Any:
    """``docq ARGS --json``, checked against the README's block for ``command``."""
    value = cli.json(*args, code=code)
    check(command, value)
    return value


def test_every_json_output_matches_the_readme(queue: tuple[Cli, dict[str, Path]], tmp_path: Path) -> None:
    cli, files = queue
    a, b, c, d, broken = (str(files[n]) for n in ("a.txt", "b.txt", "c.txt", "d.txt", "broken.pdf"))

    report = run_json(
        cli, "docq enqueue --json", "enqueue", a, b, broken, str(tmp_path / "missing"), code=PARTIAL
    )
    assert len(report["queued"]) == 3 and len(report["rejected"]) == 1
    report = run_json(cli, "docq enqueue --json", "enqueue", a)
    assert report["skipped"][0]["reason"] == "already queued"

    summary = run_json(cli, "docq work --json", "work", code=PARTIAL)
    assert summary["completed"] == 2 and summary["failed"] == 1
    run_json(cli, "docq enqueue --json", "enqueue", c, "-o", "convert")
    run_json(cli, "docq work --json", "work", "-o", "convert", "--", *PRINT_COMMAND)

    reprocessed = run_json(cli, "docq reprocess --json", "reprocess", a)
    [failed] = [row for row in cli.json("list") if row["status"] == "failed"]
    run_json(cli, "docq retry --json", "retry", "--dry-run", str(failed["id"]))
    run_json(cli, "docq retry --json", "retry", str(failed["id"]))
    run_json(cli, "docq cancel --json", "cancel", str(reprocessed["changes"][0]["item_id"]))
    run_json(cli, "docq reprocess --json", "reprocess", "--failed", "--dry-run")

    # an item leased by a worker that is still at it (through the library's seed API)
    run_json(cli, "docq enqueue --json", "enqueue", d, "--priority", "9")
    service = DocumentQueueService(Database(cli.db), settings=Settings(db=cli.db))
    try:
        [item] = service.get_pending_items(limit=1)
        assert service.mark_in_progress(item, lease_seconds=600)
    finally:
        service.close()

    stats = run_json(cli, "docq stats --json", "stats")
    assert stats["in_progress_items"] and set(stats["by_operation"]) == {"process", "reprocess", "convert"}
    assert stats["by_operation"]["convert"]["pending"] == 0  # zeros are there, not left out
    items = run_json(cli, "docq list --json", "list", "--all")
    assert {row["status"] for row in items} == {"completed", "pending", "in_progress", "cancelled"}
    run_json(cli, "docq workers --json", "workers", "--all")
    for ref in (a, b, c, d, broken):
        run_json(cli, "docq show DOC --json", "show", ref)
    for row in items:
        shown = run_json(cli, "docq show --item ID --json", "show", "--item", str(row["id"]))
        assert shown["document"]["id"] == row["document_id"]
    assert any(cli.item(row["id"])["output"] for row in items), "no item with command output was checked"
    lines = json_lines(cli.ok("export").stdout)
    assert len(lines) == 5
    for line in lines:
        check("docq export", line)

    run_json(cli, "docq doctor --json", "doctor", code=cli("doctor").exit_code)
    run_json(cli, "docq migrate --json", "migrate", "--dry-run")
    run_json(cli, "docq copy --json", "copy", "--to", str(tmp_path / "copy.db"))
    run_json(cli, "docq purge --json", "purge", "--older-than", "0s", "--dry-run")
    run_json(cli, "docq purge --json", "purge", "--older-than", "0s", "--yes")


def test_the_readme_documents_every_command_with_json() -> None:
    """A command gaining --json gains a block in the README (or this test fails)."""
    from jsonref import shapes
    from typer.main import get_command

    from docq.cli import app

    group: Any = get_command(app)
    with_json = {
        name for name, command in group.commands.items() if any(p.name == "as_json" for p in command.params)
    }
    documented = {title.split()[1] for title in shapes()}
    assert with_json - {"top"} <= documented, sorted(with_json - documented)


@pytest.mark.parametrize(
    ("value", "shape", "expected"),
    [
        ({"a": 1}, {"a": "int"}, []),
        ({"a": 1.5}, {"a": "int"}, ["$.a: 1.5 is not int"]),
        ({"a": True}, {"a": "int"}, ["$.a: True is not int"]),
        ({}, {"a": "int|null"}, ["$: missing key 'a'"]),
        ({"a": None, "b": 2}, {"a": "int|null"}, ["$: undocumented key 'b'"]),
        ({"t": "2026-12-02T16:29:47.257Z"}, {"t": "time"}, []),
        ({"t": "2026-12-02 16:29:47"}, {"t": "time"}, ["$.t: '2026-12-02 16:29:47' is not time"]),
        ([{"s": "pass"}, {"s": "oops"}], [{"s": "pass|warn|fail"}], ["$[1].s: 'oops' is not pass|warn|fail"]),
        ({"o": None}, {"o": {"or null": {"x": "str"}}}, []),
        ({"o": {"x": 1}}, {"o": {"or null": {"x": "str"}}}, ["$.o.x: 1 is not str"]),
        ({"any": {"k": 1}}, {"any": {"<name>": "int"}}, []),
        ({"any": {"k": "v"}}, {"any": {"<name>": "int"}}, ["$.any.k: 'v' is not int"]),
    ],
)
def test_the_shape_checker_catches_what_it_should(value: Any, shape: Any, expected: list[str]) -> None:
    """The checker itself: a test against a checker that passes everything proves nothing."""
    assert problems(value, shape) == expected


def test_the_old_stats_shape_would_fail() -> None:
    """``by_operation`` without a zero count was the defect: the checker names it."""
    shape = shape_of("docq stats --json")["by_operation"]
    assert problems({"process": {"pending": 1, "completed": 1}}, shape) == [
        "$.process: missing key 'in_progress'",
        "$.process: missing key 'failed'",
        "$.process: missing key 'cancelled'",
    ]
