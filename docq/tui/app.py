"""``docq top``: watch the queue, inspect items, and retry, cancel, reprocess or purge.

Three views (``o`` overview, ``i`` items, ``w`` workers), an item's detail (Enter), and
actions on the selected item or the marked ones (space), each asked ``y/n`` first and
reported in the status line. Every read is one of the library's cheap queries (the
kept counters, the recent end of an index, a page of items by primary key) and every
action the library call the CLI commands make, so all their guarantees hold while
workers run. Refreshed every ``interval`` seconds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.widgets import DataTable, Footer, Input, Static, TabbedContent, TabPane

from docq import __version__
from docq.config import format_duration, parse_duration, plural
from docq.errors import DocqError, UsageError
from docq.render.output import shown_path
from docq.tui.screens import Confirm, Detail, PurgeForm

if TYPE_CHECKING:
    from docq.queue import DocumentQueueService

PATH_WIDTH = 28  # characters of a path the items table shows, so that 80 columns hold a row
PAGE = 200  # items a page of the items view holds (the next page is read by primary key)
STATUSES = ("pending", "retrying", "in_progress", "completed", "failed", "cancelled")


class TopApp(App[None]):
    """The ``docq top`` application over one queue."""

    TITLE = "docq top"
    CSS = """
    #status { height: 1; background: $boost; padding: 0 1; }
    #header { height: 1; padding: 0 1; text-style: bold; }
    #filter { display: none; }
    #filter.shown { display: block; }
    .dialog { width: 70; height: auto; border: thick $accent; padding: 1 2; background: $surface; }
    Confirm, PurgeForm { align: center middle; }
    .detail { padding: 0 1; }
    .hint { color: $text-muted; }
    """
    BINDINGS: ClassVar[list[Any]] = [
        Binding("o", "view('overview')", "Overview"),
        Binding("i", "view('items')", "Items"),
        Binding("w", "view('workers')", "Workers"),
        Binding("slash", "filter", "Filter"),
        Binding("space", "mark", "Mark"),
        Binding("r", "act('retry')", "Retry"),
        Binding("c", "act('cancel')", "Cancel"),
        Binding("p", "act('reprocess')", "Reprocess"),
        Binding("P", "purge", "Purge"),
        Binding("right_square_bracket", "page(1)", "Older", show=False),
        Binding("left_square_bracket", "page(-1)", "Newer", show=False),
        Binding("q", "quit", "Quit"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),  # as every terminal program
    ]

    def __init__(
        self, service: DocumentQueueService, *, where: str, read_only: bool = False, interval: float = 1.0
    ) -> None:
        super().__init__()
        self.service = service
        self.where = where
        self.read_only = read_only
        self.interval = interval
        self.marked: set[int] = set()
        self.filter_text = ""
        self.pages: list[int | None] = [None]  # the keyset cursor of each page seen: newest first
        self.rows: dict[int, Any] = {}  # item id -> its row (ItemRow) on the page shown

    # --- layout and refresh -----------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static(self._header(), id="header")
        with TabbedContent(initial="overview", id="views"):
            with TabPane("Overview", id="overview"):
                yield Static(id="summary")
            with TabPane("Items", id="items"):
                yield Input(placeholder="status:failed  op:ocr  or text in the path or error", id="filter")
                yield DataTable(id="item-table", cursor_type="row", zebra_stripes=True)
            with TabPane("Workers", id="workers"):
                yield DataTable(id="worker-table", cursor_type="row")
        yield Static("", id="status")
        yield Footer()

    def _header(self, width: int = 80) -> Any:
        """``docq 0.1.0 · /path/of/q.db`` in ``width`` columns, the path losing its start."""
        from rich.text import Text

        from docq.render.output import left_truncated

        prefix, suffix = f"docq {__version__} · ", " · read-only" if self.read_only else ""
        room = max(8, width - 4 - len(prefix) - len(suffix))  # the header's padding, and a margin
        return Text(prefix + left_truncated(self.where, room) + suffix, no_wrap=True, overflow="ellipsis")

    def on_resize(self) -> None:
        self.query_one("#header", Static).update(self._header(self.size.width))

    def on_mount(self) -> None:
        items = self.query_one("#item-table", DataTable)
        items.add_columns("", "Item", "Doc", "Status", "Path", "Operation", "Try", "Age", "Last error")
        workers = self.query_one("#worker-table", DataTable)
        workers.add_columns("Worker", "State", "Heartbeat", "Running", "Ahead", "Done")
        self.refresh_all()
        self.set_interval(self.interval, self.refresh_all)

    def refresh_all(self) -> None:
        """Read everything shown again; a read that fails says so in the status line. Not
        while a dialog or the detail is open: it holds the screen, and the rows under a
        question must not change."""
        if len(self.screen_stack) > 1:
            return
        try:
            self._refresh_overview()
            self._refresh_items()
            self._refresh_workers()
        except DocqError as error:
            self.say(f"cannot read the queue: {error}")
        except NoMatches:  # a refresh that came due as the app closes: its widgets are gone
            return

    def _refresh_overview(self) -> None:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        from docq import stats
        from docq.render.dashboard import sparkline, workers_and_failures
        from docq.render.stats import stats_tables

        shot = stats.snapshot(self.service.db, minutes=60)
        counts, facts, *_ = stats_tables(shot.stats)
        completed, failed = sparkline(shot.per_minute), sparkline(shot.failed_per_minute)
        rates = [
            Text(f"completed/min, last hour {completed[60:].strip()}"),
            Text(completed[:60], style="green", no_wrap=True, overflow="crop"),
            Text(f"failed/min, last hour {failed[60:].strip()}"),
            Text(failed[:60], style="red", no_wrap=True, overflow="crop"),
        ]
        top = Table.grid(padding=(0, 3))  # side by side, so that 80x24 shows it all
        top.add_row(counts, Group(facts, Text(""), *rates))
        parts = [top, _per_operation(shot.stats.by_operation), *workers_and_failures(shot)]
        self.query_one("#summary", Static).update(Group(*parts))

    def _refresh_items(self) -> None:
        from docq import views
        from docq.render.listing import status_label

        table = self.query_one("#item-table", DataTable)
        rows = views.list_items(self.service.db, self._item_filter())
        now = self.service.now()
        selected = self._selected_id()
        table.clear()
        self.rows = {}
        for row in rows:
            item = row.item
            status = status_label(item)
            table.add_row(
                "*" if item.id in self.marked else "",
                str(item.id),
                str(item.document_id),
                status,
                _short(shown_path(row.path)),
                item.operation,
                str(item.attempts),
                format_duration(max(0.0, now - item.created_at)),
                (item.last_error or "")[:120],
                key=str(item.id),
            )
            self.rows[int(item.id or 0)] = row
        if selected in self.rows:
            table.move_cursor(row=table.get_row_index(str(selected)))

    def _refresh_workers(self) -> None:
        from docq import views
        from docq.render.listing import worker_state

        table = self.query_one("#worker-table", DataTable)
        now = self.service.now()
        ahead = views.claimed_ahead_by_worker(self.service.db)
        table.clear()
        for worker in views.list_workers(self.service.db, include_stopped=True, limit=50):
            table.add_row(
                worker.id,
                worker_state(worker, now),
                f"{format_duration(max(0.0, now - worker.heartbeat_at))} ago",
                (worker.current_items or "-").replace(",", ", "),
                str(ahead.get(worker.id, 0)),
                str(worker.items_done),
            )

    def _item_filter(self) -> Any:
        from docq.views import ItemFilter

        statuses, operation, words = [], None, []
        for token in self.filter_text.split():
            key, _, value = token.partition(":")
            if key == "status" and value:
                statuses += [part for part in value.split(",") if part]
            elif key == "op" and value:
                operation = value
            else:
                words.append(token)
        return ItemFilter(
            statuses=tuple(statuses),
            operation=operation,
            text=" ".join(words) or None,
            limit=PAGE,
            before=self.pages[-1],
        )

    # --- moving around ----------------------------------------------------------------

    def action_view(self, name: str) -> None:
        self.query_one("#views", TabbedContent).active = name
        if name == "items":
            self.query_one("#item-table", DataTable).focus()

    def action_filter(self) -> None:
        self.action_view("items")
        box = self.query_one("#filter", Input)
        box.add_class("shown")
        box.value = self.filter_text
        box.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "filter":
            return
        text = event.value.strip()
        try:
            self._check_filter(text)
        except UsageError as error:
            self.say(str(error))
            return
        self.filter_text = text
        self.pages = [None]
        event.input.remove_class("shown")
        self.query_one("#item-table", DataTable).focus()
        self._refresh_items()
        self.say(f"filter: {text}" if text else "filter cleared")

    def _check_filter(self, text: str) -> None:
        for token in text.split():
            key, _, value = token.partition(":")
            if key == "status":
                unknown = [part for part in value.split(",") if part not in STATUSES]
                if unknown or not value:
                    raise UsageError(f"unknown status {value!r}: use one of {', '.join(STATUSES)}")

    def action_page(self, step: int) -> None:
        """``]`` the next (older) page, ``[`` the one before: by primary key, never OFFSET."""
        if step > 0 and len(self.rows) >= PAGE:
            self.pages.append(min(self.rows))
        elif step < 0 and len(self.pages) > 1:
            self.pages.pop()
        else:
            return
        self._refresh_items()
        self.say(f"page {len(self.pages)}")

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id != "item-table" or event.row_key.value is None:
            return
        from docq import views

        try:
            document, item = views.show_item(self.service.db, int(event.row_key.value))
        except DocqError as error:
            self.say(str(error))
            return
        self.push_screen(Detail(document, item))

    def action_mark(self) -> None:
        item_id = self._selected_id()
        if item_id is None:
            return
        self.marked.symmetric_difference_update({item_id})
        table = self.query_one("#item-table", DataTable)
        table.update_cell(str(item_id), table.ordered_columns[0].key, "*" if item_id in self.marked else "")
        table.action_cursor_down()

    def _selected_id(self) -> int | None:
        table = self.query_one("#item-table", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return int(key) if key is not None else None

    # --- actions ------------------------------------------------------------------------

    def action_act(self, action: str) -> None:
        if self.read_only:
            self.say("read-only: started with --read-only")
            return
        ids = sorted(self.marked) or ([selected] if (selected := self._selected_id()) is not None else [])
        if self.query_one("#views", TabbedContent).active != "items" or not ids:
            self.say("select an item in the items view (i), or mark some with space")
            return
        what = {"retry": "Retry", "cancel": "Cancel", "reprocess": "Reprocess the documents of"}[action]
        listed = ", ".join(map(str, ids[:8])) + ("…" if len(ids) > 8 else "")
        question = f"{what} {plural(len(ids), 'item')} ({listed})?"

        def answered(yes: bool | None) -> None:
            if yes:
                self._run(action, ids)

        self.push_screen(Confirm(question), answered)

    def _run(self, action: str, ids: list[int]) -> None:
        try:
            if action == "retry":
                changes = self.service.retry(ids)
            elif action == "cancel":
                changes = self.service.cancel(ids)
            else:
                documents = sorted({int(self.rows[i].item.document_id) for i in ids if i in self.rows})
                changes = self.service.reprocess([str(d) for d in documents])
        except DocqError as error:
            self.say(f"{action}: {error}")
            return
        self.marked.clear()
        done: dict[str, int] = {}
        for change in changes:
            done[change.action] = done.get(change.action, 0) + 1
        self.say(
            f"{action}: "
            + (", ".join(f"{plural(n, 'item')} {verb}" for verb, n in done.items()) or "nothing to do")
        )
        self.refresh_all()

    def action_purge(self) -> None:
        if self.read_only:
            self.say("read-only: started with --read-only")
            return

        def asked(answer: tuple[str, str] | None) -> None:
            if answer is not None:
                self._purge_counted(*answer)

        self.push_screen(PurgeForm(), asked)

    def _purge_counted(self, older: str, statuses: str) -> None:
        try:
            seconds = parse_duration(older)
            chosen = tuple(part.strip() for part in statuses.split(",") if part.strip())
            count = self.service.purge(older_than=seconds, statuses=chosen, dry_run=True)
        except DocqError as error:
            self.say(f"purge: {error}")
            return
        if not count.items:
            self.say(f"purge: nothing finished more than {older} ago ({', '.join(chosen)})")
            return
        question = (
            f"Delete {plural(count.items, 'item')}, {plural(count.attempts, 'attempt')} and "
            f"{plural(count.documents, 'document')} (finished more than {older} ago, {', '.join(chosen)})?"
        )

        def answered(yes: bool | None) -> None:
            if not yes:
                return
            try:
                done = self.service.purge(older_than=seconds, statuses=chosen)
            except DocqError as error:
                self.say(f"purge: {error}")
                return
            self.say(f"purge: deleted {plural(done.items, 'item')} and {plural(done.documents, 'document')}")
            self.refresh_all()

        self.push_screen(Confirm(question), answered)

    def say(self, message: str) -> None:
        """The status line."""
        self.query_one("#status", Static).update(message)


def _short(path: str) -> str:
    """A path for the items table: its end, where the name is (the detail shows it whole)."""
    from docq.render.output import left_truncated

    return left_truncated(path, PATH_WIDTH)


def _per_operation(by_operation: dict[str, dict[str, int]]) -> Any:
    from docq.render.output import table as plain_table

    table = plain_table("Operation", "Pending", "In progress", "Completed", "Failed", "Cancelled")
    for operation, counts in sorted(by_operation.items()):
        table.add_row(
            operation,
            *(str(counts.get(k, 0)) for k in ("pending", "in_progress", "completed", "failed", "cancelled")),
        )
    return table
