"""``docq top``: the Textual UI driven by key presses (Textual's pilot) over a real SQLite
queue, checked through what it shows and through the queue itself after each action."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from clirunner import USAGE, Cli
from textual.widgets import DataTable, Static

from docq.config import Settings
from docq.db import Database
from docq.queue import DocumentQueueService
from docq.tui.app import TopApp
from docq.tui.screens import Confirm, Detail, detail_renderable
from docq.views import show_item

pytestmark = pytest.mark.usefixtures("plain_environment")


@pytest.fixture
def queue(db_target: str, tmp_path: Path, sample_docs: Path) -> tuple[str, dict[str, int]]:
    """Items 1-2 completed, 3 failed (broken.pdf), 4-5 pending: ids by name (on SQLite,
    and on PostgreSQL where DOCQ_TEST_PG_URL is set)."""
    folder = tmp_path / "files"
    folder.mkdir()
    for name in ("a.txt", "b.txt"):
        (folder / name).write_text(f"the text of {name}\n", encoding="utf-8")
    shutil.copy(sample_docs / "broken.pdf", folder / "broken.pdf")
    cli = Cli(db_target)
    cli.ok("enqueue", *(str(folder / n) for n in ("a.txt", "b.txt", "broken.pdf")))
    cli.ok("work", code=3)
    for name in ("c.txt", "d.txt"):
        (folder / name).write_text(f"the text of {name}\n", encoding="utf-8")
        cli.ok("enqueue", str(folder / name))
    return cli.db, {"a.txt": 1, "b.txt": 2, "broken.pdf": 3, "c.txt": 4, "d.txt": 5}


def drive(db: str, steps: Callable[[TopApp, Any], Awaitable[None]], **options: Any) -> None:
    """Run the app on ``db`` under Textual's pilot, at 80x24 unless ``size`` says otherwise."""
    size = options.pop("size", (80, 24))

    async def main() -> None:
        service = DocumentQueueService(Database(db), settings=Settings(db=db))
        try:
            app = TopApp(service, where=db, **options)
            async with app.run_test(size=size) as pilot:
                await pilot.pause()
                await steps(app, pilot)
        finally:
            service.close()

    asyncio.run(main())


def statuses(db: str) -> dict[int, str]:
    return {row["id"]: row["status"] for row in Cli(db).json("list", "--all")}


def rows(app: TopApp) -> list[list[str]]:
    table = app.query_one("#item-table", DataTable)
    return [[str(cell) for cell in table.get_row_at(index)] for index in range(table.row_count)]


def screen_text(app: TopApp) -> str:
    """What the screen shows, as text (from Textual's SVG screenshot, one line a line)."""
    import html
    import re

    svg = app.export_screenshot()
    lines: dict[str, list[str]] = {}
    for line, text in re.findall(r'clip-path="url\(#terminal-\d+-line-(\d+)\)">([^<]*)</text>', svg):
        lines.setdefault(line, []).append(html.unescape(text))
    return "\n".join("".join(parts) for _, parts in sorted(lines.items(), key=lambda kv: int(kv[0])))


def status_line(app: TopApp) -> str:
    return str(app.query_one("#status", Static).render())


def test_items_newest_first_with_the_first_row_selected_and_a_filter(
    queue: tuple[str, dict[str, int]],
) -> None:
    db, _ = queue

    async def steps(app: TopApp, pilot: Any) -> None:
        await pilot.press("i")
        assert [row[1] for row in rows(app)] == ["5", "4", "3", "2", "1"]
        assert app._selected_id() == 5
        await pilot.press("slash", *"status:failed", "enter")
        await pilot.pause()
        assert [(row[1], row[3]) for row in rows(app)] == [("3", "failed")]
        await pilot.press("slash", "ctrl+u", *"b.txt", "enter")  # text in the path
        await pilot.pause()
        assert [row[1] for row in rows(app)] == ["2"]
        await pilot.press("slash", "ctrl+u", *"status:done", "enter")
        await pilot.pause()
        assert "unknown status 'done'" in status_line(app)
        assert [row[1] for row in rows(app)] == ["2"]  # the last good filter stays

    drive(db, steps)


def test_retry_and_cancel_ask_first_and_act_through_the_library(queue: tuple[str, dict[str, int]]) -> None:
    db, ids = queue

    async def steps(app: TopApp, pilot: Any) -> None:
        await pilot.press("i", "down", "down")  # item 3, the failed one
        assert app._selected_id() == ids["broken.pdf"]
        await pilot.press("r")
        assert isinstance(app.screen, Confirm) and "Retry 1 item (3)?" in app.screen.question
        await pilot.press("n")  # no: nothing happens
        assert statuses(db)[3] == "failed"
        await pilot.press("r", "y")
        await pilot.pause()
        assert statuses(db)[3] == "pending"
        assert "retry: 1 item retried" in status_line(app)
        await pilot.press("up", "up")  # item 5, pending
        await pilot.press("c", "y")
        await pilot.pause()
        assert statuses(db)[5] == "cancelled"
        await pilot.press("c", "y")  # again: the library refuses, the status line says why
        await pilot.pause()
        assert "cancel:" in status_line(app) and "cancelled" in status_line(app)
        await pilot.press("r", "y")  # a cancelled item is retried too
        await pilot.pause()
        assert statuses(db)[5] == "pending"

    drive(db, steps)


def test_marked_items_are_reprocessed_together(queue: tuple[str, dict[str, int]]) -> None:
    db, _ = queue

    async def steps(app: TopApp, pilot: Any) -> None:
        await pilot.press("i", "down", "down", "down", "space", "space")  # marks items 2 and 1
        assert {row[1] for row in rows(app) if row[0] == "*"} == {"2", "1"}
        await pilot.press("p")
        assert "Reprocess the documents of 2 items (1, 2)?" in app.screen.question  # type: ignore[attr-defined]
        await pilot.press("y")
        await pilot.pause()
        assert "2 items queued" in status_line(app)

    drive(db, steps)
    listed = Cli(db).json("list", "--all", "--operation", "reprocess")
    assert sorted(row["document_id"] for row in listed) == [1, 2]


def test_purge_shows_the_dry_run_count_before_it_deletes(queue: tuple[str, dict[str, int]]) -> None:
    db, _ = queue

    async def steps(app: TopApp, pilot: Any) -> None:
        await pilot.press("P", "ctrl+u", *"0s", "enter", "ctrl+u", *"completed", "enter")
        await pilot.pause()
        assert isinstance(app.screen, Confirm)
        assert "Delete 2 items, 2 attempts and 2 documents" in app.screen.question
        await pilot.press("y")
        await pilot.pause()
        assert "purge: deleted 2 items and 2 documents" in status_line(app)

    drive(db, steps)
    assert sorted(statuses(db)) == [3, 4, 5]


def test_read_only_acts_on_nothing(queue: tuple[str, dict[str, int]]) -> None:
    db, _ = queue

    async def steps(app: TopApp, pilot: Any) -> None:
        await pilot.press("i", "down", "down", "r")
        await pilot.pause()
        assert not isinstance(app.screen, Confirm)
        assert "read-only" in status_line(app)
        await pilot.press("P")
        assert "read-only" in status_line(app)

    before = statuses(db)
    drive(db, steps, read_only=True)
    assert statuses(db) == before


def test_detail_shows_every_attempt_and_the_text(queue: tuple[str, dict[str, int]]) -> None:
    db, ids = queue

    async def steps(app: TopApp, pilot: Any) -> None:
        await pilot.press("i", "down", "down", "enter")
        await pilot.pause()
        assert isinstance(app.screen, Detail) and app.screen.item.item.id == ids["broken.pdf"]
        await pilot.pause(0.3)  # refreshes come due while the detail holds the screen
        await pilot.press("escape")
        assert not isinstance(app.screen, Detail)

    drive(db, steps, interval=0.05)
    from rich.console import Console

    service = DocumentQueueService(Database(db), settings=Settings(db=db))
    try:
        console = Console(width=100, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
        console.print(detail_renderable(*show_item(service.db, ids["broken.pdf"])))
        failed = console.export_text()
        console.print(detail_renderable(*show_item(service.db, ids["a.txt"])))
        completed = console.export_text()
    finally:
        service.close()
    assert "Attempts" in failed and "corrupt" in failed and "broken.pdf" in failed
    assert "the text of a.txt" in completed


@pytest.mark.parametrize("size", [(80, 24), (160, 50), (200, 60)])
def test_every_view_draws_at_small_and_large_sizes_and_q_quits(
    queue: tuple[str, dict[str, int]], size: tuple[int, int]
) -> None:
    db, _ = queue

    async def steps(app: TopApp, pilot: Any) -> None:
        overview = screen_text(app)
        assert "completed" in overview and "failed" in overview
        assert db.split("/")[-1] in overview or "postgresql" in overview  # which queue this is
        await pilot.press("w")
        await pilot.pause()
        workers = app.query_one("#worker-table", DataTable)
        assert workers.row_count == 1 and str(workers.get_row_at(0)[1]) == "stopped"
        await pilot.press("i")
        await pilot.pause()
        assert "broken.pdf" in screen_text(app)
        await pilot.press("q" if size[0] < 200 else "ctrl+c")
        await pilot.pause()
        assert app.return_code in (0, None) and not app.is_running

    drive(db, steps, size=size)


def test_off_a_terminal_top_says_what_to_use_instead(queue: tuple[str, dict[str, int]]) -> None:
    db, _ = queue
    result = Cli(db)("top")
    assert result.exit_code == USAGE
    assert result.stderr == "docq: error: docq top needs a terminal; in scripts use `docq stats --json`\n"


def test_no_color_draws_in_greys_only(
    queue: tuple[str, dict[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    import re

    def colours(app: TopApp) -> set[str]:
        found = set(re.findall(r"fill: #([0-9a-f]{6})", app.export_screenshot()))
        channels = {c: [int(c[i : i + 2], 16) for i in (0, 2, 4)] for c in found}
        return {c for c, rgb in channels.items() if max(rgb) - min(rgb) > 8}  # not (nearly) grey

    seen: list[set[str]] = []

    async def steps(app: TopApp, pilot: Any) -> None:
        seen.append(colours(app))

    db, _ = queue
    drive(db, steps)
    monkeypatch.setenv("NO_COLOR", "1")
    drive(db, steps)
    assert seen[0], "no colour without NO_COLOR: this test would prove nothing"
    assert seen[1] == set()
